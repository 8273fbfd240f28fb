"""Metastability time scales (Problem 1 of the paper): T₁ and plateau lifetimes against β.

Two panels from :func:`tokensphere.experiments.timescales.time_scales`: the time T₁ at which the first
clusters have formed (every seeded start, and the median), and the lifetimes of the finished k-cluster
plateaus on a logarithmic axis (one marker per plateau, colour by k; censored plateaus as open triangles at
their lower bound), with the fitted exponential growth of the two-cluster median. This module only draws.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["timescales_figure"]


def timescales_figure(data: dict[str, Any], title: str | None = None) -> Figure:
    """T₁ and plateau lifetimes vs β from :func:`~tokensphere.experiments.timescales.time_scales`."""
    betas = sorted(data["beta"], key=float)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax_t, ax_l = fig.subplots(1, 2)
    for b in betas:
        entry = data["beta"][b]
        first = [v for v in entry["t_first"] if math.isfinite(v)]
        ax_t.scatter([float(b)] * len(first), first, color="tab:blue", alpha=0.4, s=14)
        ax_t.scatter([float(b)], [entry["t_first_median"]], color="k", marker="_", s=300)
    ax_t.set_xlabel("β")
    ax_t.set_ylabel("T₁ (first time with ≤ n/2 clusters)")
    ax_t.set_title("formation of the first clusters")
    counts = sorted({int(k) for b in betas for k in [*data["beta"][b]["lifetimes"], *data["beta"][b]["censored"]]})
    cmap = {k: f"C{i % 10}" for i, k in enumerate(counts)}
    for k in counts:
        xs, ys, xc, yc = [], [], [], []
        for b in betas:
            done = data["beta"][b]["lifetimes"].get(str(k), [])
            alive = data["beta"][b]["censored"].get(str(k), [])
            xs += [float(b)] * len(done)
            ys += done
            xc += [float(b)] * len(alive)
            yc += alive
        ax_l.scatter(xs, ys, color=cmap[k], alpha=0.6, s=16, label=f"k = {k} clusters")
        if xc:
            ax_l.scatter(xc, yc, facecolors="none", edgecolors=cmap[k], marker="^", s=30)
    fit = data["fit"]
    if math.isfinite(fit["slope"]):
        grid = np.linspace(float(betas[0]), float(betas[-1]), 50)
        ax_l.plot(grid, np.exp(fit["intercept"] + fit["slope"] * grid), "k--",
                  label=f"two-cluster median ∝ e^({fit['slope']:.2f} β)")
    ax_l.set_yscale("log")
    ax_l.set_xlabel("β")
    ax_l.set_ylabel("plateau lifetime")
    ax_l.set_title("metastable plateaus (open ▲: still alive at t_max)")
    ax_l.legend(fontsize=8)
    fig.suptitle(title or f"Metastability time scales, n = {data['n']}, d = {data['d']}, δ = {data['delta']:g}")
    return fig
