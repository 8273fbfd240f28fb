"""Smooth initial densities on the circle: ρ_0(θ) = (1/2π)(1 + Σ_k a_k cos kθ + b_k sin kθ), with exact cell
averages (for the PDE) and exact i.i.d. samples (for the particles), so that both start from one law."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..validate import validate_int
from .kernel import cell_centres

__all__ = ["TrigonometricDensity"]


@dataclass(frozen=True)
class TrigonometricDensity:
    """ρ(θ) = (1/2π)(1 + Σ_{k=1}^K a_k cos kθ + b_k sin kθ), a probability density on T.

    cos, sin: (K,) coefficients a_k, b_k (sin defaults to zeros). Raises ValueError unless
    Σ_k (|a_k| + |b_k|) < 1 (a sufficient condition for ρ > 0, and the rejection sampler's bound).
    """

    cos: tuple[float, ...] = ()
    sin: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        a, b = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (self.cos, self.sin))
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            raise ValueError("cos and sin must hold finite coefficients")
        if np.abs(a).sum() + np.abs(b).sum() >= 1:
            raise ValueError(f"cos and sin must satisfy sum |a_k| + |b_k| < 1 (positivity), got {a}, {b}")
        object.__setattr__(self, "cos", tuple(float(v) for v in a))
        object.__setattr__(self, "sin", tuple(float(v) for v in b))

    def _coefficients(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k_max = max(len(self.cos), len(self.sin))
        a = np.zeros(k_max)
        b = np.zeros(k_max)
        a[: len(self.cos)] = self.cos
        b[: len(self.sin)] = self.sin
        return np.arange(1, k_max + 1), a, b

    def pdf(self, theta) -> np.ndarray:
        """ρ(θ) at angles θ (any shape); returns the same shape."""
        th = np.asarray(theta, dtype=np.float64)[..., None]
        k, a, b = self._coefficients()
        return (1 + np.sum(a * np.cos(k * th) + b * np.sin(k * th), axis=-1)) / (2 * np.pi)

    def cell_averages(self, n_cells: int) -> np.ndarray:
        """Exact averages of ρ over the cells [θ_j − h/2, θ_j + h/2], θ_j = 2πj/N: (N,), h Σ_j ρ_j = 1 exactly
        up to round-off (each mode is multiplied by sinc(kh/2))."""
        th = cell_centres(n_cells)[:, None]
        k, a, b = self._coefficients()
        damp = np.sinc(k / n_cells)  # sin(kh/2)/(kh/2) with h = 2π/N; np.sinc(x) = sin(πx)/(πx)
        return (1 + np.sum(damp * (a * np.cos(k * th) + b * np.sin(k * th)), axis=-1)) / (2 * np.pi)

    def sample(self, n: int, batch: int = 1, *, seed: int) -> np.ndarray:
        """i.i.d. angles in [0, 2π) from ρ, by rejection from the uniform law (acceptance ≥ 1/(1 + Σ|a|+|b|)).

        Returns (batch, n) float64. System s draws from its own stream (seed, s), so it does not depend on
        the batch size. Raises ValueError for n < 1 or batch < 1.
        """
        n = validate_int("n", n, minimum=1)
        batch = validate_int("batch", batch, minimum=1)
        seed = validate_int("seed", seed, minimum=0)
        bound = (1 + sum(map(abs, self.cos)) + sum(map(abs, self.sin))) / (2 * np.pi)
        out = np.empty((batch, n))
        for s in range(batch):
            rng = np.random.default_rng([seed, s])
            got: list[np.ndarray] = []
            count = 0
            while count < n:
                th = rng.uniform(0.0, 2 * np.pi, size=2 * n)
                keep = th[rng.uniform(0.0, bound, size=2 * n) < self.pdf(th)]
                got.append(keep)
                count += keep.size
            out[s] = np.concatenate(got)[:n]
        return out
