"""Metastability (Problem 1, SPEC §5.11): cluster counts and the energy staircase over log t, merge statistics.

On the circle at large β the tokens sit for long times near a few clusters, then clusters merge (mostly two
at a time) and the normalised energy Ē rises in a staircase. The figure has three panels: k(t) and Ē(t) on a
logarithmic time axis, one line per seeded start, and the sizes of the merge events (how many clusters merged
at once). The numbers come from :mod:`tokensphere.analysis` and :func:`tokensphere.energy_over_time`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..analysis import cluster_count, cluster_labels, merge_events, plateaus
from ..energy import energy_over_time
from ..init import Uniform
from ..simulate import simulate
from ..trajectory import Trajectory

__all__ = ["metastability_runs", "metastability_data", "metastability_figure"]

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


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
    0 and log-spaced times in [0.05, t_max]. Adaptive dopri5 (rtol 1e-8)."""
    times = np.concatenate([[0.0], np.geomspace(0.05, t_max, n_times - 1)])
    x0 = Uniform(batch=starts, n=n, d=d, seed=seed).sample().repeat(len(betas), 1, 1)
    beta = torch.tensor(betas, dtype=torch.float64).repeat_interleave(starts)
    return simulate(x0, beta, t_max=t_max, save_at=times.tolist(), rtol=1e-8, atol=1e-10,
                    metadata={"init": {**Uniform(batch=starts, n=n, d=d, seed=seed).describe(),
                                       "shared_across_beta": True}})


def metastability_data(traj: Trajectory, delta: float = 1e-3) -> dict[str, Any]:
    """Cluster counts (T, B), Ē (T, B), merge events and plateaus, summarised per β (JSON-serialisable)."""
    counts = cluster_count(traj.positions, delta)
    labels = cluster_labels(traj.positions, delta)
    energy = energy_over_time(traj.positions, traj.model)
    betas = traj.model.beta_tensor().expand(traj.shape[1]).tolist()
    merges = merge_events(traj.times, labels)
    plats = plateaus(traj.times, counts)
    summary: dict[str, Any] = {}
    for b in sorted(set(betas)):
        systems = {s for s, v in enumerate(betas) if v == b}
        ev = [m for m in merges if m.system in systems]
        sizes = Counter(len(m.sizes) for m in ev)
        finite = [p.length for p in plats if p.system in systems and p.t_end < float(traj.times[-1]) and p.count > 1]
        summary[f"{b:g}"] = {
            "merge_events": len(ev),
            "clusters_merged_at_once": {str(k): v for k, v in sorted(sizes.items())},
            "pairwise_fraction": (sizes.get(2, 0) / len(ev)) if ev else None,
            "final_counts": counts[-1, sorted(systems)].tolist(),
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


def metastability_figure(data: dict[str, Any], title: str | None = None) -> Figure:
    """Three panels from :func:`metastability_data`: k(t), Ē(t) over log t, and merge sizes per β."""
    t = np.asarray(data["times"])[1:]  # drop t = 0 on the log axis
    k = np.asarray(data["counts"])[1:]
    e = np.asarray(data["energy_normalized"])[1:]
    betas = data["beta"]
    groups = sorted(set(betas))
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax_k, ax_e, ax_m = fig.subplots(1, 3)
    for gi, b in enumerate(groups):
        color = COLORS[gi % len(COLORS)]
        cols = [s for s, v in enumerate(betas) if v == b]
        for j, s in enumerate(cols):
            label = f"β = {b:g} ({len(cols)} starts)" if j == 0 else None
            ax_k.step(t, k[:, s], where="post", color=color, alpha=0.5, lw=1, label=label)
            ax_e.plot(t, e[:, s], color=color, alpha=0.5, lw=1, label=label)
    for ax in (ax_k, ax_e):
        ax.set_xscale("log")
        ax.set_xlabel("t (log scale)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    ax_k.set_yscale("log")
    ax_k.set_ylabel("number of clusters")
    ax_k.set_title(f"clusters (δ = {data['delta']:g}): plateaus and merges", fontsize=10)
    ax_e.set_ylabel(r"$\bar E = 2\beta e^{-\beta} E_\beta$")
    ax_e.set_title("energy staircase", fontsize=10)
    width = 0.8 / max(len(groups), 1)
    for gi, b in enumerate(groups):
        stats = data["by_beta"][f"{b:g}"]
        sizes = {int(m): c for m, c in stats["clusters_merged_at_once"].items()}
        total = sum(sizes.values()) or 1
        xs = np.arange(2, max(list(sizes) + [4]) + 1)
        ax_m.bar(xs + (gi - (len(groups) - 1) / 2) * width, [sizes.get(int(x), 0) / total for x in xs], width,
                 color=COLORS[gi % len(COLORS)], label=f"β = {b:g} ({stats['merge_events']} merges)")
    ax_m.set_xlabel("clusters merging at once (between saved times)")
    ax_m.set_ylabel("fraction of merge events")
    ax_m.set_title("merges are mostly pairwise", fontsize=10)
    ax_m.legend(fontsize=8)
    fig.suptitle(title or "Metastability on the circle (SA, n = 32): plateaus, merges, energy staircase")
    return fig
