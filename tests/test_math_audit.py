"""Regression tests from the audit of the analysis, energy, hardmax, Sinkhorn and theory modules: each checks an
independent truth (a closed form, a limit, a quadrature of the defining integral, a geometric fact)."""

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from tokensphere.analysis import cluster_count, cluster_labels, pair_fraction, pair_statistics
from tokensphere.theory import (
    gamma_closed_form_beta0,
    gamma_curve,
    transition_curve,
    uniform_stability_threshold,
    wendel_probability,
)


# --- Theorem 6.8 at β = 0: the logistic closed form ---------------------------------------------------------


def test_gamma_closed_form_beta0_reaches_one_at_long_times():
    """γ_0(t) = (e^{2t} − 1)/(e^{2t} + n − 1) → 1; for n = 2 it is tanh t. e^{2t} overflows for t ≳ 355, which
    must not turn the limit into inf/inf = NaN; the regular simplex γ0 = −1/(n−1) is stationary at all times."""
    t = np.array([0.0, 0.5, 3.0, 400.0, 1e3, 1e6])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        two = gamma_closed_form_beta0(t, 2)
        five = gamma_closed_form_beta0(t, 5)
        simplex = gamma_closed_form_beta0(t, 5, gamma0=-0.25)
    assert np.allclose(two, np.tanh(t), rtol=0, atol=1e-15)
    assert np.all(np.isfinite(five)) and np.all(five[3:] == 1.0)
    assert np.all(simplex == -0.25)


# --- Theorem 6.8: γ_β(t) from (6.9)/(6.10) ------------------------------------------------------------------


@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
def test_gamma_curve_at_time_zero_only_returns_the_start(normalization):
    """Asking only for t = 0 returns γ(0) (SciPy's solver gives no samples on the empty span [0, 0])."""
    assert gamma_curve(2.0, [0.0], 4, normalization=normalization).tolist() == [0.0]
    assert gamma_curve(2.0, [0.0, 0.0], 4, normalization=normalization, gamma0=0.3).tolist() == [0.3, 0.3]


def test_gamma_curve_accepts_repeated_times():
    """The documented input is sorted times (non-decreasing): a repeated time gets the same γ; at β = 0 every
    value is the logistic closed form γ_0(t) = (e^{2t} − 1)/(e^{2t} + n − 1)."""
    t = np.array([0.0, 0.0, 0.5, 0.5, 2.0])
    want = (np.exp(2 * t) - 1) / (np.exp(2 * t) + 3)
    for normalization in ("softmax", "uniform"):
        assert np.allclose(gamma_curve(0.0, t, 4, normalization=normalization), want, rtol=0, atol=1e-11)


def test_transition_curve_beyond_float_range_is_nan_without_warnings():
    """SA at β = 800: γ̇(0) = 2/(e^β + n − 1) ≈ 2e^{−800} underflows, so t*(β) = ∞ > t_max, i.e. NaN, with no
    divide-by-zero warning for the caller (the overflow is expected there); the value at β = 0 is the logistic
    closed form: γ_0(t*) = 1 − δ ⇔ t* = ½ log(1 + n(1 − δ)/δ)."""
    n, delta = 32, 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = transition_curve([0.0, 800.0], delta, n, 30.0)
    assert np.isnan(t[1])
    assert t[0] == pytest.approx(0.5 * math.log(1 + n * (1 - delta) / delta), rel=1e-10)


def _usa_rate(g, beta, n):  # (6.10), written out here
    return (2.0 / n) * np.exp(beta * g) * (1 - g) * ((n - 1) * g + 1)


def test_gamma_curve_usa_at_huge_beta_before_the_jump():
    """USA, β = 10^4, n = 32: γ climbs slowly from 0 (γ̇ ≈ 2/n near 0) and jumps to 1 near t ≈ n/(2β) = 1.6e-3.
    At t = 10^-5 it is still ≈ 6.3e-7, also when a later time past the jump is requested (that request sends the
    computation through the quadrature fallback). Checked by the elapsed time ∫_0^{γ(t)} dγ / γ̇ = t."""
    beta, n, t1 = 1e4, 32, 1e-5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # e^{βγ} overflows beyond the jump
        g = gamma_curve(beta, [t1, 1.0], n, normalization="uniform")
    assert g[1] == 1.0
    assert 0 < g[0] < 1e-5
    elapsed = quad(lambda u: 1.0 / _usa_rate(u, beta, n), 0.0, g[0], epsabs=0.0, epsrel=1e-13)[0]
    assert elapsed == pytest.approx(t1, rel=1e-8)


# --- Theorem 6.7 (Wendel) for many tokens ---------------------------------------------------------------------


def test_wendel_probability_for_many_tokens():
    """2^{−(n−1)} Σ_{k<d} C(n−1, k) for n beyond 1025, where C(n−1, k) and 2^{n−1} exceed the float range: 1 for
    d ≥ n; n/2^{n−1} on the circle (log compared, the value is subnormal or 0); ½ for d = n/2 with n even
    (Σ_{k<n/2} C(n−1, k) is half of 2^{n−1} by the symmetry C(n−1, k) = C(n−1, n−1−k))."""
    assert wendel_probability(2000, 2000) == 1.0 and wendel_probability(2000, 5000) == 1.0
    assert wendel_probability(4000, 2000) == 0.5
    assert wendel_probability(1030, 2) == math.ldexp(1030, -1029)  # 1.8e-307, normal
    assert wendel_probability(5000, 3) == 0.0  # (1 + 4999 + C(4999, 2)) / 2^4999 underflows


# --- Problem 7: the noise threshold of the uniform state --------------------------------------------------


def _sigma_c_by_quadrature(beta: float, d: int) -> float:
    """σ_c² = 2 E[e^{βs}(1 − s²)] / ((d − 1) E[e^{βs}]), s ~ (1 − s²)^{(d−3)/2} on [−1, 1], by quadrature with the
    log-density shifted by its maximum (no Bessel functions)."""
    k = (d - 3) / 2
    peak = (-k + math.sqrt(k * k + beta * beta)) / beta if beta > 0 else 0.0
    top = beta * peak + k * math.log1p(-peak * peak)

    def w(s):
        return math.exp(beta * s + k * math.log1p(-s * s) - top)

    num = quad(lambda s: w(s) * (1 - s * s), -1, 1, points=[peak], epsabs=0.0, epsrel=1e-12, limit=400)[0]
    den = quad(w, -1, 1, points=[peak], epsabs=0.0, epsrel=1e-12, limit=400)[0]
    return math.sqrt(2 * num / ((d - 1) * den))


@pytest.mark.parametrize("d", [32, 512, 1024])
def test_uniform_stability_threshold_in_high_dimension(d):
    """Figure 3 dimensions (d = 512, 1024) at moderate β: the Bessel functions I_{d/2}(β) underflow, which must
    not give 0/0 = NaN. Compared with the defining integral, and with the β → 0 limit σ_c² = 2/d."""
    betas = [1e-3, 1.0, 9.0]
    got = uniform_stability_threshold(betas, d)
    want = [_sigma_c_by_quadrature(b, d) for b in betas]
    assert np.allclose(got, want, rtol=1e-9, atol=0)
    tiny = uniform_stability_threshold([1e-20, 1e-300], d)
    assert np.allclose(tiny, math.sqrt(2 / d), rtol=1e-12, atol=0)


# --- clusters in half precision ------------------------------------------------------------------------------


def _arc(n: int, width: float, dtype) -> torch.Tensor:
    th = torch.linspace(0.0, width, n, dtype=torch.float64)
    return torch.stack([th.cos(), th.sin(), torch.zeros_like(th)], -1)[None].to(dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("chunked", [False, True])
def test_half_precision_tokens_within_a_small_arc_form_one_cluster(dtype, chunked, monkeypatch):
    """Ten tokens spread over 0.01 rad: every pair has ⟨x_i, x_j⟩ ≥ cos 0.01 > 1 − 10^-3, so there is one
    cluster and every ordered pair is linked. In bfloat16, 1 − δ and the inner products both round to 1 and no
    pair was linked (10 clusters, fraction 0). A half-precision threshold also warns."""
    from tokensphere.analysis import clusters as C

    if chunked:
        monkeypatch.setattr(C, "CHUNKED_MIN_N", 4)
    x = _arc(10, 0.01, dtype)
    with pytest.warns(RuntimeWarning, match="ulps"):
        fraction, count = pair_statistics(x, 1e-3)
    assert int(count[0]) == 1 and float(fraction[0]) == 1.0
    with pytest.warns(RuntimeWarning, match="ulps"):
        assert cluster_labels(x, 1e-3)[0].tolist() == [0] * 10
    with pytest.warns(RuntimeWarning, match="ulps"):
        assert int(cluster_count(x, 1e-3)[0]) == 1 and float(pair_fraction(x, 1e-3)[0]) == 1.0
