"""Phase diagrams (Figures 3 and 5) drawn from a dataset of :func:`tokensphere.sweep.phase.run_phase_diagram`.

One panel per dimension d: time t on the x-axis, β on the y-axis, the clustered-pair fraction
P(⟨x_i(t), x_j(t)⟩ > 1 − δ) in colour ("RdBu_r": 0 blue, 1 dark red), and the black curve Γ_{∞,δ} (6.12) read
from the dataset's ``gamma_transition_time(beta)`` (t*(β) against β; β whose t* lies beyond t_max are left out).
Two colour scales: linear (the paper's) and logarithmic, where values below ``LOG_FLOOR`` are drawn with the
colour of the floor (a fraction of 0 has no logarithm); the log scale shows where clustering starts, the small
fractions that the linear scale renders as plain blue (the authors' code drew both).
Grid cells of units not yet computed (``done`` false, NaN data) are grey. Nothing is computed here except
the difference of two datasets in :func:`phase_difference_figure`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, Normalize, TwoSlopeNorm
from matplotlib.figure import Figure

from .arrays import cell_edges

__all__ = ["phase_figure", "phase_difference_figure", "gamma_curve_points", "LOG_FLOOR", "CMAP"]

CMAP = "RdBu_r"  # 0 → blue, 1 → dark red (Figure 3)
LOG_FLOOR = 1e-3  # lower end of the log colour scale; smaller values (and 0) are drawn in the floor's colour
MISSING = "0.8"  # grey for grid cells not computed yet
SCALES = ("linear", "log")


def gamma_curve_points(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(t*, β) of the curve Γ_{∞,δ} stored in ``ds``: the fine curve ``gamma_curve_time(gamma_beta)`` when
    present, else ``gamma_transition_time(beta)`` at the grid's β; β whose transition time is NaN (after
    t_max) are left out. Returns two 1-D float arrays of equal length."""
    if "gamma_curve_time" in ds:
        time, axis = "gamma_curve_time", "gamma_beta"
    elif "gamma_transition_time" in ds:
        time, axis = "gamma_transition_time", "beta"
    else:
        raise ValueError("dataset has no gamma_transition_time variable (is it a phase-diagram store?)")
    t_star = np.asarray(ds[time].values, dtype=float)
    beta = np.asarray(ds[axis].values, dtype=float)
    keep = np.isfinite(t_star)
    return t_star[keep], beta[keep]


def phase_figure(
    datasets: xr.Dataset | Sequence[xr.Dataset],
    *,
    variable: str = "clustered_fraction",
    scale: str = "linear",
    log_floor: float = LOG_FLOOR,
    dims: Sequence[int] | None = None,
    labels: Sequence[str] | None = None,
    curve: bool = True,
    level: float | None = None,
    title: str | None = None,
    panel_width: float = 3.6,
    panel_height: float = 3.2,
) -> Figure:
    """Figure 3 (or 5): one panel per (dataset, d), t horizontal, β vertical, with the curve Γ_{∞,δ}.

    datasets: one phase-diagram dataset, or several (e.g. the four ensembles of Figure 5, one panel each).
    variable: a (d, beta, t) variable in [0, 1] (``clustered_fraction``, ``single_cluster_probability``).
    scale: "linear" (0 to 1) or "log" (``log_floor`` to 1, values below the floor clipped to it).
    dims: the d values to draw (default: all). labels: one text per dataset prefixed to its panel titles
    (default: the ensemble, when it is not the identity). level: also draw the empirical contour at this value
    (e.g. 0.5, to compare with Γ_{∞,δ} of (6.12)) as a dashed grey line.
    Panel titles carry d, n, batch and δ. Returns a Figure (Agg canvas). Raises ValueError for an unknown
    scale or variable, or a d that is not in the dataset.
    """
    dsets = [datasets] if isinstance(datasets, xr.Dataset) else list(datasets)
    if not dsets:
        raise ValueError("datasets must hold at least one phase-diagram dataset")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if not (0 < log_floor < 1):
        raise ValueError(f"log_floor must lie in (0, 1), got {log_floor}")
    if labels is not None and len(labels) != len(dsets):
        raise ValueError(f"labels must have one entry per dataset ({len(dsets)}), got {len(labels)}")
    panels = []
    for k, ds in enumerate(dsets):
        _check_variable(ds, variable)
        ds_dims = [int(d) for d in ds["d"].values]
        chosen = ds_dims if dims is None else [int(d) for d in dims]
        missing = [d for d in chosen if d not in ds_dims]
        if missing:
            raise ValueError(f"dims {missing} are not in the dataset (it has d = {ds_dims})")
        label = labels[k] if labels is not None else _ensemble_label(ds)
        panels += [(ds, d, label) for d in chosen]

    cmap = colormaps[CMAP].with_extremes(bad=MISSING)
    norm: Normalize = Normalize(0.0, 1.0) if scale == "linear" else LogNorm(log_floor, 1.0)
    fig, axes = _panel_grid(len(panels), panel_width, panel_height, title)
    mesh = None
    for ax, (ds, d, label) in zip(axes, panels):
        z = np.asarray(ds[variable].sel(d=d).transpose("beta", "t").values, dtype=float)
        shown = z if scale == "linear" else np.where(np.isnan(z), np.nan, np.clip(z, log_floor, 1.0))
        mesh = _heat_map(ax, ds, shown, cmap, norm, _panel_title(ds, d, label), curve=curve, curve_width=1.6)
        t, beta = _grid(ds)
        if level is not None and np.isfinite(z).sum() > 3 and len(t) > 1 and len(beta) > 1:
            ax.contour(t, beta, np.ma.masked_invalid(z), levels=[level], colors="0.35", linewidths=1.0,
                       linestyles="--")
    what = "P(⟨x_i, x_j⟩ > 1 − δ)" if variable == "clustered_fraction" else variable.replace("_", " ")
    cbar = fig.colorbar(mesh, ax=axes, shrink=0.9)
    cbar.set_label(what + (f" (log scale, floor {log_floor:g})" if scale == "log" else ""))
    if curve:
        axes[0].legend(loc="upper right", fontsize=8, framealpha=0.8)
    if title:
        fig.suptitle(title)
    return fig


def phase_difference_figure(
    a: xr.Dataset,
    b: xr.Dataset,
    *,
    variable: str = "clustered_fraction",
    labels: tuple[str, str] = ("a", "b"),
    dims: Sequence[int] | None = None,
    curve: bool = True,
    title: str | None = None,
    panel_width: float = 3.6,
    panel_height: float = 3.2,
) -> Figure:
    """The difference a − b of a variable on the same (d, β, t) grid, e.g. the anchor preset minus the
    adaptive one on the same initial states; diverging map ("RdBu_r") centred at 0, symmetric limits
    ±max|a − b|. Returns a Figure. Raises ValueError when the grids (d, beta, t) differ."""
    _check_variable(a, variable)
    _check_variable(b, variable)
    for c in ("d", "beta", "t"):
        if a[c].shape != b[c].shape or not np.allclose(a[c].values, b[c].values):
            raise ValueError(f"the two datasets must share the {c} grid to be subtracted")
    diff = a[variable] - b[variable]
    all_d = [int(d) for d in a["d"].values]
    chosen = all_d if dims is None else [int(d) for d in dims]
    if any(d not in all_d for d in chosen):
        raise ValueError(f"dims {chosen} must be among d = {all_d}")
    vmax = float(np.nanmax(np.abs(diff.values))) if np.isfinite(diff.values).any() else 0.0
    vmax = vmax if vmax > 0 else 1e-12
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)
    cmap = colormaps[CMAP].with_extremes(bad=MISSING)
    fig, axes = _panel_grid(len(chosen), panel_width, panel_height, title)
    mesh = None
    for ax, d in zip(axes, chosen):
        z = np.asarray(diff.sel(d=d).transpose("beta", "t").values, dtype=float)
        mesh = _heat_map(ax, a, z, cmap, norm, _panel_title(a, d, None, show_preset=False), curve=curve,
                         curve_width=1.2, curve_label=None)
    cbar = fig.colorbar(mesh, ax=axes, shrink=0.9)
    cbar.set_label(f"Δ {variable.replace('_', ' ')} (a − b)")
    fig.suptitle(title or f"{labels[0]} − {labels[1]}")
    return fig


def _panel_grid(count: int, panel_width: float, panel_height: float, title: Any) -> tuple[Figure, list]:
    """A figure with ``count`` panels, at most three per row (Agg canvas), room for a title when given."""
    cols = min(count, 3)
    rows = -(-count // cols)
    figsize = (panel_width * cols + 0.9, panel_height * rows + (0.4 if title else 0.0))
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(rows, cols, p + 1) for p in range(count)]


def _grid(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(ds["t"].values, dtype=float), np.asarray(ds["beta"].values, dtype=float)


def _heat_map(ax, ds: xr.Dataset, z: np.ndarray, cmap, norm: Normalize, title: str, *, curve: bool,
              curve_width: float, curve_label: str | None = r"$\Gamma_{\infty,\delta}$"):
    """One (t, β) panel: z (β, t) in colour (NaN grey), the curve Γ of ``ds`` in black, axes and title.
    Each value fills the cell around its grid point (edges midway between grid points, :func:`cell_edges`), so
    a grid of one β or one time is drawn as one row or column of its own scale's width; the view spans the
    grid points (the cells around a lone β or time). Returns the mesh (for the colour bar)."""
    t, beta = _grid(ds)
    t_edges, beta_edges = cell_edges(t), cell_edges(beta)
    mesh = ax.pcolormesh(t_edges, beta_edges, np.ma.masked_invalid(z), cmap=cmap, norm=norm, shading="flat",
                         rasterized=True)
    if curve:
        ts, bs = gamma_curve_points(ds)
        ax.plot(ts, bs, color="black", linewidth=curve_width, label=curve_label, gid="gamma_curve")
    ax.set_xlim(*((t[0], t[-1]) if len(t) > 1 else t_edges))
    ax.set_ylim(*((beta[0], beta[-1]) if len(beta) > 1 else beta_edges))
    if len(t) == 1:  # one column: the axis names its one time, not the cell's edges
        ax.set_xticks(t)
    if len(beta) == 1:
        ax.set_yticks(beta)
    ax.set_xlabel("t")
    ax.set_ylabel("β")
    ax.set_title(title, fontsize=9)
    return mesh


def _check_variable(ds: xr.Dataset, variable: str) -> None:
    if variable not in ds or tuple(ds[variable].dims) != ("d", "beta", "t"):
        allowed = [v for v in ds.data_vars if tuple(ds[v].dims) == ("d", "beta", "t")]
        raise ValueError(
            f"variable must be a (d, beta, t) variable of the dataset ({', '.join(allowed)}), got {variable!r}"
        )


def _spec(ds: xr.Dataset) -> dict[str, Any]:
    try:
        return json.loads(ds.attrs.get("spec", "{}"))
    except (TypeError, ValueError):
        return {}


def _ensemble_label(ds: xr.Dataset) -> str | None:
    ens = _spec(ds).get("ensemble") or {}
    if not ens or (ens.get("score") == "identity" and ens.get("value") == "identity"):
        return None
    text = f"B: {ens.get('score')}, V: {ens.get('value')}"
    if ens.get("share", "independent") != "independent":
        text += f", {ens['share']}"
    if ens.get("redraw"):
        text += f", redraw τ = {ens['redraw']:g}"
    return text


def _panel_title(ds: xr.Dataset, d: int, label: str | None, *, show_preset: bool = True) -> str:
    s = _spec(ds)
    parts = [f"d = {d}"]
    for key, name in (("n", "n"), ("batch", "batch"), ("delta", "δ")):
        if key in s:
            parts.append(f"{name} = {s[key]:g}")
    if s.get("normalization") == "uniform":
        parts.append("USA")
    if show_preset and s.get("preset") == "anchor":
        parts.append("anchor")
    head = f"{label}\n" if label else ""
    return head + ", ".join(parts)
