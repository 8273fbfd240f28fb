"""Figure 4: (SA) on the circle (d = 2) for β = 4 and 9, and the cluster counts of its panels and over seeds.

The paper shows one random start per β: 2 clusters at β = 4 and 3 at β = 9, persisting from t = 18 to t = 30
(metastability, Problem 1). Counts depend on the start, so :func:`cluster_count_distribution` also gives their
frequencies over many seeded starts. Counts are :func:`tokensphere.analysis.cluster_count` (connected
components of {⟨x_i, x_j⟩ > 1 − δ}), δ = 1e−3 (Figure 3) by default or the scale-aware
δ_β = :func:`~tokensphere.analysis.scale_aware_delta` (``delta=None``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..analysis import cluster_count, scale_aware_delta
from ..init import Uniform
from ..simulate import simulate
from ..trajectory import Trajectory
from ..validate import validate_int
from .layout import beta_batch, system_betas, systems_by_beta

__all__ = [
    "FIG4_BETAS",
    "FIG4_DELTA",
    "FIG4_N",
    "FIG4_TIMES",
    "circle_counts",
    "circle_runs",
    "cluster_count_distribution",
    "distribution_json",
    "snapshot_index",
]

FIG4_BETAS = (4.0, 9.0)
FIG4_TIMES = (0.0, 18.0, 30.0)  # the panels' titles (the caption's 2.5 is a misprint)
FIG4_N = 32  # n is not stated; ≈ 30 tokens are visible and Figure 3 uses 32
FIG4_DELTA = 1e-3  # Figure 3's threshold


def circle_runs(
    betas: Sequence[float] = FIG4_BETAS,
    starts: int = 1,
    *,
    n: int = FIG4_N,
    seed: int = 0,
    t_max: float = 30.0,
    save_at: int | Sequence[float] = 301,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    progress=None,
) -> Trajectory:
    """Simulate (SA) on the circle (d = 2) from ``starts`` seeded uniform starts for every β (adaptive dopri5).

    System i·starts + k has β = betas[i] and start k, drawn from the stream (seed, k): the same starts for
    every β (:func:`~tokensphere.experiments.beta_batch`). Returns the :class:`Trajectory` (positions
    (T, len(betas)·starts, n, 2)); seeds are in its metadata.
    """
    validate_int("starts", starts, minimum=1)
    batch = beta_batch(Uniform(batch=starts, n=n, d=2, seed=seed), betas)
    meta = {"seed": seed, "init": batch.init,
            "systems": "system i*starts + k: beta_i, start k from SeedSequence([seed, k])"}
    return simulate(batch.x0, batch.beta, solver="dopri5", rtol=rtol, atol=atol, t_max=t_max, save_at=save_at,
                    progress=progress, metadata=meta)


def _delta_for(beta: float, delta: float | None) -> float:
    return float(scale_aware_delta(beta)) if delta is None else float(delta)


def snapshot_index(traj: Trajectory, t: float) -> int:
    """Index of the saved time nearest to ``t``. Raises ValueError when t lies outside the saved times."""
    ts = traj.times.double()
    if not float(ts[0]) - 1e-9 <= t <= float(ts[-1]) + 1e-9:
        raise ValueError(f"snapshot time {t:g} is outside the saved times [{float(ts[0]):g}, {float(ts[-1]):g}]")
    return int(torch.argmin((ts - t).abs()))


def circle_counts(traj: Trajectory, systems: Sequence[int], times: Sequence[float],
                  delta: float | None = FIG4_DELTA) -> np.ndarray:
    """Cluster counts (:func:`~tokensphere.analysis.cluster_count`) of the given systems at the saved times
    nearest to ``times``: (len(systems), len(times)) int array. delta None: the scale-aware δ_β of each system."""
    betas = system_betas(traj.model, traj.shape[1])
    out = np.zeros((len(systems), len(times)), dtype=np.int64)
    for r, b in enumerate(systems):
        dl = _delta_for(betas[b], delta)
        for c, t in enumerate(times):
            out[r, c] = int(cluster_count(traj.positions[snapshot_index(traj, t), b], dl))
    return out


def cluster_count_distribution(
    traj: Trajectory, times: Sequence[float] = (18.0, 30.0), delta: float | None = FIG4_DELTA
) -> dict[float, dict[float, dict[int, int]]]:
    """Histogram over systems of the cluster count, per β and time: {β: {t: {count: number of systems}}}.
    Times are matched to the nearest saved time."""
    if traj.positions is None:
        raise ValueError("the trajectory holds no positions (simulated with store=False)")
    out: dict[float, dict[float, dict[int, int]]] = {}
    for beta, idx in systems_by_beta(system_betas(traj.model, traj.shape[1])).items():
        dl = _delta_for(beta, delta)
        per_t: dict[float, dict[int, int]] = {}
        for t in times:
            c = cluster_count(traj.positions[snapshot_index(traj, t), idx], dl)
            vals, freq = torch.unique(c, return_counts=True)
            per_t[float(t)] = {int(v): int(f) for v, f in zip(vals.tolist(), freq.tolist())}
        out[beta] = per_t
    return out


def distribution_json(dist: dict[float, dict[float, dict[int, int]]]) -> dict[str, Any]:
    """:func:`cluster_count_distribution` with string keys (for JSON)."""
    return {f"{b:g}": {f"{t:g}": {str(k): v for k, v in h.items()} for t, h in per.items()} for b, per in dist.items()}
