"""Statistics over positions: pair statistics and cluster counts, batched over systems (and times)."""

from .clusters import cluster_count, cluster_labels, pair_fraction

__all__ = ["cluster_count", "cluster_labels", "pair_fraction"]
