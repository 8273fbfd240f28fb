"""Geometric statistics of token positions: the order parameter of noisy runs (Problem 7), and the
measurements that tell apart the limit geometries of pure self-attention without normalisation ((9.1)–(9.3),
Table 1 of Geshkovski–Letrouit–Polyanskiy–Rigollet, "The emergence of clusters in self-attention dynamics").

Positions are ``(..., n, d)`` (any leading dims: times, systems); tokens live on S^{d−1} for the order
parameter and in R^d for the rest. Attention matrices are ``(..., n, n)``, rows summing to 1.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import nnls

__all__ = [
    "attention_booleanness",
    "diameter",
    "hull_distance",
    "leader_count",
    "order_parameter",
    "rescale",
    "value_gap_residual",
    "vertex_fraction",
]

# weight of the row Σ λ_k = 1 appended to the non-negative least-squares problem of hull_distance
_SIMPLEX_WEIGHT = 1e4


def order_parameter(x: torch.Tensor) -> torch.Tensor:
    """|(1/n) Σ_i x_i|: 1 at consensus, O(1/√n) for independent uniform tokens, 0 for a balanced configuration.

    x: (..., n, d) unit vectors. Returns (...).
    """
    return torch.linalg.vector_norm(x.mean(-2), dim=-1)


def rescale(x: torch.Tensor, times: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """z(t) = e^{−tV} x(t) (9.2): the rescaled tokens of pure self-attention (9.1).

    x: (T, ..., n, d) positions of a run of (9.1) at ``times`` (T,); V: (d, d), or (B, d, d) with x of shape
    (T, B, n, d). Returns z with the shape of x (the matrix exponential by torch.linalg.matrix_exp).
    """
    t = torch.as_tensor(times, dtype=x.dtype, device=x.device).reshape(-1)
    if t.numel() != x.shape[0]:
        raise ValueError(f"times must have one entry per saved time, got {t.numel()} for x of shape {tuple(x.shape)}")
    V = torch.as_tensor(V, dtype=x.dtype, device=x.device)
    if V.ndim == 2:
        E = torch.linalg.matrix_exp(-t.view(-1, 1, 1) * V)  # (T, d, d)
        E = E.view(E.shape[0], *([1] * (x.ndim - 3)), *E.shape[1:])
    elif V.ndim == 3 and x.ndim == 4:
        E = torch.linalg.matrix_exp(-t.view(-1, 1, 1, 1) * V)  # (T, B, d, d)
    else:
        raise ValueError(f"V must have shape (d, d), or (B, d, d) with x of shape (T, B, n, d); got {tuple(V.shape)}")
    return x @ E.transpose(-1, -2)


def attention_booleanness(a: torch.Tensor) -> torch.Tensor:
    """1 − min_i max_j A_ij: 0 exactly when every row of the attention matrix is one-hot (a Boolean matrix).

    a: (..., n, n) row-stochastic. Returns (...) in [0, 1 − 1/n].
    """
    return 1 - a.amax(-1).amin(-1)


def leader_count(a: torch.Tensor) -> torch.Tensor:
    """Number of distinct columns argmax_j A_ij over the rows i: the rank of the Boolean limit of A (the
    "leaders"). a: (..., n, n). Returns (...) int64."""
    n = a.shape[-1]
    hit = torch.nn.functional.one_hot(a.argmax(-1), n).amax(-2)
    return hit.sum(-1)


def diameter(z: torch.Tensor) -> torch.Tensor:
    """max_{i,j} |z_i − z_j|. z: (..., n, d). Returns (...). Differences taken directly (not through
    |a|² + |b|² − 2⟨a, b⟩, which loses the digits of a tight cluster far from the origin)."""
    return torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist").amax((-1, -2))


def hull_distance(z: torch.Tensor, tol: float = 0.0) -> torch.Tensor:
    """Distance of each z_i to the convex hull of the tokens not within ``tol`` of it: conv{z_j : |z_j − z_i| > tol}.

    Positive exactly when z_i (with the tokens coinciding with it) is a vertex of the convex hull of all tokens;
    0 for a token inside the hull or on an edge. Computed by non-negative least squares on (z_j) with a heavily
    weighted row Σ λ_j = 1. z: (..., n, d) (float64 recommended). Returns (..., n) (inf when every other token
    coincides with z_i).
    """
    flat = z.detach().reshape(-1, *z.shape[-2:]).cpu().to(torch.float64).numpy()
    out = np.empty(flat.shape[:2])
    for b, pts in enumerate(flat):
        dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
        scale = max(float(np.abs(pts).max()), 1e-300)
        for i, p in enumerate(pts):
            others = pts[dist[i] > tol]
            if len(others) == 0:
                out[b, i] = np.inf
                continue
            A = np.vstack([others.T / scale, _SIMPLEX_WEIGHT * np.ones(len(others))])
            rhs = np.concatenate([p / scale, [_SIMPLEX_WEIGHT]])
            lam, _ = nnls(A, rhs)
            lam = lam / lam.sum()
            out[b, i] = float(np.linalg.norm(others.T @ lam - p))
    return torch.from_numpy(out.reshape(z.shape[:-1])).to(z.dtype)


def vertex_fraction(z: torch.Tensor, rel_tol: float = 1e-3) -> torch.Tensor:
    """Fraction of tokens at a vertex of the convex hull of all tokens: hull_distance > rel_tol·diameter, the
    tokens within rel_tol·diameter of z_i counting as z_i. 1 when the tokens sit on the vertices of a polytope
    (Table 1, V = I); below 1 as soon as one token is inside the hull or on an edge. z: (..., n, d). Returns (...)."""
    scale = diameter(z).unsqueeze(-1)
    flat_scale = scale.reshape(-1)
    dist = torch.stack([hull_distance(zb, tol=float(rel_tol * s)) for zb, s in
                        zip(z.reshape(-1, *z.shape[-2:]), flat_scale)])
    return (dist.reshape(z.shape[:-1]) > rel_tol * scale).to(z.dtype).mean(-1)


def value_gap_residual(a: torch.Tensor, k: int = 3) -> torch.Tensor:
    """How far real values are from taking at most k distinct values: 1 − (sum of the k − 1 largest gaps between
    sorted values) / range. 0 exactly when a takes ≤ k values; near 1 for values spread evenly.

    a: (..., n). Returns (...) in [0, 1] (0 when the range is 0). Used with the coordinate along the leading
    eigenvector of V (three parallel hyperplanes, Table 1).
    """
    s = a.sort(-1).values
    gaps = s.diff(dim=-1)
    span = s[..., -1] - s[..., 0]
    top = gaps.topk(min(k - 1, gaps.shape[-1]), dim=-1).values.sum(-1) if k > 1 else torch.zeros_like(span)
    return torch.where(span > 0, 1 - top / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(span))
