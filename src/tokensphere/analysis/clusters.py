"""Pair statistics and clusters as connected components of {⟨x_i, x_j⟩ > 1 − δ} (Figure 3's statistic).

Clusters are the connected components (single linkage) of the graph {⟨x_i, x_j⟩ > 1 − δ}. The rank of the
thresholded Gram matrix, used by the authors' ``phase-diagrams.py``, is *not* a cluster count: it is wrong
for chains of points. All functions accept positions of shape (..., n, d) — e.g. (B, n, d) or (T, B, n, d) —
and work on every leading index at once.

Above :data:`CHUNKED_MIN_N` tokens the pair fraction and the components are computed without the n × n
graph: tokens are sorted by their projection on the principal axis, and a pair can only be linked when the
projections differ by less than r, where |x_i − x_j|² = |x_i|² + |x_j|² − 2⟨x_i, x_j⟩ < 2M² − 2 + 2δ = r²
(M the largest norm; r = √(2δ) for unit vectors). Each block of consecutive rows is compared with the window
of columns within r of it only, and minimum labels are propagated block by block until a pass changes none
(memory O(n·block), time O(n·window·d) per pass). Same graph, same labels (up to round-off in an inner
product within an ulp of 1 − δ, which the two paths may compute differently).
"""

from __future__ import annotations

import math
import warnings

import torch

from ..validate import validate_real

# 1 − δ closer to 1 than this many float32 ulps is unreliable in float32 (inner products carry O(d·eps) error)
_FLOAT32_ULPS = 4096
# above this many tokens the n × n graph is not built (the chunked path of the module docstring)
CHUNKED_MIN_N = 2048
_ROW_BLOCK = 512  # rows per block of the chunked path
_COL_BLOCK = 4096  # columns per inner-product block of the chunked path

__all__ = [
    "CHUNKED_MIN_N",
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
    if x.dtype in (torch.float32, torch.float16, torch.bfloat16) and \
            delta < _FLOAT32_ULPS * torch.finfo(x.dtype).eps:
        name = str(x.dtype).removeprefix("torch.")
        warnings.warn(
            f"delta = {delta:g} puts the threshold 1 - delta within {_FLOAT32_ULPS} {name} ulps of 1; {name} "
            "positions and inner products carry O(d·eps) error: use float64 positions for this threshold",
            RuntimeWarning,
            stacklevel=3,
        )
    x = _comparable(x)
    return torch.matmul(x, x.transpose(-1, -2))


def _comparable(x: torch.Tensor) -> torch.Tensor:
    """Half-precision positions in float32 for the inner products: compared in bfloat16, 1 − δ rounds to 1 for
    every δ < 2^-9 and ⟨x_i, x_j⟩ > cos 0.06 rounds to 1 too: no two distinct tokens could be linked."""
    return x.to(torch.float32) if x.dtype in (torch.float16, torch.bfloat16) else x


def pair_fraction(x: torch.Tensor, delta: float) -> torch.Tensor:
    """Fraction of ordered pairs i ≠ j with ⟨x_i, x_j⟩ > 1 − δ (the phase-diagram statistic of Figure 3).

    x: (..., n, d) unit vectors, n ≥ 2. Returns (...), in [0, 1]. Raises ValueError unless 0 < δ ≤ 2.
    """
    if _chunked(x):
        return pair_statistics(x, delta)[0]
    return _fraction(_adjacency(x, delta), x.dtype)


def cluster_labels(x: torch.Tensor, delta: float) -> torch.Tensor:
    """Connected-component labels of {⟨x_i, x_j⟩ > 1 − δ}: (..., n) int64, each label the smallest token index
    of its component. x: (..., n, d). Raises ValueError unless 0 < δ ≤ 2.

    Minimum-label propagation over the adjacency with pointer jumping, vectorised over all leading indices
    (above :data:`CHUNKED_MIN_N` tokens without building the n × n graph: see the module docstring).
    """
    if _chunked(x):
        return _chunked_statistics(x, delta, need_pairs=False)[1]
    return _labels(_adjacency(x, delta, need_pairs=False))


def cluster_count(x: torch.Tensor, delta: float) -> torch.Tensor:
    """Number of clusters (connected components of {⟨x_i, x_j⟩ > 1 − δ}). x: (..., n, d). Returns (...) int64."""
    return _count(cluster_labels(x, delta))


def pair_statistics(x: torch.Tensor, delta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(pair_fraction, cluster_count) from one Gram matrix: what a phase diagram records at every output time.

    x: (..., n, d). Returns two (...) tensors (x.dtype and int64).
    """
    if _chunked(x):
        pairs, labels = _chunked_statistics(x, delta, need_pairs=True)
        n = x.shape[-2]
        return (pairs.to(torch.float64) / (n * (n - 1))).to(x.dtype), _count(labels)
    adj = _adjacency(x, delta)
    return _fraction(adj, x.dtype), _count(_labels(adj))


def _check_positions(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[-2] < 1 or x.shape[-1] < 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be positions of shape (..., n, d) with n >= 1 tokens and d >= 1, got {shape}")


def _chunked(x: torch.Tensor) -> bool:
    _check_positions(x)
    return x.shape[-2] > CHUNKED_MIN_N


def _chunked_statistics(x: torch.Tensor, delta: float, need_pairs: bool,
                        row_block: int = _ROW_BLOCK, col_block: int = _COL_BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """(ordered linked pairs i ≠ j (...) int64, labels (..., n) int64) without the n × n graph, one system at a
    time (the module docstring). x: (..., n, d)."""
    validate_real("delta", delta, minimum=0.0, maximum=2.0, strict_minimum=True)
    n, d = x.shape[-2:]
    if need_pairs and n < 2:
        raise ValueError(f"pair_fraction needs n >= 2 tokens, got n = {n}")
    _gram(x[..., :1, :], delta)  # the float32 threshold warning of the dense path
    flat = _comparable(x).reshape(-1, n, d)
    pairs = torch.zeros(flat.shape[0], dtype=torch.long, device=x.device)
    labels = torch.empty(flat.shape[:2], dtype=torch.long, device=x.device)
    for b in range(flat.shape[0]):
        pairs[b], labels[b] = _system_components(flat[b], delta, row_block, col_block)
    return pairs.reshape(x.shape[:-2]), labels.reshape(x.shape[:-1])


def _system_components(x: torch.Tensor, delta: float, row_block: int, col_block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Linked ordered pairs and component labels (smallest token index) of one system x (n, d). A token with a
    non-finite coordinate (a stored run after its terminal event) links to none, as in the dense path: it is
    its own cluster and the others are computed without it."""
    n = x.shape[0]
    finite = torch.isfinite(x).all(-1)
    if not bool(finite.all()):
        keep = torch.nonzero(finite).reshape(-1)
        out = torch.arange(n, device=x.device)
        pairs = torch.zeros((), dtype=torch.long, device=x.device)
        if keep.numel():
            pairs, sub = _system_components(x[keep], delta, row_block, col_block)
            out[keep] = keep[sub]
        return pairs, out
    # the principal axis spreads the projections most; any unit axis gives the same (exact) answer (found in
    # float64: eigh has no half-precision kernel)
    wide = x.to(torch.float64)
    centred = wide - wide.mean(0)
    axis = torch.linalg.eigh(centred.T @ centred).eigenvectors[:, -1]
    proj = wide @ axis
    proj, order = torch.sort(proj)
    xs = x[order]
    big = float(torch.linalg.vector_norm(x, dim=-1).max())
    reach = math.sqrt(max(2 * big * big - 2 + 2 * delta, 0.0)) * (1 + 1e-6) + 1e-12
    windows = []
    for a in range(0, n, row_block):
        b = min(a + row_block, n)
        lo = int(torch.searchsorted(proj, proj[a] - reach, right=False))
        hi = int(torch.searchsorted(proj, proj[b - 1] + reach, right=True))
        windows.append((a, b, lo, hi))
    # labels are sorted positions, held as floats (exact below 2^24; float minima are faster than int64 ones)
    fdt = torch.float64 if n > 2**24 else torch.float32
    label = torch.arange(n, device=x.device, dtype=fdt)
    pairs = torch.zeros((), dtype=torch.long, device=x.device)
    first = True
    while True:
        before = label.clone()
        for a, b, lo, hi in windows:
            rows = xs[a:b]
            for c0 in range(lo, hi, col_block):
                c1 = min(c0 + col_block, hi)
                adj = (rows @ xs[c0:c1].T) > 1 - delta
                if max(a, c0) < min(b, c1):  # a token is in its own cluster (the dense path's diagonal)
                    diag = torch.arange(max(a, c0), min(b, c1), device=x.device)
                    adj[diag - a, diag - c0] = True
                if first:
                    pairs += torch.count_nonzero(adj)
                cand = torch.where(adj, label[c0:c1], float(n)).amin(-1)
                # hook: the smallest label among my neighbours goes to me and to my label's token (both lie in my
                # component, so every label stays a token of its own component and only decreases)
                label.scatter_reduce_(0, label[a:b].long(), cand, "amin")
                torch.minimum(label[a:b], cand, out=label[a:b])
        if first:
            pairs -= n  # the diagonal
            first = False
        while True:  # pointer jumping: my label's label is in my component and no larger
            jumped = label[label.long()]
            if torch.equal(jumped, label):
                break
            label = jumped
        if torch.equal(label, before):
            break
    label = label.long()
    # back to token indices: each component labelled by its smallest original index
    comp_min = torch.full((n,), n, dtype=torch.long, device=x.device).scatter_reduce(0, label, order, "amin")
    out = torch.empty(n, dtype=torch.long, device=x.device)
    out[order] = comp_min[label]
    return pairs, out


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
    n = adj.shape[-1]  # the count (up to n²) in float64: float16 cannot hold it above 65504
    return ((torch.count_nonzero(adj, dim=(-2, -1)) - n).to(torch.float64) / (n * (n - 1))).to(dtype)


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
    of the shape of beta. Raises ValueError for factor ≤ 0, β ≤ 0, or a link angle factor·τ*_β beyond π (δ
    would no longer grow with it: 1 − cos wraps around).
    """
    from ..theory.thresholds import tau_star

    validate_real("factor", factor, minimum=0.0, strict_minimum=True)
    b = torch.as_tensor(beta, dtype=torch.float64)
    flat = b.reshape(-1)
    angles = [factor * tau_star(float(v), 2) for v in flat]
    if angles and max(angles) > math.pi:
        raise ValueError(f"factor = {factor:g} makes the link angle factor·τ*_β = {max(angles):.3g} rad exceed π "
                         f"(τ*_β ≤ π/2: factor must be at most π / τ*_β = {math.pi / (max(angles) / factor):.3g} here)")
    out = torch.tensor([1.0 - math.cos(a) for a in angles], dtype=torch.float64)
    return out.reshape(b.shape)


def threshold_stability(x: torch.Tensor, deltas) -> torch.Tensor:
    """Cluster counts for each δ in ``deltas``: (K,) thresholds → (K, ...) counts. A count that does not change
    over a decade of δ is a robust reading; one that does is a warning sign."""
    deltas = list(torch.as_tensor(deltas, dtype=torch.float64).reshape(-1).tolist())
    if not deltas:
        raise ValueError("deltas must hold at least one threshold in (0, 2]")
    return torch.stack([cluster_count(x, dl) for dl in deltas])


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
