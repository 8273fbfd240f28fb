"""Distances between point clouds used as training losses (differentiable in the first cloud).

* :func:`wasserstein2` — W₂²(μ, ν) = min_π Σ_ij π_ij |x_i − y_j|² between the uniform empirical measures
  μ = (1/n) Σ δ_{x_i}, ν = (1/m) Σ δ_{y_j}, by POT's exact network simplex (``ot.emd2``; torch backend: the
  gradient in x is that of the optimal plan's cost, Σ_j π_ij 2(x_i − y_j)), or entropic with ``reg`` > 0
  (``ot.sinkhorn2``);
* :func:`mmd2` — the squared maximum mean discrepancy with the Gaussian kernel k(x, y) = e^{−|x−y|²/(2s²)}:
  MMD² = E k(x, x') + E k(y, y') − 2 E k(x, y) (the biased V-statistic, ≥ 0, zero iff the clouds coincide
  as measures for this characteristic kernel);
* :func:`matching_loss` — (1/n) Σ_i |x_i − y_i|² for given pairs (interpolation).

Clouds are (n, d) and (m, d); a leading batch (B, n, d) averages the per-system values.
"""

from __future__ import annotations

import ot
import torch

from ..validate import validate_real

__all__ = ["wasserstein2", "mmd2", "matching_loss"]


def _batched(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if y.ndim == 2:
        y = y.unsqueeze(0).expand(x.shape[0], -1, -1)
    if x.ndim != 3 or y.ndim != 3 or x.shape[-1] != y.shape[-1] or x.shape[0] != y.shape[0]:
        raise ValueError(f"point clouds must have shapes (B, n, d) and (B, m, d) (or (m, d)), got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    if x.dtype != y.dtype:
        raise ValueError(f"point clouds must share one dtype, got x {x.dtype} and y {y.dtype}")
    return x, y


def wasserstein2(x: torch.Tensor, y: torch.Tensor, *, reg: float = 0.0) -> torch.Tensor:
    """W₂² between uniform empirical measures on the rows of x (n, d) or (B, n, d) and y (m, d) or (B, m, d).

    reg = 0: exact optimal transport (``ot.emd2``); reg > 0: entropic OT cost (``ot.sinkhorn2``), an upper
    approximation. Returns a 0-d tensor (the batch mean), differentiable in x and y.
    """
    reg = validate_real("reg", reg, minimum=0.0)
    x, y = _batched(x, y)
    a = torch.full((x.shape[1],), 1.0 / x.shape[1], dtype=x.dtype, device=x.device)
    b = torch.full((y.shape[1],), 1.0 / y.shape[1], dtype=x.dtype, device=x.device)
    vals = []
    for xb, yb in zip(x, y):
        cost = ot.dist(xb, yb)  # squared Euclidean distances (n, m)
        vals.append(ot.emd2(a, b, cost) if reg == 0.0 else ot.sinkhorn2(a, b, cost, reg))
    return torch.stack(vals).mean()


def mmd2(x: torch.Tensor, y: torch.Tensor, *, bandwidth: float = 0.5) -> torch.Tensor:
    """Squared MMD with the Gaussian kernel of width s = ``bandwidth`` > 0 (V-statistic).

    x: (n, d) or (B, n, d); y: (m, d) or (B, m, d). Returns a 0-d tensor (the batch mean), differentiable.
    """
    s = validate_real("bandwidth", bandwidth, minimum=0.0, strict_minimum=True)
    x, y = _batched(x, y)

    def k(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        sq = (u.unsqueeze(-2) - v.unsqueeze(-3)).pow(2).sum(-1)
        return torch.exp(-sq / (2 * s * s)).mean((-1, -2))

    return (k(x, x) + k(y, y) - 2 * k(x, y)).mean()


def matching_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(1/n) Σ_i |x_i − y_i|², averaged over the batch: x, y (B, n, d) or (n, d). Returns a 0-d tensor."""
    if x.shape[-2:] != y.shape[-2:] or (x.ndim == y.ndim == 3 and x.shape[0] != y.shape[0]):
        raise ValueError(f"x and y must have the same shape (n, d), or (B, n, d) with one B (or y (n, d) for all), "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    return (x - y).pow(2).sum(-1).mean()
