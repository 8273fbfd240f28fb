"""The Kuramoto model (7.2), its generalisation (7.5), and the order parameter.

    θ̇_i = ω_i + (K/n) Σ_j sin(θ_j − θ_i)                                                      (7.2)
    θ̇_i = ω_i + (K/n) Σ_j h(θ_j − θ_i)                                                        (7.5)
    r e^{iψ} = (1/n) Σ_j e^{iθ_j}

With h = sin, (K/n) Σ_j sin(θ_j − θ_i) = K r sin(ψ − θ_i): the coupling costs O(n), not O(n²). With ω = 0 and
K = 1 it is the angle form (7.1) at β = 0 (SA = USA there); h(u) = e^{β cos u} sin u gives (USA) (7.1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..validate import as_tensor
from .angle import check_angles

__all__ = ["kuramoto_velocity", "order_parameter"]

Coupling = Callable[[torch.Tensor], torch.Tensor]  # h: differences θ_j − θ_i (B, n, n) → values (B, n, n)


def order_parameter(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(r, ψ) with r e^{iψ} = (1/n) Σ_j e^{iθ_j}. theta: (..., n). Returns two (...) tensors, r ∈ [0, 1]."""
    theta = as_tensor("theta", theta)
    if theta.ndim < 1 or theta.shape[-1] < 1:
        raise ValueError(f"theta must have shape (..., n) with n >= 1, got {tuple(theta.shape)}")
    c, s = torch.cos(theta).mean(-1), torch.sin(theta).mean(-1)
    return torch.hypot(c, s), torch.atan2(s, c)


def kuramoto_velocity(
    theta: torch.Tensor,
    omega: Any = None,
    coupling: Any = 1.0,
    h: Coupling | None = None,
) -> torch.Tensor:
    """θ̇ of the (generalised) Kuramoto model: (7.2), or (7.5) when a coupling function ``h`` is given.

    theta: (B, n). omega: natural frequencies ω, (n,) or (B, n) (None: 0). coupling: K, a number or (B,).
    h: a 2π-periodic function applied elementwise to the differences θ_j − θ_i, shape (B, n, n) (default sin,
    evaluated in O(n) through the order parameter). Returns (B, n). Raises ValueError for bad shapes.
    """
    theta = check_angles("theta", theta)
    w, k = check_kuramoto(theta.shape, omega, coupling)
    return kuramoto_field(theta, w.to(theta.dtype), k.to(theta.dtype), h)


def check_kuramoto(shape: torch.Size, omega: Any, coupling: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """ω as (1 or B, n) and K as (1 or B,) float64 tensors for angles of ``shape`` (B, n); ValueError otherwise."""
    B, n = shape
    w = torch.zeros((1, n), dtype=torch.float64) if omega is None else as_tensor("omega", omega).to(torch.float64)
    if w.ndim == 1:
        w = w.unsqueeze(0)
    if w.ndim != 2 or w.shape[1] != n or w.shape[0] not in (1, B):
        raise ValueError(f"omega must have shape (n,) = ({n},) or (B, n) = ({B}, {n}), got {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()):
        raise ValueError("omega must hold only finite values (found NaN or inf)")
    k = as_tensor("coupling", coupling).to(torch.float64)
    if k.ndim > 1 or k.numel() not in (1, B) or not bool(torch.isfinite(k).all()):
        raise ValueError(f"coupling must be a finite number or have shape (B,) = ({B},), got shape {tuple(k.shape)}")
    return w, k.reshape(-1)


def kuramoto_field(theta: torch.Tensor, omega: torch.Tensor, coupling: torch.Tensor,
                   h: Coupling | None) -> torch.Tensor:
    """The kernel on validated input: theta (B, n), omega (1 or B, n), coupling (1 or B,). Returns (B, n)."""
    if h is None:
        c, s = torch.cos(theta), torch.sin(theta)
        mc, ms = c.mean(-1, keepdim=True), s.mean(-1, keepdim=True)
        pull = ms * c - mc * s  # (1/n) Σ_j sin(θ_j − θ_i) = r sin(ψ − θ_i)
    else:
        pull = h(theta.unsqueeze(-2) - theta.unsqueeze(-1)).mean(-1)
    return omega + coupling.view(-1, 1) * pull
