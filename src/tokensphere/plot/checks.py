"""One figure per theorem check, drawn from the data a check records (:attr:`CheckResult.plot`).

The data are JSON-able: ``x`` (positions or category labels), ``series`` {label: values}, ``xlabel``,
``ylabel``, optional ``logy``, ``kind`` ("line", the default, or "bars" for categories) and ``refs``
{label: value} drawn as dashed horizontal reference lines (a tolerance, a bound, a closed-form value).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..io import write_json
from .save import save_figure

__all__ = ["check_figure", "check_file_stem", "write_check_figures"]


def check_figure(name: str, data: Mapping[str, Any], *, passed: bool | None = None,
                 size: tuple[float, float] = (6.4, 3.8)) -> Figure:
    """The figure of one check: its series against ``x`` (lines or grouped bars) and its reference lines.

    name: the title (the check's statement). data: see the module docstring. passed: adds "pass"/"FAIL" to the
    title. Raises ValueError when ``data`` has no ``series``.
    """
    series = data.get("series") if isinstance(data, Mapping) else None
    if not series:
        raise ValueError("data must hold a non-empty 'series' mapping {label: values}")
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = list(data.get("x", []))
    logy = bool(data.get("logy"))
    if data.get("kind") == "bars":
        k = len(series)
        pos = np.arange(len(x))
        for i, (label, ys) in enumerate(series.items()):
            vals = np.asarray(ys, dtype=float)
            if logy:
                vals = np.maximum(vals, 1e-18)  # round-off zeros still show on a log axis
            ax.bar(pos + (i - (k - 1) / 2) * 0.8 / k, vals, width=0.8 / k, label=label)
        ax.set_xticks(pos)
        ax.set_xticklabels([str(v) for v in x], rotation=30 if len(x) > 3 else 0, ha="right" if len(x) > 3
                           else "center", fontsize=7)
    else:
        for label, ys in series.items():
            ys = np.asarray(ys, dtype=float)
            xs = np.asarray(x[: len(ys)], dtype=float) if len(x) >= len(ys) else np.arange(len(ys))
            if logy:
                ys = np.where(ys > 0, ys, np.nan)
            ax.plot(xs, ys, label=label, linewidth=1.4)
    for label, value in (data.get("refs") or {}).items():
        if value is not None and math.isfinite(float(value)) and (not logy or float(value) > 0):
            ax.axhline(float(value), color="black", linestyle="--", linewidth=1.0, label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(str(data.get("xlabel", "")))
    ax.set_ylabel(str(data.get("ylabel", "")))
    ax.legend(fontsize=7, loc="best")
    verdict = "" if passed is None else ("  [pass]" if passed else "  [FAIL]")
    ax.set_title(_wrap(name + verdict, 80), fontsize=8)
    return fig


def check_file_stem(key: str) -> str:
    """A file name for a check's key: letters, digits, '_' and '-' only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", key).strip("_") or "check"


def write_check_figures(results: Iterable[Any], folder: str | Path, keys: Iterable[str] | None = None) -> list[Path]:
    """Write ``<key>.png`` and ``<key>.json`` (the check's row and data) per check into ``folder``.

    results: :class:`~tokensphere.experiments.theorems.CheckResult` objects; keys: their names in
    :data:`~tokensphere.experiments.theorems.CHECKS` (default: check_01, check_02, …). Results without plot data
    get only the JSON. Returns the PNG paths written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    results = list(results)
    keys = list(keys) if keys is not None else [f"check_{i + 1:02d}" for i in range(len(results))]
    written = []
    for key, r in zip(keys, results):
        stem = check_file_stem(key)
        write_json(folder / f"{stem}.json", {
            "caption": r.name, "check": key, "measured": r.measured, "reference": r.reference,
            "passed": bool(r.passed), "detail": r.detail, "seconds": round(float(r.seconds), 3), "data": r.plot,
        })
        if r.plot and r.plot.get("series"):
            written.append(save_figure(check_figure(r.name, r.plot, passed=bool(r.passed)), folder / f"{stem}.png",
                                       dpi=100))
    return written


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text
