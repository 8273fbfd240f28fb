"""Metastability (Problem 1 of the paper): cluster counts and the energy staircase over log t, merge sizes.

On the circle at large β the tokens sit for long times near a few clusters, then clusters merge (mostly two
at a time) and the normalised energy Ē rises in a staircase. The figure has three panels: k(t) and Ē(t) on a
logarithmic time axis, one line per seeded start, and the sizes of the merge events (how many clusters merged
at once). The numbers come from :func:`tokensphere.experiments.metastability_data`; this module only draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..experiments.layout import systems_by_beta

__all__ = ["metastability_figure"]

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def metastability_figure(data: dict[str, Any], title: str | None = None) -> Figure:
    """Three panels from :func:`metastability_data`: k(t), Ē(t) over log t, and merge sizes per β."""
    t = np.asarray(data["times"])[1:]  # drop t = 0 on the log axis
    k = np.asarray(data["counts"])[1:]
    e = np.asarray(data["energy_normalized"])[1:]
    by_beta = sorted(systems_by_beta(data["beta"]).items())
    groups = [b for b, _ in by_beta]
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax_k, ax_e, ax_m = fig.subplots(1, 3)
    for gi, (b, cols) in enumerate(by_beta):
        color = COLORS[gi % len(COLORS)]
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
