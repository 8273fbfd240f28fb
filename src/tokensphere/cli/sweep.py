"""``tokensphere sweep CONFIG.toml``: any parameter sweep, on Dask distributed, into one resumable zarr store.

The command reads the TOML configuration (docs/sweeps.md; ``--set`` overrides keys), validates it before any
work, and runs :func:`~tokensphere.sweep.runner.run_sweep`: on an embedded LocalCluster (one worker per core by
default, ``--workers 1`` in this process) or on an existing cluster (``--scheduler tcp://host:port``), with a
progress bar over work units and the Dask dashboard's address. The same command resumes an interrupted sweep
(Ctrl-C: exit 130; a killed run: just run it again). Bad input: one ``error: …`` line, exit 2.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from typer import Argument, Option

from ..sweep.config import SweepConfig, load_config, to_toml
from ..sweep.runner import CONNECT_TIMEOUT, run_sweep
from ..sweep.store import done_units
from .progress import stderr_progress

__all__ = ["sweep_command", "units_bar", "executor_line", "interrupted"]

EXIT_INTERRUPTED = 130  # as in tokensphere.cli (128 + SIGINT)


@contextmanager
def units_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr over work units, driven by a sweep's progress(done, total).

    The bar appears at the first call (after the store is validated); on failure or Ctrl-C it is erased, so
    only the one-line message remains (:func:`tokensphere.cli.progress.stderr_progress`)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("units"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with stderr_progress(*columns) as update:
        yield lambda done, total: update(description=description, completed=done, total=total)


def executor_line(info: dict[str, Any]) -> str:
    """One line naming where the units run, and the Dask dashboard's address when there is one."""
    if info["executor"] == "process":
        return "running in this process (no Dask)"
    where = "existing Dask cluster" if info["executor"] == "scheduler" else "local Dask cluster"
    dash = info["dashboard"] or "not served"
    count = f"{info['workers']} worker" + ("" if info["workers"] == 1 else "s")
    return f"{where}: {count}; dashboard {dash}"


def interrupted(out: Path, config: SweepConfig) -> typer.Exit:
    """Print the Ctrl-C line (how many units are saved) and return the exit to raise."""
    try:
        saved = sum(done_units(out, config))
    except Exception:  # noqa: BLE001 - interrupted before the store existed
        saved = 0
    typer.echo(f"error: interrupted (Ctrl-C); {saved} of {len(config.units())} work units are saved in {out}: "
               "run the same command again to resume", err=True)
    return typer.Exit(EXIT_INTERRUPTED)


def sweep_command(
    config: Annotated[Path, Argument(help="TOML configuration (see docs/sweeps.md and examples/sweep_small.toml).")],
    out: Annotated[Path | None, Option(help="Zarr store to create or resume (a directory).",
                                       show_default="<config stem>.zarr")] = None,
    set_: Annotated[list[str] | None, Option("--set", help="Override a key, TOML syntax: --set 'sweep.seeds = 4' "
                                                           "or --set 'grid.beta = [1, 2]'; repeatable.")] = None,
    workers: Annotated[int | None, Option(help="Worker processes of the embedded Dask LocalCluster (1 = in this "
                                               "process, no Dask).", show_default="one per core")] = None,
    scheduler: Annotated[str | None, Option(help="Address of an existing Dask scheduler (tcp://host:port), used "
                                                 "unchanged; its workers need tokensphere installed.")] = None,
    connect_timeout: Annotated[float, Option(help="Seconds to wait for --scheduler.")] = CONNECT_TIMEOUT,
    overwrite: Annotated[bool, Option("--overwrite", help="Replace an existing store of another sweep (its results are deleted when the run starts; an interrupted run then resumes the new sweep); a path that is not a zarr store or an empty folder is refused, never deleted.")] = False,
    print_config: Annotated[bool, Option("--print-config", help="Print the full configuration (defaults filled "
                                                                "in) as TOML and exit.")] = False,
) -> None:
    """Run a parameter sweep from a TOML file: any model option × seeds, statistics at the output times, one zarr
    store; resumable; on a local or an existing Dask cluster."""
    start = time.perf_counter()
    cfg = load_config(str(config), set_)
    if print_config:
        typer.echo(to_toml(cfg), nl=False)
        return
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers}")
    out = out if out is not None else Path(config.stem + ".zarr")
    units = cfg.units()
    before: list[int] = []
    started: list[str] = []

    try:
        with units_bar("sweep") as bar:
            def progress(done: int, total: int) -> None:
                if not before:
                    before.append(done)
                bar(done, total)

            def on_start(info: dict[str, Any]) -> None:
                started.append(executor_line(info))
                typer.echo(started[-1])

            ds = run_sweep(cfg, out, overwrite=overwrite, workers=workers, scheduler=scheduler,
                           connect_timeout=connect_timeout, progress=progress, on_start=on_start)
    except KeyboardInterrupt:
        raise interrupted(out, cfg) from None
    resumed = before[0] if before else 0
    axes = " × ".join(f"{name} ∈ {{{', '.join(map(str, values))}}}" for name, values in cfg.axes)
    lines = [
        f"grid: {axes} × {cfg.seeds} seeds; {cfg.n_times} times in [0, {cfg.t_max:g}]; "
        f"statistics: {', '.join(cfg.statistics)}",
        f"{len(units) - resumed} of {len(units)} work units computed now"
        + (f" ({resumed} resumed from the store)" if resumed else "")
        + f"; wall time {time.perf_counter() - start:.1f} s",
        f"variables: {', '.join(sorted(v for v in ds.data_vars if v != 'done'))}",
        f"wrote {out}",
    ]
    console = Console(highlight=False, soft_wrap=True)
    for line in lines:
        console.print(escape(line))
