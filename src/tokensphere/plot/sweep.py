"""A parameter sweep at a glance: every summarised statistic (its mean over seeds, with ± its standard error)
against time, one line per grid point. The values come from a sweep store (:mod:`tokensphere.sweep`)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["sweep_figure"]

MAX_LINES = 12  # beyond this many grid points a panel shows an evenly spaced subset (named in its title)


def sweep_figure(ds: Any, *, title: str | None = None) -> Figure:
    """One panel per ``<statistic>_mean`` variable of a sweep dataset ``ds`` (dims: grid axes…, t), its mean
    over seeds against t with a ± standard-error band when ``<statistic>_se`` exists; the y-axis names the
    statistic. Returns a Figure."""
    means = [v for v in ds.data_vars if v.endswith("_mean")]
    if not means:
        raise ValueError("the sweep store holds no <statistic>_mean variable to draw (summaries must include 'mean')")
    fig = Figure(figsize=(4.2 * len(means), 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    t = np.asarray(ds["t"].values, dtype=float)
    for k, name in enumerate(means):
        ax = fig.add_subplot(1, len(means), k + 1)
        var = ds[name]
        axes = [d for d in var.dims if d != "t"]
        points = list(itertools.product(*(range(ds.sizes[a]) for a in axes)))
        shown = points if len(points) <= MAX_LINES else [points[i] for i in
                                                          np.linspace(0, len(points) - 1, MAX_LINES).astype(int)]
        se = ds[name[:-5] + "_se"] if name[:-5] + "_se" in ds else None
        for p in shown:
            sel = dict(zip(axes, p))
            y = np.asarray(var.isel(sel).values, dtype=float)
            label = ", ".join(f"{a} = {_value(ds[a].values[i])}" for a, i in sel.items())
            (line,) = ax.plot(t, y, lw=1.2, label=label)
            if se is not None:
                e = np.asarray(se.isel(sel).values, dtype=float)
                ax.fill_between(t, y - e, y + e, color=line.get_color(), alpha=0.2, lw=0)
        ax.set_xlabel("t")
        ax.set_ylabel(name[:-5] + (" (mean over seeds ± s.e.)" if se is not None else " (mean over seeds)"))
        ax.set_title(name[:-5] + ("" if len(shown) == len(points) else f" ({len(shown)} of {len(points)} points)"),
                     fontsize=10)
        if k == 0:
            ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    return fig


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)
