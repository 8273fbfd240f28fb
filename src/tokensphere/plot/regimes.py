"""Figure 2: the (d, β) regimes where convergence to one cluster is proven, drawn from
:func:`tokensphere.theory.regimes` (not a static picture: every boundary is computed from n).

Axes. d is placed piecewise between its marks 2, 3 and n: the d = 2 column is [0, 1], d ∈ [3, n] maps to
[1, 2] logarithmically, and d ∈ [n, d*(n, β_top)] to [2, X_RIGHT − 0.1] **log-logarithmically** (position
∝ log log d): d*(n, β) of (D.9) grows like e^{20β}, so its curve is nearly a straight line against log β and
the Theorem 6.9 region is drawn for every β on the axis. β is on a log axis with marks 1, Figure 2's n²/π² and
the threshold of :func:`~tokensphere.theory.large_beta_threshold_d2` ((n − 1)τ*_β < π, Theorem 5.1 on the
circle, which lies below n²/π²). The bottom strip β ≪ 1 is Theorem 4.2 (any Q, K).
Green = proven convergence to one cluster (n fixed), red = no result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle

from ..theory import d_star_log10, large_beta_threshold_d2, regimes

__all__ = ["regimes_figure", "regimes_data", "d_position", "beta_top"]

X_RIGHT = 3.7  # right edge of the d axis
BETA_BOTTOM = 0.02  # bottom of the β axis (log scale)
STRIP_TOP = 0.06  # the β ≪ 1 strip (Theorem 4.2) is drawn in [BETA_BOTTOM, STRIP_TOP]
GREENS = ("#b8e0b0", "#8fd08a", "#5fb85f", "#3a9a45")  # nested proven regions, lighter to darker
RED = "#e8908a"
TOP_FACTOR = 8.0  # top of the β axis, in units of the larger d = 2 threshold (room for the Theorem 5.1 label)
MIN_N = 4  # the d axis needs the marks 2 < 3 < n: below, the columns d ∈ [3, n] and d ≥ n collapse


def beta_top(n: int) -> float:
    """Top of Figure 2's β axis for n tokens: TOP_FACTOR × max(n²/π², the d = 2 threshold, 2)."""
    return TOP_FACTOR * max(n * n / math.pi**2, large_beta_threshold_d2(n), 2.0)


def d_position(d: float | Sequence[float], n: int, l_max: float | None = None) -> np.ndarray:
    """Horizontal position of dimension(s) d on the Figure 2 axis (see the module docstring). d = 2 maps to the
    middle of its column (0.5). l_max: log10 of the d at X_RIGHT − 0.1 (default log10 d*(n, β) at the top of
    the β axis). Returns a float array of the shape of d."""
    dd = np.asarray(d, dtype=float)
    ld = np.log10(np.maximum(dd, 2.0))
    l3, ln = math.log10(3), math.log10(n)
    lm = d_star_log10(n, beta_top(n)) if l_max is None else l_max
    span = X_RIGHT - 2.1
    with np.errstate(divide="ignore", invalid="ignore"):
        loglog = 2 + span * np.log(np.maximum(ld, ln) / ln) / max(math.log(lm / ln), 1e-12)
    return np.where(dd < 3, 0.5, np.where(dd <= n, 1 + (ld - l3) / max(ln - l3, 1e-12),
                                          np.minimum(loglog, X_RIGHT - 0.02)))


def _log10_position(L: float | np.ndarray, n: int, l_max: float) -> np.ndarray:
    """d_position for d = 10^L given as L (d* itself overflows a float)."""
    ln = math.log10(n)
    return 2 + (X_RIGHT - 2.1) * np.log(np.maximum(L, ln) / ln) / max(math.log(l_max / ln), 1e-12)


def regimes_data(n: int) -> dict[str, Any]:
    """The data drawn in Figure 2 (JSON-serialisable): regions from :func:`theory.regimes`, thresholds."""
    printed = n * n / math.pi**2
    return {
        "n": n,
        "thresholds": {
            "printed_beta_n2_over_pi2": printed,
            "beta_large_d2_sharpened": large_beta_threshold_d2(n),
            "d_star_log10_at_beta_1": d_star_log10(n, 1.0),
        },
        "regions": [
            {"theorem": r.theorem, "label": r.label, "d_min": _num(r.d_min), "d_max": _num(r.d_max),
             "beta_min": _num(r.beta_min), "beta_max": _num(r.beta_max),
             "boundary_beta_log10d": [list(p) for p in r.boundary]}
            for r in regimes(n, beta_max=beta_top(n))
        ],
        "note": "d = 2: (n-1) tau*_beta < pi suffices (Theorem 5.1, Appendix B sharpened); it lies below "
                "Figure 2's n^2/pi^2. Theorem 6.9 starts at d*(n, beta) of (D.9) for each beta.",
    }


def regimes_figure(
    n: int = 32,
    *,
    measured: Mapping[str, Sequence[float]] | Sequence[Sequence[float]] | None = None,
    measured_label: str = "measured single-cluster frequency",
    title: str | None = None,
    size: tuple[float, float] = (9.5, 6.2),
) -> Figure:
    """Figure 2 for n tokens, from :func:`tokensphere.theory.regimes`.

    measured: optional overlay of measured frequencies, either {"d": (m,), "beta": (m,), "value": (m,)} or m
    triples (d, β, value) with value in [0, 1] (e.g. single_cluster_probability of a phase diagram at its last
    time); drawn as coloured dots (0 blue, 1 dark red). Regions that are empty for this n (e.g. no d = 2 gap
    when the threshold of Theorem 5.1 lies below 1) are neither drawn nor labelled. Returns a Figure (Agg
    canvas). Raises ValueError for n < MIN_N = 4 (the d axis needs 2 < 3 < n; :func:`regimes_data` serves any
    n ≥ 2) or malformed or non-finite ``measured``.
    """
    proof = large_beta_threshold_d2(n)  # validates n
    if n < MIN_N:
        raise ValueError(f"n must be >= {MIN_N} for regimes_figure (its d axis places 2 < 3 < n), got n = {n}; "
                         "regimes_data(n) gives the regions for any n >= 2")
    printed = n * n / math.pi**2
    top = beta_top(n)
    regs = regimes(n, beta_max=top)
    l_max = d_star_log10(n, top)

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_yscale("log")
    ax.set_xlim(0, X_RIGHT)
    ax.set_ylim(BETA_BOTTOM, top)

    def x_of(d: float, left: bool) -> float:
        if d == 2:
            return 0.0 if left else 1.0
        if math.isinf(d):
            return X_RIGHT
        return float(d_position(d, n, l_max)) if d >= 3 else 1.0

    def y_of(b: float) -> float:
        return BETA_BOTTOM if b <= 0 else min(b, top)

    green_rank, drew_red = 0, False
    for r in regs:
        if r.theorem == "Theorem 4.2":  # β ≪ 1 strip across every d, drawn last (on top)
            continue
        proven = r.theorem is not None
        if proven and r.d_min == 2:
            color = GREENS[1]
        elif proven:
            color = GREENS[min(green_rank, len(GREENS) - 1)]
            green_rank += 1
        else:
            color = RED
        y0, y1 = y_of(r.beta_min), y_of(r.beta_max)
        if r.boundary:  # left edge d*(n, β): a polygon from the sampled curve to the right edge
            bs = np.array([b for b, _ in r.boundary])
            xs = _log10_position(np.array([L for _, L in r.boundary]), n, l_max)
            bs = np.concatenate([[BETA_BOTTOM], bs])
            xs = np.concatenate([[xs[0]], xs])
            pts = np.column_stack([np.minimum(xs, X_RIGHT), np.clip(bs, BETA_BOTTOM, top)])
            pts = np.vstack([pts, [[X_RIGHT, top], [X_RIGHT, BETA_BOTTOM]]])
            ax.add_patch(Polygon(pts, closed=True, facecolor=color, edgecolor="0.25", linewidth=0.8,
                                 gid=f"region:{r.theorem}"))
            ax.text((xs[0] + X_RIGHT) / 2, 0.3, f"{r.theorem}:\n" + _wrap(r.label, 22), ha="center",
                    va="center", fontsize=8)
            continue
        x0, x1 = x_of(r.d_min, True), x_of(r.d_max, False)
        if not (x1 > x0 and y1 > y0):  # empty for this n: nothing to draw or label
            continue
        drew_red |= color == RED
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor=color, edgecolor="0.25", linewidth=0.8,
                               gid=f"region:{r.theorem or 'none'}"))
        _label_region(ax, r, x0, x1, y0, y1, regs, n, l_max)

    # the β ≪ 1 strip (Theorem 4.2, arbitrary Q, K)
    ax.add_patch(Rectangle((0, BETA_BOTTOM), X_RIGHT, STRIP_TOP - BETA_BOTTOM, facecolor=GREENS[3], edgecolor="0.25",
                           linewidth=0.8, gid="region:Theorem 4.2"))
    ax.text(X_RIGHT / 2, math.sqrt(BETA_BOTTOM * STRIP_TOP), "Theorem 4.2: arbitrary Q, K (β ≪ 1)", ha="center",
            va="center", fontsize=8.5, color="white", weight="bold")

    # Figure 2's printed n²/π², proven by the sharpened condition (n − 1)τ*_β < π (β above the threshold)
    ax.plot([0, 1], [printed, printed], color="black", linestyle="--", linewidth=1.2, gid="printed_threshold")

    # axes: d marks 2, 3, n and powers 10^10, 10^100, …; β marks 1, n²/π², the d = 2 threshold
    powers = [p for p in (10, 100, 1000, 10000) if math.log10(n) < p < l_max]
    ax.set_xticks([0.5, 1.0, 2.0] + [float(_log10_position(p, n, l_max)) for p in powers])
    ax.set_xticklabels(["2", "3", f"n = {n}"] + [f"10^{p}" for p in powers])
    ax.set_yticks([1.0, printed])  # the d = 2 threshold is in the Theorem 5.1 label (it is close to n²/π²)
    ax.set_yticklabels(["1", f"n²/π² ≈ {printed:.3g}"])
    ax.minorticks_off()
    ax.set_xlabel("dimension d (log scale up to n, log-log scale beyond)")
    ax.set_ylabel("β (log scale)")
    ax.text(-0.085, 0.04, "fast", transform=ax.transAxes, ha="center", fontsize=9, style="italic")
    ax.text(-0.085, 0.96, "slow", transform=ax.transAxes, ha="center", fontsize=9, style="italic")

    if measured is not None:
        d_m, b_m, v_m = _measured(measured)
        sc = ax.scatter(d_position(d_m, n, l_max), b_m, c=v_m, cmap=colormaps["RdBu_r"], norm=Normalize(0, 1), s=36,
                        edgecolors="black", linewidths=0.6, zorder=5, gid="measured")
        fig.colorbar(sc, ax=ax, shrink=0.8, label=measured_label)
    key = "green: proven; red: no result" if drew_red else "green: proven"
    ax.set_title(title or f"Regimes of proven convergence to one cluster, n = {n} ({key})", fontsize=10)
    return fig


def _label_region(ax, r, x0, x1, y0, y1, regs, n: int, l_max: float) -> None:
    """Put the theorem and its label in the part of the rectangle not covered by a nested region."""
    if r.d_min == 2 and r.d_max == 2:
        xc = 0.5
        lo = max(y0, 0.08) if r.beta_min <= 0 else y0
        yc = math.sqrt(lo * y1)
        text = (r.theorem + "\n" if r.theorem else "") + _wrap(r.label, 20)
        ax.text(xc, yc, text, ha="center", va="center", fontsize=7.5, weight="bold" if r.theorem is None else None)
        return
    # nested d-regions: label in [x0, next start)
    starts = sorted(x for x in (_left_edge(q, n, l_max) for q in regs if q.d_min > r.d_min and q.d_min > 2)
                    if x > x0)
    right = starts[0] if starts else x1
    xc = (x0 + right) / 2
    yc = math.sqrt(max(y0, 0.3) * y1)
    text = f"{r.theorem}:\n" + _wrap(r.label, 14 if right - x0 < 0.9 else 22)
    ax.text(xc, yc, text, ha="center", va="center", fontsize=8, rotation=0)


def _left_edge(r, n: int, l_max: float) -> float:
    """Leftmost x of a region: its d_min, or the leftmost point of its β-dependent boundary."""
    if r.boundary:
        return float(_log10_position(min(L for _, L in r.boundary), n, l_max))
    return float(d_position(r.d_min, n, l_max))


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def _measured(measured) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(measured, Mapping):
        try:
            d, b, v = (np.asarray(measured[k], dtype=float).reshape(-1) for k in ("d", "beta", "value"))
        except KeyError as exc:
            raise ValueError(f"measured must have keys 'd', 'beta', 'value'; missing {exc}") from None
    else:
        arr = np.asarray(measured, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != 3:
            raise ValueError(f"measured must be m triples (d, beta, value), got shape {arr.shape}")
        d, b, v = arr.T
    if not (len(d) == len(b) == len(v)):
        raise ValueError("measured d, beta and value must have the same length")
    bad = ~(np.isfinite(d) & np.isfinite(b) & np.isfinite(v))
    if bad.any():
        raise ValueError(f"measured must hold finite d, beta and value; entries {np.flatnonzero(bad).tolist()} "
                         "are NaN or infinite")
    if np.any(d < 2) or np.any(b < 0) or np.any((v < 0) | (v > 1)):
        raise ValueError("measured needs d >= 2, beta >= 0 and values in [0, 1]")
    return d, np.maximum(b, BETA_BOTTOM), v


def _num(x: float) -> float | str:
    return "inf" if math.isinf(x) else float(x)
