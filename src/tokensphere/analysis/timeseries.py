"""Clusters over time: merge events and metastable plateaus (metastability, Problem 1).

Inputs come from :func:`tokensphere.analysis.cluster_labels` applied to saved positions (T, B, n, d), so that
``labels`` is (T, B, n) and ``counts`` is (T, B). A system stopped by a terminal event holds NaN positions after
its event time, which the cluster functions read as n singleton clusters: pass the run's ``event_time`` as
``until`` so that those times are left out.
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


def merge_events(times: torch.Tensor, labels: torch.Tensor, *, until: torch.Tensor | None = None) -> list[Merge]:
    """Every merge between consecutive saved times: a new cluster that holds tokens of ≥ 2 old clusters.

    times: (T,); labels: (T, B, n). until: None, or (B,) times after which a system's labels are left out (a
    run's ``event_time``: NaN for a system that ran to the end). Splits (a cluster falling apart, e.g. when a
    threshold is crossed back) are not merges and are ignored here. Time resolution is that of the saved times.
    """
    if labels.ndim != 3:
        raise ValueError(f"labels must have shape (T, B, n), got {tuple(labels.shape)}")
    _check_times(times, labels.shape[0], "labels")
    lab = labels.cpu().numpy()
    t = times.cpu().double().numpy()
    out: list[Merge] = []
    T, B, n = lab.shape
    valid = _valid(t, until, B)  # (T, B)
    changed = np.nonzero((lab[1:] != lab[:-1]).any(-1) & valid[1:])
    for k, b in zip(*changed):
        old, new = lab[k, b], lab[k + 1, b]
        old_sizes = np.bincount(old, minlength=n)
        for root in np.unique(new):
            parents = np.unique(old[new == root])
            if parents.size > 1:
                sizes = tuple(sorted((int(old_sizes[p]) for p in parents), reverse=True))
                out.append(Merge(int(b), float(t[k]), float(t[k + 1]), sizes))
    return out


def plateaus(times: torch.Tensor, counts: torch.Tensor, *, until: torch.Tensor | None = None) -> list[Plateau]:
    """Maximal runs of constant cluster count per system. times: (T,); counts: (T, B). until: None, or (B,)
    times after which a system's counts are left out (a run's ``event_time``; NaN: the whole run)."""
    if counts.ndim != 2:
        raise ValueError(f"counts must have shape (T, B), got {tuple(counts.shape)}")
    _check_times(times, counts.shape[0], "counts")
    c = counts.cpu().numpy()
    t = times.cpu().double().numpy()
    kept = _valid(t, until, c.shape[1]).sum(0)  # saved times per system up to its end (a prefix)
    out: list[Plateau] = []
    for b in range(c.shape[1]):
        start, T = 0, int(kept[b])
        for k in range(1, T + 1):
            if k == T or c[k, b] != c[start, b]:
                out.append(Plateau(b, int(c[start, b]), float(t[start]), float(t[k - 1])))
                start = k
    return out


def _valid(t: np.ndarray, until: torch.Tensor | None, B: int) -> np.ndarray:
    """(T, B) bool: saved time k is within system b's run (t_k ≤ until_b; NaN or None: every time)."""
    if until is None:
        return np.ones((t.size, B), dtype=bool)
    u = torch.as_tensor(until).detach().cpu().double().numpy().reshape(-1)
    if u.size != B:
        raise ValueError(f"until must hold one time per system, (B,) with B = {B}, got {u.size} values")
    return (t[:, None] <= u[None, :]) | np.isnan(u)[None, :]


def _check_times(times: torch.Tensor, T: int, what: str) -> None:
    if times.ndim != 1 or times.shape[0] != T:
        raise ValueError(f"times must have shape (T,) with T = {T}, the saved times of {what}, got "
                         f"{tuple(times.shape)}")
