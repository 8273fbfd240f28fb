"""``tokensphere check``: run the seeded theorem checks (:mod:`tokensphere.experiments.theorems`) and print a table."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from typer import Option

from ..experiments.theorems import CHECKS, run_checks

__all__ = ["check_command"]


def check_command(
    only: Annotated[list[str] | None, Option("--only", help=f"Run only these checks (repeatable): {', '.join(CHECKS)}.")]
    = None,
) -> None:
    """Run the theorem checks (equiangular ODEs, energy monotonicity, gradient flow, cone collapse, Wendel, τ*).

    Exit code 1 if any check fails."""
    results = run_checks(list(only) if only else None)
    table = Table(title="theorem checks (seeded experiments)")
    for col in ("check", "measured", "reference", "result"):
        table.add_column(col, overflow="fold")
    for r in results:
        table.add_row(r.name, r.measured, r.reference, "[green]pass[/green]" if r.passed else "[red]FAIL[/red]")
    Console(highlight=False).print(table)
    failed = sum(not r.passed for r in results)
    Console(highlight=False).print(f"{len(results) - failed} passed, {failed} failed")
    if failed:
        raise typer.Exit(1)
