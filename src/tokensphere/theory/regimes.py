"""The regimes of Figure 2, computed from the theorems' thresholds as functions of n (Theorems 4.2–6.9, Appendix B, (D.9)).

Each :class:`Regime` is a region of the (d, β) plane with the theorem that proves convergence to one cluster
there (or None where the paper has no result). The thresholds are computed, not typed in:

* d = 2, small β: Theorem 4.3 with β ≤ 1 (Criscitiello–Rebjock–McRae–Boumal).
* d = 2, large β: Theorem 5.1. At a local maximum of E_β, (B.2) applied to the points between two circular
  gaps larger than τ*_β is a sum of negative terms (g < 0 beyond τ*_β), so at most one gap exceeds τ*_β and
  the points lie in an arc of length ≤ (n − 1)τ*_β; (n − 1)τ*_β < π puts them in an open half-circle, where
  Lemma 6.4 forces one cluster. :func:`large_beta_threshold_d2` is that β (97.2 for n = 32); it lies below
  Figure 2's n²/π² (103.8 for n = 32) for every n ≤ 1000, so the printed threshold is proven.
* d ≥ 3: Theorem 6.1 for every β. d ≥ n: Theorem 6.3 (exponential rate). d ≥ d*(n, β): Theorem 6.9, with d*
  from (D.9): d / log d ≥ 16 c(β)² / γ_β(1/n)², c(β) = e^{10 max(1, β)}: it grows like e^{20β}, so its region
  is bounded by the curve β ↦ d*(n, β) (:attr:`Regime.boundary`), not by a vertical line.
* Every d, β ≪ 1: Theorem 4.2 (arbitrary Q, K).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from ..validate import validate_int, validate_real
from .equiangular import gamma_curve
from .thresholds import tau_star

__all__ = ["Regime", "large_beta_threshold_d2", "d_star_log10", "regimes"]

# above this β, γ_β(1/n) of (6.9) is computed from its small-γ form (e^{β} would overflow near β ≈ 709)
_SMALL_GAMMA_BETA = 40.0


@dataclass(frozen=True)
class Regime:
    """d in [d_min, d_max], β in [beta_min, beta_max] (inf allowed); theorem None = no result.

    boundary: for a region whose left edge depends on β, sampled points (β, log10 d_min(β)) of that edge
    (d_min is then its smallest value); empty for rectangles.
    """

    theorem: str | None
    label: str
    d_min: float
    d_max: float
    beta_min: float
    beta_max: float
    boundary: tuple[tuple[float, float], ...] = ()


def large_beta_threshold_d2(n: int) -> float:
    """The β at which (n − 1)·τ*_β(d = 2) = π: above it the sharpened argument of Theorem 5.1 (Appendix B,
    (B.2) and Lemma 6.4) proves convergence to one cluster on the circle. n ≥ 2; 0 for n = 2."""
    validate_int("n", n, minimum=2)
    if n == 2:
        return 0.0  # τ* < π/2 < π for every β > 0
    f = lambda b: (n - 1) * tau_star(b, 2) - math.pi  # noqa: E731
    if f(1e-9) <= 0:  # n = 3: (n − 1)τ* < 2·π/2 = π for every β > 0
        return 0.0
    hi = 1.0
    while f(hi) > 0:
        hi *= 2
    return brentq(f, 1e-9, hi, xtol=1e-12, rtol=1e-14)


def _log_gamma_at(n: int, beta: float) -> float:
    """log γ_β(1/n) of (6.9) from γ(0) = 0. For β > 40, γ ≤ 1e-17 on [0, 1/n] and γ̇ = 2/(e^{β} + n − 1) up to a
    relative O(βγ) ≤ 1e-15, so γ_β(1/n) = 2/(n(e^{β} + n − 1)) in closed form (written without overflow)."""
    if beta > _SMALL_GAMMA_BETA:
        return math.log(2 / n) - beta - math.log1p((n - 1) * math.exp(-beta))
    return math.log(float(gamma_curve(beta, [1.0 / n], n)[0]))


def d_star_log10(n: int, beta: float) -> float:
    """log10 of the smallest d with d / log d ≥ 16 c(β)² / γ_β(1/n)² (D.9), c(β) = e^{10 max(1, β)}. Finite for
    every β ≥ 0 (computed in logs: d* itself overflows a float beyond β ≈ 30)."""
    validate_int("n", n, minimum=2)
    validate_real("beta", beta, minimum=0.0)
    rhs = math.log(16) + 20 * max(1.0, beta) - 2 * _log_gamma_at(n, beta)  # log of the right side
    f = lambda L: L - math.log(L) - rhs  # noqa: E731  (L = log d; increasing for L > 1)
    L = brentq(f, math.e, 10 * rhs + 10)
    return L / math.log(10)


def regimes(n: int, beta_max: float | None = None, *, boundary_points: int = 64) -> list[Regime]:
    """The regions of Figure 2 for n tokens. d axis: 2, 3, n, d*(n, β); β axis up to ``beta_max``.

    The Theorem 6.9 region starts at d*(n, β) for each β on the axis: its :attr:`Regime.boundary` holds
    ``boundary_points`` samples (β, log10 d*) with β geometric between 10^-2 and ``beta_max``.
    """
    validate_int("n", n, minimum=2)
    validate_int("boundary_points", boundary_points, minimum=2)
    printed = n * n / math.pi**2
    proof = large_beta_threshold_d2(n)
    if beta_max is not None:
        beta_max = validate_real("beta_max", beta_max, minimum=1e-2, strict_minimum=True)  # the axis starts at 10^-2
    top = beta_max if beta_max is not None else 2 * max(printed, proof, 2.0)
    betas = np.geomspace(1e-2, top, boundary_points)
    edge = tuple((float(b), d_star_log10(n, float(b))) for b in betas)
    low = min(L for _, L in edge)
    inf = math.inf
    return [
        Regime("Theorem 4.3", "β ≤ 1: one cluster (d = 2)", 2, 2, 0.0, 1.0),
        Regime(None, "no result when d = 2", 2, 2, 1.0, max(proof, 1.0)),
        Regime("Theorem 5.1", f"β > {proof:.3g}: (n−1)τ*_β < π (printed n²/π² ≈ {printed:.3g})", 2, 2,
               max(proof, 1.0), top),
        Regime("Theorem 6.1", "clustering as t → ∞, every β", 3, inf, 0.0, top),
        Regime("Theorem 6.3", "d ≥ n: exponential rate", n, inf, 0.0, top),
        Regime("Theorem 6.9", "d ≥ d*(n, β) ≈ e^{20β}: exact time of clustering", 10**low, inf, 0.0, top,
               boundary=edge),
        Regime("Theorem 4.2", "β ≪ 1, arbitrary Q, K", 2, inf, 0.0, 0.0),
    ]
