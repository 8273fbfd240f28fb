"""Figures of the control demonstrations (:mod:`tokensphere.experiments.control`): the training loss and the
cloud on S² before and after training. Display only: the demonstration computed everything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .arrays import as_numpy
from .save import save_figure
from .tokens import _draw_sphere

__all__ = ["control_figures", "loss_figure", "clouds_figure"]

_CLASS_COLOURS = ("tab:orange", "tab:blue")
_TASK_LABEL = {"transport": "measure-to-measure transport (loss W₂²)",
               "classify": "classification by clustering (loss mean 1 − ⟨x_i(T), class pole⟩)",
               "interpolate": "interpolation of n points (loss mean |x_i(T) − y_i|²)"}


def loss_figure(losses: Any, *, title: str = "") -> Figure:
    """The training loss against the step (log scale). losses: (steps + 1,)."""
    y = as_numpy(losses)
    fig = Figure(figsize=(5.0, 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.semilogy(np.arange(y.size), y, color="tab:blue", linewidth=1.4)
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def clouds_figure(task: str, start: Any, before: Any, after: Any, target: Any = None, labels: Any = None, *,
                  title: str = "") -> Figure:
    """Three views of S²: x(0) (with the target), x(T) under the untrained weights, x(T) trained.

    start, before, after: (n, 3). target: (m, 3) target points/cloud, or the class poles (2, 3) for classify.
    labels: (n,) class labels (colours); interpolation draws a segment from each x_i(T) to its target y_i.
    """
    pts = {"x(0)": as_numpy(start), "x(T), untrained": as_numpy(before), "x(T), trained": as_numpy(after)}
    tgt = None if target is None else as_numpy(target)
    lab = None if labels is None else as_numpy(labels).astype(int)
    fig = Figure(figsize=(10.5, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    for k, (name, x) in enumerate(pts.items()):
        ax = fig.add_subplot(1, 3, k + 1, projection="3d")
        _draw_sphere(ax)
        if tgt is not None and task != "classify":
            ax.scatter(*tgt.T, s=14, marker="x", color="tab:red", depthshade=False, label="target")
        if tgt is not None and task == "classify":
            for c in range(tgt.shape[0]):
                ax.scatter(*tgt[c], s=90, marker="*", color=_CLASS_COLOURS[c], edgecolor="k", depthshade=False)
        colours = "tab:blue" if lab is None else [_CLASS_COLOURS[c] for c in lab]
        ax.scatter(*x.T, s=10, c=colours, depthshade=False, label="tokens")
        if task == "interpolate" and k > 0 and tgt is not None:
            for a, b in zip(x, tgt):
                ax.plot(*np.stack([a, b]).T, color="0.4", linewidth=0.6)
        ax.set_title(name, fontsize=9)
    fig.suptitle(title or _TASK_LABEL.get(task, task), fontsize=10)
    return fig


def control_figures(demo: Any, folder: str | Path) -> dict[str, Path]:
    """Write ``loss.png`` and ``clouds.png`` of a :class:`~tokensphere.experiments.control.ControlDemo` into
    ``folder`` (atomically). Returns {file name: path}."""
    folder = Path(folder)
    m = demo.metrics
    title = f"{demo.task}: loss {m['loss_before']:.3g} → {m['loss_after']:.3g} (÷{m['reduction']:.3g})"
    if "test_accuracy" in m:
        title += f"; held-out accuracy {m['accuracy_before']:.2f} → {m['test_accuracy']:.2f}"
    out = {"loss.png": folder / "loss.png", "clouds.png": folder / "clouds.png"}
    save_figure(loss_figure(demo.losses, title=title), out["loss.png"])
    save_figure(clouds_figure(demo.task, demo.start, demo.before, demo.after, demo.target, demo.labels,
                              title=_TASK_LABEL[demo.task] + (" — held-out cloud" if demo.task == "classify" else "")),
                out["clouds.png"])
    return out
