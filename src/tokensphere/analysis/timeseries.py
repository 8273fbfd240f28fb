"""Clusters over time: merge events and metastable plateaus (metastability, Problem 1).

Inputs come from :func:`tokensphere.analysis.cluster_labels` applied to saved positions (T, B, n, d), so that
``labels`` is (T, B, n) and ``counts`` is (T, B).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Merge", "Plateau", "merge_events", "plateaus"]


@dataclass(frozen=True)
class Merge:
    """Between saved times t_before and t_after, clusters of these sizes (decreasing) became one in ``system``."""

    system: int
    t_before: float
    t_after: float
    sizes: tuple[int, ...]

    @property
    def pairwise(self) -> bool:
        """True when exactly two clusters merged."""
        return len(self.sizes) == 2


@dataclass(frozen=True)
class Plateau:
    """A maximal run of saved times over which ``system`` had ``count`` clusters."""

    system: int
    count: int
    t_start: float
    t_end: float

    @property
    def length(self) -> float:
        return self.t_end - self.t_start


def merge_events(times: torch.Tensor, labels: torch.Tensor) -> list[Merge]:
    """Every merge between consecutive saved times: a new cluster that holds tokens of ≥ 2 old clusters.

    times: (T,); labels: (T, B, n). Splits (a cluster falling apart, e.g. when a threshold is crossed back)
    are not merges and are ignored here. Time resolution is that of the saved times.
    """
    if labels.ndim != 3:
        raise ValueError(f"labels must have shape (T, B, n), got {tuple(labels.shape)}")
    _check_times(times, labels.shape[0], "labels")
    lab = labels.cpu().numpy()
    t = times.cpu().double().numpy()
    out: list[Merge] = []
    T, B, n = lab.shape
    changed = np.nonzero((lab[1:] != lab[:-1]).any(-1))
    for k, b in zip(*changed):
        old, new = lab[k, b], lab[k + 1, b]
        old_sizes = np.bincount(old, minlength=n)
        for root in np.unique(new):
            parents = np.unique(old[new == root])
            if parents.size > 1:
                sizes = tuple(sorted((int(old_sizes[p]) for p in parents), reverse=True))
                out.append(Merge(int(b), float(t[k]), float(t[k + 1]), sizes))
    return out


def plateaus(times: torch.Tensor, counts: torch.Tensor) -> list[Plateau]:
    """Maximal runs of constant cluster count per system. times: (T,); counts: (T, B)."""
    if counts.ndim != 2:
        raise ValueError(f"counts must have shape (T, B), got {tuple(counts.shape)}")
    _check_times(times, counts.shape[0], "counts")
    c = counts.cpu().numpy()
    t = times.cpu().double().numpy()
    out: list[Plateau] = []
    for b in range(c.shape[1]):
        start = 0
        for k in range(1, c.shape[0] + 1):
            if k == c.shape[0] or c[k, b] != c[start, b]:
                out.append(Plateau(b, int(c[start, b]), float(t[start]), float(t[k - 1])))
                start = k
    return out


def _check_times(times: torch.Tensor, T: int, what: str) -> None:
    if times.ndim != 1 or times.shape[0] != T:
        raise ValueError(f"times must have shape (T,) with T = {T}, the saved times of {what}, got "
                         f"{tuple(times.shape)}")
