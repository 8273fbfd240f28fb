"""Figure 4: tokens on the circle (d = 2, SA) for β = 4 and β = 9, snapshots at t = 0, 18, 30 (the paper's
Figure 4), and, beyond the paper, the distribution over seeds of the number of clusters at t = 18 and t = 30.

The runs and the counts come from :mod:`tokensphere.experiments.circle` (:func:`circle_runs`,
:func:`circle_counts`, :func:`cluster_count_distribution`); this module only draws them.

Drawing: the tokens at the snapshot time on the unit circle (coloured by index), the starting points faint, and
each token's path since t = 0 dashed. On the circle itself the paths would lie on top of one another, so by
default (``paths="radial"``) time is drawn as radius, as in :func:`tokensphere.plot.tokens_figure`: a path starts
on the inner ring r = 0.7 at t = 0 and reaches the circle at the panel's time; ``paths="circle"`` draws them
on the circle.

A system stopped by a terminal event (NaN positions after it, :class:`~tokensphere.Trajectory`) is drawn, at
later panel times, in its last finite saved state, with "stopped at t = …" in the title and that state's count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..experiments.circle import FIG4_DELTA, FIG4_TIMES, circle_counts, cluster_count_distribution, snapshot_index
from ..experiments.describe import describe_model
from ..experiments.layout import system_betas, systems_by_beta
from ..trajectory import Trajectory
from .arrays import held_frames, stopped_text
from .tokens import INNER, _draw_circle, _token_colors

__all__ = ["circle_figure", "cluster_count_distribution_figure"]

PATHS = ("radial", "circle")


def circle_figure(
    traj: Trajectory,
    *,
    systems: Sequence[int] | None = None,
    snapshot_times: Sequence[float] = FIG4_TIMES,
    delta: float | None = FIG4_DELTA,
    paths: str = "radial",
    title: str | None = None,
    panel_size: float = 3.0,
) -> Figure:
    """Figure 4: one row per system (default: the first system of each β), one column per snapshot time.

    Panel titles read "β = 4, t = 18.0: 2 clusters" with the count of :func:`circle_counts`; a system stopped by
    a terminal event before the panel's time is drawn in its last finite saved state, titled "stopped at t = …"
    with the count of that state. traj must hold positions with d = 2. Returns a Figure (Agg canvas). Raises
    ValueError for d ≠ 2, a system out of range, a snapshot outside the saved times, or an unknown ``paths``.
    """
    if traj.positions is None:
        raise ValueError("the trajectory holds no positions (simulated with store=False)")
    T, B, n, d = traj.shape
    if d != 2:
        raise ValueError(f"circle_figure draws tokens on the circle (d = 2), got d = {d}")
    if paths not in PATHS:
        raise ValueError(f"paths must be one of {', '.join(PATHS)}, got {paths!r}")
    betas = system_betas(traj.model, B)
    if systems is None:  # the first system of each β
        systems = [idx[0] for idx in systems_by_beta(betas).values()]
    systems = list(systems)
    if not systems or any(not 0 <= s < B for s in systems):
        raise ValueError(f"systems must be indices in [0, {B - 1}], got {systems}")
    frames = [snapshot_index(traj, t) for t in snapshot_times]
    counts = circle_counts(traj, systems, snapshot_times, delta)
    x = traj.positions.detach().cpu().double().numpy()
    ts = traj.times.detach().cpu().double().numpy()
    drawn = held_frames(x, ts, traj.event_time)
    events = traj.event_time.detach().cpu().double().numpy()
    colors = _token_colors(n)
    rows, cols = len(systems), len(frames)
    fig = Figure(figsize=(panel_size * cols, panel_size * rows + (0.5 if title else 0.2)), layout="constrained")
    FigureCanvasAgg(fig)
    for r, b in enumerate(systems):
        for c, k_panel in enumerate(frames):
            ax = fig.add_subplot(rows, cols, r * cols + c + 1)
            _draw_circle(ax)
            k = int(drawn[k_panel, b])  # the last finite state of a system stopped before this time
            m = int(counts[r, c]) if k == k_panel else int(circle_counts(traj, [b], [ts[k]], delta)[0, 0])
            path = x[: k + 1, b]
            if k > 0:
                if paths == "radial":
                    frac = (ts[: k + 1] - ts[0]) / (ts[k] - ts[0])
                    path = path * (INNER + (1 - INNER) * frac)[:, None, None]
                for i in range(n):
                    ax.plot(path[:, i, 0], path[:, i, 1], color=colors[i], linewidth=0.7, alpha=0.7, linestyle="--")
            ax.scatter(x[0, b, :, 0], x[0, b, :, 1], color=colors, s=14, alpha=0.25, linewidths=0, zorder=2)
            ax.scatter(x[k, b, :, 0], x[k, b, :, 1], color=colors, s=26, edgecolors="black", linewidths=0.4, zorder=3)
            head = f"β = {betas[b]:g}, t = {ts[k_panel]:.1f}"
            if k != k_panel:
                head += ", " + stopped_text(events[b], ts[k], sep="\n")
            ax.set_title(f"{head}: {m} cluster{'s' if m != 1 else ''}", fontsize=10)
    dtext = "δ = scale-aware δ_β" if delta is None else f"δ = {delta:g}"
    fig.suptitle(title or f"{describe_model(traj.model)}, on the circle, n = {n}: tokens at time t "
                 "(dashed: paths since t = 0; faint: start)\n"
                 f"clusters = connected components of {{⟨x_i, x_j⟩ > 1 − δ}}, {dtext}", fontsize=10)
    return fig


def cluster_count_distribution_figure(
    traj: Trajectory,
    *,
    times: Sequence[float] = (18.0, 30.0),
    delta: float | None = FIG4_DELTA,
    title: str | None = None,
    panel_width: float = 4.2,
    panel_height: float = 3.2,
) -> Figure:
    """Bar charts of the cluster-count frequencies over seeds, one panel per β, one bar group per count and one
    bar per time. A system stopped by a terminal event before a time is counted in its last finite saved state
    (the title says how many). Returns a Figure (Agg canvas)."""
    if traj.positions is None:
        raise ValueError("the trajectory holds no positions (simulated with store=False)")
    dist = cluster_count_distribution(traj, times, delta)
    stopped = _count_stopped_at_last_state(traj, dist, times, delta)
    betas = list(dist)
    fig = Figure(figsize=(panel_width * len(betas), panel_height + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    width = 0.8 / max(len(times), 1)
    palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    for p, beta in enumerate(betas):
        ax = fig.add_subplot(1, len(betas), p + 1)
        all_counts = sorted({c for per in dist[beta].values() for c in per})
        total = sum(dist[beta][float(times[0])].values())
        lo, hi = min(all_counts), max(all_counts)
        ks = np.arange(lo, hi + 1)
        for j, t in enumerate(times):
            h = dist[beta][float(t)]
            freq = np.array([h.get(int(k), 0) for k in ks], dtype=float) / total
            ax.bar(ks + (j - (len(times) - 1) / 2) * width, freq, width=width, color=palette[j % len(palette)],
                   label=f"t = {t:g}", gid=f"bars:{beta:g}:{t:g}")
        ax.set_xticks(ks)
        ax.set_xlabel("number of clusters")
        ax.set_ylabel("fraction of seeds")
        ax.set_ylim(0, 1)
        ax.set_title(f"β = {beta:g}  ({total} seeded starts)", fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    n = traj.shape[2]
    dtext = "scale-aware δ_β" if delta is None else f"δ = {delta:g}"
    note = (f"\n{stopped} system{'s' if stopped != 1 else ''} stopped by an event before t = {max(times):g}: "
            "counted in the last saved state") if stopped else ""
    fig.suptitle(title or f"Cluster counts over seeds, {describe_model(traj.model)}, on the circle, n = {n}, "
                 f"{dtext}{note}", fontsize=10)
    return fig


def _count_stopped_at_last_state(traj: Trajectory, dist: dict, times: Sequence[float], delta: float | None) -> int:
    """Move, in ``dist`` (of :func:`cluster_count_distribution`), each system stopped by an event before a time
    from the count of its NaN positions to the count of its last finite saved state. Returns how many systems
    were moved at some time."""
    ts = traj.times.detach().cpu().double().numpy()
    drawn = held_frames(traj.positions, ts, traj.event_time)
    betas = system_betas(traj.model, traj.shape[1])
    moved = set()
    for t in times:
        k = snapshot_index(traj, t)
        for b in np.flatnonzero(drawn[k] != k):
            h = dist[betas[b]][float(t)]
            was = int(circle_counts(traj, [b], [t], delta)[0, 0])
            now = int(circle_counts(traj, [b], [ts[drawn[k, b]]], delta)[0, 0])
            h[was] -= 1
            if h[was] == 0:
                del h[was]
            h[now] = h.get(now, 0) + 1
            moved.add(int(b))
    return len(moved)
