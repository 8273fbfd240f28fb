"""Figure 6: the function g of the Hessian of E_β (Theorem 5.1, Appendix B), with ±τ*_β marked.

Left panel (the paper's): g(τ) = (cos τ − β sin²τ) e^{β cos τ} on τ ∈ [−π, π], y ∈ [−2, 7], β = 2 (magenta)
and β = 6 (cyan); dashed vertical lines at ±τ*_β and the region g < 0 (|τ| > τ*_β) shaded under each curve.
Right panel (general d): g(ζ) = e^{β cos ζ}((d − 1) cos ζ − β sin²ζ) on the geodesic distance ζ ∈ [0, π] for a
few d, divided by g(0) = (d − 1)e^{β} so that the curves share one axis (the sign, which is what matters, is
unchanged);
τ*_β(d) ≈ √((d − 1)/β) is marked on each. Values come from :func:`tokensphere.theory.g_function` and
:func:`tokensphere.theory.tau_star`; nothing is recomputed here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..theory import g_function, tau_star

__all__ = ["g_figure", "g_data", "FIG6_BETAS", "FIG6_COLORS", "FIG6_YLIM"]

FIG6_BETAS = (2.0, 6.0)  # Figure 6
FIG6_COLORS = ("magenta", "cyan")
FIG6_YLIM = (-2.0, 7.0)
GENERAL_DIMS = (2, 3, 8, 32)
GENERAL_BETA = 6.0


def g_data(betas: Sequence[float] = FIG6_BETAS, dims: Sequence[int] = GENERAL_DIMS,
           general_beta: float = GENERAL_BETA) -> dict:
    """τ*_β for the drawn curves (JSON-serialisable): {"d2": {β: τ*}, "general": {d: τ*}, settings}."""
    return {
        "tau_star_d2": {f"{b:g}": tau_star(b, 2) for b in betas},
        "general_beta": general_beta,
        "tau_star_general": {str(d): tau_star(general_beta, d) for d in dims},
        "formula_d2": "g(tau) = (cos tau - beta sin^2 tau) exp(beta cos tau)",
        "formula_general": "g(zeta) = exp(beta cos zeta) ((d-1) cos zeta - beta sin^2 zeta)",
    }


def g_figure(
    betas: Sequence[float] = FIG6_BETAS,
    colors: Sequence[str] = FIG6_COLORS,
    *,
    general: bool = True,
    dims: Sequence[int] = GENERAL_DIMS,
    general_beta: float = GENERAL_BETA,
    ylim: tuple[float, float] = FIG6_YLIM,
    points: int = 2001,
    title: str | None = None,
) -> Figure:
    """Figure 6 (and, if ``general``, the general-d panel). betas: β > 0 of the d = 2 curves, one colour each.

    The ±τ*_β lines carry gid ``tau_star:<β>`` (d = 2 panel) and ``tau_star_d:<d>`` (general panel).
    Returns a Figure (Agg canvas). Raises ValueError for β ≤ 0 or d < 2 (from tau_star), or mismatched colours.
    """
    if len(colors) < len(betas):
        raise ValueError(f"colors must give one colour per beta ({len(betas)}), got {len(colors)}")
    fig = Figure(figsize=(11.0 if general else 5.8, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2 if general else 1, 1)
    tau = np.linspace(-np.pi, np.pi, points)
    for beta, color in zip(betas, colors):
        ts = tau_star(beta, 2)
        g = g_function(tau, beta, 2)
        ax.plot(tau, g, color=color, linewidth=2, label=rf"β = {beta:g}  ($\tau^*_\beta$ = {ts:.3f})")
        ax.fill_between(tau, g, 0, where=np.abs(tau) > ts, color=color, alpha=0.15, linewidth=0)
        for s in (-ts, ts):
            ax.axvline(s, color=color, linestyle="--", linewidth=1.2, gid=f"tau_star:{beta:g}")
    ax.axhline(0, color="0.3", linewidth=0.8)
    ax.set_xlim(-np.pi, np.pi)
    ax.set_ylim(*ylim)
    ax.set_xticks([-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi])
    ax.set_xticklabels(["−π", "−π/2", "0", "π/2", "π"])
    ax.set_xlabel("τ")
    ax.set_ylabel("g(τ)")
    ax.set_title(r"$g(\tau) = (\cos\tau - \beta\sin^2\tau)\,e^{\beta\cos\tau}$   (d = 2, Figure 6)", fontsize=10)
    ax.text(0.02, 0.97, "dashed: $\\pm\\tau^*_\\beta$\nshaded: $g < 0$ for $|\\tau| > \\tau^*_\\beta$",
            transform=ax.transAxes, fontsize=8, va="top")
    ax.legend(loc="upper right", fontsize=8)

    if general:
        ax2 = fig.add_subplot(1, 2, 2)
        zeta = np.linspace(0.0, np.pi, points)
        palette = colormaps["viridis"](np.linspace(0.0, 0.85, max(len(dims), 1)))
        for d, color in zip(dims, palette):
            ts = tau_star(general_beta, d)
            g = g_function(zeta, general_beta, d) / g_function(0.0, general_beta, d)
            approx = np.sqrt((d - 1) / general_beta)
            ax2.plot(zeta, g, color=color, linewidth=1.8,
                     label=rf"d = {d}  ($\tau^*$ = {ts:.3f}, $\sqrt{{(d-1)/\beta}}$ = {approx:.3f})")
            ax2.axvline(ts, color=color, linestyle="--", linewidth=1.0, gid=f"tau_star_d:{d}")
        ax2.axhline(0, color="0.3", linewidth=0.8)
        ax2.set_xlim(0, np.pi)
        ax2.set_xticks([0, np.pi / 4, np.pi / 2, 3 * np.pi / 4, np.pi])
        ax2.set_xticklabels(["0", "π/4", "π/2", "3π/4", "π"])
        ax2.set_xlabel("ζ (geodesic distance)")
        ax2.set_ylabel("g(ζ) / g(0)")
        ax2.set_title(rf"general d: $g(\zeta) = e^{{\beta\cos\zeta}}((d-1)\cos\zeta - \beta\sin^2\zeta)$, "
                      f"β = {general_beta:g}", fontsize=10)
        ax2.text(0.98, 0.5, r"dashed: $\tau^*_\beta(d)$, root of $\beta\sin^2\tau = (d-1)\cos\tau$",
                 transform=ax2.transAxes, fontsize=8, ha="right")
        ax2.legend(loc="upper right", fontsize=7.5)
    if title:
        fig.suptitle(title)
    return fig
