"""``tokensphere check [NAME...]``: run the seeded theorem checks (:mod:`tokensphere.experiments.theorems`), print a
table, write one figure (and its data) per check, exit 1 if a prediction fails. The files appear in ``--out`` all
together once every check has run (:func:`tokensphere.io.atomic_folder`); nothing is created before."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer import Argument, Option

from ..experiments.theorems import ALIASES, CHECKS, SIZES, TIME_LIMIT, run_checks
from ..io import atomic_folder, validate_output_folder
from ..plot.checks import write_check_figures
from .options import root_threads

__all__ = ["check_command", "DEFAULT_OUT"]

DEFAULT_OUT = Path("runs/check")


def check_command(
    names: Annotated[list[str] | None, Argument(help=f"Checks to run (default: all): {', '.join(CHECKS)}.",
                                                show_default=False)] = None,
    only: Annotated[list[str] | None, Option("--only", help="Same as NAME (repeatable).")] = None,
    out: Annotated[Path, Option("--out", help="Folder for one PNG figure and one JSON file per check.")] = DEFAULT_OUT,
    size: Annotated[str, Option(help=f"Problem sizes: {' or '.join(SIZES)}.")] = "default",
    time_limit: Annotated[float, Option("--time-limit", help="Seconds allowed per check; a check that runs "
                                        "longer fails.")] = TIME_LIMIT,
) -> None:
    """Run the theorem checks: each compares a seeded simulation with a closed form, a reduced ODE, a theorem's
    bound or a confidence interval, under a time limit.

    Prints the table, writes DIR/<check>.png and DIR/<check>.json, and exits with code 1 if any check fails."""
    chosen = list(names or []) + list(only or [])
    keys = list(dict.fromkeys(ALIASES.get(k, k) for k in chosen)) or list(CHECKS)  # each check once
    out = validate_output_folder(out)  # before the work: a file there, or an unwritable parent, fails now
    # threads: the root --threads, else run_checks' policy
    results = run_checks(keys, size=size, time_limit=time_limit, threads=root_threads())
    table = Table(title="theorem checks (seeded experiments)")
    for col in ("check", "statement", "measured", "reference", "time", "result"):
        table.add_column(col, overflow="fold")
    for key, r in zip(keys, results):
        table.add_row(key, escape(r.name), escape(r.measured), escape(r.reference), f"{r.seconds:.1f} s",
                      "[green]pass[/green]" if r.passed else "[red]FAIL[/red]")
    console = Console(highlight=False, soft_wrap=True)
    console.print(table)
    for key, r in zip(keys, results):
        if not r.passed and r.detail:
            console.print(escape(f"{key}: {r.detail}"))
    with atomic_folder(out) as stage:  # the folder (when missing) is made here, after the checks
        written = write_check_figures(results, stage, keys)
    failed = sum(not r.passed for r in results)
    console.print(escape(f"{len(results) - failed} passed, {failed} failed; wrote {len(written)} figures and "
                         f"{len(results)} JSON files to {out}/"))
    if failed:
        raise typer.Exit(1)
