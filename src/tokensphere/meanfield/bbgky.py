"""The first equation of the BBGKY hierarchy on the circle for USA, (8.1), estimated from particle ensembles.

For n particles with i.i.d. uniform initial angles, ψ(t, ·) is the law of the difference x = θ_2 − θ_1 and

    ∂_t ψ + ∂_x(v ψ) = 0 on R_{≥0} × T,   ψ(0, ·) = 1/(2π),
    v(t, x) = (2/(βn)) h_β'(x) − (2(n−2)/(βn)) g(t, x),   g(t, x) = E[−h_β'(θ_3) | θ_1 = 0, θ_2 = x],     (8.1)

h_β(u) = e^{β cos u}. The system is not closed: g needs the three-point law. It holds because the joint law
is exchangeable and invariant under rotations and the reflection θ ↦ −θ.

Estimation from M independent systems (angles (T, M, n)), all ordered pairs (i, j) and third particles k:
on K bins of width Δ = 2π/K centred at x_b = bΔ, the weak form of (8.1) with the hat functions
φ_b(x) = max(0, 1 − |x − x_b|/Δ) (φ_b' = ±1/Δ on the dual cells D_{b∓½} centred at the faces) reads

    Δ [ψ̄_b(t_1) − ψ̄_b(t_0)] + ∫_{t_0}^{t_1} (J_{b+½} − J_{b−½}) dt = 0,    J_f = ψ_f v_f,

with ψ̄_b = E[φ_b(x)]/Δ (hat-weighted histogram), ψ_f = P(x ∈ D_f)/Δ, and v_f from (8.1) with the dual-cell
averages ⟨h_β'(x)⟩_f and g_f = ⟨−h_β'(θ_k − θ_i)⟩_f (triples binned by x_ij after rotating θ_i to 0). No bin
width enters the identity, so the residual's mean is zero and its size is Monte-Carlo noise ∝ M^{−1/2};
its standard error comes from the spread over the M independent systems. The time integral is Simpson's rule
on the saved times (its error is O(Δt⁴) on the expectation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import simpson

from ..validate import validate_int, validate_real

__all__ = ["BBGKYResidual", "bbgky_residual", "pair_difference_density"]


@dataclass(frozen=True)
class BBGKYResidual:
    """The weak-form residual of (8.1) on K bins, and the estimated ψ and g.

    x: (K,) bin centres bΔ mapped to [−π, π). faces: (K,) dual-cell centres (b + ½)Δ in [−π, π).
    t: (T,) times. psi: (T, K) hat-weighted estimate ψ̄_b of ψ(t, x_b). psi_faces: (T, K) dual-cell
    histogram ψ_f. g: (T, K) estimate g_f of g(t, x_f) (NaN where a dual cell is empty). v: (T, K) the
    velocity (8.1) at the faces. change, pair_term, triple_term: (M, K) per-system parts of the residual:
    Δ(ψ̄(t_1) − ψ̄(t_0)), and the time-integrated flux differences of the (2/(βn))h_β' and −(2(n−2)/(βn)) g terms.
    """

    x: np.ndarray
    faces: np.ndarray
    t: np.ndarray
    psi: np.ndarray
    psi_faces: np.ndarray
    g: np.ndarray
    v: np.ndarray
    change: np.ndarray
    pair_term: np.ndarray
    triple_term: np.ndarray

    @property
    def per_system(self) -> np.ndarray:
        """(M, K): each system's residual Δ(ψ̄(t_1) − ψ̄(t_0)) + ∫ (J_{b+½} − J_{b−½}) dt."""
        return self.change + self.pair_term + self.triple_term

    @property
    def residual(self) -> np.ndarray:
        """(K,): the residual, averaged over the M systems."""
        return self.per_system.mean(axis=0)

    @property
    def standard_error(self) -> np.ndarray:
        """(K,): its Monte-Carlo standard error, std over systems / √M."""
        s = self.per_system
        return s.std(axis=0, ddof=1) / np.sqrt(s.shape[0])


def _wrap(x: np.ndarray) -> np.ndarray:
    return (x + np.pi) % (2 * np.pi) - np.pi


def _check_angles(t, theta) -> tuple[np.ndarray, np.ndarray]:
    th = np.asarray(theta, dtype=np.float64)
    if th.ndim != 3 or th.shape[2] < 3 or th.shape[1] < 2 or not np.isfinite(th).all():
        raise ValueError(f"theta must be finite angles (T, M, n) with M >= 2 systems of n >= 3 particles, "
                         f"got shape {th.shape}")
    tt = np.asarray(t, dtype=np.float64)
    if tt.shape != th.shape[:1] or tt.size < 3 or not np.isfinite(tt).all() or (np.diff(tt) <= 0).any():
        raise ValueError(f"t must be {th.shape[0]} >= 3 increasing times matching theta's first axis, got {t!r}")
    return tt, th


def pair_difference_density(theta, n_bins: int) -> np.ndarray:
    """Histogram density of x = θ_j − θ_i over all ordered pairs i ≠ j, on K bins centred at 2πb/K.

    theta: (..., M, n) angles of M systems. Returns (..., K), integrating to 1 (∑ ψ_b Δ = 1).
    """
    th = np.asarray(theta, dtype=np.float64)
    k = validate_int("n_bins", n_bins, minimum=4)
    if th.ndim < 2 or th.shape[-1] < 2:
        raise ValueError(f"theta must have shape (..., M, n) with n >= 2 angles per system, got {th.shape}")
    n = th.shape[-1]
    off = ~np.eye(n, dtype=bool)
    x = (th[..., None, :] - th[..., :, None])[..., off]  # (..., M, n(n−1))
    idx = np.floor((x % (2 * np.pi)) * k / (2 * np.pi) + 0.5).astype(np.int64) % k
    counts = np.apply_along_axis(np.bincount, -1, idx.reshape(*idx.shape[:-2], -1), minlength=k)
    return counts / (x.shape[-1] * x.shape[-2]) * (k / (2 * np.pi))


def bbgky_residual(t, theta, beta: float, n_bins: int = 32) -> BBGKYResidual:
    """The weak-form residual of (8.1) between the first and last saved times, with ψ and g estimated.

    t: (T,) increasing times, T ≥ 3 (odd T makes Simpson's rule exact for cubics). theta: (T, M, n) angles
    of M independent USA systems (same n, same β) at those times. beta: ≥ 0 (β = 0: h_β'/β → −sin).
    n_bins: K ≥ 4. Returns a :class:`BBGKYResidual`. Raises ValueError for bad shapes or parameters.
    """
    tt, th = _check_angles(t, theta)
    beta = validate_real("beta", beta, minimum=0.0)
    k = validate_int("n_bins", n_bins, minimum=4)
    n_t, m, n = th.shape
    width = 2 * np.pi / k
    off = ~np.eye(n, dtype=bool)
    # (1/β) h_β'(u) = −sin u e^{β cos u}; factors of β cancel against the 1/β of (8.1)
    dh = lambda u: -np.sin(u) * np.exp(beta * np.cos(u))  # noqa: E731
    centres = np.arange(k) * width

    psi_hat = np.empty((n_t, m, k))
    counts = np.empty((n_t, m, k))
    pair_sum = np.empty((n_t, m, k))
    triple_sum = np.empty((n_t, m, k))
    for a in range(n_t):
        diff = th[a][:, None, :] - th[a][:, :, None]              # (M, n, n): θ_j − θ_i at [s, i, j]
        x = (diff % (2 * np.pi))[:, off]                          # (M, n(n−1)) in [0, 2π)
        d_pair = dh(diff)
        row = d_pair.sum(axis=2, keepdims=True)                   # Σ_k h̃(θ_k − θ_i)
        third = ((row - d_pair) / (n - 2))[:, off]                # mean over k ∉ {i, j} of h̃(θ_k − θ_i)
        pair = d_pair[:, off]
        # hat weights on the two nearest centres
        pos = x / width
        left = np.floor(pos).astype(np.int64)
        frac = pos - left
        psi_hat[a] = _bin(left % k, 1 - frac, k) + _bin((left + 1) % k, frac, k)
        face = left % k                                           # dual cell D_{b+½} = [bΔ, (b+1)Δ)
        counts[a] = _bin(face, np.ones_like(x), k)
        pair_sum[a] = _bin(face, pair, k)
        triple_sum[a] = _bin(face, third, k)
    pairs = n * (n - 1)
    psi_bar = psi_hat / (pairs * width)                           # E[φ_b]/Δ, per system
    psi_f = counts / (pairs * width)
    # J_f = ψ_f v_f split into its two terms of (8.1): (2/n)⟨h̃⟩_f ψ_f and −(2(n−2)/n) g_f ψ_f, g = −⟨third⟩
    j_pair = (2 / n) * pair_sum / (pairs * width)
    j_triple = (2 * (n - 2) / n) * triple_sum / (pairs * width)
    flux_div = lambda j: simpson(j - np.roll(j, 1, axis=-1), x=tt, axis=0)  # noqa: E731  ∫ (J_{b+½} − J_{b−½})
    tot_counts = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        g_over_beta = -triple_sum.sum(axis=1) / tot_counts       # ⟨−h_β'/β⟩_f: finite at β = 0
        v = (2 / n) * pair_sum.sum(axis=1) / tot_counts - (2 * (n - 2) / n) * g_over_beta
    g = beta * g_over_beta                                        # g of (8.1) is ⟨−h_β'⟩_f, not ⟨−h_β'/β⟩_f
    return BBGKYResidual(
        x=_wrap(centres), faces=_wrap(centres + width / 2), t=tt, psi=psi_bar.mean(axis=1),
        psi_faces=psi_f.mean(axis=1), g=g, v=v,
        change=width * (psi_bar[-1] - psi_bar[0]), pair_term=flux_div(j_pair), triple_term=flux_div(j_triple),
    )


def _bin(index: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """Per-row weighted bincount: index, weights (M, P) → (M, K)."""
    m = index.shape[0]
    flat = (index + k * np.arange(m)[:, None]).reshape(-1)
    return np.bincount(flat, weights=weights.reshape(-1), minlength=m * k).reshape(m, k)
