"""The regimes of Figure 2, computed from the theorems' thresholds as functions of n (Theorems 4.2–6.9, Appendix B, (D.9)).

Each :class:`Regime` is a rectangle in the (d, β) plane with the theorem that proves convergence to one
cluster there (or None where the paper has no result). The thresholds are computed, not typed in:

* d = 2, small β: Theorem 4.3 with β ≤ 1 (Criscitiello–Rebjock–McRae–Boumal).
* d = 2, large β: Theorem 5.1. The printed threshold is n²/π²; the proof needs (n − 1)τ*_β < π/2, i.e.
  β > :func:`large_beta_threshold_d2` ≈ 4(n − 1)²/π² (Appendix B). Both are reported.
* d ≥ 3: Theorem 6.1 for every β. d ≥ n: Theorem 6.3 (exponential rate). d ≥ d*(n, β): Theorem 6.9, with d*
  from (D.9): d / log d ≥ 16 c(β)² / γ_β(1/n)², c(β) = e^{10 max(1, β)} — astronomically large.
* Every d, β ≪ 1: Theorem 4.2 (arbitrary Q, K).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.optimize import brentq

from ..validate import validate_int, validate_real
from .equiangular import gamma_curve
from .thresholds import tau_star

__all__ = ["Regime", "large_beta_threshold_d2", "d_star_log10", "regimes"]


@dataclass(frozen=True)
class Regime:
    """d in [d_min, d_max], β in [beta_min, beta_max] (inf allowed); theorem None = no result."""

    theorem: str | None
    label: str
    d_min: float
    d_max: float
    beta_min: float
    beta_max: float


def large_beta_threshold_d2(n: int) -> float:
    """The β at which (n − 1)·τ*_β(d = 2) = π/2: above it Theorem 5.1's proof applies on the circle."""
    validate_int("n", n, minimum=2)
    if n == 2:
        return 0.0  # τ* < π/2 for every β > 0
    f = lambda b: (n - 1) * tau_star(b, 2) - math.pi / 2  # noqa: E731
    hi = 1.0
    while f(hi) > 0:
        hi *= 2
    return brentq(f, 1e-9, hi, xtol=1e-12, rtol=1e-14)


def d_star_log10(n: int, beta: float) -> float:
    """log10 of the smallest d with d / log d ≥ 16 c(β)² / γ_β(1/n)² (D.9), c(β) = e^{10 max(1, β)}."""
    validate_int("n", n, minimum=2)
    validate_real("beta", beta, minimum=0.0)
    g = float(gamma_curve(beta, [1.0 / n], n)[0])
    rhs = math.log(16) + 20 * max(1.0, beta) - 2 * math.log(g)  # log of the right side
    f = lambda L: L - math.log(L) - rhs  # noqa: E731  (L = log d; increasing for L > 1)
    L = brentq(f, math.e, 10 * rhs + 10)
    return L / math.log(10)


def regimes(n: int, beta_max: float | None = None) -> list[Regime]:
    """The rectangles of Figure 2 for n tokens. d axis: 2, 3, n, d*(n, 1); β axis up to ``beta_max``."""
    validate_int("n", n, minimum=2)
    printed = n * n / math.pi**2
    proof = large_beta_threshold_d2(n)
    top = beta_max if beta_max is not None else 2 * max(printed, proof, 2.0)
    dstar = 10 ** d_star_log10(n, 1.0)
    inf = math.inf
    return [
        Regime("Theorem 4.3", "β ≤ 1: one cluster (d = 2)", 2, 2, 0.0, 1.0),
        Regime(None, "no result when d = 2", 2, 2, 1.0, proof),
        Regime("Theorem 5.1", f"β ≥ {proof:.3g} (proof; printed n²/π² = {printed:.3g})", 2, 2, proof, top),
        Regime("Theorem 6.1", "clustering as t → ∞, every β", 3, inf, 0.0, top),
        Regime("Theorem 6.3", "d ≥ n: exponential rate", n, inf, 0.0, top),
        Regime("Theorem 6.9", f"d ≥ d* ≈ 10^{math.log10(dstar):.0f}: exact time of clustering", dstar, inf, 0.0, top),
        Regime("Theorem 4.2", "β ≪ 1, arbitrary Q, K", 2, inf, 0.0, 0.0),
    ]
