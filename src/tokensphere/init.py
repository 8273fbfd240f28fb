"""Seeded initial conditions on S^{d−1} (SPEC §2.15).

Every sampler draws system b of the batch from its own random stream, seeded by ``(seed, first_system + b)``
with NumPy's SeedSequence, so system b gets the same tokens whatever the batch size or chunking, and the same
seed gives the same numbers on every machine. All return tensors of shape ``(B, n, d)``, float64 by default.

Specs are small frozen dataclasses (:class:`Uniform`, :class:`OrthonormalFrame`, :class:`Cap`, ...), so a
run can record exactly how its initial state was made; :func:`make_initial` builds one from a name.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .validate import check_int, check_real, check_tensor_finite, check_unit_norm

__all__ = [
    "Uniform",
    "OrthonormalFrame",
    "Cap",
    "Hemisphere",
    "Equiangular",
    "FromArray",
    "INITIALS",
    "make_initial",
    "sample_sphere",
    "normalize",
]


_CAP_GRID = 1 << 14  # grid points for the inverse CDF of the polar angle in Cap


def normalize(x: torch.Tensor) -> torch.Tensor:
    """x / |x| row by row. x: (..., d). Returns (..., d)."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)


def _streams(seed: int, first: int, batch: int) -> list[np.random.Generator]:
    return [np.random.default_rng(np.random.SeedSequence([seed, first + b])) for b in range(batch)]


def _to_tensor(a: np.ndarray, dtype: torch.dtype, device: torch.device | str | None) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype=dtype, device=device)


@dataclass(frozen=True)
class _Spec:
    batch: int = 1
    n: int = 32
    d: int = 2
    seed: int = 0
    first_system: int = 0

    def __post_init__(self) -> None:
        check_int("batch", self.batch, minimum=1)
        check_int("n", self.n, minimum=1)
        check_int("d", self.d, minimum=2)
        check_int("seed", self.seed, minimum=0)
        check_int("first_system", self.first_system, minimum=0)

    def describe(self) -> dict:
        return {"kind": type(self).__name__, **asdict(self)}

    def sample(self, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
        """Draw the (B, n, d) initial positions."""
        arr = np.stack([self._one(rng) for rng in _streams(self.seed, self.first_system, self.batch)])
        return normalize(_to_tensor(arr, torch.float64, None)).to(dtype=dtype, device=device)

    def _one(self, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Uniform(_Spec):
    """x_i i.i.d. uniform on S^{d−1} (normalised standard Gaussians, SPEC §2.1)."""

    def _one(self, rng):
        return rng.standard_normal((self.n, self.d))


@dataclass(frozen=True)
class OrthonormalFrame(_Spec):
    """n pairwise orthogonal unit vectors (needs d ≥ n): a Haar-random rotation of e_1, …, e_n (Thm 6.8)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.d < self.n:
            raise ValueError(f"d must be >= n for an orthonormal frame, got n = {self.n}, d = {self.d}")

    def _one(self, rng):
        g = rng.standard_normal((self.d, self.n))
        q, r = np.linalg.qr(g)
        q = q * np.sign(np.diag(r))  # Haar measure on the Stiefel manifold
        return q.T


@dataclass(frozen=True)
class Cap(_Spec):
    """Uniform in the spherical cap {x : ⟨x, e⟩ > cos(angle)} around a random direction e (per system).

    angle in (0, π]: angle = π/2 is the open hemisphere of Lemma 6.4; angle < π/2 makes an α-clustered set.
    """

    angle: float = math.pi / 2

    def __post_init__(self) -> None:
        super().__post_init__()
        check_real("angle", self.angle, minimum=0.0, maximum=math.pi, strict_minimum=True)

    def _one(self, rng):
        # the polar angle θ from the centre has density ∝ sin^{d−2}θ on [0, angle]: sample it by inverting its
        # CDF on a fine grid (weights in log space, so any d works), then a uniform direction orthogonal to e
        d, n = self.d, self.n
        center = rng.standard_normal(d)
        center /= np.linalg.norm(center)
        grid = np.linspace(0.0, self.angle, _CAP_GRID)
        with np.errstate(divide="ignore"):
            logw = (d - 2) * np.log(np.sin(grid)) if d > 2 else np.zeros_like(grid)
        w = np.exp(logw - logw.max())
        cdf = np.concatenate([[0.0], np.cumsum((w[1:] + w[:-1]) / 2)])
        cdf /= cdf[-1]
        theta = np.interp(rng.random(n), cdf, grid)
        u = rng.standard_normal((n, d))
        u -= np.outer(u @ center, center)
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        return np.cos(theta)[:, None] * center + np.sin(theta)[:, None] * u


@dataclass(frozen=True)
class Hemisphere(Cap):
    """Uniform on the open hemisphere around a random direction (Cap with angle π/2)."""

    angle: float = math.pi / 2


@dataclass(frozen=True)
class Equiangular(_Spec):
    """n unit vectors with all pairwise inner products γ0 ∈ [−1/(n−1), 1) (needs d ≥ n; SPEC §5.8).

    Built as a randomly rotated √(1−γ0)·e_i + c·1 construction; γ0 = 0 is an orthonormal frame and
    γ0 = −1/(n−1) the regular simplex.
    """

    gamma0: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        lo = -1.0 / (self.n - 1) if self.n > 1 else -1.0
        check_real("gamma0", self.gamma0, minimum=lo, maximum=1.0)
        if self.gamma0 >= 1.0:
            raise ValueError(f"gamma0 must be < 1, got {self.gamma0}")
        if self.d < self.n:
            raise ValueError(f"d must be >= n for an equiangular start, got n = {self.n}, d = {self.d}")

    def _one(self, rng):
        n, g = self.n, self.gamma0
        # Gram G = (1−γ) I + γ 11ᵀ is PSD for γ ≥ −1/(n−1); take its symmetric square root as coordinates
        gram = (1 - g) * np.eye(n) + g * np.ones((n, n))
        w, u = np.linalg.eigh(gram)
        coords = u * np.sqrt(np.clip(w, 0.0, None))  # rows: points in R^n with Gram = gram
        rot = np.linalg.qr(rng.standard_normal((self.d, self.d)))[0]
        return coords @ rot[:n, :]


@dataclass(frozen=True)
class FromArray:
    """Given positions: an array of shape (B, n, d) or (n, d), checked to be finite (and unit vectors unless
    ``unit=False``, for pure self-attention on R^d)."""

    array: object = None
    unit: bool = True

    def sample(self, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
        from .validate import as_tensor

        x = as_tensor("x0", self.array)
        if x.ndim == 2:
            x = x.unsqueeze(0)
        if x.ndim != 3:
            raise ValueError(f"x0 must have shape (B, n, d) or (n, d), got {tuple(x.shape)}")
        if self.unit:
            check_unit_norm("x0", x.to(torch.float64))
        else:
            check_tensor_finite("x0", x)
        return x.to(dtype=dtype, device=device)

    def describe(self) -> dict:
        return {"kind": "FromArray", "shape": list(np.shape(self.array))}


INITIALS = {
    "uniform": Uniform,
    "orthonormal": OrthonormalFrame,
    "cap": Cap,
    "hemisphere": Hemisphere,
    "equiangular": Equiangular,
}


def make_initial(kind: str, **kwargs) -> _Spec:
    """Build an initial-condition spec by name: one of ``INITIALS`` (uniform, orthonormal, cap, ...)."""
    from .validate import check_choice

    check_choice("init", kind, tuple(INITIALS))
    return INITIALS[kind](**kwargs)


def sample_sphere(batch: int, n: int, d: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Uniform random tokens on S^{d−1}: shape (batch, n, d), seeded. Shorthand for ``Uniform(...).sample()``."""
    return Uniform(batch=batch, n=n, d=d, seed=seed).sample(dtype)
