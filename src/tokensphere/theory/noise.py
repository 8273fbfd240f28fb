"""Noise (Problem 7): where Brownian noise of strength σ stops the clustering of the mean-field (SA) dynamics.

The mean-field linear stability threshold of the uniform measure [derived here, not in the paper]:
perturb ρ = σ_d(1 + ε⟨x, a⟩); at the uniform state the (SA) field is P⊥_x ∫ e^{β⟨x,y⟩} y dρ(y) / Z with
∫ e^{β⟨x,y⟩} y yᵀ dσ_d(y) = A(β) I + B(β) x xᵀ, so the perturbation field is ε A(β) P⊥_x a / Z₀(β), whose
spherical divergence is −(d−1) ε A/Z₀ ⟨x, a⟩; the noise contributes (σ²/2) Δ⟨x, a⟩ = −(d−1)(σ²/2)⟨x, a⟩. The
mode grows iff σ² < σ_c²(β) = 2 A(β)/Z₀(β) = 2 E[e^{βs}(1 − s²)] / ((d − 1) E[e^{βs}]), s = ⟨x, y⟩ for independent
uniform x, y (density ∝ (1 − s²)^{(d−3)/2} on [−1, 1]), which in closed form is
σ_c² = 2 I_{d/2}(β) / (β I_{d/2−1}(β)) (modified Bessel functions). At β = 0 this is σ_c² = 2/d; for β → ∞ it
decays like 2/β.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special

from ..validate import validate_int, validate_real

__all__ = ["uniform_stability_threshold"]


def uniform_stability_threshold(beta: float | Sequence[float], d: int) -> np.ndarray:
    """σ_c(β): the uniform measure is linearly unstable for the mean-field (SA) dynamics with noise σ < σ_c(β)
    (see the module docstring). beta: a number or a sequence; d ≥ 2. Returns an array of σ_c, shape of beta."""
    validate_int("d", d, minimum=2)
    betas = np.atleast_1d(np.asarray(beta, dtype=np.float64))
    out = np.empty_like(betas)
    for k, b in enumerate(betas):
        validate_real("beta", b, minimum=0.0)
        if b == 0.0:
            out[k] = math.sqrt(2.0 / d)
            continue
        # ∫_{−1}^{1} e^{βs}(1 − s²)^{ν−1/2} ds = √π Γ(ν + ½)(2/β)^ν I_ν(β): with ν = d/2 (numerator) and
        # d/2 − 1 (denominator), σ_c² = 2 I_{d/2}(β) / (β I_{d/2−1}(β))
        out[k] = math.sqrt(2.0 * _bessel_ratio(d / 2, float(b)) / b)
    return out.reshape(np.shape(beta))


def _bessel_ratio(nu: float, x: float) -> float:
    """I_ν(x) / I_{ν−1}(x) for ν ≥ 1, x > 0. Exponentially scaled Bessel functions (the scale cancels) when both
    are normal numbers; where I_ν underflows (x ≪ ν: large d or tiny β, e.g. d = 512 at β ≤ 9, where 0/0 gave
    NaN) the continued fraction I_ν/I_{ν−1} = x / (2ν + x · I_{ν+1}/I_ν), evaluated backwards from deep enough
    that the truncation (started at 0) is forgotten."""
    num, den = float(special.ive(nu, x)), float(special.ive(nu - 1, x))
    if num > 1e-280 and den > 1e-280 and math.isfinite(num) and math.isfinite(den):
        return num / den
    r = 0.0
    for m in range(int(2 * x) + 200, -1, -1):
        r = x / (2 * (nu + m) + x * r)
    return r
