"""Normalisation maps N of Transformer blocks and the tangent projections of their continuous forms.

- ``sphere``: N(x) = x/|x| (the paper's choice, §2; its continuous form is the projection P⊥_x of (2.3));
- ``rms``: RMSNorm with diagonal gain g ∈ R^d, N(x) = g ⊙ x / √(|x|²/d + ε). With ε = 0 its image is the
  axis-aligned ellipsoid E_g = {y : Σ_k (y_k/g_k)² = d}; :func:`ellipsoid_retract` maps onto E_g by applying
  RMSNorm to y ⊘ g, and :func:`ellipsoid_project` is the tangent projection its first-order expansion gives
  (the projection onto T_y E_g along y);
- ``layer_norm``: N(x) = g ⊙ (x − mean(x)) / √(var(x) + ε) + b (the original LayerNorm, entrywise over d).

Shapes: x is (..., d); gains and biases (d,) (broadcast). Returns the shape of x. Raises ValueError on a gain of
the wrong length, a non-positive gain (the ellipsoid needs g_k > 0), or ε < 0.
"""

from __future__ import annotations

import math

import torch

__all__ = ["sphere", "rms", "layer_norm", "ellipsoid_retract", "ellipsoid_project", "ellipsoid_defect",
           "check_gain"]


def check_gain(gain: torch.Tensor | None, d: int, like: torch.Tensor, *, positive: bool = True,
               name: str = "gain") -> torch.Tensor:
    """The gain as a (d,) tensor in ``like``'s dtype and device (None → ones). Raises ValueError naming
    ``name`` (the gain, or a bias checked the same way)."""
    if gain is None:
        return torch.ones(d, dtype=like.dtype, device=like.device)
    g = torch.as_tensor(gain, dtype=like.dtype, device=like.device)
    if g.shape != (d,):
        raise ValueError(f"{name} must have shape (d,) = ({d},), got {tuple(g.shape)}")
    if not bool(torch.isfinite(g).all()) or (positive and not bool((g > 0).all())):
        raise ValueError(f"{name} must hold finite entries" + (" > 0 (the ellipsoid's semi-axes)" if positive else ""))
    return g


def _check_eps(eps: float) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 <= float(eps) < math.inf:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    return float(eps)


def sphere(x: torch.Tensor) -> torch.Tensor:
    """N(x) = x/|x| row by row (post-normalisation onto S^{d−1}). x: (..., d). Returns (..., d)."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)


def rms(x: torch.Tensor, gain: torch.Tensor | None = None, eps: float = 0.0) -> torch.Tensor:
    """RMSNorm N(x) = g ⊙ x / √(|x|²/d + ε). x: (..., d); gain: (d,) (None: ones). Returns (..., d)."""
    d = x.shape[-1]
    g = check_gain(gain, d, x, positive=False)
    return g * x / torch.sqrt(x.pow(2).sum(-1, keepdim=True) / d + _check_eps(eps))


def layer_norm(x: torch.Tensor, gain: torch.Tensor | None = None, bias: torch.Tensor | None = None,
               eps: float = 0.0) -> torch.Tensor:
    """LayerNorm N(x) = g ⊙ (x − mean(x)) / √(var(x) + ε) + b (population variance over the last axis).

    x: (..., d); gain, bias: (d,) (None: ones, zeros). Returns (..., d)."""
    d = x.shape[-1]
    g = check_gain(gain, d, x, positive=False)
    b = torch.zeros_like(g) if bias is None else check_gain(bias, d, x, positive=False, name="bias")
    c = x - x.mean(-1, keepdim=True)
    return g * c / torch.sqrt(c.pow(2).mean(-1, keepdim=True) + _check_eps(eps)) + b


def ellipsoid_retract(y: torch.Tensor, gain: torch.Tensor | None = None, eps: float = 0.0) -> torch.Tensor:
    """R(y) = N_rms(y ⊘ g) = g ⊙ (y ⊘ g) / √(|y ⊘ g|²/d + ε): onto E_g = {Σ_k (y_k/g_k)² = d} (exactly when
    ε = 0), the identity on E_g. y: (..., d). Returns (..., d)."""
    g = check_gain(gain, y.shape[-1], y)
    return rms(y / g, g, eps)


def ellipsoid_project(y: torch.Tensor, v: torch.Tensor, gain: torch.Tensor | None = None) -> torch.Tensor:
    """P_y v = v − (⟨y ⊘ g², v⟩/d) y: the projection onto the tangent space T_y E_g along y, the first-order
    part of :func:`ellipsoid_retract` (R(y + hv) = y + h P_y v + O(h²) for y ∈ E_g). With g = 1 and |y|² = d it
    is P⊥_y. y, v: (..., d). Returns (..., d)."""
    d = y.shape[-1]
    g = check_gain(gain, d, y)
    return v - ((y / g.pow(2)) * v).sum(-1, keepdim=True) / d * y


def ellipsoid_defect(y: torch.Tensor, gain: torch.Tensor | None = None) -> torch.Tensor:
    """|Σ_k (y_k/g_k)²/d − 1| per token: 0 on E_g. y: (..., d). Returns (...)."""
    g = check_gain(gain, y.shape[-1], y)
    return ((y / g).pow(2).mean(-1) - 1).abs()
