"""Linear stability of the uniform density ρ ≡ 1/(2π) under the continuity equation (3.4) on the circle.

With h_β(u) = e^{β cos u} = Σ_k I_k(β) e^{iku} (the Bessel expansion; I_k the modified Bessel functions),
(h_β ∗ e^{ik·})(θ) = 2π I_k(β) e^{ikθ} and (h_β' ∗ e^{ik·}) = 2π ik I_k(β) e^{ikθ}. Perturb
ρ = 1/(2π) + ε e^{ikθ}: the uniform part carries no velocity, so to first order in ε
    (USA)  ∂_t ε = −∂_θ((1/2π)(1/β) 2π ik I_k ε) / e^{ikθ} = (k² I_k(β)/β) ε,
    (SA)   the same divided by Z[1/2π] = I_0(β) (the perturbation of Z multiplies a zero numerator).
By I_{k−1} − I_{k+1} = (2k/β) I_k, λ_k = k (I_{k−1}(β) − I_{k+1}(β))/2 for USA, which extends to β = 0
(λ_1 = ½, the Kuramoto rate for coupling K = 1 of (7.2); λ_k = 0 for k ≥ 2). Every mode k ≥ 1 grows (the
uniform state is the minimiser of E_β, Proposition 3.4); the fastest, k*(β) = argmax_k k² I_k(β), sets the
number of clusters that form first: for large β, I_k(β) ≈ e^{β − k²/(2β)}/√(2πβ), so k* ≈ √(2β).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ive

from ..validate import validate_int
from .kernel import check_beta

__all__ = ["growth_rate", "most_unstable_mode"]


def growth_rate(k, beta, normalization: str = "softmax") -> np.ndarray:
    """λ_k(β): the growth rate of Fourier mode k of a perturbation of the uniform density (linearised (3.4)).

    USA: λ_k = k² I_k(β)/β = k (I_{k−1}(β) − I_{k+1}(β))/2.   SA: λ_k = k² I_k(β)/(β I_0(β)).
    k: integers ≥ 0 (any shape); beta ≥ 0 (any shape); they broadcast. Returns float64 of the broadcast
    shape, computed with e^{−β}I_k(β) (scipy.special.ive) so that SA does not overflow at large β.
    """
    kk = np.asarray(k)
    if not np.issubdtype(kk.dtype, np.integer) or (kk < 0).any():
        raise ValueError(f"k must be integers >= 0, got {k!r}")
    b = check_beta(beta, normalization)
    try:
        kk, b = np.broadcast_arrays(kk.astype(np.float64), b)
    except ValueError:
        raise ValueError(f"k and beta must broadcast to one shape, got shapes {kk.shape} and {b.shape}") from None
    core = kk * (ive(kk - 1, b) - ive(kk + 1, b)) / 2  # e^{−β} k² I_k(β)/β
    if normalization == "softmax":
        return core / ive(0, b)
    return core * np.exp(b)


def most_unstable_mode(beta, normalization: str = "softmax", *, k_max: int | None = None) -> np.ndarray:
    """k*(β) = argmax_{k ≥ 1} λ_k(β) (the same for SA and USA): the predicted number of first clusters.

    beta: ≥ 0, any shape. k_max: modes searched (default 4√β + 8, well past the maximum near √(2β)).
    Returns int64 of beta's shape (k* = 1 for β < 1.0445, where I_1(β) = 4 I_2(β) and mode 2 takes over).
    """
    b = check_beta(beta, normalization)
    top = int(4 * np.sqrt(float(b.max(initial=0.0))) + 8) if k_max is None else validate_int("k_max", k_max, minimum=1)
    ks = np.arange(1, top + 1)
    rates = growth_rate(ks.reshape((-1,) + (1,) * b.ndim), b[None], normalization)
    return ks[np.argmax(rates, axis=0)]
