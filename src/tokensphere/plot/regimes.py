"""Figure 2: the (d, β) regimes where convergence to one cluster is proven, drawn from
:func:`tokensphere.theory.regimes` (not a static picture: every boundary is computed from n).

Axes. d is placed piecewise-logarithmically between its marks 2, 3, n and d* (d* ≈ 10^17 for n = 32 is
astronomical, so a true log axis would squash everything else): the d = 2 column is [0, 1], d ∈ [3, n] maps to
[1, 2] and d ∈ [n, d*] to [2, 3] logarithmically, and [3, 3.7] stands for d ≥ d*. β is on a log axis with
marks 1, the printed n²/π² and the proof threshold of :func:`~tokensphere.theory.large_beta_threshold_d2`
(Appendix B as printed needs (n − 1)τ*_β < π/2, i.e. β ≳ 4(n − 1)²/π², while Figure 2 prints β ≥ n²/π²; the
band between the two is hatched and labelled). The bottom strip β ≪ 1 is Theorem 4.2 (any Q, K).
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
from matplotlib.patches import Rectangle

from ..theory import d_star_log10, large_beta_threshold_d2, regimes

__all__ = ["regimes_figure", "regimes_data", "d_position"]

X_RIGHT = 3.7  # right edge of the d axis, standing for d → ∞
BETA_BOTTOM = 0.02  # bottom of the β axis (log scale)
STRIP_TOP = 0.06  # the β ≪ 1 strip (Theorem 4.2) is drawn in [BETA_BOTTOM, STRIP_TOP]
GREENS = ("#b8e0b0", "#8fd08a", "#5fb85f", "#3a9a45")  # nested proven regions, lighter to darker
RED = "#e8908a"
TOP_FACTOR = 8.0  # top of the β axis, in units of the larger d = 2 threshold (room for the Theorem 5.1 label)


def _d_star_log10(n: int) -> float:
    return d_star_log10(n, 1.0)  # d* at β = 1, as theory.regimes uses it


def d_position(d: float | Sequence[float], n: int) -> np.ndarray:
    """Horizontal position of dimension(s) d on the Figure 2 axis (see the module docstring). d = 2 maps to the
    middle of its column (0.5). Returns a float array of the shape of d."""
    dd = np.asarray(d, dtype=float)
    ld = np.log10(np.maximum(dd, 2.0))
    l3, ln, ls = math.log10(3), math.log10(n), _d_star_log10(n)
    x = np.where(
        dd < 3,
        0.5,
        np.where(
            dd <= n,
            1 + (ld - l3) / max(ln - l3, 1e-12),
            np.where(ld <= ls, 2 + (ld - ln) / max(ls - ln, 1e-12), np.minimum(3 + 0.1 * (ld - ls), X_RIGHT - 0.05)),
        ),
    )
    return x


def regimes_data(n: int) -> dict[str, Any]:
    """The data drawn in Figure 2 (JSON-serialisable): regions from :func:`theory.regimes`, thresholds."""
    printed = n * n / math.pi**2
    return {
        "n": n,
        "thresholds": {
            "printed_beta_n2_over_pi2": printed,
            "proof_beta_large_d2": large_beta_threshold_d2(n),
            "d_star_log10_at_beta_1": _d_star_log10(n),
        },
        "regions": [
            {"theorem": r.theorem, "label": r.label, "d_min": _num(r.d_min), "d_max": _num(r.d_max),
             "beta_min": _num(r.beta_min), "beta_max": _num(r.beta_max)}
            for r in regimes(n)
        ],
        "note": "Figure 2 prints beta >= n^2/pi^2 for d = 2; "
                "the proof of Appendix B needs (n-1) tau*_beta < pi/2",
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
    time); drawn as coloured dots (0 blue, 1 dark red). Returns a Figure (Agg canvas). Raises ValueError for
    n < 2 or malformed ``measured``.
    """
    proof = large_beta_threshold_d2(n)  # validates n
    printed = n * n / math.pi**2
    proof = large_beta_threshold_d2(n)
    top = TOP_FACTOR * max(printed, proof, 2.0)
    regs = regimes(n, beta_max=top)
    ls = _d_star_log10(n)

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
        return float(d_position(d, n)) if d >= 3 else 1.0

    def y_of(b: float, low: bool) -> float:
        if b <= 0:
            return BETA_BOTTOM
        return min(b, top)

    green_rank = 0
    for r in regs:
        if r.theorem == "Theorem 4.2":  # β ≪ 1 strip across every d, drawn last (on top)
            continue
        x0, x1 = x_of(r.d_min, True), x_of(r.d_max, False)
        y0, y1 = y_of(r.beta_min, True), y_of(r.beta_max, False)
        proven = r.theorem is not None
        if proven and r.d_min == 2:
            color = GREENS[1]
        elif proven:
            color = GREENS[min(green_rank, len(GREENS) - 1)]
            green_rank += 1
        else:
            color = RED
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor=color, edgecolor="0.25", linewidth=0.8,
                               gid=f"region:{r.theorem or 'none'}"))
        _label_region(ax, r, x0, x1, y0, y1, regs, n)

    # the β ≪ 1 strip (Theorem 4.2, arbitrary Q, K)
    ax.add_patch(Rectangle((0, BETA_BOTTOM), X_RIGHT, STRIP_TOP - BETA_BOTTOM, facecolor=GREENS[3], edgecolor="0.25",
                           linewidth=0.8, gid="region:Theorem 4.2"))
    ax.text(X_RIGHT / 2, math.sqrt(BETA_BOTTOM * STRIP_TOP), "Theorem 4.2: arbitrary Q, K (β ≪ 1)", ha="center",
            va="center", fontsize=8.5, color="white", weight="bold")

    # Figure 2's printed threshold n²/π² versus the proof's (n − 1)τ*_β < π/2 (Appendix B)
    lo, hi = sorted((printed, proof))
    ax.add_patch(Rectangle((0, lo), 1, hi - lo, facecolor="none", edgecolor="0.15", hatch="///", linewidth=0,
                           gid="printed_vs_proof"))
    ax.plot([0, 1], [printed, printed], color="black", linestyle="--", linewidth=1.2, gid="printed_threshold")
    ax.annotate(
        f"printed β = n²/π² ≈ {printed:.3g}\nproof needs (n−1)τ*_β < π/2:\nβ > {proof:.3g}  (Appendix B)",
        xy=(1.0, math.sqrt(lo * hi)), xytext=(1.12, math.sqrt(lo * hi)), fontsize=7.5, va="center",
        arrowprops={"arrowstyle": "->", "color": "0.2", "linewidth": 0.8},
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.4", "alpha": 0.9},
    )

    # axes: d marks 2, 3, n, d*; β marks 1, n²/π², proof threshold
    ax.set_xticks([0.5, 1.0, 2.0, 3.0])
    ax.set_xticklabels(["2", "3", f"n = {n}", f"d* ≈ 10^{ls:.0f}"])
    ax.set_yticks([1.0, printed, proof])
    ax.set_yticklabels(["1", f"n²/π² ≈ {printed:.3g}", f"{proof:.3g}"])
    ax.minorticks_off()
    ax.set_xlabel("dimension d (piecewise log scale between the marks)")
    ax.set_ylabel("β (log scale)")
    ax.text(-0.085, 0.04, "fast", transform=ax.transAxes, ha="center", fontsize=9, style="italic")
    ax.text(-0.085, 0.96, "slow", transform=ax.transAxes, ha="center", fontsize=9, style="italic")

    if measured is not None:
        d_m, b_m, v_m = _measured(measured)
        sc = ax.scatter(d_position(d_m, n), b_m, c=v_m, cmap=colormaps["RdBu_r"], norm=Normalize(0, 1), s=36,
                        edgecolors="black", linewidths=0.6, zorder=5, gid="measured")
        fig.colorbar(sc, ax=ax, shrink=0.8, label=measured_label)
    ax.set_title(title or f"Regimes of proven convergence to one cluster, n = {n} (green: proven; red: no result)",
                 fontsize=10)
    return fig


def _label_region(ax, r, x0, x1, y0, y1, regs, n: int) -> None:
    """Put the theorem and its label in the part of the rectangle not covered by a nested region."""
    if r.d_min == 2 and r.d_max == 2:
        xc = 0.5
        lo = max(y0, 0.08) if r.beta_min <= 0 else y0
        yc = math.sqrt(lo * y1)
        text = (r.theorem + "\n" if r.theorem else "") + _wrap(r.label, 20)
        ax.text(xc, yc, text, ha="center", va="center", fontsize=7.5, weight="bold" if r.theorem is None else None)
        return
    # nested d-regions: label in [x0, next start)
    starts = sorted(x for x in (float(d_position(q.d_min, n)) for q in regs if q.d_min > r.d_min and q.d_min > 2)
                    if x > x0)
    right = starts[0] if starts else x1
    xc = (x0 + right) / 2
    yc = math.sqrt(max(y0, 0.3) * y1)
    text = f"{r.theorem}:\n" + _wrap(r.label, 14 if right - x0 < 0.9 else 22)
    ax.text(xc, yc, text, ha="center", va="center", fontsize=8, rotation=0)


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
    if np.any(d < 2) or np.any(b < 0) or np.any((v < 0) | (v > 1)):
        raise ValueError("measured needs d >= 2, beta >= 0 and values in [0, 1]")
    return d, np.maximum(b, BETA_BOTTOM), v


def _num(x: float) -> float | str:
    return "inf" if math.isinf(x) else float(x)
