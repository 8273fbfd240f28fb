"""``tokensphere phase-diagram``: Figures 3 and 5 — the clustered-pair fraction over (d, β, t), resumably.

The command builds a :class:`~tokensphere.sweep.phase.PhaseDiagram` from the options (or the paper's full
Figure 3 setting with ``--full``), runs :func:`~tokensphere.sweep.phase.run_phase_diagram` (one sweep of
``tokensphere sweep`` with a built-in configuration, :meth:`PhaseDiagram.to_sweep`) into a zarr store
with a progress bar over work units, optionally draws the figure (linear and log colour scales, with the curve
Γ_{∞,δ}) and prints a short summary. The store keeps every finished unit: after Ctrl-C (exit 130) the same
command resumes where it stopped. Bad input: one ``error: …`` line, exit 2, before any work.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
import xarray as xr
from rich.console import Console
from rich.markup import escape
from typer import Option

from ..ensembles import SCORES, SHARING, VALUES, Ensemble
from ..io import write_json
from ..io.atomic import open_zarr_store
from ..sweep.phase import FIGURE3_FULL, PRESETS, PhaseDiagram, run_phase_diagram
from .options import check_figure_path, split_values
from .sweep import executor_line, interrupted, units_bar

__all__ = ["phase_diagram_command", "parse_dims", "build_spec", "units_bar", "write_phase_figures"]

DEFAULT = PhaseDiagram()  # the reduced Figure 3 (minutes on 2 cores)
GRID_OPTIONS = ("d", "beta_min", "beta_max", "n_beta", "t_max", "n_times", "n", "batch", "delta", "normalization")


def parse_dims(values: Sequence[str] | None) -> tuple[int, ...] | None:
    """Dimensions from repeated and/or comma-separated options: ``["2", "8,32"]`` → ``(2, 8, 32)``; None if absent.
    Raises ValueError naming d for a token that is not an integer."""
    if not values:
        return None
    return tuple(split_values(values, int, "d must be an integer >= 2"))


def build_spec(options: dict[str, Any], *, full: bool) -> PhaseDiagram:
    """The PhaseDiagram from CLI options (None = default). ``full``: the paper's Figure 3 grid (FIGURE3_FULL);
    grid options may not be combined with it. Raises ValueError naming the offending option."""
    given = [k for k in GRID_OPTIONS if options.get(k) is not None]
    if full and given:
        names = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ValueError(f"--full fixes the Figure 3 grid; do not combine it with {names}")
    base = FIGURE3_FULL if full else DEFAULT
    kw = base.describe()
    kw.pop("ensemble")
    if not full:
        dims = parse_dims(options.get("d"))
        if dims is not None:
            kw["dims"] = dims
        b_lo = options.get("beta_min") if options.get("beta_min") is not None else base.betas[0]
        b_hi = options.get("beta_max") if options.get("beta_max") is not None else base.betas[-1]
        k = options.get("n_beta") if options.get("n_beta") is not None else len(base.betas)
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"n_beta must be an integer >= 1, got {k!r}")
        for name, v in (("beta_min", b_lo), ("beta_max", b_hi)):
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v}")
        if b_hi < b_lo or (k > 1 and b_hi == b_lo):
            raise ValueError(f"beta_max must be {'>' if k > 1 else '>='} beta_min"
                             f"{' for n_beta > 1' if k > 1 else ''}, got beta_min = {b_lo:g}, beta_max = {b_hi:g}")
        if k == 1 and options.get("beta_max") is not None and b_hi != b_lo:
            raise ValueError(f"n_beta = 1 runs the single β = beta_min = {b_lo:g}, and beta_max = {b_hi:g} would be "
                             "ignored: drop --beta-max or set it equal to --beta-min")
        kw["betas"] = tuple(float(b) for b in np.round(np.linspace(b_lo, b_hi, k), 10))
        for name in ("t_max", "n_times", "n", "batch", "delta", "normalization"):
            if options.get(name) is not None:
                kw[name] = options[name]
    if options.get("preset") == "anchor":
        given = [f"--{name}" for name in ("rtol", "atol") if options.get(name) is not None]
        if given:  # the anchor preset is the authors' Euler step: no tolerance enters it (nor the store's identity)
            verb = "apply" if len(given) > 1 else "applies"
            raise ValueError(f"{' and '.join(given)} {verb} to the adaptive preset; the anchor preset takes the "
                             "authors' fixed Euler step")
    for name in ("preset", "rtol", "atol", "seed", "betas_per_unit"):
        if options.get(name) is not None:
            kw[name] = options[name]
    ensemble = Ensemble(
        score=options.get("score") or "identity",
        value=options.get("value") or "identity",
        share=options.get("share") or "independent",
        redraw=options.get("redraw"),
    )
    return PhaseDiagram(**kw, ensemble=ensemble)


def write_phase_figures(ds: xr.Dataset, path: Path, *, store: Path | None = None) -> list[Path]:
    """Draw the phase diagram at ``path`` (linear scale) and ``<stem>_log<suffix>`` (log scale), with a JSON
    sidecar ``<path>.json`` naming the store, the settings and the Γ curve drawn. Returns the files written."""
    from ..plot import phase_figure, save_figure
    from ..plot.phase import LOG_FLOOR, gamma_curve_points

    linear = save_figure(phase_figure(ds, scale="linear"), path)
    log_path = path.with_name(f"{path.stem}_log{path.suffix}")
    logf = save_figure(phase_figure(ds, scale="log", log_floor=LOG_FLOOR), log_path)
    ts, bs = gamma_curve_points(ds)
    side = {
        "figure": "phase diagram (Figure 3/5): clustered_fraction over (t, beta), one panel per d",
        "store": str(store.resolve()) if store is not None else None,
        "variable": "clustered_fraction",
        "scales": {"linear": str(linear), "log": str(logf), "log_floor": LOG_FLOOR},
        "gamma_curve": {"t_star": ts.tolist(), "beta": bs.tolist(),
                        "note": "Gamma_{inf,delta} (6.12): t*(beta), NaN beyond t_max omitted"},
        "spec": json.loads(ds.attrs.get("spec", "{}")),
        "metadata": json.loads(ds.attrs.get("metadata", "{}")),
    }
    sidecar = path.with_name(path.name + ".json")
    write_json(sidecar, side)
    return [linear, logf, sidecar]


def phase_diagram_command(
    out: Annotated[Path, Option(help="Zarr store to create or resume (a directory).")],
    d: Annotated[
        list[str] | None,
        Option(help="Dimension(s) d; repeat the option or give a comma list (2,8,32).", show_default="2,8,32"),
    ] = None,
    beta_min: Annotated[float | None, Option(help="Smallest β.", show_default=f"{DEFAULT.betas[0]:g}")] = None,
    beta_max: Annotated[float | None, Option(help="Largest β.", show_default=f"{DEFAULT.betas[-1]:g}")] = None,
    n_beta: Annotated[int | None, Option(help="Number of β values, equally spaced.",
                                         show_default=str(len(DEFAULT.betas)))] = None,
    t_max: Annotated[float | None, Option(help="Final time.", show_default=f"{DEFAULT.t_max:g}")] = None,
    n_times: Annotated[int | None, Option(help="Number of output times in [0, t-max].",
                                          show_default=str(DEFAULT.n_times))] = None,
    n: Annotated[int | None, Option(help="Tokens per system.", show_default=str(DEFAULT.n))] = None,
    batch: Annotated[int | None, Option(help="Random starts per (d, β).", show_default=str(DEFAULT.batch))] = None,
    delta: Annotated[float | None, Option(help="Pair threshold: ⟨x_i, x_j⟩ > 1 − δ.",
                                          show_default=f"{DEFAULT.delta:g}")] = None,
    normalization: Annotated[str | None, Option(help="softmax (SA) or uniform (USA).", show_default="softmax")] = None,
    score: Annotated[str | None, Option(help=f"Figure 5 score matrix B = QᵀK: {', '.join(SCORES)}.",
                                        show_default="identity")] = None,
    value: Annotated[str | None, Option(help=f"Figure 5 value matrix: {', '.join(VALUES)}.",
                                        show_default="identity")] = None,
    share: Annotated[str | None, Option(help=f"Matrix sharing: {', '.join(SHARING)}.",
                                        show_default="independent")] = None,
    redraw: Annotated[float | None, Option(help="Redraw the matrices every τ time units (layers).")] = None,
    preset: Annotated[str | None, Option(help=f"Solver preset: {' or '.join(PRESETS)} (the authors' Euler step 0.1).",
                                         show_default=DEFAULT.preset)] = None,
    rtol: Annotated[float | None, Option(help="Relative tolerance (adaptive preset).",
                                         show_default=f"{DEFAULT.rtol:g}")] = None,
    atol: Annotated[float | None, Option(help="Absolute tolerance (adaptive preset).",
                                         show_default=f"{DEFAULT.atol:g}")] = None,
    seed: Annotated[int | None, Option(help="Master seed (starts and matrices).", show_default="0")] = None,
    betas_per_unit: Annotated[int | None, Option(help="β values per work unit (the unit of resume and parallelism).",
                                                 show_default=str(DEFAULT.betas_per_unit))] = None,
    workers: Annotated[int, Option(help="Parallel worker processes (local Dask cluster); 1 = in process.")] = 1,
    scheduler: Annotated[str | None, Option(help="Address of an existing Dask scheduler (tcp://host:port) to run "
                                                 "the units on instead (see docs/sweeps.md).")] = None,
    full: Annotated[bool, Option("--full", help="The paper's full Figure 3 grid (6 dims, 90 β, batch 1024, "
                                                "200 times): hours; resumable.")] = False,
    overwrite: Annotated[bool, Option("--overwrite", help="Replace an existing store holding different settings (its results are deleted when the run starts); a path that is not a zarr store or an empty folder is refused, never deleted.")] = (
        False
    ),
    figure: Annotated[Path | None, Option(help="Draw the figure here after the run (.png/.pdf/.svg; the log-scale "
                                                "version goes to <stem>_log<suffix>). An existing figure file is "
                                                "redrawn (a resumed run draws its store again); a directory is "
                                                "refused.")] = None,
) -> None:
    """Phase diagram (Figures 3 and 5): P(⟨x_i(t), x_j(t)⟩ > 1 − δ) over (d, β, t), resumable; optional figure."""
    start = time.perf_counter()
    options = dict(locals())
    spec = build_spec(options, full=full)
    if workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers}")
    if figure is not None:
        _check_figure_path(figure)
    _check_store_path(out, overwrite)
    units = spec.units()
    done_before: list[int] = []

    def first_call(done: int, total: int) -> None:
        if not done_before:
            done_before.append(done)

    try:
        with units_bar("phase diagram") as bar:
            def progress(done: int, total: int) -> None:
                first_call(done, total)
                bar(done, total)

            def on_start(info: dict[str, Any]) -> None:
                if info["executor"] != "process":
                    typer.echo(executor_line(info))

            ds = run_phase_diagram(spec, out, overwrite=overwrite, workers=workers, scheduler=scheduler,
                                   progress=progress, on_start=on_start)
    except KeyboardInterrupt:
        raise interrupted(out, spec.to_sweep()) from None
    files = write_phase_figures(ds, figure, store=out) if figure is not None else []
    _print_summary(spec, ds, out, files, done_before[0] if done_before else 0, len(units), workers,
                   time.perf_counter() - start)


def _check_figure_path(figure: Path) -> None:
    """The figure and its log-scale sibling: suffix, folder, not a directory (files are redrawn)."""
    check_figure_path(figure, overwrite=True)
    check_figure_path(figure.with_name(f"{figure.stem}_log{figure.suffix}"), overwrite=True)


def _check_store_path(out: Path, overwrite: bool) -> None:
    """An existing --out must be a phase-diagram store (resume) unless --overwrite replaces it."""
    if not out.exists() or overwrite:
        return
    if not out.is_dir():
        raise ValueError(f"out must be a zarr store (a directory), got the file {out}")
    try:
        with open_zarr_store(out) as ds:
            ok = "spec" in ds.attrs and "done" in ds
    except Exception:  # noqa: BLE001 - any reading failure means "not a store we wrote"
        ok = False
    if not ok:
        raise ValueError(f"out path {out} exists and is not a phase-diagram store; pass --overwrite to replace it")


def _print_summary(spec: PhaseDiagram, ds: xr.Dataset, out: Path, files: list[Path], resumed: int, total: int,
                   workers: int, wall: float) -> None:
    b = spec.betas
    ens = spec.ensemble
    ens_text = "" if ens.is_identity else f", ensemble B: {ens.score}, V: {ens.value}, {ens.share}" + (
        f", redraw τ = {ens.redraw:g}" if ens.redraw else "")
    lines = [
        f"grid: d ∈ {{{', '.join(map(str, spec.dims))}}}, {len(b)} β in [{b[0]:g}, {b[-1]:g}], "
        f"{spec.n_times} times in [0, {spec.t_max:g}]; n = {spec.n}, batch = {spec.batch}, δ = {spec.delta:g}, "
        f"{'SA' if spec.normalization == 'softmax' else 'USA'}, preset {spec.preset}{ens_text}",
        f"{total - resumed} of {total} work units computed now"
        + (f" ({resumed} resumed from the store)" if resumed else "")
        + f", {workers} worker{'s' if workers > 1 else ''}; wall time {wall:.1f} s",
    ]
    frac = ds["clustered_fraction"].isel(t=-1)
    parts = []
    for d in spec.dims:
        f = frac.sel(d=d).values
        above = [bb for bb, v in zip(b, f) if v > 0.5]
        parts.append(f"d = {d}: {len(above)} of {len(b)} β, up to β = {max(above):g}" if above else f"d = {d}: none")
    lines.append(f"clustered fraction > 1/2 at t = {spec.t_max:g}: " + "; ".join(parts))
    lines.append(f"wrote {out}")
    lines += [f"wrote {p}" for p in files]
    console = Console(highlight=False, soft_wrap=True)
    for line in lines:
        console.print(escape(line))
