"""Pair statistics and clusters as connected components of {⟨x_i, x_j⟩ > 1 − δ} (Figure 3's statistic).

Clusters are the connected components (single linkage) of the graph {⟨x_i, x_j⟩ > 1 − δ}. The rank of the
thresholded Gram matrix, used by the authors' ``phase-diagrams.py``, is *not* a cluster count: it is wrong
for chains of points. All functions accept positions of shape (..., n, d) — e.g. (B, n, d) or (T, B, n, d) —
and work on every leading index at once.
"""

from __future__ import annotations

import math
import warnings

import torch

from ..validate import validate_real

# 1 − δ closer to 1 than this many float32 ulps is unreliable in float32 (inner products carry O(d·eps) error)
_FLOAT32_ULPS = 4096

__all__ = [
    "cluster_centers",
    "cluster_count",
    "cluster_labels",
    "cluster_sizes",
    "pair_fraction",
    "pair_inner_products",
    "pair_statistics",
    "rank_cluster_count",
    "scale_aware_delta",
    "span_dimension",
    "threshold_stability",
]


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
    """Fraction of ordered pairs i ≠ j with ⟨x_i, x_j⟩ > 1 − δ (the phase-diagram statistic of Figure 3).

    x: (..., n, d) unit vectors, n ≥ 2. Returns (...), in [0, 1]. Raises ValueError unless 0 < δ ≤ 2.
    """
    return _fraction(_adjacency(x, delta), x.dtype)


def cluster_labels(x: torch.Tensor, delta: float) -> torch.Tensor:
    """Connected-component labels of {⟨x_i, x_j⟩ > 1 − δ}: (..., n) int64, each label the smallest token index
    of its component. x: (..., n, d). Raises ValueError unless 0 < δ ≤ 2.

    Minimum-label propagation over the adjacency with pointer jumping, vectorised over all leading indices.
    """
    return _labels(_adjacency(x, delta, need_pairs=False))


def cluster_count(x: torch.Tensor, delta: float) -> torch.Tensor:
    """Number of clusters (connected components of {⟨x_i, x_j⟩ > 1 − δ}). x: (..., n, d). Returns (...) int64."""
    return _count(_labels(_adjacency(x, delta, need_pairs=False)))


def pair_statistics(x: torch.Tensor, delta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(pair_fraction, cluster_count) from one Gram matrix: what a phase diagram records at every output time.

    x: (..., n, d). Returns two (...) tensors (x.dtype and int64).
    """
    adj = _adjacency(x, delta)
    return _fraction(adj, x.dtype), _count(_labels(adj))


def _adjacency(x: torch.Tensor, delta: float, need_pairs: bool = True) -> torch.Tensor:
    """The graph {⟨x_i, x_j⟩ > 1 − δ} with its diagonal set: (..., n, n) bool."""
    validate_real("delta", delta, minimum=0.0, maximum=2.0, strict_minimum=True)
    n = x.shape[-2]
    if need_pairs and n < 2:
        raise ValueError(f"pair_fraction needs n >= 2 tokens, got n = {n}")
    adj = _gram(x, delta) > 1 - delta
    adj.diagonal(dim1=-2, dim2=-1).fill_(True)
    return adj


def _fraction(adj: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    n = adj.shape[-1]
    return (torch.count_nonzero(adj, dim=(-2, -1)) - n).to(dtype) / (n * (n - 1))


def _labels(adj: torch.Tensor) -> torch.Tensor:
    n = adj.shape[-1]
    # labels held as float32 (exact integers below 2^24; float min-reductions are much faster than int64 ones)
    fdt = torch.float64 if n > 2**24 else torch.float32
    labels = torch.arange(n, device=adj.device, dtype=fdt).expand(adj.shape[:-1]).contiguous()
    penalty = (~adj).to(fdt) * n  # non-neighbours can never offer the minimum
    while True:
        cand = (labels.unsqueeze(-2) + penalty).amin(-1)
        new = torch.minimum(labels, cand)
        new = new.gather(-1, new.long())  # pointer jumping: my label's label is in my component and no larger
        if torch.equal(new, labels):
            return labels.long()
        labels = new


def _count(labels: torch.Tensor) -> torch.Tensor:
    return (labels == torch.arange(labels.shape[-1], device=labels.device)).sum(-1)


def cluster_sizes(labels: torch.Tensor) -> torch.Tensor:
    """Cluster sizes sorted in decreasing order, zero-padded: labels (..., n) → (..., n) int64."""
    n = labels.shape[-1]
    counts = torch.zeros(labels.shape, dtype=torch.long, device=labels.device)
    counts.scatter_add_(-1, labels, torch.ones_like(labels))
    return counts.sort(dim=-1, descending=True).values


def cluster_centers(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Normalised mean direction of each cluster, stored at the slot of its label (NaN at empty slots).

    x: (..., n, d); labels: (..., n) from :func:`cluster_labels`. Returns (..., n, d).
    """
    sums = torch.zeros_like(x).scatter_add_(-2, labels.unsqueeze(-1).expand_as(x), x)
    norms = torch.linalg.vector_norm(sums, dim=-1, keepdim=True)
    return torch.where(norms > 0, sums / norms, torch.full_like(sums, float("nan")))


def scale_aware_delta(beta: float | torch.Tensor, factor: float = 0.5) -> torch.Tensor:
    """A threshold matched to the cluster scale: δ = 1 − cos(factor · τ*_β), τ*_β the root of β sin²τ = cos τ.

    τ*_β is the d = 2 root (Theorem 5.1, Figure 6) **for every d**: it is the inflection point of
    h_β(θ) = e^{β cos θ}, i.e. where the pair force |h_β'(θ)| = β sin θ e^{β cos θ} between two tokens peaks
    (its derivative is β g(θ), g of Figure 6). The force on a pair depends on their angle only, not on d, so
    neither does the cluster scale: inside a cluster tokens contract to angles ≪ τ*_β, while distinct clusters
    sit where the force has decayed like e^{−βθ²/2}, at angles ≳ τ*_β. factor = ½ links pairs well inside the
    rising part of the force and keeps single linkage from chaining across neighbouring clusters. For large β,
    τ*_β ≈ 1/√β and δ ≈ factor²/(2β). (The d-dependent root of β sin²τ = (d − 1) cos τ in Appendix B comes from
    averaging (B.4) over random rotations: a proof device, ≈ √((d − 1)/β), not a cluster scale; at d = 32,
    β = 4 it links tokens 0.7 rad apart and chains clusters 1.3 rad wide into one.)

    beta: number or (B,) tensor, > 0 (the same threshold serves every dimension d). Returns a float64 tensor
    of the shape of beta. Raises ValueError for factor ≤ 0 or β ≤ 0.
    """
    from ..theory.thresholds import tau_star

    validate_real("factor", factor, minimum=0.0, strict_minimum=True)
    b = torch.as_tensor(beta, dtype=torch.float64)
    flat = b.reshape(-1)
    out = torch.tensor([1.0 - math.cos(factor * tau_star(float(v), 2)) for v in flat], dtype=torch.float64)
    return out.reshape(b.shape)


def threshold_stability(x: torch.Tensor, deltas) -> torch.Tensor:
    """Cluster counts for each δ in ``deltas``: (K,) thresholds → (K, ...) counts. A count that does not change
    over a decade of δ is a robust reading; one that does is a warning sign."""
    return torch.stack([cluster_count(x, float(dl)) for dl in deltas])


def rank_cluster_count(x: torch.Tensor, threshold: float = 0.9999) -> torch.Tensor:
    """The authors' statistic (``phase-diagrams.py``): rank of the 0/1 matrix 1{⟨x_i, x_j⟩ > threshold}.

    Kept only for the anchor-compatible preset: it is **not** a cluster count when the relation is not
    transitive (three tokens at 0, 0.01, 0.02 rad give rank 3, one component). x: (..., n, d). Returns (...).
    """
    adj = (torch.matmul(x, x.transpose(-1, -2)) > threshold).to(x.dtype)
    return torch.linalg.matrix_rank(adj)


def span_dimension(x: torch.Tensor, tol: float = 1e-3) -> torch.Tensor:
    """Number of eigenvalues of the Gram matrix above ``tol`` (the authors' ``plotdim``): (..., n, d) → (...)."""
    eig = torch.linalg.eigvalsh(torch.matmul(x, x.transpose(-1, -2)))
    return (eig > tol).sum(-1)


def pair_inner_products(x: torch.Tensor) -> torch.Tensor:
    """Off-diagonal inner products ⟨x_i, x_j⟩, i < j: (..., n, d) → (..., n(n−1)/2), e.g. for histograms."""
    n = x.shape[-2]
    iu = torch.triu_indices(n, n, offset=1, device=x.device)
    return torch.matmul(x, x.transpose(-1, -2))[..., iu[0], iu[1]]
