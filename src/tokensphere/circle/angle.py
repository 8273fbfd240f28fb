"""The circle (d = 2) in angles: tokens x_i = (cos θ_i, sin θ_i) and the angle form (7.1) of (SA) and (USA).

With Q = K = V = I, ⟨x_i, x_j⟩ = cos(θ_i − θ_j) and ⟨x_j, (−sin θ_i, cos θ_i)⟩ = sin(θ_j − θ_i), so (2.6) reads

    (SA)   θ̇_i = Σ_j e^{β cos(θ_i − θ_j)} sin(θ_j − θ_i) / Σ_k e^{β cos(θ_i − θ_k)}                   (7.1)
    (USA)  θ̇_i = (1/n) Σ_j e^{β cos(θ_i − θ_j)} sin(θ_j − θ_i)

The largest score of row i is its own, β cos 0 = β, so the kernel exponentiates β(cos(θ_i − θ_j) − 1) ≤ 0:
the softmax is max-stabilised without a reduction, and (USA) in the time scale s = e^β t (``time_scale=
"exp_beta"``, as :class:`tokensphere.Model` offers) is the same sum without the factor e^β, finite for every
β (10^4 included). At β = 0 both are the Kuramoto model (7.2) with ω = 0, K = 1.
"""

from __future__ import annotations

from typing import Any

import torch

from ..model import usa_max_beta, validate_beta
from ..validate import as_tensor

__all__ = ["angle_velocity", "angles_to_positions", "positions_to_angles"]



def angles_to_positions(theta: torch.Tensor) -> torch.Tensor:
    """x_i = (cos θ_i, sin θ_i). theta: (..., n). Returns (..., n, 2) unit vectors."""
    theta = as_tensor("theta", theta)
    return torch.stack((torch.cos(theta), torch.sin(theta)), dim=-1)


def positions_to_angles(x: torch.Tensor) -> torch.Tensor:
    """θ_i = atan2(x_i2, x_i1) ∈ (−π, π]. x: (..., n, 2). Returns (..., n). Raises ValueError unless d = 2."""
    x = as_tensor("x", x)
    if x.ndim < 2 or x.shape[-1] != 2:
        raise ValueError(f"x must have shape (..., n, 2) (points on the circle), got {tuple(x.shape)}")
    return torch.atan2(x[..., 1], x[..., 0])


def angle_velocity(
    theta: torch.Tensor,
    beta: Any = 1.0,
    normalization: str = "softmax",
    time_scale: str = "original",
) -> torch.Tensor:
    """θ̇ of the angle form (7.1) of (SA) (``normalization="softmax"``) or (USA) (``"uniform"``).

    theta: (B, n) angles (any real values: the field is 2π-periodic). beta: a number or (B,) (β ≥ 0).
    time_scale: "original" or, for USA only, "exp_beta" (dθ/ds with s = e^β t: the sum without e^β).
    Returns (B, n) in the dtype of theta (float64 unless theta is a float tensor). Equal to
    ⟨ẋ_i, (−sin θ_i, cos θ_i)⟩ for the field :func:`tokensphere.velocity` of the same model at d = 2.
    Raises ValueError for bad shapes, β < 0, USA in original time with β > 700 (e^β overflows).
    """
    theta = check_angles("theta", theta)
    b = check_beta(beta, theta.shape[0], normalization, time_scale, theta.dtype).to(theta.dtype)
    return angle_field(theta, b, normalization == "softmax", time_scale == "original")


def check_angles(name: str, theta: Any) -> torch.Tensor:
    """theta as a (B, n) floating tensor with finite entries; ValueError naming ``name`` otherwise."""
    t = as_tensor(name, theta)
    if t.ndim != 2 or t.shape[1] < 1:
        raise ValueError(f"{name} must have shape (B, n) with n >= 1, got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must hold only finite values (found NaN or inf)")
    return t


def check_beta(beta: Any, batch: int, normalization: str = "softmax", time_scale: str = "original",
               dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """β as a float64 tensor of shape (1,) or (batch,), validated by the model's rules
    (:func:`tokensphere.model.validate_beta`, without building a Model, which costs more than one evaluation of
    the angle field at small sizes)."""
    b = validate_beta(beta, normalization, time_scale, normalizations=("softmax", "uniform")).to(torch.float64)
    if b.numel() not in (1, batch):
        raise ValueError(f"beta must be a number or have shape (B,) = ({batch},), got {b.numel()} values")
    if normalization == "uniform" and time_scale == "original" and b.numel() and float(b.max()) > usa_max_beta(dtype):
        raise ValueError(f"beta must be <= {usa_max_beta(dtype):g} for normalization='uniform' in original time in "
                         f"{str(dtype).removeprefix('torch.')} (e^β overflows); use time_scale='exp_beta' or float64")
    return b


def angle_field(theta: torch.Tensor, beta: torch.Tensor, softmax: bool, original_time: bool) -> torch.Tensor:
    """The kernel of (7.1) on validated input. theta: (B, n); beta: (B,) or (1,) in theta's dtype.

    w_ij = e^{β(cos(θ_i − θ_j) − 1)} from one batched product of the (cos, sin) rows;
    Σ_j w_ij sin(θ_j − θ_i) = cos θ_i Σ_j w_ij sin θ_j − sin θ_i Σ_j w_ij cos θ_j, and for SA the row sums
    Σ_j w_ij come out of the same product (a column of ones). Returns (B, n).
    """
    c, s = torch.cos(theta), torch.sin(theta)
    cols = (c, s, torch.ones_like(c)) if softmax else (c, s)
    u = torch.stack(cols, dim=-1)  # (B, n, 2 or 3)
    u2 = u[..., :2]
    bb = beta.view(-1, 1, 1)
    w = torch.baddbmm(-bb, u2 * bb, u2.transpose(1, 2)).exp_()  # β cos(θ_i − θ_j) − β, then e^{·}
    a = torch.bmm(w, u)  # Σ_j w_ij (cos θ_j, sin θ_j[, 1])
    num = c * a[..., 1] - s * a[..., 0]
    if softmax:
        return num / a[..., 2]
    num = num / theta.shape[1]
    return num * torch.exp(bb.view(-1, 1)) if original_time else num
