"""Noise (Problem 7): the (β, σ) phase diagram of the long-time order parameter r = |(1/n) Σ_i x_i|.

Two panels from :func:`tokensphere.experiments.noise.noise_phase_diagram`: a heat map of r over (β, σ) with the
mean-field linear stability threshold σ_c(β) of the uniform measure, and r against σ for each β with σ_c(β)
marked and the level of independent uniform tokens. This module only draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .arrays import cell_edges as _edges

__all__ = ["noise_phase_figure"]


def noise_phase_figure(data: dict[str, Any], title: str | None = None) -> Figure:
    """Heat map of r(β, σ) with σ_c(β), and r against σ per β, from ``noise_phase_diagram`` output."""
    betas, sigmas = np.asarray(data["betas"]), np.asarray(data["sigmas"])
    r = np.asarray(data["r_mean"])  # (σ, β)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax_map, ax_cut = fig.subplots(1, 2)
    mesh = ax_map.pcolormesh(_edges(betas), _edges(sigmas), r, cmap="RdBu_r", vmin=0.0, vmax=1.0, shading="flat")
    fig.colorbar(mesh, ax=ax_map, label="r = |(1/n) Σ x_i| (late-time mean)")
    curve = data["curve"]
    ax_map.plot(curve["beta"], curve["sigma_c"], "k-", lw=2, label="σ_c(β): uniform state unstable below")
    ax_map.set_xlabel("β")
    ax_map.set_ylabel("noise σ")
    ax_map.set_ylim(_edges(sigmas)[0], _edges(sigmas)[-1])
    ax_map.legend(fontsize=8, loc="upper right")
    ax_map.set_title("order parameter over (β, σ)")
    for k, b in enumerate(betas):
        color = f"C{k % 10}"
        ax_cut.errorbar(sigmas, r[:, k], yerr=np.asarray(data["r_std"])[:, k], color=color, marker="o", ms=3,
                        capsize=2, label=f"β = {b:g}")
        ax_cut.axvline(data["sigma_c"][k], color=color, ls=":", lw=1)
    ax_cut.axhline(data["r_uniform"], color="gray", ls="--", lw=1, label="independent uniform tokens")
    ax_cut.set_xlabel("noise σ (dotted: σ_c(β))")
    ax_cut.set_ylabel("r")
    ax_cut.set_ylim(0, 1.02)
    ax_cut.legend(fontsize=8)
    ax_cut.set_title("r against σ (bars: spread over starts)")
    s = data["settings"]
    fig.suptitle(title or f"(SA) with noise on S^{s['d'] - 1}: n = {s['n']}, {s['starts']} starts per cell, "
                 f"t_max = {s['t_max']:g}, {s['method']} step {s['dt']:g}")
    return fig

