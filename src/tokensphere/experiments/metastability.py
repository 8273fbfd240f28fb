"""Metastability (Problem 1 of the paper): cluster plateaus, merges and the energy staircase over log t.

On the circle at large β the tokens sit for long times near a few clusters, then clusters merge (mostly two
at a time) and the normalised energy Ē rises in a staircase. :func:`metastability_runs` simulates every
β × seeded start; :func:`metastability_data` measures counts, Ē, merge events and plateaus per β
(:mod:`tokensphere.analysis`), ready for :func:`tokensphere.plot.metastability_figure`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..analysis import cluster_count, cluster_labels, merge_events, plateaus
from ..energy import energy_over_time
from ..init import Uniform
from ..simulate import simulate
from ..trajectory import Trajectory
from ..validate import validate_int, validate_real
from .layout import beta_batch, system_betas, systems_by_beta

__all__ = ["metastability_data", "metastability_runs"]


def metastability_runs(
    betas: Sequence[float] = (4.0, 9.0),
    starts: int = 16,
    *,
    n: int = 32,
    d: int = 2,
    t_max: float = 300.0,
    n_times: int = 160,
    seed: int = 0,
) -> Trajectory:
    """SA runs for every β × ``starts`` seeded uniform starts (start k is the same for every β), saved at
    0 and log-spaced times in [0.05, t_max] (t_max > 0.05, n_times ≥ 2). Adaptive dopri5 (rtol 1e-8)."""
    t_max = validate_real("t_max", t_max, minimum=0.05, strict_minimum=True)
    n_times = validate_int("n_times", n_times, minimum=2)
    # np.geomspace with one point returns its start (0.05), not t_max: two saved times are 0 and t_max
    later = np.geomspace(0.05, t_max, n_times - 1) if n_times > 2 else np.array([t_max])
    times = np.concatenate([[0.0], later])
    batch = beta_batch(Uniform(batch=starts, n=n, d=d, seed=seed), betas)
    return simulate(batch.x0, batch.beta, t_max=t_max, save_at=times.tolist(), rtol=1e-8, atol=1e-10,
                    metadata={"init": batch.init})


def metastability_data(traj: Trajectory, delta: float = 1e-3) -> dict[str, Any]:
    """Cluster counts (T, B), Ē (T, B), merge events and plateaus, summarised per β (JSON-serialisable)."""
    counts = cluster_count(traj.positions, delta)
    labels = cluster_labels(traj.positions, delta)
    energy = energy_over_time(traj.positions, traj.model)
    betas = system_betas(traj.model, traj.shape[1])
    merges = merge_events(traj.times, labels, until=traj.event_time)  # a stopped system ends at its event
    plats = plateaus(traj.times, counts, until=traj.event_time)
    t_end = float(traj.times[-1])
    summary: dict[str, Any] = {}
    for b, idx in sorted(systems_by_beta(betas).items()):
        systems = set(idx)
        ev = [m for m in merges if m.system in systems]
        sizes = Counter(len(m.sizes) for m in ev)
        finite = [p.length for p in plats if p.system in systems and p.t_end < t_end and p.count > 1]
        summary[f"{b:g}"] = {
            "merge_events": len(ev),
            "clusters_merged_at_once": {str(k): v for k, v in sorted(sizes.items())},
            "pairwise_fraction": (sizes.get(2, 0) / len(ev)) if ev else None,
            "final_counts": counts[-1, idx].tolist(),
            "longest_finished_plateau": max(finite) if finite else None,
        }
    return {
        "delta": delta,
        "times": traj.times.tolist(),
        "beta": betas,
        "counts": counts.tolist(),
        "energy_normalized": energy.tolist(),
        "by_beta": summary,
        "note": "merge times are resolved to the saved (log-spaced) times",
    }
