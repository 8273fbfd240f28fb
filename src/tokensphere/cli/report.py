"""``tokensphere report``: one self-contained HTML page (DIR/index.html) from saved runs.

Each RUN may be a run folder (``tokensphere demo``/``simulate`` output), a trajectory zarr store, a
phase-diagram zarr store, or a folder of PNG figures (with optional ``<stem>.json`` data). Every input is
checked before any work; the page is written atomically and its path printed on stdout. The page embeds its
images and plotly.js, so it opens offline.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import torch
from rich.console import Console
from rich.markup import escape
from typer import Argument, Option

from ..report import figure1_slot, sections_for, theorem_section, write_report
from ..report.sections import describe_inputs
from ..trajectory import check_output_path

__all__ = ["report_command"]


def report_command(
    runs: Annotated[
        list[Path],
        Argument(help="Run folders, trajectory or phase-diagram zarr stores, or folders of PNG figures.",
                 show_default=False, metavar="RUN"),
    ],
    out: Annotated[Path, Option(help="Report folder to create; the page is OUT/index.html.")],
    overwrite: Annotated[bool, Option("--overwrite", help="Write into an existing folder, replacing index.html.")] = False,
    title: Annotated[str, Option(help="Title of the page.")] = "tokensphere report",
    system: Annotated[
        list[int] | None,
        Option(help="System shown in the 3-D view (repeatable).", show_default="the first system of each β"),
    ] = None,
    theorems: Annotated[
        bool,
        Option("--theorems", help="Also run the theorem checks of tokensphere.theory.verify (seeded experiments, ~10 s)."),
    ] = False,
) -> None:
    """Build a self-contained HTML report (figures, settings, theorem checks, 3-D views) from saved runs."""
    folder = check_output_path(out, overwrite=overwrite)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"out must be a directory, got the file {folder}")
    kinds = describe_inputs(runs)  # every input is validated before any work
    status = Console(stderr=True, highlight=False, soft_wrap=True)
    sections = []
    for path in runs:  # no "reading ..." lines: bad input must leave exactly one line on stderr
        sections += sections_for(path, systems=system)
    if theorems:
        from ..theory.verify import run_checks

        status.print("report: running the theorem checks")
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small tensors: extra intra-op threads only add synchronisation (as in demo)
        try:
            sections.append(theorem_section(run_checks()))
        finally:
            torch.set_num_threads(threads)
    sections.append(figure1_slot())
    index = write_report(sections, folder, title, overwrite=True)
    checks = [c for s in sections for c in s.checks]
    failed = sum(c.passed is False for c in checks)
    status.print(escape(
        f"report: {len(sections)} sections from {len(runs)} input(s) "
        f"({', '.join(dict.fromkeys(kinds.values()))}); theorem checks "
        f"{sum(c.passed is True for c in checks)} passed, {failed} failed"
    ))
    sys.stdout.write(f"{index}\n")
