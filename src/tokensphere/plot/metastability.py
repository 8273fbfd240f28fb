"""Metastability (Problem 1 of the paper): cluster counts and the energy staircase over log t, merge sizes.

On the circle at large β the tokens sit for long times near a few clusters, then clusters merge (mostly two
at a time) and the normalised energy Ē rises in a staircase. The figure has three panels: k(t) and Ē(t) on a
logarithmic time axis, one line per seeded start, and the sizes of the merge events (how many clusters merged
at once). The numbers come from :func:`tokensphere.experiments.metastability_data`; this module only draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..experiments.describe import describe_model
from ..experiments.layout import systems_by_beta
from .variants import LABELS

__all__ = ["metastability_figure"]

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def metastability_figure(data: dict[str, Any], title: str | None = None, *, model: Any = None,
                         n: int | None = None, d: int | None = None) -> Figure:
    """Three panels from :func:`metastability_data`: k(t), Ē(t) over log t, and merge sizes per β.

    The title names the model (``model``: a :class:`~tokensphere.Model`, or ``data["model"]``, its description
    as recorded in the CLI's JSON), n and d (``n``, ``d`` or ``data["n"]``, ``data["d"]``) when they are known,
    and nothing about them otherwise; the merge panel states the measured fraction of pairwise merges.
    """
    t = np.asarray(data["times"])[1:]  # drop t = 0 on the log axis
    k = np.asarray(data["counts"])[1:]
    e = np.asarray(data["energy_normalized"])[1:]
    by_beta = sorted(systems_by_beta(data["beta"]).items())
    groups = [b for b, _ in by_beta]
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax_k, ax_e, ax_m = fig.subplots(1, 3)
    for gi, (b, cols) in enumerate(by_beta):
        color = COLORS[gi % len(COLORS)]
        for j, s in enumerate(cols):
            label = f"β = {b:g} ({len(cols)} starts)" if j == 0 else None
            ax_k.step(t, k[:, s], where="post", color=color, alpha=0.5, lw=1, label=label)
            ax_e.plot(t, e[:, s], color=color, alpha=0.5, lw=1, label=label)
    for ax in (ax_k, ax_e):
        ax.set_xscale("log")
        ax.set_xlabel("t (log scale)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    ax_k.set_yscale("log")
    ax_k.set_ylabel("number of clusters")
    ax_k.set_title(f"clusters (δ = {data['delta']:g}): plateaus and merges", fontsize=10)
    ax_e.set_ylabel(r"$\bar E = 2\beta e^{-\beta} E_\beta$")
    ax_e.set_title("energy staircase", fontsize=10)
    width = 0.8 / max(len(groups), 1)
    sizes_seen = [2, 4]
    for gi, b in enumerate(groups):
        stats = data["by_beta"][f"{b:g}"]
        sizes = {int(m): c for m, c in stats["clusters_merged_at_once"].items()}
        total = sum(sizes.values()) or 1
        xs = np.arange(2, max(list(sizes) + [4]) + 1)
        sizes_seen += list(sizes)
        ax_m.bar(xs + (gi - (len(groups) - 1) / 2) * width, [sizes.get(int(x), 0) / total for x in xs], width,
                 color=COLORS[gi % len(COLORS)], label=f"β = {b:g} ({stats['merge_events']} merges)")
    ax_m.set_xticks(np.arange(2, max(sizes_seen) + 1))
    ax_m.set_xlabel("clusters merging at once (between saved times)")
    ax_m.set_ylabel("fraction of merge events")
    ax_m.set_title(_merge_title(data, groups), fontsize=10)
    ax_m.legend(fontsize=8)
    fig.suptitle(title or _title(data, model, n, d))
    return fig


def _merge_title(data: dict[str, Any], groups: list[float]) -> str:
    """The measured fraction of merges of exactly two clusters, per β."""
    parts = []
    for b in groups:
        stats = data["by_beta"][f"{b:g}"]
        if stats["merge_events"]:
            frac = stats.get("pairwise_fraction")
            if frac is None:
                frac = int(stats["clusters_merged_at_once"].get("2", 0)) / stats["merge_events"]
            parts.append(f"{100 * frac:.0f}% at β = {b:g}")
        else:
            parts.append(f"none at β = {b:g}")
    return "pairwise merges (two clusters at once):\n" + ", ".join(parts)


def _title(data: dict[str, Any], model: Any, n: int | None, d: int | None) -> str:
    """"Metastability of SA (softmax), V = I on the circle, n = 32: …", each part only when it is known."""
    model = data.get("model") if model is None else model
    if isinstance(model, Mapping):
        norm = model.get("normalization")
        what = LABELS.get(norm, norm) if norm else None
    else:
        what = describe_model(model) if model is not None else None
    n = data.get("n") if n is None else n
    d = data.get("d") if d is None else d
    head = "Metastability" + (f" of {what}" if what else "")
    if d is not None:
        head += " on the circle" if int(d) == 2 else f" on S^{int(d) - 1}"
    if n is not None:
        head += f", n = {int(n)}"
    return head + ": plateaus, merges, energy staircase"
