"""Figure 4: tokens on the circle (d = 2, SA) for β = 4 and β = 9, snapshots at t = 0, 18, 30 (SPEC §6), and,
beyond the paper, the distribution over seeds of the number of clusters at t = 18 and t = 30.

The paper shows one random start per β: **2 clusters at β = 4 and 3 at β = 9**, persisting from t = 18 to
t = 30 (metastability, SPEC §5.11). Since the counts depend on the start, :func:`cluster_count_distribution_figure`
shows their frequencies over many seeded starts. Counts are :func:`tokensphere.analysis.cluster_count`
(connected components of {⟨x_i, x_j⟩ > 1 − δ}), δ = 1e−3 (Figure 3) by default or the scale-aware
δ_β = :func:`~tokensphere.analysis.scale_aware_delta` (``delta=None``).

Drawing: the tokens at the snapshot time on the unit circle (coloured by index), the starting points faint, and
each token's path since t = 0 dashed. On the circle itself the paths would lie on top of one another, so by
default (``paths="radial"``) time is drawn as radius, as in :func:`tokensphere.plot.tokens_figure`: a path starts
on the inner ring r = 0.7 at t = 0 and reaches the circle at the panel's time; ``paths="circle"`` draws them
on the circle. The caller simulates (:func:`circle_runs` is a helper); this module only counts and draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..analysis import cluster_count, scale_aware_delta
from ..validate import check_int
from ..init import Uniform
from ..simulate import simulate
from ..trajectory import Trajectory
from .tokens import INNER, _draw_circle, _token_colors

__all__ = [
    "circle_runs",
    "circle_figure",
    "circle_counts",
    "cluster_count_distribution",
    "cluster_count_distribution_figure",
    "FIG4_BETAS",
    "FIG4_TIMES",
    "FIG4_N",
    "FIG4_DELTA",
]

FIG4_BETAS = (4.0, 9.0)
FIG4_TIMES = (0.0, 18.0, 30.0)  # the panels' titles (the caption's 2.5 is erratum 5)
FIG4_N = 32  # n is not stated; ≈ 30 tokens are visible and Figure 3 uses 32
FIG4_DELTA = 1e-3  # Figure 3's threshold
PATHS = ("radial", "circle")


def circle_runs(
    betas: Sequence[float] = FIG4_BETAS,
    starts: int = 1,
    *,
    n: int = FIG4_N,
    seed: int = 0,
    t_max: float = 30.0,
    save_at: int | Sequence[float] = 301,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    progress=None,
) -> Trajectory:
    """Simulate (SA) on the circle (d = 2) from ``starts`` seeded uniform starts for every β (adaptive dopri5).

    System i·starts + k has β = betas[i] and start k, drawn from the stream (seed, k): the same starts for
    every β. Returns the :class:`Trajectory` (positions (T, len(betas)·starts, n, 2)); seeds are in its metadata.
    """
    check_int("starts", starts, minimum=1)
    if not betas:
        raise ValueError("betas must list at least one value >= 0")
    spec = Uniform(batch=starts, n=n, d=2, seed=seed)
    x0 = spec.sample().repeat(len(betas), 1, 1)
    beta = torch.tensor([float(b) for b in betas], dtype=torch.float64).repeat_interleave(starts)
    meta = {"seed": seed, "init": {**spec.describe(), "shared_across_beta": True},
            "systems": "system i*starts + k: beta_i, start k from SeedSequence([seed, k])"}
    return simulate(x0, beta, solver="dopri5", rtol=rtol, atol=atol, t_max=t_max, save_at=save_at,
                    progress=progress, metadata=meta)


def _betas(traj: Trajectory) -> list[float]:
    return traj.model.beta_tensor().reshape(-1).expand(traj.shape[1]).tolist()


def _delta_for(beta: float, delta: float | None) -> float:
    return float(scale_aware_delta(beta, 2)) if delta is None else float(delta)


def _frame(traj: Trajectory, t: float) -> int:
    ts = traj.times.double()
    if not float(ts[0]) - 1e-9 <= t <= float(ts[-1]) + 1e-9:
        raise ValueError(f"snapshot time {t:g} is outside the saved times [{float(ts[0]):g}, {float(ts[-1]):g}]")
    return int(torch.argmin((ts - t).abs()))


def circle_counts(traj: Trajectory, systems: Sequence[int], times: Sequence[float],
                  delta: float | None = FIG4_DELTA) -> np.ndarray:
    """Cluster counts (:func:`~tokensphere.analysis.cluster_count`) of the given systems at the saved times
    nearest to ``times``: (len(systems), len(times)) int array. delta None: the scale-aware δ_β of each system."""
    betas = _betas(traj)
    out = np.zeros((len(systems), len(times)), dtype=np.int64)
    for r, b in enumerate(systems):
        dl = _delta_for(betas[b], delta)
        for c, t in enumerate(times):
            out[r, c] = int(cluster_count(traj.positions[_frame(traj, t), b], dl))
    return out


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

    Panel titles read "β = 4, t = 18.0: 2 clusters" with the count of :func:`circle_counts`. traj must hold
    positions with d = 2. Returns a Figure (Agg canvas). Raises ValueError for d ≠ 2, a system out of range,
    a snapshot outside the saved times, or an unknown ``paths``.
    """
    if traj.positions is None:
        raise ValueError("the trajectory holds no positions (simulated with store=False)")
    T, B, n, d = traj.shape
    if d != 2:
        raise ValueError(f"circle_figure draws tokens on the circle (d = 2), got d = {d}")
    if paths not in PATHS:
        raise ValueError(f"paths must be one of {', '.join(PATHS)}, got {paths!r}")
    betas = _betas(traj)
    if systems is None:
        systems = [betas.index(b) for b in dict.fromkeys(betas)]
    systems = list(systems)
    if not systems or any(not 0 <= s < B for s in systems):
        raise ValueError(f"systems must be indices in [0, {B - 1}], got {systems}")
    frames = [_frame(traj, t) for t in snapshot_times]
    counts = circle_counts(traj, systems, snapshot_times, delta)
    x = traj.positions.detach().cpu().double().numpy()
    ts = traj.times.detach().cpu().double().numpy()
    colors = _token_colors(n)
    rows, cols = len(systems), len(frames)
    fig = Figure(figsize=(panel_size * cols, panel_size * rows + (0.5 if title else 0.2)), layout="constrained")
    FigureCanvasAgg(fig)
    for r, b in enumerate(systems):
        for c, k in enumerate(frames):
            ax = fig.add_subplot(rows, cols, r * cols + c + 1)
            _draw_circle(ax)
            path = x[: k + 1, b]
            if k > 0:
                if paths == "radial":
                    frac = (ts[: k + 1] - ts[0]) / (ts[k] - ts[0])
                    path = path * (INNER + (1 - INNER) * frac)[:, None, None]
                for i in range(n):
                    ax.plot(path[:, i, 0], path[:, i, 1], color=colors[i], linewidth=0.7, alpha=0.7, linestyle="--")
            ax.scatter(x[0, b, :, 0], x[0, b, :, 1], color=colors, s=14, alpha=0.25, linewidths=0, zorder=2)
            ax.scatter(x[k, b, :, 0], x[k, b, :, 1], color=colors, s=26, edgecolors="black", linewidths=0.4, zorder=3)
            m = int(counts[r, c])
            ax.set_title(f"β = {betas[b]:g}, t = {ts[k]:.1f}: {m} cluster{'s' if m != 1 else ''}", fontsize=10)
    dtext = "δ = scale-aware δ_β" if delta is None else f"δ = {delta:g}"
    fig.suptitle(title or f"SA on the circle, n = {n}: tokens at time t (dashed: paths since t = 0; faint: start)\n"
                 f"clusters = connected components of {{⟨x_i, x_j⟩ > 1 − δ}}, {dtext}", fontsize=10)
    return fig


def cluster_count_distribution(
    traj: Trajectory, times: Sequence[float] = (18.0, 30.0), delta: float | None = FIG4_DELTA
) -> dict[float, dict[float, dict[int, int]]]:
    """Histogram over systems of the cluster count, per β and time: {β: {t: {count: number of systems}}}.
    Times are matched to the nearest saved time."""
    betas = _betas(traj)
    out: dict[float, dict[float, dict[int, int]]] = {}
    for beta in dict.fromkeys(betas):
        idx = [s for s, v in enumerate(betas) if v == beta]
        dl = _delta_for(beta, delta)
        per_t: dict[float, dict[int, int]] = {}
        for t in times:
            c = cluster_count(traj.positions[_frame(traj, t), idx], dl)
            vals, freq = torch.unique(c, return_counts=True)
            per_t[float(t)] = {int(v): int(f) for v, f in zip(vals.tolist(), freq.tolist())}
        out[float(beta)] = per_t
    return out


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
    bar per time. Returns a Figure (Agg canvas)."""
    if traj.positions is None:
        raise ValueError("the trajectory holds no positions (simulated with store=False)")
    dist = cluster_count_distribution(traj, times, delta)
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
    fig.suptitle(title or f"Cluster counts over seeds, SA on the circle, n = {n}, {dtext}", fontsize=10)
    return fig


def distribution_json(dist: dict[float, dict[float, dict[int, int]]]) -> dict[str, Any]:
    """:func:`cluster_count_distribution` with string keys (for JSON)."""
    return {f"{b:g}": {f"{t:g}": {str(k): v for k, v in h.items()} for t, h in per.items()} for b, per in dist.items()}
