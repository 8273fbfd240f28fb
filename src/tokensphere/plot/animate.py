"""Animations of the dynamics on the circle (d = 2) and on S² (d = 3), as in the authors' README movies.

:func:`animate` draws one system of any :class:`~tokensphere.Trajectory` with d ∈ {2, 3}: a 3-D scatter on the
sphere (or the circle) with trajectory tails, the camera azimuth sweeping as in the authors' ``sphere.py``
movie (:data:`tokensphere.experiments.movie.MOVIE`, simulated by :func:`~tokensphere.experiments.movie_run`).

Rendering goes through one matplotlib animation writer (never one file per frame): GIF with ``PillowWriter``,
MP4 (H.264) with ``FFMpegWriter`` using the ffmpeg binary shipped in the ``imageio-ffmpeg`` wheel, chosen by
the file suffix. The file is written atomically (:func:`tokensphere.io.atomic_path`). Frames can be
subsampled (``every``, ``max_frames``); ``substeps`` > 1 inserts cubic-spline interpolated frames between saved
times, renormalised onto the sphere — for display only, the dynamics are not re-integrated. A system stopped
by a terminal event (NaN positions after it) is held in its last finite saved state from then on, the title
saying "stopped at t = …". No LaTeX.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..experiments.describe import describe_model
from ..experiments.layout import system_betas
from ..experiments.movie import MOVIE
from ..io import atomic_path
from ..trajectory import Trajectory
from ..validate import validate_choice, validate_int, validate_real
from .arrays import frame_indices, held_frames, stopped_text
from .tokens import _draw_circle, _draw_sphere, _token_colors

__all__ = ["animate", "ffmpeg_path", "WRITERS"]

WRITERS = {".gif": "pillow", ".mp4": "ffmpeg"}


def ffmpeg_path() -> str:
    """The ffmpeg executable of the imageio-ffmpeg wheel. Raises ValueError when it is not available."""
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - a declared dependency
        raise ValueError("MP4 output needs the imageio-ffmpeg package; write a .gif instead") from None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:  # pragma: no cover - the wheel ships a binary
        raise ValueError(f"no ffmpeg binary available for MP4 output ({exc}); write a .gif instead") from None


def animate(
    traj: Trajectory,
    path: str | os.PathLike,
    *,
    fps: float = 15.0,
    system: int = 0,
    tail: int = 12,
    every: int = 1,
    max_frames: int | None = None,
    substeps: int = 1,
    azimuth: tuple[float, float] = MOVIE["azimuth"],
    elevation: float = MOVIE["elevation"],
    size: float = 5.0,
    dpi: int = 100,
    title: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write an animation of one system of ``traj`` to ``path`` (.gif or .mp4) and return the path.

    traj: positions (T, B, n, d), d = 2 (circle) or 3 (sphere). system: index into B. tail: number of previous
    drawn frames shown as a trajectory tail (0: none). every, max_frames: frame subsampling (see
    :func:`frame_indices`); with K drawn frames the file has (K − 1)·substeps + 1 frames. azimuth: (centre,
    amplitude) of the camera sweep in degrees (d = 3): azim = c + a·sin(2πk/K)
    over the K frames. A system stopped by a terminal event is held in its last finite saved state after the
    event, its title saying "stopped at t = …". progress(done, total) is called after each frame.
    Raises ValueError for an unsupported suffix, d, system or setting.
    """
    p = Path(path)
    validate_choice("suffix", p.suffix.lower(), tuple(WRITERS))
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ValueError(f"path is not writable: {parent} is not a writable directory")
    if traj.positions is None:
        raise ValueError("the trajectory holds no positions (simulated with store=False)")
    T, B, n, d = traj.shape
    if d not in (2, 3):
        raise ValueError(f"animate draws d = 2 (circle) or d = 3 (sphere), got d = {d}")
    if not 0 <= system < B:
        raise ValueError(f"system must be an index in [0, {B - 1}], got {system}")
    validate_real("fps", fps, minimum=0.0, strict_minimum=True)
    validate_int("tail", tail, minimum=0)
    validate_int("substeps", substeps, minimum=1)
    validate_int("dpi", dpi, minimum=10)
    idx = frame_indices(T, every, max_frames)
    ts_all = traj.times.detach().cpu().double().numpy()
    x_all = traj.positions[:, system].detach().cpu().double().numpy()  # (T, n, d)
    held = held_frames(x_all[:, None], ts_all, traj.event_time[system : system + 1])[idx, 0]
    stopped = held != idx  # a suffix: from the system's terminal event on
    live = int(np.count_nonzero(~stopped))
    ts, xs = _display_frames(ts_all[idx[:live]], x_all[idx[:live]], substeps)
    notes = [""] * len(ts)
    event = float(traj.event_time[system])
    for j in range(live, len(idx)):  # held frames: substeps each, so the count stays (K − 1)·substeps + 1
        prev = ts_all[idx[j - 1]]
        fine = np.linspace(prev, ts_all[idx[j]], substeps + 1)[1:]
        ts = np.concatenate([ts, fine])
        xs = np.concatenate([xs, np.repeat(x_all[held[j]][None], substeps, axis=0)])
        notes += ["\n" + stopped_text(event, ts_all[held[j]])] * substeps
    beta = system_betas(traj.model, B)[system]

    fig = Figure(figsize=(size, size), layout="constrained" if d == 2 else None)
    FigureCanvasAgg(fig)
    colors = _token_colors(n)
    if d == 3:
        ax = fig.add_axes((0.0, 0.0, 1.0, 0.93), projection="3d")
        _draw_sphere(ax)
        ax.set_box_aspect((1, 1, 1), zoom=1.3)
    else:
        ax = fig.add_subplot(1, 1, 1)
        _draw_circle(ax, inner=False, lim=1.1)
    head = title or f"{describe_model(traj.model)}, n = {n}, d = {d}, β = {beta:g}"
    text = fig.suptitle(head)
    coords = lambda a: [a[..., j] for j in range(d)]  # noqa: E731
    tails = [ax.plot(*coords(xs[:1, i]), color=colors[i], linewidth=0.9, alpha=0.6)[0] for i in range(n)]
    kw = {"depthshade": False} if d == 3 else {}
    dots = ax.scatter(*coords(xs[0]), color=colors, s=22, edgecolors="black", linewidths=0.4, zorder=3, **kw)

    K = len(ts)
    writer = _writer(p.suffix.lower(), fps)
    rc = {"animation.ffmpeg_path": ffmpeg_path()} if WRITERS[p.suffix.lower()] == "ffmpeg" else {}
    with atomic_path(p) as tmp, matplotlib.rc_context(rc), writer.saving(fig, str(tmp), dpi):
        for k in range(K):
            lo = max(0, k - tail * substeps)
            for i, line in enumerate(tails):
                seg = xs[lo : k + 1, i]
                if d == 3:
                    line.set_data_3d(seg[:, 0], seg[:, 1], seg[:, 2])
                else:
                    line.set_data(seg[:, 0], seg[:, 1])
            if d == 3:
                dots._offsets3d = (xs[k, :, 0], xs[k, :, 1], xs[k, :, 2])
                ax.view_init(elev=elevation, azim=azimuth[0] + azimuth[1] * math.sin(2 * math.pi * k / max(K, 1)))
            else:
                dots.set_offsets(xs[k])
            text.set_text(f"{head}, t = {ts[k]:.2f}{notes[k]}")
            writer.grab_frame()
            if progress is not None:
                progress(k + 1, K)
    return p


def _writer(suffix: str, fps: float):
    from matplotlib.animation import FFMpegWriter, PillowWriter

    if WRITERS[suffix] == "pillow":
        return PillowWriter(fps=fps)
    # h264 with yuv420p (matplotlib adds -pix_fmt yuv420p for codec "h264"): plays everywhere
    return FFMpegWriter(fps=fps, codec="h264", metadata={"title": "tokensphere animation"})


def _display_frames(ts: np.ndarray, xs: np.ndarray, substeps: int) -> tuple[np.ndarray, np.ndarray]:
    """Insert ``substeps − 1`` cubic-spline frames between consecutive drawn frames (display only)."""
    if substeps == 1 or len(ts) < 2:
        return ts, xs
    if not np.isfinite(xs).all():
        raise ValueError("substeps > 1 needs finite positions (this system has NaN positions before any terminal "
                         "event)")
    from scipy.interpolate import CubicSpline

    fine = np.concatenate([np.linspace(a, b, substeps, endpoint=False) for a, b in zip(ts[:-1], ts[1:])] + [ts[-1:]])
    y = CubicSpline(ts, xs, axis=0)(fine)
    return fine, y / np.linalg.norm(y, axis=-1, keepdims=True)
