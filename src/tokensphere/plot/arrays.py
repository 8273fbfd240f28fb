"""Small array helpers shared by the figure, animation and viewer modules."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..validate import validate_int

__all__ = ["as_numpy", "cell_edges", "frame_indices", "held_frames", "stopped_text", "token_paths"]


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


def cell_edges(centers: Any) -> np.ndarray:
    """Cell edges around sorted centres, for ``pcolormesh(..., shading="flat")``: midpoints between centres, the
    end cells mirrored. A single centre c gets the cell [c/2, 3c/2] (c ≠ 0) or [−0.5, 0.5] (c = 0), so a
    one-row or one-column grid is drawn with a width of its own scale. Returns len(centers) + 1 floats."""
    c = as_numpy(centers).reshape(-1)
    if c.size == 0:
        raise ValueError("centers must hold at least one value")
    if c.size == 1:
        half = 0.5 * abs(c[0]) if c[0] != 0 else 0.5
        return np.array([c[0] - half, c[0] + half])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def held_frames(positions: Any, times: Any, event_time: Any = None) -> np.ndarray:
    """The saved-time index drawn for each (saved time, system): (T, B) int.

    A system stopped by a terminal event has NaN positions from its event on (:class:`~tokensphere.Trajectory`);
    at a saved time k with non-finite positions and event_time[b] ≤ times[k] its last finite saved state (the
    largest index ≤ k with finite positions) is drawn instead. Everything else, including NaN not explained by
    an event, is drawn at its own index. positions: (T, B, n, d); times: (T,); event_time: (B,) (NaN: no event)
    or None.
    """
    t = as_numpy(times).reshape(-1)
    T, B = int(positions.shape[0]), int(positions.shape[1])
    idx = np.repeat(np.arange(T)[:, None], B, axis=1)
    if event_time is None:
        return idx
    ev = as_numpy(event_time).reshape(-1)
    if ev.shape[0] != B:
        raise ValueError(f"event_time must have one entry per system (B = {B}), got {ev.shape[0]}")
    for b in np.flatnonzero(np.isfinite(ev)):  # only the stopped systems are read
        finite = np.isfinite(as_numpy(positions[:, b]).reshape(T, -1)).all(axis=-1)
        last = -1
        for k in range(T):
            if finite[k]:
                last = k
            elif last >= 0 and t[k] >= ev[b]:
                idx[k, b] = last
    return idx


def stopped_text(event_time: float, drawn_time: float, sep: str = " ") -> str:
    """Title text of a system stopped by a terminal event: "stopped at t = 9.77 (drawn: last saved t = 9)",
    ``sep`` between the two parts (a newline in narrow panels)."""
    return f"stopped at t = {event_time:.2f}{sep}(drawn: last saved t = {drawn_time:g})"
