"""Scalar thresholds of the theorems: τ*_β and g (Theorem 5.1, Figure 6), Wendel's probability (Thm 6.7), and
the probability that two independent uniform points are δ-close (the t = 0 value of Figure 3's statistic)."""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

from ..validate import validate_int, validate_real

__all__ = ["g_function", "tau_star", "uniform_pair_probability", "wendel_probability"]


def g_function(tau, beta: float, d: int = 2):
    """g(τ) = e^{β cos τ}((d − 1) cos τ − β sin²τ); d = 2 is the function of Figure 6 (Theorem 5.1, Appendix B).

    Overflows to ±inf where e^{β cos τ} does (β ≳ 709) and underflows to ±0 for cos τ < 0 at large β.
    """
    tau = np.asarray(tau, dtype=float)
    with np.errstate(over="ignore", under="ignore"):
        return np.exp(beta * np.cos(tau)) * ((d - 1) * np.cos(tau) - beta * np.sin(tau) ** 2)


def tau_star(beta: float, d: int = 2) -> float:
    """The unique root in [0, π/2) of β sin²τ = (d − 1) cos τ; g < 0 for τ*_β < |τ| ≤ π. β > 0.

    Closed form: with c = cos τ, βc² + (d−1)c − β = 0, so c = (−(d−1) + √((d−1)² + 4β²)) / (2β).
    """
    beta = validate_real("beta", beta, minimum=0.0, strict_minimum=True)
    validate_int("d", d, minimum=2)
    k = d - 1
    c = (-k + math.sqrt(k * k + 4 * beta * beta)) / (2 * beta)
    root = math.acos(min(1.0, c))
    # polish against the defining equation (guards cancellation for tiny β)
    f = lambda tau: beta * math.sin(tau) ** 2 - k * math.cos(tau)  # noqa: E731
    if 0 < root < math.pi / 2 and f(max(root - 1e-9, 0)) < 0 < f(min(root + 1e-9, math.pi / 2)):
        root = brentq(f, max(root - 1e-9, 0.0), min(root + 1e-9, math.pi / 2), xtol=1e-15)
    return root


def wendel_probability(n: int, d: int) -> float:
    """P(n i.i.d. uniform points on S^{d−1} lie in an open hemisphere) = 2^{−(n−1)} Σ_{k<d} C(n−1, k) (Thm 6.7)."""
    validate_int("n", n, minimum=1)
    validate_int("d", d, minimum=1)
    if d >= n:
        return 1.0
    # exact integers, one correctly rounded division (floats of C(n − 1, k) and 2^{n−1} overflow beyond n ≈ 1025)
    return sum(math.comb(n - 1, k) for k in range(d)) / 2 ** (n - 1)


def uniform_pair_probability(d: int, delta: float) -> float:
    """P(⟨x, y⟩ > 1 − δ) for independent x, y uniform on S^{d−1}: (1 + ⟨x, y⟩)/2 ~ Beta((d−1)/2, (d−1)/2),
    so the probability is I_{δ/2}((d−1)/2, (d−1)/2) (regularised incomplete beta function). d ≥ 2, 0 < δ ≤ 2."""
    from scipy.special import betainc

    validate_int("d", d, minimum=2)
    validate_real("delta", delta, minimum=0.0, maximum=2.0, strict_minimum=True)
    a = (d - 1) / 2
    return float(betainc(a, a, delta / 2))
