"""The statistics a sweep can record at its output times, and the summaries over the seed axis.

Each statistic is a name bound to a function of the positions ``x`` (S, n, d) of the systems that reached an
output time (and, for the energies, of the model restricted to those systems) that returns one number per
system, (S,). The functions only call the analysis layer (:mod:`tokensphere.analysis`, :mod:`tokensphere.energy`):
nothing is recomputed here. Summaries reduce the seed axis of one grid point, (..., S, T) → (..., T).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..analysis.clusters import cluster_count, pair_fraction, rank_cluster_count, span_dimension
from ..energy import energy, energy_normalized
from ..model import Model

__all__ = ["STATISTICS", "SUMMARIES", "QUANTILES", "Statistic", "summarize"]

QUANTILES = (0.1, 0.5, 0.9)
RANK_THRESHOLD = 0.9999  # the authors' Gram-rank cluster count (their phase-diagrams.py)
SPAN_TOLERANCE = 1e-3  # relative singular-value cut-off of the span dimension (their script)


@dataclass(frozen=True)
class Statistic:
    """A statistic of positions: ``compute(x, model, delta)`` with x (S, n, d) → (S,); ``needs_model``: whether
    it reads the model (then ``model`` is the unit's model restricted to the S systems)."""

    compute: Callable[[torch.Tensor, Model | None, float], torch.Tensor]
    description: str
    needs_model: bool = False


STATISTICS: dict[str, Statistic] = {
    "pair_fraction": Statistic(
        lambda x, m, delta: pair_fraction(x, delta),
        "fraction of ordered pairs i != j with <x_i, x_j> > 1 - delta (Figure 3)",
    ),
    "cluster_count": Statistic(
        lambda x, m, delta: cluster_count(x, delta),
        "number of connected components of the graph {<x_i, x_j> > 1 - delta}",
    ),
    "energy": Statistic(
        lambda x, m, delta: energy(x, m),
        "interaction energy E_beta = (1/(2 beta n^2)) sum_ij exp(beta <Q x_i, K x_j>) (Remark 3.8)",
        needs_model=True,
    ),
    "energy_normalized": Statistic(
        lambda x, m, delta: energy_normalized(x, m),
        "normalised energy (1/n^2) sum_ij exp(beta (s_ij - s*)) in (0, 1]; 1 at consensus",
        needs_model=True,
    ),
    "rank_cluster_count": Statistic(
        lambda x, m, delta: rank_cluster_count(x, RANK_THRESHOLD),
        f"the authors' cluster count: rank of the Gram matrix thresholded at {RANK_THRESHOLD}",
    ),
    "span_dimension": Statistic(
        lambda x, m, delta: span_dimension(x, SPAN_TOLERANCE),
        f"dimension of the span of the tokens (eigenvalues of the Gram matrix above {SPAN_TOLERANCE}, absolute)",
    ),
}

# summary name → function of v (..., S, T) → (..., T), or (..., Q, T) for the quantiles
SUMMARIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mean": lambda v: v.mean(-2),
    "se": lambda v: v.std(-2, ddof=1) / np.sqrt(v.shape[-2]),
    "median": lambda v: np.median(v, axis=-2),
    "quantile": lambda v: np.moveaxis(np.quantile(v, QUANTILES, axis=-2), 0, -2),
    "fraction_one": lambda v: (v == 1).mean(-2),
}


def summarize(name: str, values: np.ndarray) -> np.ndarray:
    """The summary ``name`` of ``values`` (..., S, T) over the seed axis S: (..., T), or (..., Q, T) for
    "quantile" (Q = len(QUANTILES)). "se" is the standard error std/√S (ddof 1); "fraction_one" the fraction of
    seeds whose value is exactly 1 (one cluster, or all pairs clustered)."""
    return SUMMARIES[name](values)
