"""Statistics over positions: pair statistics, clusters, their evolution and the energy trend, batched over
systems and times. Above ``CHUNKED_MIN_N`` tokens the cluster functions use a chunked neighbour search and
never build the n × n graph."""

from .clusters import (
    CHUNKED_MIN_N,
    cluster_centers,
    cluster_count,
    cluster_labels,
    cluster_sizes,
    pair_fraction,
    pair_inner_products,
    pair_statistics,
    rank_cluster_count,
    scale_aware_delta,
    span_dimension,
    threshold_stability,
)
from .geometry import order_parameter
from .monotonicity import energy_monotonicity, energy_series, step_against_trend
from .stops import ClusterCountChanged
from .timeseries import Merge, Plateau, merge_events, plateaus

__all__ = [
    "CHUNKED_MIN_N",
    "ClusterCountChanged",
    "Merge",
    "Plateau",
    "cluster_centers",
    "cluster_count",
    "cluster_labels",
    "cluster_sizes",
    "energy_monotonicity",
    "energy_series",
    "merge_events",
    "order_parameter",
    "pair_fraction",
    "pair_inner_products",
    "pair_statistics",
    "plateaus",
    "rank_cluster_count",
    "scale_aware_delta",
    "span_dimension",
    "step_against_trend",
    "threshold_stability",
]
