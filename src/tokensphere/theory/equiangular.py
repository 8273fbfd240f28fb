"""The equiangular reduction (Theorem 6.8) and the phase-transition curve Γ_{∞,δ} of (6.12).

For d ≥ n and an equiangular start (orthonormal: γ(0) = 0) every pairwise inner product equals γ_β(t), with
    (SA)   γ̇ = 2(1 − γ)((n−1)γ + 1) / (e^{β(1−γ)} + n − 1)          (6.9), overflow-free form
    (USA)  γ̇ = (2/n) e^{βγ} (1 − γ)((n−1)γ + 1)                       (6.10)
At β = 0 both give γ_0(t) = (e^{2t} − 1)/(e^{2t} + n − 1) from γ(0) = 0.
Γ_{∞,δ} = {(t, β) : γ_β(t) = 1 − δ}; :func:`transition_curve` gives t*(β) = ∫_0^{1−δ} dγ/γ̇ by quadrature.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import quad, solve_ivp
from scipy.optimize import brentq

from ..validate import validate_choice, validate_int, validate_real

__all__ = ["equiangular_rhs", "gamma_curve", "gamma_closed_form_beta0", "transition_curve"]


def equiangular_rhs(gamma, beta: float, n: int, normalization: str = "softmax"):
    """Right-hand side of (6.9) (softmax) or (6.10) (uniform) at γ (scalar or array)."""
    validate_choice("normalization", normalization, ("softmax", "uniform"))
    gamma = np.asarray(gamma, dtype=float)
    core = (1 - gamma) * ((n - 1) * gamma + 1)
    if normalization == "softmax":
        return 2 * core / (np.exp(beta * (1 - gamma)) + n - 1)
    return (2.0 / n) * np.exp(beta * gamma) * core


def _check_gamma0(gamma0: float, n: int) -> float:
    """γ(0) of an equiangular start: an inner product shared by n unit vectors, so in [−1/(n−1), 1)."""
    lo = -1.0 / (n - 1)
    g = validate_real("gamma0", gamma0, minimum=lo, maximum=1.0)
    if g >= 1.0:
        raise ValueError(f"gamma0 must be in [{lo:g}, 1) for n = {n} (γ = 1 is the collapsed state), got {g:g}")
    return g


def gamma_closed_form_beta0(t, n: int, gamma0: float = 0.0):
    """γ_0(t) at β = 0 from γ(0) = γ0: the logistic solution of γ̇ = (2/n)(1 − γ)((n−1)γ + 1).

    With u = ((n−1)γ + 1)/(1 − γ), u̇ = 2u, so u(t) = u(0) e^{2t}; γ0 = 0 gives (e^{2t} − 1)/(e^{2t} + n − 1).
    n ≥ 2, γ0 ∈ [−1/(n−1), 1).
    """
    n = validate_int("n", n, minimum=2)
    gamma0 = _check_gamma0(gamma0, n)
    t = np.asarray(t, dtype=float)
    c = ((n - 1) * gamma0 + 1) / (1 - gamma0)  # u(0)
    if c == 0.0:  # the regular simplex γ0 = −1/(n−1) is stationary
        return np.full(t.shape, gamma0)
    # γ = (u − 1)/(u + n − 1) with u = c e^{2t}; for t ≥ 0 divided through by e^{2t}, so that e^{2t} overflowing
    # (t ≳ 355) gives γ = 1 instead of inf/inf = NaN
    with np.errstate(over="ignore"):
        e = np.exp(-2 * np.abs(t))
    return np.where(t >= 0, (c - e) / (c + (n - 1) * e), (c * e - 1) / (c * e + n - 1))


def gamma_curve(
    beta: float,
    t,
    n: int,
    *,
    normalization: str = "softmax",
    gamma0: float = 0.0,
    rtol: float = 1e-12,
    atol: float = 1e-14,
):
    """γ_β(t) from (6.9)/(6.10), solved by SciPy's DOP853 at the requested times t (sorted, ≥ 0). Returns (T,).

    Solved for w = −log(1 − γ), whose rate ẇ = γ̇/(1 − γ) stays bounded as γ → 1 (in USA, γ̇ ≈ 2e^β(1 − γ)
    near 1 would make γ itself a stiff problem at large β), and returned as γ = 1 − e^{−w}. γ0 ∈ [−1/(n−1), 1).
    """
    validate_real("beta", beta, minimum=0.0)
    validate_int("n", n, minimum=2)
    validate_choice("normalization", normalization, ("softmax", "uniform"))
    gamma0 = _check_gamma0(gamma0, n)
    t = np.asarray(t, dtype=float)
    if t.size == 0:
        return t.copy()
    if t.ndim != 1 or not np.isfinite(t).all() or (t < 0).any() or (np.diff(t) < 0).any():
        raise ValueError(f"t must be a 1-D array of sorted finite times >= 0, got {t!r}")
    w0 = -math.log1p(-gamma0)
    if t[-1] == 0.0:  # every requested time is t = 0 (solve_ivp returns no samples on an empty span)
        return np.full(t.shape, gamma0)
    # solve_ivp wants strictly increasing output times: solve at the distinct ones, repeat the answers
    t, repeat = np.unique(t, return_inverse=True)
    sol = solve_ivp(lambda _, w: _w_rate(w, beta, n, normalization), (0.0, float(t.max())), [w0],
                    method="DOP853", rtol=rtol, atol=atol, t_eval=t)
    if sol.success:
        return -np.expm1(-sol.y[0])[repeat]
    # the jump of USA at large β happens within less than the spacing of float64 times: no solver can step
    # across it, but t(w) = ∫_{w0}^{w} dv / ẇ(v) is a finite, increasing quadrature, inverted time by time
    return np.array([_invert_time(float(tk), w0, beta, n, normalization, rtol) for tk in t])[repeat]


_W_FULL = 40.0  # w beyond which γ = 1 − e^{−w} is 1 in float64


def _invert_time(t: float, w0: float, beta: float, n: int, normalization: str, rtol: float) -> float:
    """γ at time t from w(0) = w0, by root-finding on t(w) = ∫_{w0}^{w} dv / ẇ(v) (ẇ > 0: increasing in w)."""
    # 1/ẇ is concentrated within a few 1/β of w0 at large β (USA: ẇ ∝ e^{βγ}); breakpoints there keep the
    # quadrature from stepping over it (without them, at β = 10^4 the integral over [w0, 40] came out as 0)
    scale = 1.0 / max(float(beta), 1.0)
    marks = w0 + scale * np.geomspace(1e-3, 1e3, 13)

    def elapsed(w: float) -> float:
        inside = [float(p) for p in marks if w0 < p < w]
        return quad(lambda v: 1.0 / _w_rate(v, beta, n, normalization), w0, w, epsabs=0.0, epsrel=rtol,
                    limit=500, points=inside or None)[0]

    if t <= 0.0:
        return -math.expm1(-w0)
    if elapsed(_W_FULL) <= t:
        return 1.0
    w = brentq(lambda v: elapsed(v) - t, w0, _W_FULL, xtol=1e-14, rtol=4 * np.finfo(float).eps)
    return -math.expm1(-w)


def _w_rate(w, beta: float, n: int, normalization: str):
    """dw/dt for w = −log(1 − γ): (6.9)/(6.10) divided by (1 − γ)."""
    gamma = -np.expm1(-np.asarray(w, dtype=float))
    lin = (n - 1) * gamma + 1
    if normalization == "softmax":
        return 2 * lin / (np.exp(beta * (1 - gamma)) + n - 1)
    return (2.0 / n) * np.exp(beta * gamma) * lin


def transition_curve(
    betas,
    delta: float,
    n: int,
    t_max: float,
    *,
    normalization: str = "softmax",
    rtol: float = 1e-12,
    atol: float = 1e-14,
):
    """Γ_{∞,δ} as t*(β): the first time γ_β(t) = 1 − δ (NaN if after t_max) (6.12), from γ(0) = 0.

    γ̇ > 0 on [0, 1), so t*(β) = ∫_0^{1−δ} dγ / γ̇(γ), computed by adaptive quadrature (SciPy's ``quad``) at
    relative accuracy rtol (atol: absolute, in time). No time stepping: at large β in USA γ runs from ~0.7 to
    1 − δ within less than the spacing of float64 times, where a solver cannot step. betas: (K,) values ≥ 0.
    Returns (K,) float array.
    """
    validate_real("delta", delta, minimum=0.0, maximum=1.0, strict_minimum=True)
    validate_real("t_max", t_max, minimum=0.0, strict_minimum=True)
    validate_int("n", n, minimum=2)
    validate_choice("normalization", normalization, ("softmax", "uniform"))
    out = np.full(len(np.atleast_1d(betas)), math.nan)
    for i, beta in enumerate(np.atleast_1d(betas)):
        beta = validate_real("beta", beta, minimum=0.0)
        with np.errstate(over="ignore", divide="ignore"):  # SA at β ≳ 700: γ̇ underflows to 0 near γ = 0, t* = ∞
            t_star, _ = quad(lambda g: 1.0 / equiangular_rhs(g, beta, n, normalization), 0.0, 1.0 - delta,
                             epsabs=atol, epsrel=rtol, limit=500)
        if math.isfinite(t_star) and t_star <= t_max:
            out[i] = t_star
    return out
