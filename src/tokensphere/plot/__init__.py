"""Figures (one module per figure family). matplotlib only, Agg canvas, no LaTeX, no pyplot global state.

* :func:`tokens_figure` — token positions on the circle (d = 2) or on S² (d = 3) at a few times, with trajectories.
* :func:`series_figure` — quantities over time (energy, cluster counts), one line per system coloured by β.
* :func:`save_figure` — write a figure atomically (temporary sibling renamed into place).
* :func:`phase_figure`, :func:`phase_difference_figure` — Figures 3 and 5 from a phase-diagram dataset.
* :func:`regimes_figure` — Figure 2 from :func:`tokensphere.theory.regimes`.
* :func:`circle_figure`, :func:`cluster_count_distribution_figure` — Figure 4 and the counts over seeds.
* :func:`g_figure` — Figure 6 (g and ±τ*_β).
* :func:`animate` — GIF/MP4 movies on the circle or S² through one animation writer.

The functions take plain arrays (numpy or torch); they compute nothing about the dynamics.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from matplotlib.figure import Figure

from .animate import animate, movie_run
from .circle import circle_figure, circle_runs, cluster_count_distribution, cluster_count_distribution_figure
from .gfunction import g_figure
from .phase import phase_difference_figure, phase_figure
from .regimes import regimes_figure
from .series import Panel, series_figure
from .tokens import tokens_figure

__all__ = [
    "Panel", "animate", "circle_figure", "circle_runs", "cluster_count_distribution",
    "cluster_count_distribution_figure", "g_figure", "movie_run", "phase_difference_figure", "phase_figure",
    "regimes_figure", "save_figure", "series_figure", "tokens_figure",
]


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = 130) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix, e.g. .png) through a temporary file, so an
    interrupted write never leaves a truncated image. Returns the path."""
    p = Path(path)
    tmp = p.with_name(f".{p.stem}.tmp-{uuid.uuid4().hex[:8]}{p.suffix}")
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p
