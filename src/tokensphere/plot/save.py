"""Writing a figure to disk, atomically."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from ..io import atomic_path

__all__ = ["save_figure"]


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = 130) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix, e.g. .png) atomically (:func:`tokensphere.io.atomic_path`),
    so an interrupted write never leaves a truncated image. Returns the path."""
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return p
