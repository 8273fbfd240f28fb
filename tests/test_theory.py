"""Closed forms and reduced ODEs (Theorem 5.1 and Figure 6, Theorem 6.7, Theorem 6.8, (6.12)) against independent truth."""

import math

import numpy as np
import pytest
from scipy.optimize import linprog

from tokensphere.theory import (
    equiangular_rhs,
    g_function,
    gamma_closed_form_beta0,
    gamma_curve,
    tau_star,
    transition_curve,
    wendel_probability,
)


@pytest.mark.parametrize("n", [2, 5, 32])
@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
def test_gamma_curve_beta0_matches_closed_form(n, normalization):
    t = np.linspace(0, 4, 41)
    np.testing.assert_allclose(gamma_curve(0.0, t, n, normalization=normalization), gamma_closed_form_beta0(t, n), atol=1e-11)
    if n == 2:
        np.testing.assert_allclose(gamma_closed_form_beta0(t, 2), np.tanh(t), atol=1e-15)


def test_closed_form_from_equiangular_start_solves_the_ode():
    t = np.linspace(0, 2, 21)
    n, g0 = 6, -0.1
    np.testing.assert_allclose(gamma_curve(0.0, t, n, gamma0=g0), gamma_closed_form_beta0(t, n, g0), atol=1e-11)


def test_simplex_is_stationary_and_consensus_attracts():
    for beta in (0.0, 1.0, 7.0):
        for norm in ("softmax", "uniform"):
            assert equiangular_rhs(-1 / 7, beta, 8, norm) == pytest.approx(0.0, abs=1e-15)
            assert equiangular_rhs(1.0, beta, 8, norm) == 0.0
            assert equiangular_rhs(0.5, beta, 8, norm) > 0


def test_sa_gamma_decreases_in_beta_and_usa_increases():
    """(6.9)/(6.10) of Theorem 6.8: the SA right side decreases in β for γ < 1; the USA one increases when γ > 0."""
    t = np.array([0.5, 1.0, 2.0])
    ga = [gamma_curve(b, t, 8) for b in (0.5, 2.0, 5.0)]
    assert np.all(ga[0] > ga[1]) and np.all(ga[1] > ga[2])
    gu = [gamma_curve(b, t, 8, normalization="uniform") for b in (0.5, 2.0, 5.0)]
    assert np.all(gu[0] < gu[1]) and np.all(gu[1] < gu[2])


def test_transition_curve_hits_the_level_and_is_monotone():
    betas = np.array([0.1, 1.0, 3.0, 6.0])
    delta, n = 1e-3, 32
    ts = transition_curve(betas, delta, n, t_max=60.0)
    assert np.all(np.diff(ts) > 0)
    for b, tstar in zip(betas, ts):
        assert gamma_curve(b, [tstar], n)[0] == pytest.approx(1 - delta, abs=1e-8)
    # β = 0 inverse of the closed form: γ0(t) = 1 − δ
    t0 = transition_curve([0.0], delta, n, t_max=60.0)[0]
    u = (1 + (n - 1) * (1 - delta)) / delta  # e^{2t}
    assert t0 == pytest.approx(0.5 * math.log(u), rel=1e-9)
    assert math.isnan(transition_curve([9.0], delta, n, t_max=1.0)[0])


@pytest.mark.parametrize("d", [2, 3, 8])
@pytest.mark.parametrize("beta", [0.5, 2.0, 6.0, 100.0, 1e4])
def test_tau_star_root_and_sign_of_g(beta, d):
    ts = tau_star(beta, d)
    assert 0 < ts < math.pi / 2
    assert beta * math.sin(ts) ** 2 == pytest.approx((d - 1) * math.cos(ts), rel=1e-10, abs=1e-14)
    if beta <= 100:  # beyond, e^{β cos τ} under/overflows float64 and only the sign of the bracket is meaningful
        inside = np.linspace(0, ts, 50)[:-1]
        outside = np.linspace(ts, math.pi, 50)[1:]
        assert np.all(g_function(inside, beta, d) > 0)
        assert np.all(g_function(outside, beta, d) < 0)


def test_tau_star_asymptotics():
    for d in (2, 5):
        b = 1e6
        assert tau_star(b, d) / math.sqrt((d - 1) / b) == pytest.approx(1.0, rel=1e-5)


def test_max_usa_pair_speed_is_at_tau_star():
    """Theorem 5.1 (Appendix B): max_θ e^{β cos θ} sin θ is attained at τ*_β (d = 2)."""
    beta = 7.0
    th = np.linspace(0, math.pi, 200001)
    speed = np.exp(beta * np.cos(th)) * np.sin(th)
    assert th[np.argmax(speed)] == pytest.approx(tau_star(beta, 2), abs=2e-5)


def test_wendel_special_values():
    assert wendel_probability(5, 5) == 1.0
    assert wendel_probability(3, 7) == 1.0
    for n in (2, 5, 10):
        assert wendel_probability(n, 2) == pytest.approx(n / 2 ** (n - 1))


def _in_open_hemisphere(x):
    """LP feasibility: is there w with ⟨x_i, w⟩ ≥ 1 for all i (equivalently > 0)?"""
    n, d = x.shape
    res = linprog(np.zeros(d), A_ub=-x, b_ub=-np.ones(n), bounds=[(None, None)] * d, method="highs")
    return res.status == 0


@pytest.mark.parametrize("n,d", [(6, 2), (6, 3), (8, 4)])
def test_wendel_against_monte_carlo(n, d):
    rng = np.random.default_rng(12345)
    trials = 600
    hits = 0
    for _ in range(trials):
        g = rng.standard_normal((n, d))
        hits += _in_open_hemisphere(g / np.linalg.norm(g, axis=1, keepdims=True))
    p = wendel_probability(n, d)
    se = math.sqrt(p * (1 - p) / trials)
    assert abs(hits / trials - p) < 4 * se + 1e-12


@pytest.mark.parametrize("n", [4, 5, 32, 100, 1000])
def test_large_beta_threshold_d2_is_the_sharpened_condition(n):
    """(n − 1)τ*_β = π at the threshold (Appendix B sharpened); it lies below Figure 2's n²/π² for n ≤ 1000,
    and for n = 32 it is 97.2 (n²/π² ≈ 103.8)."""
    from tokensphere.theory import large_beta_threshold_d2

    b = large_beta_threshold_d2(n)
    assert (n - 1) * tau_star(b, 2) == pytest.approx(math.pi, rel=1e-10)
    assert (n - 1) * tau_star(b * 1.001, 2) < math.pi < (n - 1) * tau_star(b * 0.999, 2)
    assert b < n * n / math.pi**2
    if n == 32:
        assert b == pytest.approx(97.2, abs=0.05)
    if n >= 100:  # τ*_β ≈ 1/√β: β ≈ (n − 1)²/π²
        assert b / ((n - 1) ** 2 / math.pi**2) == pytest.approx(1.0, rel=2e-2)


def test_large_beta_threshold_small_n():
    from tokensphere.theory import large_beta_threshold_d2

    assert large_beta_threshold_d2(2) == 0.0 and large_beta_threshold_d2(3) == 0.0  # 2τ* < π for every β
    with pytest.raises(ValueError, match="n"):
        large_beta_threshold_d2(1)


def test_d_star_grows_like_exp_20_beta():
    """d*(n, β) of (D.9): log d* ≈ 20β + 2β + O(log β) for large β (c(β)² = e^{20β}, γ_β(1/n) ≈ 2e^{−β}/n), and the
    small-γ closed form used above β = 40 joins the ODE solution continuously."""
    from tokensphere.theory import d_star_log10

    n = 8
    slope = (d_star_log10(n, 300.0) - d_star_log10(n, 200.0)) * math.log(10) / 100
    assert slope == pytest.approx(22.0, rel=1e-2)
    assert d_star_log10(n, 40.0 - 1e-9) == pytest.approx(d_star_log10(n, 40.0 + 1e-9), rel=1e-9)
    assert math.isfinite(d_star_log10(n, 2000.0))


def test_d_star_satisfies_d9():
    from tokensphere.theory import d_star_log10

    n, beta = 8, 1.0
    L = d_star_log10(n, beta) * math.log(10)  # log d*
    g = gamma_curve(beta, [1.0 / n], n)[0]
    rhs = 16 * math.exp(20 * max(1.0, beta)) / g**2
    assert math.exp(L) / L == pytest.approx(rhs, rel=1e-8)


def test_regimes_cover_figure_2():
    from tokensphere.theory import regimes

    rs = regimes(32)
    names = {r.theorem for r in rs}
    assert {"Theorem 4.3", "Theorem 5.1", "Theorem 6.1", "Theorem 6.3", "Theorem 6.9", "Theorem 4.2", None} == names
    gap = next(r for r in rs if r.theorem is None)
    assert gap.d_min == gap.d_max == 2 and gap.beta_min == 1.0


@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
def test_transition_time_is_the_time_the_curve_takes(normalization):
    """t*(β) = ∫_0^{1−δ} dγ / γ̇ (6.12): γ_β(t*) = 1 − δ on the solved curve, for β where time stepping can
    resolve it; and in USA at large β (where γ jumps to 1 within float64's time resolution) t* stays finite,
    bounded by the exact time to reach 1 − δ under γ̇ ≥ (2/n)(1 − γ)((n − 1)γ + 1) (β = 0), and decreasing."""
    n, delta = 8, 1e-3
    for beta in (0.5, 3.0, 10.0):
        t_star = float(transition_curve([beta], delta, n, 1e4, normalization=normalization)[0])
        assert math.isfinite(t_star)
        assert float(gamma_curve(beta, [t_star], n, normalization=normalization)[0]) == pytest.approx(1 - delta,
                                                                                                   abs=1e-8)
    if normalization == "uniform":
        slow = float(transition_curve([0.0], delta, n, 60.0, normalization="uniform")[0])
        big = transition_curve([40.0, 100.0, 300.0], delta, n, 60.0, normalization="uniform")
        assert bool(np.isfinite(big).all()) and bool((big < slow).all()) and bool((np.diff(big) < 0).all())


def test_usa_gamma_curve_at_large_beta_jumps_to_one():
    """(6.10) at β = 50: γ stays near its β = 0 growth until t* and is 1 (to float64) after it."""
    n, delta = 4, 1e-3
    t_star = float(transition_curve([50.0], delta, n, 60.0, normalization="uniform")[0])
    g = gamma_curve(50.0, [0.0, 0.5 * t_star, 2 * t_star], n, normalization="uniform")
    assert g[0] == 0.0 and 0.0 < g[1] < 1 - delta and g[2] == pytest.approx(1.0, abs=1e-12)


def test_equiangular_inputs_are_validated():
    with pytest.raises(ValueError, match="normalization"):
        equiangular_rhs(0.5, 3.0, 6, "SA")
    with pytest.raises(ValueError, match="gamma0"):
        gamma_curve(1.0, [0.0, 1.0], 4, gamma0=-0.9)
    with pytest.raises(ValueError, match="gamma0"):
        gamma_closed_form_beta0([0.0, 1.0], 4, gamma0=1.0)
    with pytest.raises(ValueError, match="t must be"):
        gamma_curve(1.0, [0.0, float("nan")], 4)
