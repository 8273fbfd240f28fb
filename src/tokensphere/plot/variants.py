"""Figures of the attention variants and Transformer blocks: clustering under SA, USA and Sinkhorn attention, the
branches of Example 9.3, the β → ∞ limit, and splitting errors. Drawing only; the data come from
:mod:`tokensphere.experiments.variants` and :mod:`tokensphere.experiments.layers`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["normalization_clustering_figure", "example_9_3_figure", "hardmax_limit_figure", "splitting_figure"]

LABELS = {"softmax": "SA (softmax)", "uniform": "USA (1/n)", "sinkhorn": "Sinkhorn (doubly stochastic)",
          "hardmax": "hardmax (β = ∞)"}


def _figure(width: float, height: float, cols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, cols, k + 1) for k in range(cols)]


def normalization_clustering_figure(times: np.ndarray, clusters: Mapping[str, np.ndarray],
                                    pairs: Mapping[str, np.ndarray], *, delta: float | None = None,
                                    title: str | None = None) -> Figure:
    """Mean cluster count and mean pair fraction against time, one line per normalisation (shaded: min–max over
    the starts). times: (T,); clusters, pairs: name → (T, B) arrays with the same names; delta: the threshold
    of both statistics (named on the y-axes when given). The default title names the normalisations and the
    number of starts. Raises ValueError when the names or shapes do not match."""
    times = np.asarray(times, float).reshape(-1)
    if not clusters or set(clusters) != set(pairs):
        raise ValueError(f"clusters and pairs must name the same normalisations, got {list(clusters)} and "
                         f"{list(pairs)}")
    starts = set()
    for name in clusters:
        for what, arr in (("clusters", clusters[name]), ("pairs", pairs[name])):
            shape = np.shape(arr)
            if len(shape) != 2 or shape[0] != len(times):
                raise ValueError(f"{what}[{name!r}] must have shape (T, B) with T = len(times) = {len(times)}, "
                                 f"got {shape}")
            starts.add(shape[1])
    fig, (a, b) = _figure(8.4, 3.2, 2)
    for k, name in enumerate(clusters):
        c, p = np.asarray(clusters[name], float), np.asarray(pairs[name], float)
        style = dict(color=f"C{k}", label=LABELS.get(name, name), linestyle=("-", "--", ":")[k % 3])
        a.plot(times, c.mean(1), **style)
        a.fill_between(times, c.min(1), c.max(1), color=f"C{k}", alpha=0.15)
        b.plot(times, p.mean(1), **style)
    at = "" if delta is None else f", δ = {delta:g}"
    a.set(xlabel="t", ylabel=f"clusters, ⟨xᵢ, xⱼ⟩ > 1 − δ{at}\n(mean over starts)", yscale="log")
    b.set(xlabel="t", ylabel=f"fraction of pairs with\n⟨xᵢ, xⱼ⟩ > 1 − δ{at}")
    a.legend(fontsize=8)
    count = "/".join(str(s) for s in sorted(starts))
    names = ", ".join(LABELS.get(name, name).split(" (")[0] for name in clusters)
    fig.suptitle(title or f"Clustering under {names} from the same {count} starts (lines: mean; shaded: min–max)",
                 fontsize=10)
    return fig


def example_9_3_figure(runs: Sequence, *, title: str = "Example 9.3: three continuations of z₃") -> Figure:
    """The plane of Example 9.3: z₁, z₂ (fixed) and z₃'s path under each tie policy (solid, the Euler run) with its
    closed-form branch (dashed). runs: :class:`~tokensphere.experiments.variants.Example93` records."""
    fig, (ax,) = _figure(4.4, 3.8)
    ax.scatter([1, -1], [1, 1], color="k", zorder=3)
    ax.annotate("z₁", (1, 1), textcoords="offset points", xytext=(6, -10))
    ax.annotate("z₂", (-1, 1), textcoords="offset points", xytext=(-16, -10))
    for k, r in enumerate(runs):
        ax.plot(r.z3[:, 0], r.z3[:, 1], color=f"C{k}", label=f"{r.policy} → {r.branch}")
        ax.plot(r.exact[:, 0], r.exact[:, 1], color=f"C{k}", linestyle="--", linewidth=0.8)
    ax.scatter([0], [0], color="C3", marker="x", zorder=3)
    ax.set(xlim=(-1.3, 1.3), ylim=(-0.2, 1.3), aspect="equal", xlabel="z₁ coordinate", ylabel="z₂ coordinate",
           title=title)
    ax.legend(fontsize=7, loc="lower center")
    return fig


def hardmax_limit_figure(betas: Sequence[float], distances: Sequence[float], *, rate: float, prefactor: float,
                         gap: float, t_max: float) -> Figure:
    """sup_{t ≤ T} |z^β − z^∞| against β (log scale), the fitted C e^{−rate·β} and the slope of the score gap."""
    fig, (ax,) = _figure(4.6, 3.4)
    b = np.asarray(betas, float)
    ax.semilogy(b, distances, "o-", label="measured")
    ax.semilogy(b, prefactor * np.exp(-rate * b), "--", label=f"fit: e^(−{rate:.3f} β)")
    ax.semilogy(b, distances[0] * np.exp(-gap * (b - b[0])), ":", label=f"gap slope e^(−{gap:.3f} β)")
    ax.set(xlabel="β", ylabel=f"max over [0, {t_max:g}] of |z^β − z^∞|", title="(9.4) → (9.5) as β → ∞")
    ax.legend(fontsize=8)
    return fig


def splitting_figure(steps: Sequence[float], errors: Mapping[str, Sequence[float]], *,
                     title: str = "local error of one block against the flow of (2.8)") -> Figure:
    """Local errors against h (log–log) per scheme, with reference slopes h² (order 1) and h³ (order 2)."""
    fig, (ax,) = _figure(4.8, 3.6)
    h = np.asarray(steps, float)
    for k, (name, e) in enumerate(errors.items()):
        ax.loglog(h, e, "o-", color=f"C{k}", label=name)
    e0 = max(float(np.max(v)) for v in errors.values())
    ax.loglog(h, e0 * (h / h[0]) ** 2, "k:", linewidth=0.8, label="h² (first order)")
    ax.loglog(h, e0 * (h / h[0]) ** 3 / 10, "k--", linewidth=0.8, label="h³ (second order)")
    ax.set(xlabel="layer step h", ylabel="max |block − flow|", title=title)
    ax.legend(fontsize=7)
    return fig
