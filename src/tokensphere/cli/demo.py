"""``tokensphere demo``: a small but real experiment, written to a run folder in a few seconds, then the reduced
reproduction of the paper (:mod:`tokensphere.cli.reproduce`) and its HTML report.

The experiment is :func:`tokensphere.experiments.demo_run` (n = 32 tokens on S², β ∈ {1, 9}, four seeded starts
shared by both β); its figures are :func:`tokensphere.plot.demo_figures`. This module parses the options,
writes the run folder and prints. The demo's entries of ``--out`` are written all or none
(:func:`tokensphere.io.atomic_entries`): in place, since the report records their paths, but an interrupted or
failed demo removes what it wrote and puts back what was there, so ``--out`` is left as it was and a rerun needs no
``--overwrite``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

from rich.console import Console
from rich.markup import escape
from typer import Option

from ..experiments.demo import DELTA, DEMO_BETAS, N, RTOL, SCALED_LABEL, demo_run, demo_summary
from ..experiments.describe import describe_model
from ..io import atomic_entries, validate_output_path, write_json
from ..model import Model
from ..plot import demo_figures
from ..runtime import torch_threads
from ..validate import validate_int
from .options import command_threads
from .simulate import format_counts, progress_bar

__all__ = ["demo_command", "FILES"]

FILES = {
    "trajectory.zarr": "the run: positions (time, system, token, dim), β, steps, seeds, metadata",
    "tokens.png": "tokens on S² at a few times, one start per β, with their paths",
    "energy.png": "normalised energy Ē(t) = 2β e^(−β) E_β(t) per system (non-decreasing)",
    "clusters.png": f"number of clusters over time, δ = {DELTA:g} and the scale-aware {SCALED_LABEL}",
    "summary.json": "settings, seeds, final cluster counts, energy check, wall time, metadata",
}
# what the demo writes in --out: the run folder, and with the report the layout of .reproduce (see its docstring)
RUN_ENTRIES = ("run",)
REPORT_ENTRIES = ("probe", "figures", "phase", "figure5", "index.html")


def demo_command(
    out: Annotated[Path, Option(help="Run folder to create (must not exist unless --overwrite). Written all or "
                                     "none: an interrupted demo leaves it as it was.")] = Path("runs/demo"),
    overwrite: Annotated[
        bool, Option("--overwrite", help="Reuse an existing folder, replacing the demo files (other files there are "
                                         "kept).")
    ] = False,
    seed: Annotated[int, Option(help="Seed of the initial states (start k uses stream (seed, k)).")] = 0,
    n_seeds: Annotated[int, Option(hidden=True, help="Starts per β.")] = 4,
    t_max: Annotated[float, Option(hidden=True, help="Final time.")] = 30.0,
    save_at: Annotated[int, Option(hidden=True, help="Number of saved times.")] = 151,
    report: Annotated[bool, Option("--report/--no-report", help="After the run, reproduce Figures 2–6 (reduced) "
                                   "and write the HTML report DIR/index.html.")] = True,
    quick: Annotated[bool, Option(hidden=True, help="Tiny grids (for tests).")] = False,
) -> None:
    """Reproduce the paper at reduced size: a clustering run (n = 32 on S², β = 1 and 9), Figures 1–6, the
    anchor-vs-adaptive comparison, the theorem checks, the model variants, optimal configurations and control,
    in one HTML report (DIR/index.html)."""
    from .reproduce import reproduce

    validate_int("seed", seed, minimum=0)  # before any work
    folder = _run_folder(out, overwrite)
    # the root --threads, else the thread policy of tokensphere.runtime (one thread for n = 32); the demo's entries
    # of --out are written in place (the report records their paths), all of them or none
    entries = RUN_ENTRIES + (REPORT_ENTRIES if report else ())
    with torch_threads(command_threads(N)), atomic_entries(folder, entries):
        _demo(folder / "run", seed, n_seeds, t_max, save_at)
        if report:
            index = reproduce(folder, seed=seed, quick=quick)
            Console(highlight=False, soft_wrap=True).print(escape(f"report: {index}"))


def _run_folder(path: Path, overwrite: bool) -> Path:
    folder = validate_output_path(path, overwrite=overwrite)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"out must be a directory (a run folder), got the file {folder}")
    return folder


def _demo(out: Path, seed: int, n_seeds: int, t_max: float, save_at: int) -> None:
    start = time.perf_counter()
    folder = _run_folder(out, True)
    console = Console(highlight=False, soft_wrap=True)
    betas = ", ".join(f"{b:g}" for b in DEMO_BETAS)
    console.print(
        f"demo: {describe_model(Model(beta=list(DEMO_BETAS)))}, n = {N} tokens on S², β ∈ {{{betas}}} "
        f"× {n_seeds} seeded starts, dopri5 (rtol {RTOL:g}), t ∈ [0, {t_max:g}], {save_at} saved times"
    )
    with progress_bar("integrating", t_max) as update:
        run = demo_run(seed=seed, n_seeds=n_seeds, t_max=t_max, save_at=save_at, progress=update,
                       metadata={"cli": {"command": "demo"}})
    folder.mkdir(parents=True, exist_ok=True)
    traj = run.traj
    traj.save(folder / "trajectory.zarr", overwrite=True)
    demo_figures(run, folder)
    wall = time.perf_counter() - start
    write_json(folder / "summary.json", demo_summary(run, wall, FILES))

    steps, t_end = traj.steps.tolist(), float(traj.times[-1])
    lines = [
        f"integrated {traj.shape[1]} systems in {traj.metadata['wall_seconds']:.2f} s "
        f"({min(steps)}–{max(steps)} steps per system); total {wall:.1f} s",
        f"clusters at t = {t_end:g} (δ = {DELTA:g}):   {format_counts(run.final['fixed'])}",
        f"clusters at t = {t_end:g} ({SCALED_LABEL}): {format_counts(run.final['scaled'])}",
        "energy Ē(t) " + ("non-decreasing in every system" if run.monotone else "NOT monotone")
        + f" (largest relative step against the trend {run.drift:.2g}, tolerance {RTOL:g})",
        f"wrote {folder}/",
    ]
    lines += [f"  {name:<16} {what}" for name, what in FILES.items()]
    for line in lines:
        console.print(escape(line))
