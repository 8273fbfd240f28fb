"""The equiangular reduction (Theorem 6.8) and the phase-transition curve Γ_{∞,δ} of (6.12).

For d ≥ n and an equiangular start (orthonormal: γ(0) = 0) every pairwise inner product equals γ_β(t), with
    (SA)   γ̇ = 2(1 − γ)((n−1)γ + 1) / (e^{β(1−γ)} + n − 1)          (6.9), overflow-free form
    (USA)  γ̇ = (2/n) e^{βγ} (1 − γ)((n−1)γ + 1)                       (6.10)
At β = 0 both give γ_0(t) = (e^{2t} − 1)/(e^{2t} + n − 1) from γ(0) = 0.
Γ_{∞,δ} = {(t, β) : γ_β(t) = 1 − δ}; :func:`transition_curve` solves (6.9) once per β with an event.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import solve_ivp

from ..validate import validate_choice, validate_int, validate_real

__all__ = ["equiangular_rhs", "gamma_curve", "gamma_closed_form_beta0", "transition_curve"]


def equiangular_rhs(gamma, beta: float, n: int, normalization: str = "softmax"):
    """Right-hand side of (6.9) (softmax) or (6.10) (uniform) at γ (scalar or array)."""
    gamma = np.asarray(gamma, dtype=float)
    core = (1 - gamma) * ((n - 1) * gamma + 1)
    if normalization == "softmax":
        return 2 * core / (np.exp(beta * (1 - gamma)) + n - 1)
    return (2.0 / n) * np.exp(beta * gamma) * core


def gamma_closed_form_beta0(t, n: int, gamma0: float = 0.0):
    """γ_0(t) at β = 0 from γ(0) = γ0: the logistic solution of γ̇ = (2/n)(1 − γ)((n−1)γ + 1).

    With u = ((n−1)γ + 1)/(1 − γ), u̇ = 2u, so u(t) = u(0) e^{2t}; γ0 = 0 gives (e^{2t} − 1)/(e^{2t} + n − 1).
    """
    t = np.asarray(t, dtype=float)
    u = ((n - 1) * gamma0 + 1) / (1 - gamma0) * np.exp(2 * t)
    return (u - 1) / (u + n - 1)


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
    """γ_β(t) from (6.9)/(6.10), solved by SciPy's DOP853 at the requested times t (sorted, ≥ 0). Returns (T,)."""
    validate_real("beta", beta, minimum=0.0)
    validate_int("n", n, minimum=2)
    validate_choice("normalization", normalization, ("softmax", "uniform"))
    t = np.asarray(t, dtype=float)
    if t.size == 0:
        return t.copy()
    sol = _solve(beta, n, normalization, float(t.max()), gamma0, rtol, atol, t_eval=t)
    if not sol.success:  # pragma: no cover - DOP853 on a scalar smooth ODE
        raise RuntimeError(f"equiangular ODE failed at beta = {beta}: {sol.message}")
    return sol.y[0]


def _solve(beta: float, n: int, normalization: str, t_end: float, gamma0: float, rtol: float, atol: float, **kw):
    """(6.9)/(6.10) from γ(0) = gamma0 on [0, t_end] with SciPy's DOP853; kw: t_eval or events."""
    return solve_ivp(lambda _, g: equiangular_rhs(g, beta, n, normalization), (0.0, t_end), [gamma0],
                     method="DOP853", rtol=rtol, atol=atol, **kw)


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
    """Γ_{∞,δ} as t*(β): the first time γ_β(t) = 1 − δ (NaN if after t_max), one ODE solve per β (6.12).

    betas: (K,) values ≥ 0. Returns (K,) float array.
    """
    validate_real("delta", delta, minimum=0.0, maximum=1.0, strict_minimum=True)
    validate_real("t_max", t_max, minimum=0.0, strict_minimum=True)
    validate_int("n", n, minimum=2)
    out = np.full(len(np.atleast_1d(betas)), math.nan)
    for i, beta in enumerate(np.atleast_1d(betas)):
        validate_real("beta", beta, minimum=0.0)

        def hit(_, g):
            return g[0] - (1 - delta)

        hit.terminal, hit.direction = True, 1
        sol = _solve(float(beta), n, normalization, t_max, 0.0, rtol, atol, events=hit)
        if sol.t_events[0].size:
            out[i] = sol.t_events[0][0]
    return out
