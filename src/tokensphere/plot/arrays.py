"""Small array helpers shared by the figure, animation and viewer modules."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..validate import validate_int

__all__ = ["as_numpy", "frame_indices", "token_paths"]


def as_numpy(a: Any) -> np.ndarray:
    """A float64 NumPy array from a tensor (detached, on the CPU) or any array-like."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def frame_indices(T: int, every: int = 1, max_frames: int | None = None) -> np.ndarray:
    """Saved-time indices drawn as frames: 0, every, 2·every, … (< T), then at most ``max_frames`` of them,
    evenly spaced and keeping the first and the last. Returns a sorted int array."""
    validate_int("T", T, minimum=1)
    validate_int("every", every, minimum=1)
    idx = np.arange(0, T, every)
    if max_frames is not None:
        validate_int("max_frames", max_frames, minimum=1)
        if len(idx) > max_frames:
            idx = idx[np.unique(np.round(np.linspace(0, len(idx) - 1, max_frames)).astype(int))]
    return idx


def token_paths(positions: Any, times: Any, who: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions and times to draw, as float64 arrays of shapes (T, B, n, d) and (T,).

    positions: (T, B, n, d) or (T, n, d) (one system), d = 2 (circle) or 3 (sphere); times: (T,). who: the
    drawing function, named in the errors. Raises ValueError for another shape or d, or a times length ≠ T.
    """
    x = as_numpy(positions)
    t = as_numpy(times).reshape(-1)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"positions must have shape (T, B, n, d) or (T, n, d), got {x.shape}")
    if x.shape[-1] not in (2, 3):
        raise ValueError(f"{who} draws d = 2 (circle) or d = 3 (sphere) tokens, got d = {x.shape[-1]}")
    if t.shape[0] != x.shape[0]:
        raise ValueError(f"times must have one entry per saved time (T = {x.shape[0]}), got {t.shape[0]}")
    return x, t
