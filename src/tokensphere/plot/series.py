"""Quantities over time per system: one panel per quantity, one line per system, coloured by its group (β).

Typical panels: the normalised energy Ē(t) (non-decreasing for SA/USA with V = I, (3.6) and Lemma 3.7) and the
number of clusters k(t). The values are computed by the caller (``tokensphere.energy``,
``tokensphere.analysis``); this module only draws them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

from ..experiments.layout import systems_by_beta
from .arrays import as_numpy

__all__ = ["ENERGY_LABEL", "Panel", "series_figure"]

ENERGY_LABEL = r"$\bar E = 2\beta\, e^{-\beta} E_\beta$"  # the normalised energy's axis label


@dataclass(frozen=True)
class Panel:
    """One quantity to draw. values: (T, B) (e.g. energy per saved time and system); ylabel, title: text;
    logy: logarithmic y axis; steps: draw as a staircase (integer-valued quantities such as cluster counts)."""

    values: Any
    ylabel: str
    title: str
    logy: bool = False
    steps: bool = False


def series_figure(
    times: Any,
    panels: Sequence[Panel],
    groups: Sequence[float],
    *,
    group_name: str = "β",
    xlabel: str = "t",
    title: str | None = None,
    panel_width: float = 5.0,
    panel_height: float = 3.6,
) -> Figure:
    """Panels side by side; in each, one line per system coloured by ``groups[b]`` with one legend entry per group.

    times: (T,). panels: quantities with values of shape (T, B). groups: (B,) group value per system (e.g. β).
    Returns a :class:`matplotlib.figure.Figure` (Agg canvas). Raises ValueError on mismatched shapes.
    """
    ts = as_numpy(times).reshape(-1)
    groups = [float(g) for g in groups]
    if not panels:
        raise ValueError("panels must hold at least one Panel")
    members = systems_by_beta(groups)  # {group value: systems}, in order of first appearance
    order = list(members)
    palette = _palette(len(order))
    fig = Figure(figsize=(panel_width * len(panels), panel_height + (0.3 if title else 0.0)), layout="constrained")
    FigureCanvasAgg(fig)
    for p, panel in enumerate(panels):
        v = as_numpy(panel.values)
        if v.ndim != 2 or v.shape != (ts.size, len(groups)):
            raise ValueError(
                f"panel {panel.title!r}: values must have shape (T, B) = ({ts.size}, {len(groups)}), got {v.shape}"
            )
        ax = fig.add_subplot(1, len(panels), p + 1)
        seen: set[float] = set()
        for b, g in enumerate(groups):
            count = len(members[g])
            label = None if g in seen else f"{group_name} = {g:g}" + (f" ({count} systems)" if count > 1 else "")
            seen.add(g)
            ax.plot(
                ts, v[:, b], color=palette[order.index(g)], linewidth=1.2, alpha=0.8, label=label,
                drawstyle="steps-post" if panel.steps else "default",
            )
        if panel.logy:
            ax.set_yscale("log")
            if panel.steps:
                _integer_log_ticks(ax, v)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(panel.ylabel)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlim(ts[0], ts[-1])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    return fig


def _palette(k: int) -> list:
    from matplotlib import colormaps

    if k <= 10:
        return [colormaps["tab10"](i) for i in range(k)]
    return list(colormaps["viridis"](np.linspace(0.0, 0.9, k)))


def _integer_log_ticks(ax, v: np.ndarray) -> None:
    """Ticks 1, 2, 4, 8, ... on a log axis of counts, labelled as plain integers."""
    top = max(1.0, float(np.nanmax(v)))
    ticks = [2.0**j for j in range(int(np.ceil(np.log2(top))) + 1)]
    ax.set_ylim(0.8, top * 1.25)
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(ScalarFormatter())
