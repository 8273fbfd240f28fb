"""``tokensphere figures``: the paper's figures that need no long sweep, each with its data next to the image.

Writes into ``--out``:

* ``fig2_regimes.png`` + ``.json`` — Figure 2 from :func:`tokensphere.theory.regimes` (optional overlay of the
  measured single-cluster frequencies of a phase-diagram store, ``--measured``);
* ``fig4_circle.png`` + ``.json`` + ``.zarr`` — Figure 4: SA on the circle, β = 4 and 9, n = 32, t = 0, 18, 30;
* ``fig4_counts.png`` + ``.json`` — the distribution over seeded starts of the cluster count at t = 18 and 30;
* ``fig6_g.png`` + ``.json`` — Figure 6: g and ±τ*_β (and the general-d panel);
* ``metastability_timescales.png`` + ``.json`` — T₁ and the lifetimes of the metastable plateaus against β, with the
  fitted exponential growth of the two-cluster lifetime (Problem 1);
* ``metastability.png`` + ``.json`` — cluster counts and the energy staircase over log t at β = 4 and 9 on the
  circle, and the sizes of merge events (mostly pairwise): Problem 1 (metastability);
* ``movie_sphere.gif`` / ``.mp4`` + ``.json`` + ``.zarr`` — the README movie (SA, n = 64, d = 3, β = 1, T = 15,
  dt = 0.1) and ``movie_circle.gif`` / ``.mp4`` + ``.json`` + ``.zarr`` — the same on the circle (d = 2).

The files appear all together when every figure is done (:func:`tokensphere.io.atomic_folder`): an interrupted or
failed run leaves ``--out`` as it was, so a rerun needs no ``--overwrite``; other files in ``--out`` are kept.

Reduced size by default (fewer seeds, frames and pixels: about a minute on 2 cores); ``--full-size`` uses the
README settings (all 151 frames) and 512 seeded starts per β. Figures 3 and 5 come from ``phase-diagram``.
The runs and their statistics are :mod:`tokensphere.experiments`'s, the drawings :mod:`tokensphere.plot`'s; this
module chooses the sizes, writes the files and reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from typer import Option

from ..experiments.circle import (
    FIG4_BETAS,
    FIG4_DELTA,
    FIG4_N,
    FIG4_TIMES,
    circle_counts,
    circle_runs,
    cluster_count_distribution,
    distribution_json,
)
from ..experiments.metastability import metastability_data, metastability_runs
from ..experiments.timescales import time_scales
from ..experiments.movie import MOVIE, movie_run
from ..experiments.reproduction import single_cluster_points
from ..io import atomic_folder, run_metadata, validate_output_folder, write_json
from ..plot import animate, circle_figure, cluster_count_distribution_figure, metastability_figure, save_figure
from ..plot.gfunction import FIG6_BETAS, g_data, g_figure
from ..plot.regimes import regimes_data, regimes_figure
from ..plot.timescales import timescales_figure
from ..runtime import torch_threads
from ..validate import validate_int
from .options import command_threads
from .progress import stderr_progress

__all__ = ["figures_command", "SIZES"]

# reduced (default) and full-size settings
SIZES = {
    "reduced": {"starts": 64, "movie_frames": 51, "movie_size": 4.0, "movie_dpi": 80, "fps": 10.0, "meta_starts": 16,
                "ts_betas": (1.0, 2.0, 3.0, 4.0), "ts_starts": 6, "ts_t_max": 3000.0},
    "full": {"starts": 512, "movie_frames": None, "movie_size": 6.0, "movie_dpi": 100, "fps": 15.0,
             "meta_starts": 64, "ts_betas": (1.0, 2.0, 3.0, 4.0, 5.0), "ts_starts": 16, "ts_t_max": 20000.0},
}
TIMESCALES_N = 12  # tokens of the time-scale runs: enough for several plateaus, small enough for long times
COUNT_TIMES = (18.0, 30.0)
STEPS = ("fig2", "fig4", "fig4_counts", "fig6", "metastability", "timescales", "movie_sphere", "movie_circle")


def figures_command(
    out: Annotated[Path, Option(help="Folder for the figures and their data (created if missing). The files "
                                     "appear all together at the end; an interrupted run leaves none.")] = Path(
        "runs/figures"
    ),
    full_size: Annotated[bool, Option("--full-size", help="README movie settings (151 frames, larger) and 512 "
                                                          "seeded starts per β for the count distribution.")] = False,
    seed: Annotated[int, Option(help="Master seed of every random start.")] = 0,
    n: Annotated[int, Option(help="Tokens for Figures 2 and 4.")] = FIG4_N,
    starts: Annotated[int | None, Option(help="Seeded starts per β for the Figure 4 count distribution.",
                                         show_default="64, or 512 with --full-size")] = None,
    fig4_start: Annotated[int, Option(help="Which seeded start Figure 4 shows (the same for β = 4 and 9).")] = 0,
    half_sphere: Annotated[bool, Option("--half-sphere", help="Movies start in a half-sphere (last coordinate "
                                                              "made non-negative), as the authors' option.")] = False,
    measured: Annotated[Path | None, Option(help="Phase-diagram store whose single-cluster probability at its "
                                                  "last time is overlaid on Figure 2.")] = None,
    overwrite: Annotated[bool, Option("--overwrite", help="Replace the figure files already in --out (other files "
                                                          "there are kept).")] = False,
) -> None:
    """Write Figures 2, 4 (+ cluster-count distribution over seeds), 6 and the GIF/MP4 animations, with data."""
    t_start = time.perf_counter()
    size = SIZES["full" if full_size else "reduced"]
    starts = size["starts"] if starts is None else starts
    validate_int("starts", starts, minimum=1)
    validate_int("n", n, minimum=2)
    validate_int("seed", seed, minimum=0)
    validate_int("fig4_start", fig4_start, minimum=0)
    if fig4_start >= starts:
        raise ValueError(f"fig4_start must be < starts = {starts}, got {fig4_start}")
    folder = validate_output_folder(out)
    measured_points = single_cluster_points(measured) if measured is not None else None
    targets = _targets(folder)
    existing = [p for p in targets if p.exists()]
    if existing and not overwrite:
        raise ValueError(f"out already holds {existing[0].name} (and {len(existing) - 1} more); pass --overwrite")

    written: list[Path] = []
    timings: dict[str, float] = {}
    # a few hundred small systems: the root --threads, else the thread policy of tokensphere.runtime (one thread
    # below LARGE_N tokens); every file is written into a staging folder and the set moved into --out at the end
    with torch_threads(command_threads(max(n, MOVIE["n"]))), _steps_bar() as step, atomic_folder(folder) as stage:
        meta = run_metadata(dtype=torch.float64, device="cpu")  # records the threads in force
        step("Figure 2 (regimes)")
        timings["fig2"] = _timed(lambda: written.extend(_fig2(stage, n, measured_points, measured, meta)))
        step("Figure 4 (circle, β = 4 and 9)")
        timings["fig4"] = _timed(lambda: written.extend(_fig4(stage, n, seed, fig4_start, meta)))
        step(f"Figure 4 counts ({starts} starts per β)")
        timings["fig4_counts"] = _timed(lambda: written.extend(_fig4_counts(stage, n, seed, starts, meta)))
        step("Figure 6 (g and τ*)")
        timings["fig6"] = _timed(lambda: written.extend(_fig6(stage, meta)))
        step("metastability (plateaus, merges, energy staircase)")
        timings["metastability"] = _timed(lambda: written.extend(_metastability(stage, seed, size, meta)))
        step("metastability time scales (T₁, plateau lifetimes over β)")
        timings["timescales"] = _timed(lambda: written.extend(_timescales(stage, seed, size, meta)))
        step("movie on S² (d = 3)")
        timings["movie_sphere"] = _timed(
            lambda: written.extend(_movie(stage, "movie_sphere", 3, seed, half_sphere, size, meta)))
        step("movie on the circle (d = 2)")
        timings["movie_circle"] = _timed(
            lambda: written.extend(_movie(stage, "movie_circle", 2, seed, half_sphere, size, meta)))
        step(None)
    wall = time.perf_counter() - t_start
    console = Console(highlight=False, soft_wrap=True)
    console.print(escape(
        f"figures ({'full size' if full_size else 'reduced size'}, seed {seed}) in {wall:.1f} s: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
    ))
    console.print(escape(f"wrote {len(written)} files in {folder}/"))
    for p in written:  # names in the staging folder, now in --out
        console.print(escape(f"  {p.name}"))


# ------------------------------------------------------------------------------------------------------------
def _targets(folder: Path) -> list[Path]:
    names = ["fig2_regimes.png", "fig2_regimes.json", "fig4_circle.png", "fig4_circle.json", "fig4_circle.zarr",
             "fig4_counts.png", "fig4_counts.json", "fig6_g.png", "fig6_g.json", "metastability.png",
             "metastability.json", "metastability_timescales.png", "metastability_timescales.json"]
    for m in ("movie_sphere", "movie_circle"):
        names += [f"{m}.gif", f"{m}.mp4", f"{m}.json", f"{m}.zarr"]
    return [folder / name for name in names]


def _run_meta(meta: dict, traj: Any) -> dict:
    """The command's metadata (``threads``: the count in force for the command) with the integration's own wall
    time and thread count (``simulate`` chooses the latter by its policy; its store records it too)."""
    return {**meta, "wall_seconds": traj.metadata.get("wall_seconds"),
            "integration_threads": traj.metadata.get("threads")}


def _timed(call: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


@contextmanager
def _steps_bar() -> Iterator[Callable[[str | None], None]]:
    """A progress bar over the figure steps (stderr), erased on failure or Ctrl-C. step(description) starts the
    next step; step(None) marks all done."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    done = [0]
    with stderr_progress(*columns) as update:
        def step(description: str | None) -> None:
            if description is None:
                update(completed=len(STEPS), total=len(STEPS), description="figures done")
                return
            update(completed=done[0], total=len(STEPS), description=description)
            done[0] += 1

        yield step


def _fig2(folder: Path, n: int, measured: dict | None, store: Path | None, meta: dict) -> list[Path]:
    overlay = None if measured is None else {k: measured[k] for k in ("d", "beta", "value")}
    label = "measured single-cluster frequency" + (f" at t = {measured['time']:g}" if measured else "")
    fig = regimes_figure(n, measured=overlay, measured_label=label)
    png = save_figure(fig, folder / "fig2_regimes.png")
    data = {"figure": "Figure 2 (regimes)", **regimes_data(n), "measured": measured, "metadata": meta}
    write_json(folder / "fig2_regimes.json", data)
    return [png, folder / "fig2_regimes.json"]


def _fig4(folder: Path, n: int, seed: int, start: int, meta: dict) -> list[Path]:
    traj = circle_runs(FIG4_BETAS, start + 1, n=n, seed=seed, t_max=FIG4_TIMES[-1], save_at=301)
    systems = [i * (start + 1) + start for i in range(len(FIG4_BETAS))]
    png = save_figure(circle_figure(traj, systems=systems, snapshot_times=FIG4_TIMES, delta=FIG4_DELTA),
                      folder / "fig4_circle.png")
    counts = circle_counts(traj, systems, FIG4_TIMES, FIG4_DELTA)
    traj.save(folder / "fig4_circle.zarr", overwrite=True)
    data = {
        "figure": "Figure 4 (SA on the circle)",
        "settings": {"n": n, "d": 2, "betas": list(FIG4_BETAS), "snapshot_times": list(FIG4_TIMES),
                     "delta": FIG4_DELTA, "solver": traj.solver.describe(), "saved_times": int(traj.shape[0])},
        "seeds": {"seed": seed, "start": start,
                  "note": "start k is drawn from numpy SeedSequence([seed, k]); the same start for both betas"},
        "systems_in_zarr": systems,
        "cluster_counts": {f"{b:g}": {f"{t:g}": int(counts[r, c]) for c, t in enumerate(FIG4_TIMES)}
                           for r, b in enumerate(FIG4_BETAS)},
        "paper": "2 clusters at beta = 4 and 3 at beta = 9, persisting from t = 18 to t = 30",
        "trajectory": "fig4_circle.zarr",
        "metadata": _run_meta(meta, traj),
    }
    write_json(folder / "fig4_circle.json", data)
    return [png, folder / "fig4_circle.json", folder / "fig4_circle.zarr"]


def _fig4_counts(folder: Path, n: int, seed: int, starts: int, meta: dict) -> list[Path]:
    traj = circle_runs(FIG4_BETAS, starts, n=n, seed=seed, t_max=COUNT_TIMES[-1], save_at=[0.0, *COUNT_TIMES])
    dist = cluster_count_distribution(traj, COUNT_TIMES, FIG4_DELTA)
    png = save_figure(cluster_count_distribution_figure(traj, times=COUNT_TIMES, delta=FIG4_DELTA),
                      folder / "fig4_counts.png")
    data = {
        "figure": "Figure 4, beyond the paper: cluster counts over seeded starts",
        "settings": {"n": n, "d": 2, "betas": list(FIG4_BETAS), "times": list(COUNT_TIMES), "delta": FIG4_DELTA,
                     "starts_per_beta": starts, "solver": traj.solver.describe()},
        "seeds": {"seed": seed, "starts": list(range(starts)),
                  "note": "start k is drawn from numpy SeedSequence([seed, k]); the same starts for both betas"},
        "counts": distribution_json(dist),
        "counts_note": "{beta: {t: {number of clusters: number of starts}}}",
        "metadata": _run_meta(meta, traj),
    }
    write_json(folder / "fig4_counts.json", data)
    return [png, folder / "fig4_counts.json"]


def _metastability(folder: Path, seed: int, size: dict, meta: dict) -> list[Path]:
    traj = metastability_runs(starts=size["meta_starts"], seed=seed)
    data = metastability_data(traj)
    png = save_figure(metastability_figure(data, model=traj.model, n=traj.positions.shape[2],
                                           d=traj.positions.shape[3]), folder / "metastability.png")
    data.update({"figure": "Metastability (Problem 1)", "seed": seed, "starts": size["meta_starts"],
                 "model": traj.model.describe(), "solver": traj.solver.describe(), "metadata": _run_meta(meta, traj)})
    write_json(folder / "metastability.json", data)
    return [png, folder / "metastability.json"]


def _timescales(folder: Path, seed: int, size: dict, meta: dict) -> list[Path]:
    n = TIMESCALES_N
    traj = metastability_runs(betas=size["ts_betas"], starts=size["ts_starts"], n=n, t_max=size["ts_t_max"],
                              n_times=150, seed=seed)
    data = time_scales(traj)
    png = save_figure(timescales_figure(data), folder / "metastability_timescales.png")
    fit = data["fit"]
    data.update({
        "figure": "Metastability time scales (Problem 1)",
        "caption": f"T₁ (first time with ≤ n/2 clusters) and the lifetimes of the k-cluster plateaus over β on "
                   f"the circle, n = {n}, {size['ts_starts']} seeded starts per β; the two-cluster median "
                   f"lifetime grows like e^({fit['slope']:.2f} β) (least squares over {fit['points']} β).",
        "seed": seed, "model": traj.model.describe(), "solver": traj.solver.describe(),
        "metadata": _run_meta(meta, traj)})
    write_json(folder / "metastability_timescales.json", data)
    return [png, folder / "metastability_timescales.json"]


def _fig6(folder: Path, meta: dict) -> list[Path]:
    png = save_figure(g_figure(), folder / "fig6_g.png")
    data = {"figure": "Figure 6 (g and tau*)", "betas": list(FIG6_BETAS), "tau_range": [-np.pi, np.pi],
            "ylim": [-2, 7], **g_data(), "metadata": meta}
    write_json(folder / "fig6_g.json", data)
    return [png, folder / "fig6_g.json"]


def _movie(folder: Path, name: str, d: int, seed: int, half: bool, size: dict, meta: dict) -> list[Path]:
    start = "half" if half else "uniform"
    traj = movie_run(d=d, seed=seed, start=start)
    kw = {"max_frames": size["movie_frames"], "size": size["movie_size"], "dpi": size["movie_dpi"], "fps": size["fps"]}
    gif = animate(traj, folder / f"{name}.gif", **kw)
    mp4 = animate(traj, folder / f"{name}.mp4", **kw)
    traj.save(folder / f"{name}.zarr", overwrite=True)
    T = traj.shape[0]
    frames = T if size["movie_frames"] is None else min(T, size["movie_frames"])
    data = {
        "figure": f"animation on {'S²' if d == 3 else 'the circle'} (authors' README movie setting)",
        "settings": {**{k: v for k, v in MOVIE.items() if k != "d"}, "d": d, "start": start,
                     "solver": traj.solver.describe(), "saved_times": T, "frames_drawn": frames, **kw},
        "seeds": {"seed": seed, "note": "start drawn from numpy SeedSequence([seed, 0])"},
        "files": [gif.name, mp4.name, f"{name}.zarr"],
        "metadata": _run_meta(meta, traj),
    }
    write_json(folder / f"{name}.json", data)
    return [gif, mp4, folder / f"{name}.json", folder / f"{name}.zarr"]
