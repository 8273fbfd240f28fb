"""Optimal configurations (the repulsive case V = −I): a configuration on S² with its nearest-neighbour edges, and
the arrival of the repulsive flow (field norm and energy gap over time). Display only: nothing is computed here
beyond picking which pairs to draw as edges.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .arrays import as_numpy

__all__ = ["configuration_figure", "flow_arrival_figure"]

EDGE_TOL = 1e-4  # pairs within this of the largest inner product ≠ 1 are drawn as edges


def configuration_figure(x: Any, *, title: str = "", size: float = 4.2) -> Figure:
    """Points x (n, 3) on S² with edges between nearest neighbours (the pairs at the largest inner product below
    1, within EDGE_TOL), on a faint wireframe sphere. Raises ValueError unless x has shape (n, 3)."""
    p = as_numpy(x)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"x must have shape (n, 3) for a picture on S², got {p.shape}")
    fig = Figure(figsize=(size, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(projection="3d")
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 25), np.linspace(0, np.pi, 13))
    ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.8", linewidth=0.4)
    gram = p @ p.T
    off = gram[~np.eye(len(p), dtype=bool)]
    below = off[off < 1 - EDGE_TOL]
    if below.size:
        top = below.max()
        i, j = np.nonzero(np.triu((gram > top - EDGE_TOL) & (gram < 1 - EDGE_TOL), 1))
        for a, b in zip(i, j):
            ax.plot(*np.stack([p[a], p[b]]).T, color="C0", linewidth=1.0)
    ax.scatter(p[:, 0], p[:, 1], p[:, 2], color="C3", s=28, depthshade=True)
    ax.set_box_aspect((1, 1, 1))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def flow_arrival_figure(times: Any, field_norm: Any, log_gap: Any, arrival_time: Any, tol: float, *,
                        title: str = "") -> Figure:
    """Two panels over time for B runs of the repulsive flow: max_i |ẋ_i| (log scale, the arrival tolerance as a
    dashed line, arrival times as dots) and log E_β − log E_β(optimum) (log scale).

    times: (T,); field_norm, log_gap: (T, B) (NaN after arrival); arrival_time: (B,) (NaN: not arrived)."""
    t = as_numpy(times)
    fn, gap, arr = as_numpy(field_norm), as_numpy(log_gap), as_numpy(arrival_time)
    fig = Figure(figsize=(9.0, 3.4))
    FigureCanvasAgg(fig)
    a1, a2 = fig.subplots(1, 2)
    for b in range(fn.shape[1]):
        a1.semilogy(t, fn[:, b], color=f"C{b}", linewidth=1.0)
        if np.isfinite(arr[b]):
            a1.semilogy([arr[b]], [tol], "o", color=f"C{b}", markersize=4)
        g = gap[:, b]
        ok = np.isfinite(g) & (g > 0)
        a2.semilogy(t[ok], g[ok], color=f"C{b}", linewidth=1.0)
    a1.axhline(tol, color="0.3", linestyle="--", linewidth=0.8)
    a1.set_xlabel("t")
    a1.set_ylabel("max_i |dx_i/dt|")
    a1.set_title("field norm (dots: arrival)", fontsize=9)
    a2.set_xlabel("t")
    a2.set_ylabel("log E_β − log E_β(optimum)")
    a2.set_title("energy gap to the known optimum", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
