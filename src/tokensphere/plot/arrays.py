"""Small array helpers shared by the figure, animation and viewer modules."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..validate import check_int

__all__ = ["as_numpy", "frame_indices"]


def as_numpy(a: Any) -> np.ndarray:
    """A float64 NumPy array from a tensor (detached, on the CPU) or any array-like."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def frame_indices(T: int, every: int = 1, max_frames: int | None = None) -> np.ndarray:
    """Saved-time indices drawn as frames: 0, every, 2·every, … (< T), then at most ``max_frames`` of them,
    evenly spaced and keeping the first and the last. Returns a sorted int array."""
    check_int("T", T, minimum=1)
    check_int("every", every, minimum=1)
    idx = np.arange(0, T, every)
    if max_frames is not None:
        check_int("max_frames", max_frames, minimum=1)
        if len(idx) > max_frames:
            idx = idx[np.unique(np.round(np.linspace(0, len(idx) - 1, max_frames)).astype(int))]
    return idx
