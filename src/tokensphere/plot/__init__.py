"""Figures (one module per figure family). matplotlib only, Agg canvas, no LaTeX, no pyplot global state.

* :func:`tokens_figure` — token positions on the circle (d = 2) or on S² (d = 3) at a few times, with trajectories.
* :func:`series_figure` — quantities over time (energy, cluster counts), one line per system coloured by β.
* :func:`save_figure` — write a figure atomically (temporary sibling renamed into place).

The functions take plain arrays (numpy or torch); they compute nothing about the dynamics.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from matplotlib.figure import Figure

from .series import Panel, series_figure
from .tokens import tokens_figure

__all__ = ["Panel", "save_figure", "series_figure", "tokens_figure"]


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
