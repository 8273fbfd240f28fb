"""Pair statistics and clusters as connected components (SPEC §5, measurement conventions).

Clusters are the connected components (single linkage) of the graph {⟨x_i, x_j⟩ > 1 − δ}. The rank of the
thresholded Gram matrix, used by the authors' code, is *not* a cluster count: it is wrong for chains of
points (SPEC §7). All functions accept positions of shape (..., n, d) — e.g. (B, n, d) or (T, B, n, d) —
and work on every leading index at once.
"""

from __future__ import annotations

import warnings

import torch

from ..checks import check_real

# 1 − δ closer to 1 than this many float32 ulps is unreliable in float32 (SPEC §8.5)
_FLOAT32_ULPS = 4096

__all__ = ["pair_fraction", "cluster_labels", "cluster_count"]


def _gram(x: torch.Tensor, delta: float) -> torch.Tensor:
    if x.dtype == torch.float32 and delta < _FLOAT32_ULPS * torch.finfo(torch.float32).eps:
        warnings.warn(
            f"delta = {delta:g} puts the threshold 1 - delta within {_FLOAT32_ULPS} float32 ulps of 1; float32 "
            "inner products carry O(d·eps) error: use float64 positions for this threshold",
            RuntimeWarning,
            stacklevel=3,
        )
    return torch.matmul(x, x.transpose(-1, -2))


def pair_fraction(x: torch.Tensor, delta: float) -> torch.Tensor:
    """Fraction of ordered pairs i ≠ j with ⟨x_i, x_j⟩ > 1 − δ (the phase-diagram statistic, SPEC §6).

    x: (..., n, d) unit vectors, n ≥ 2. Returns (...), in [0, 1]. Raises ValueError unless 0 < δ ≤ 2.
    """
    check_real("delta", delta, minimum=0.0, maximum=2.0, strict_minimum=True)
    n = x.shape[-2]
    if n < 2:
        raise ValueError(f"pair_fraction needs n >= 2 tokens, got n = {n}")
    close = _gram(x, delta) > 1 - delta
    eye = torch.eye(n, dtype=torch.bool, device=x.device)
    return (close & ~eye).flatten(-2).sum(-1).to(x.dtype) / (n * (n - 1))


def cluster_labels(x: torch.Tensor, delta: float) -> torch.Tensor:
    """Connected-component labels of {⟨x_i, x_j⟩ > 1 − δ}: (..., n) int64, each label the smallest token index
    of its component. x: (..., n, d). Raises ValueError unless 0 < δ ≤ 2.

    Minimum-label propagation over the adjacency, vectorised over all leading indices; it stops after at most
    (component diameter) rounds.
    """
    check_real("delta", delta, minimum=0.0, maximum=2.0, strict_minimum=True)
    n = x.shape[-2]
    adj = _gram(x, delta) > 1 - delta
    adj |= torch.eye(n, dtype=torch.bool, device=x.device)
    big = torch.tensor(n, device=x.device)
    labels = torch.arange(n, device=x.device).expand(x.shape[:-1]).clone()
    while True:
        cand = torch.where(adj, labels.unsqueeze(-2), big).amin(-1)
        new = torch.minimum(labels, cand)
        if torch.equal(new, labels):
            return labels
        labels = new


def cluster_count(x: torch.Tensor, delta: float) -> torch.Tensor:
    """Number of clusters (connected components of {⟨x_i, x_j⟩ > 1 − δ}). x: (..., n, d). Returns (...) int64."""
    labels = cluster_labels(x, delta)
    return (labels == torch.arange(x.shape[-2], device=x.device)).sum(-1)
