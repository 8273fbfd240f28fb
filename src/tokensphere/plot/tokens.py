"""Token positions at a few times: on the circle (d = 2) or on S² in 3-D (d = 3), trajectories as thin lines.

One row per system (e.g. one per β), one column per snapshot time. Each panel shows the tokens at that time
(coloured by token index, so a token can be followed across panels), their paths since t = 0 as thin lines,
and the starting points faintly; the sphere is a faint wireframe. On the circle the paths would lie on top of
each other, so there time is drawn as radius: a path starts on the inner ring (r = 0.7, t = 0) and reaches the
circle at the panel's time. A system stopped by a terminal event (NaN positions after it) is drawn, at later
panel times, in its last finite saved state, titled "stopped at t = …" (given ``event_time``). Display only:
nothing is computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .arrays import as_numpy, held_frames, stopped_text, token_paths

__all__ = ["tokens_figure"]

_SPHERE_GREY = "0.55"
INNER = 0.7  # d = 2: radius at which paths start (t = 0); they reach the unit circle at the panel's time


def tokens_figure(
    positions: Any,
    times: Any,
    *,
    systems: Sequence[int] = (0,),
    snapshot_times: Sequence[float] | None = None,
    row_labels: Sequence[str] | None = None,
    trails: bool = True,
    event_time: Any = None,
    title: str | None = None,
    panel_size: float = 2.8,
) -> Figure:
    """Tokens of the given systems at a few times, one panel per (system, time).

    Parameters
    ----------
    positions : array or tensor of shape (T, B, n, d), d = 2 or 3
        Saved positions (unit vectors), e.g. ``Trajectory.positions``.
    times : array of shape (T,)
        Saved times, increasing.
    systems : indices into B, one row each.
    snapshot_times : times for the columns; each panel uses the nearest saved time. Default: 4 evenly spaced.
    row_labels : one label per row (e.g. "β = 9"), prefixed to the panel titles.
    trails : draw each token's path from t = 0 to the panel's time.
    event_time : array of shape (B,), optional
        Times of the terminal events (NaN: none), e.g. ``Trajectory.event_time``. A system whose positions at a
        panel's time are NaN because it stopped (event_time ≤ that time) is drawn in its last finite saved
        state, its title saying "stopped at t = …".

    Returns a :class:`matplotlib.figure.Figure` (Agg canvas). Raises ValueError for d ∉ {2, 3}, a system
    index out of range, a snapshot time outside [times[0], times[-1]], or an event_time not of length B.
    """
    x, ts = token_paths(positions, times, "tokens_figure")
    T, B, n, d = x.shape
    systems = list(systems)
    if not systems or any(not 0 <= b < B for b in systems):
        raise ValueError(f"systems must be indices in [0, {B - 1}], got {systems}")
    if snapshot_times is None:
        snapshot_times = np.linspace(ts[0], ts[-1], 4).tolist()
    if any(not ts[0] - 1e-9 <= t <= ts[-1] + 1e-9 for t in snapshot_times):
        raise ValueError(f"snapshot_times must lie in [{ts[0]:g}, {ts[-1]:g}], got {list(snapshot_times)}")
    if row_labels is not None and len(row_labels) != len(systems):
        raise ValueError(f"row_labels must have one label per system ({len(systems)}), got {len(row_labels)}")
    frames = [int(np.argmin(np.abs(ts - t))) for t in snapshot_times]
    drawn = held_frames(x, ts, event_time)
    events = None if event_time is None else as_numpy(event_time).reshape(-1)

    rows, cols = len(systems), len(frames)
    fig = Figure(figsize=(panel_size * cols, panel_size * rows + (0.4 if title else 0.0)), layout="constrained")
    FigureCanvasAgg(fig)
    colors = _token_colors(n)
    for r, b in enumerate(systems):
        for c, k_panel in enumerate(frames):
            ax = fig.add_subplot(rows, cols, r * cols + c + 1, **({"projection": "3d"} if d == 3 else {}))
            k = int(drawn[k_panel, b])  # the last finite state of a system stopped before this time
            path = x[: k + 1, b]  # (k+1, n, d)
            (_draw_sphere if d == 3 else _draw_circle)(ax)
            if trails and k > 0:
                if d == 2:  # paths on the circle would hide each other: draw time as radius, 0.7 (t = 0) → 1 (now)
                    frac = (ts[: k + 1] - ts[0]) / (ts[k] - ts[0])
                    path = path * (INNER + (1 - INNER) * frac)[:, None, None]
                for i in range(n):
                    ax.plot(*path[:, i].T, color=colors[i], linewidth=0.6, alpha=0.55)
                ax.scatter(*path[0].T, color=colors, s=6, alpha=0.25, linewidths=0, **_depth(d))
            ax.scatter(*path[-1].T, color=colors, s=22, edgecolors="black", linewidths=0.4, zorder=3, **_depth(d))
            label = f"{row_labels[r]}, " if row_labels is not None else f"system {b}, "
            stop = "\n" + stopped_text(events[b], ts[k], sep="\n") if k != k_panel else ""
            ax.set_title(f"{label}t = {ts[k_panel]:g}{stop}", fontsize=10)
    if title:
        fig.suptitle(title)
    return fig


def _token_colors(n: int) -> np.ndarray:
    from matplotlib import colormaps

    return colormaps["viridis"](np.linspace(0.0, 1.0, max(n, 1)))[:n]


def _depth(d: int) -> dict:
    return {"depthshade": False} if d == 3 else {}


def _draw_circle(ax, *, inner: bool = True, lim: float = 1.15) -> None:
    """The unit circle (and, with ``inner``, the dotted ring r = INNER where radial paths start), axes off."""
    a = np.linspace(0.0, 2 * np.pi, 361)
    ax.plot(np.cos(a), np.sin(a), color=_SPHERE_GREY, linewidth=0.8, alpha=0.6)
    if inner:
        ax.plot(INNER * np.cos(a), INNER * np.sin(a), color=_SPHERE_GREY, linewidth=0.5, alpha=0.4, linestyle=":")
    ax.set_aspect("equal")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_axis_off()


def _draw_sphere(ax) -> None:
    u, v = np.meshgrid(np.linspace(0.0, 2 * np.pi, 25), np.linspace(0.0, np.pi, 13))
    ax.plot_wireframe(
        np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color=_SPHERE_GREY, linewidth=0.3, alpha=0.35
    )
    ax.set_box_aspect((1, 1, 1))
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_zlim(-1, 1)
    ax.view_init(elev=20, azim=30)
    ax.set_axis_off()
