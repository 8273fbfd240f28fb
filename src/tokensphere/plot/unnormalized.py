"""Pure self-attention without normalisation ((9.1)–(9.3)): the limit geometries of Table 1.

One column per case of :func:`tokensphere.experiments.unnormalized.table1_run`: on top the rescaled tokens
z(t) = e^{−tV} x(t) (the unrescaled x for the origin case; the top-eigenspace coordinates for the paranormal
case), trajectories thin, starts faint, final positions bold, with the predicted geometry drawn (the hull of the
final points, the hyperplanes ⟨ψ₁, z⟩ = c through them); below, the case's own measurement over time with its
predicted limit. :func:`three_level_figure` draws the runs of
:func:`tokensphere.experiments.unnormalized.three_level_run`: the tokens with the occupied hyperplanes, and the
coordinates ⟨ψ₁, z_i(t)⟩ over time with the measured levels. This module only draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.spatial import ConvexHull, QhullError

__all__ = ["table1_figure", "three_level_figure"]

_TITLES = {
    "polytope": "V = I: vertices of a polytope",
    "hyperplanes": "λ₁(V) > 0 simple: hyperplanes",
    "paranormal": "paranormal V: polytope × subspace",
    "origin": "V = −I: the origin (x, not rescaled)",
}
_MEASURES = {
    "polytope": ("polytope", 1.0, "fraction of tokens at hull vertices"),
    "hyperplanes": ("hyperplanes", 0.0, "distance from ≤ 3 values of ⟨ψ₁, z⟩"),
    "paranormal": ("paranormal", 1.0, "fraction at vertices (F-components)"),
    "origin": ("origin", 0.0, "max|x_i(t)| / max|x_i(0)|"),
}


def _two_rows(columns: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    """A figure of 2 × ``columns`` axes (positions above, measurements below), ``width`` inches per column."""
    fig = Figure(figsize=(width * columns, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, np.atleast_2d(fig.subplots(2, columns, squeeze=False))


def table1_figure(runs: dict[str, dict[str, Any]], title: str | None = None) -> Figure:
    """Positions and measurements of the runs {case: table1_run(case)} (any subset of the four cases)."""
    cases = list(runs)
    fig, axes = _two_rows(len(cases), 3.6, 7.0)
    for k, case in enumerate(cases):
        run = runs[case]
        pos = _plane(run)
        ax = axes[0, k]
        for i in range(pos.shape[1]):
            ax.plot(pos[:, i, 0], pos[:, i, 1], color="C0", lw=0.6, alpha=0.5)
        ax.scatter(pos[0, :, 0], pos[0, :, 1], s=10, color="C0", alpha=0.3, label="t = 0")
        ax.scatter(pos[-1, :, 0], pos[-1, :, 1], s=28, color="C3", zorder=3, label=f"t = {float(run['times'][-1]):g}")
        if case in ("polytope", "paranormal"):
            _draw_hull(ax, pos[-1])
        if case == "hyperplanes":
            _draw_hyperplanes(ax, run, pos)
        if case == "origin":
            ax.scatter([0.0], [0.0], marker="+", s=80, color="k", zorder=4)
        ax.set_title(_TITLES.get(case, case), fontsize=9)
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(fontsize=7, loc="best")
        key, target, label = _MEASURES[case]
        series = np.asarray(run[key], dtype=float)
        t = np.asarray(run["times"], dtype=float)
        axm = axes[1, k]
        axm.plot(t, series, "o-", ms=3, color="C3", label=label)
        if case != "origin":
            axm.plot(t, np.asarray(run["booleanness"], dtype=float), "s--", ms=3, color="C2",
                     label="1 − min_i max_j A_ij (Boolean: 0)")
        axm.axhline(target, color="k", ls=":", lw=1, label=f"predicted limit {target:g}")
        if case == "origin":
            axm.set_xscale("log")
            axm.set_yscale("log")
            late = t > t[-1] / 10
            if late.sum() >= 2:
                slope = np.polyfit(np.log(t[late]), np.log(series[late]), 1)[0]
                axm.plot(t[late], series[late][-1] * (t[late] / t[late][-1]) ** -0.5, "k--", lw=1,
                         label=f"t^(−1/2) (fitted slope {slope:.2f})")
        axm.set_xlabel("t")
        axm.legend(fontsize=7)
    fig.suptitle(title or "Pure self-attention (9.1) without normalisation: the limit geometries of Table 1")
    return fig


def _plane(run: dict[str, Any]) -> np.ndarray:
    """(T, n, 2) coordinates to draw: z (or x for the origin case), projected on the top eigenspace F when given."""
    y = run["x"] if run["z"] is None else run["z"]
    y = np.asarray(y, dtype=float)
    if run.get("F") is not None:
        y = y @ np.asarray(run["F"], dtype=float)
    return y[..., :2]


def _draw_hull(ax: Any, pts: np.ndarray) -> None:
    try:
        hull = ConvexHull(pts)
    except (QhullError, ValueError):  # fewer than 3 distinct points, or collinear
        return
    ring = np.append(hull.vertices, hull.vertices[0])
    ax.plot(pts[ring, 0], pts[ring, 1], "k-", lw=1, label="hull of the final points")


def _draw_hyperplanes(ax: Any, run: dict[str, Any], pos: np.ndarray) -> None:
    """The lines {⟨ψ₁, z⟩ = c} in the plane of the first two coordinates, one per measured level c."""
    psi = np.asarray(run["psi"], dtype=float)[:2]
    direction = np.array([-psi[1], psi[0]]) / np.linalg.norm(psi)
    span = np.abs(pos).max() * 1.5
    centre = pos[-1].mean(0)
    for k, c in enumerate(np.asarray(run["levels"], dtype=float)):
        base = c * psi / (psi @ psi)
        base = base + ((centre - base) @ direction) * direction  # the point of the line nearest the tokens
        ends = np.stack([base - span * direction, base + span * direction])
        ax.plot(ends[:, 0], ends[:, 1], "k--", lw=0.8, label="occupied hyperplanes" if k == 0 else None)


_VARIANT_TITLES = {
    "symmetric": "mirror-symmetric tokens + tokens on a = 0",
    "perturbed": "the same, middle tokens moved to a = ε",
    "generic": "random tokens (same V, QᵀK)",
}
_KIND_COLOURS = {1: "C3", -1: "C0", 0: "C2"}


def three_level_figure(runs: dict[str, dict[str, Any]], title: str | None = None) -> Figure:
    """The runs {variant: three_level_run(variant)}: top, the rescaled tokens z(t) (starts faint, limits bold;
    red/blue the positive/negative member of a mirror pair or the sign of a_i(0), green the tokens started on the
    middle hyperplane) with the occupied hyperplanes {⟨ψ₁, z⟩ = c} dashed; bottom, a_i(t) = ⟨ψ₁, z_i(t)⟩ with the
    measured levels and, for the perturbed run, the time the middle tokens left a = 0."""
    variants = list(runs)
    fig, axes = _two_rows(len(variants), 4.2, 7.4)
    for k, variant in enumerate(variants):
        run = runs[variant]
        pos = np.asarray(run["z"], dtype=float)[..., :2]
        kinds = np.asarray(run["kinds"])
        t = np.asarray(run["times"], dtype=float)
        coords = np.asarray(run["coordinates"], dtype=float)
        ax, axc = axes[0, k], axes[1, k]
        for i in range(pos.shape[1]):
            colour = _KIND_COLOURS[int(kinds[i])]
            ax.plot(pos[:, i, 0], pos[:, i, 1], color=colour, lw=0.6, alpha=0.5)
            axc.plot(t, coords[:, i], color=colour, lw=0.8)
        colours = [_KIND_COLOURS[int(c)] for c in kinds]
        ax.scatter(pos[0, :, 0], pos[0, :, 1], s=10, c=colours, alpha=0.3)
        ax.scatter(pos[-1, :, 0], pos[-1, :, 1], s=28, c=colours, edgecolors="k", linewidths=0.4, zorder=3)
        _draw_hyperplanes(ax, run, pos)
        counts = [int(c) for c in np.asarray(run["counts"])]
        levels = np.asarray(run["levels"], dtype=float)
        ax.set_title(f"{_VARIANT_TITLES.get(variant, variant)}\n{len(levels)} levels, counts {counts}", fontsize=9)
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(fontsize=7, loc="best")
        for c in levels:
            axc.axhline(c, color="k", ls=":", lw=1)
        if run.get("departure") is not None:
            axc.axvline(run["departure"], color="C2", ls="--", lw=1,
                        label=f"middle tokens leave a = 0 (t = {run['departure']:g})")
            axc.legend(fontsize=7, loc="lower right")
        axc.set_xlabel("t")
        axc.set_ylabel("a_i(t) = ⟨ψ₁, z_i(t)⟩ (dotted: measured levels)", fontsize=8)
    fig.suptitle(title or "The hyperplane row of Table 1: which of the three hyperplanes are occupied")
    return fig
