"""Figure 1 of the paper for a real model: histograms of the pairwise inner products of normalised hidden states,
layer by layer, and the cluster statistics over depth (real model against the particle simulation driven by its
attention weights). Draws the data of :func:`tokensphere.probe.probe`; computes nothing about the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["FIG1_XLIM", "fig1_layers", "probe_histogram_figure", "probe_statistics_figure"]

FIG1_XLIM = (-0.4, 1.0)  # the x-range of the paper's Figure 1 (widened when the data go further left)
PANELS = 6  # per row, as in the paper


def fig1_layers(trained: int, depth: int) -> list[list[int]]:
    """The layers shown, one list per row. Paper (24 trained, 48 run): [0, 1, 21, 22, 23, 24] and
    [25, 26, 27, 46, 47, 48]. Here: the first 2 and last 4 of 0..L; with depth > L a second row of the first 3
    and last 3 extended layers (every layer when there are at most 6)."""
    def pick(layers: list[int], head: int) -> list[int]:
        return layers if len(layers) <= PANELS else layers[:head] + layers[-(PANELS - head):]

    rows = [pick(list(range(trained + 1)), 2)]
    if depth > trained:
        rows.append(pick(list(range(trained + 1, depth + 1)), 3))
    return rows


def _density(edges: list[float], counts: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    e = np.asarray(edges)
    c = np.sum(np.asarray(counts, dtype=np.float64), axis=0)
    return e, c / max(c.sum(), 1.0) / np.diff(e)


def probe_histogram_figure(data: dict[str, Any], *, simulated: bool = True) -> Figure:
    """Figure 1: per shown layer, the density of ⟨x_i, x_j⟩ (i ≠ j, all texts pooled) as a step outline, with
    a shared y-limit (1.05 × the highest density drawn, model or simulation); ``simulated`` overlays the particle
    simulation's density (dashed)."""
    depth = data["depth"]["depth"]
    rows = fig1_layers(data["depth"]["trained_depth"], depth)
    real = data["histograms"]
    sim = data.get("histograms_simulated") if simulated else None
    fig = Figure(figsize=(2.6 * PANELS, 2.5 * len(rows) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(len(rows), PANELS, squeeze=False))
    top, left = 0.0, FIG1_XLIM[0]
    for r, layers in enumerate(rows):
        for c in range(PANELS):
            ax = axes[r, c]
            if c >= len(layers):
                ax.set_visible(False)
                continue
            ell = layers[c]
            e, dens = _density(real["edges"][ell], [t[ell] for t in real["counts"]])
            ax.stairs(dens, e, color="tab:blue", label="model")
            top, left = max(top, dens.max()), min(left, e[0])
            if sim is not None:
                es, ds = _density(sim["edges"][ell], [t[ell] for t in sim["counts"]])
                ax.stairs(ds, es, color="tab:red", linestyle="--", label="simulation")
                top, left = max(top, ds.max()), min(left, es[0])  # the shared limits hold both curves
            extended = ell > data["depth"]["trained_depth"]
            ax.set_title(f"layer {ell}" + (" (extended)" if extended else ""), fontsize=10)
            ax.set_xlabel("⟨xᵢ, xⱼ⟩")
    for ax in axes.flat:
        if ax.get_visible():
            ax.set_xlim(left - 0.02, 1.02)
            ax.set_ylim(0, 1.05 * top)  # shared y-limit, as the paper's panels
    axes[0, 0].set_ylabel("density")
    if sim is not None:
        axes[0, 0].legend(fontsize=8, loc="upper left")
    m = data["model"]
    n = ", ".join(str(t["n_tokens"]) for t in data["texts"])
    fig.suptitle(f"{m['name']} ({m['family']}, d = {m['d']}, {m['heads']} heads): inner products of normalised "
                 f"hidden states, pairs i ≠ j, n = {n} tokens; {data['depth']['how']}", fontsize=10)
    return fig


def probe_statistics_figure(data: dict[str, Any]) -> Figure:
    """Mean inner product, pair fraction and cluster count at δ over depth: every text, model (solid) against
    simulation (dashed); a dotted line marks the trained depth when the model was run deeper."""
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    delta = data["settings"]["delta"]
    keys = [("mean_inner_product", "mean ⟨xᵢ, xⱼ⟩, i ≠ j"),
            ("pair_fraction", f"pair fraction, ⟨xᵢ, xⱼ⟩ > 1 − δ (δ = {delta:g})"),
            ("cluster_count", f"cluster count (δ = {delta:g})")]
    for ax, (key, label) in zip(axes, keys):
        for t, (real, sim) in enumerate(zip(data["statistics"]["real"], data["statistics"]["simulated"])):
            layers = np.arange(len(real[key]))
            ax.plot(layers, real[key], color=f"C{t % 10}", marker="o", ms=3,
                    label=f"text {t + 1}, model" if key == "mean_inner_product" else None)
            ax.plot(layers, sim[key], color=f"C{t % 10}", linestyle="--",
                    label=f"text {t + 1}, simulation" if key == "mean_inner_product" else None)
        if data["depth"]["depth"] > data["depth"]["trained_depth"]:
            ax.axvline(data["depth"]["trained_depth"], color="k", linestyle=":", linewidth=1)
        ax.set_xlabel("layer")
        ax.set_title(label, fontsize=10)
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{data['model']['name']}: statistics over depth, model against the particle dynamics "
                 f"({data['settings']['dynamics']}) with its own attention weights", fontsize=10)
    return fig
