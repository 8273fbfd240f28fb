"""``tokensphere report``: one self-contained HTML page (DIR/index.html) from saved runs.

Each RUN may be a run folder (``tokensphere demo``/``simulate`` output), a trajectory zarr store, a
phase-diagram or sweep zarr store, or a folder of PNG figures (with optional ``<stem>.json`` data). Every input is
validated before any work (no folder is created before the page is written); the page is written atomically and
its path printed on stdout. The page embeds its images and plotly.js, so it opens offline.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

from rich.console import Console
from rich.markup import escape
from typer import Argument, Option

from ..experiments.theorems import run_checks
from ..io import validate_output_path
from ..report import sections_for, theorem_section, write_report
from ..report.sections import describe_inputs
from .options import root_threads

__all__ = ["report_command"]


def report_command(
    runs: Annotated[
        list[Path],
        Argument(help="Run folders, trajectory, phase-diagram or sweep zarr stores, or folders of PNG figures.",
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
        Option("--theorems", help="Also run the theorem checks of tokensphere.experiments.theorems (seeded "
               "experiments, ~10 s)."),
    ] = False,
) -> None:
    """Build a self-contained HTML report (figures, settings, verdicts, theorem checks, 3-D views) from saved runs."""
    folder = validate_output_path(out, overwrite=overwrite)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"out must be a directory, got the file {folder}")
    kinds = describe_inputs(runs)  # every input is validated before any work
    target = folder.resolve()
    for path in runs:  # the page and its images never go into a run it reads (a store would change under it)
        source = Path(path).expanduser().resolve()
        if target == source or source in target.parents:
            raise ValueError(f"out must not be an input or lie inside one: {folder} is inside {path}")
    status = Console(stderr=True, highlight=False, soft_wrap=True)
    sections = []
    for path in runs:  # no "reading ..." lines: bad input must leave exactly one line on stderr
        sections += sections_for(path, systems=system)
    if theorems:
        status.print("report: running the theorem checks")
        # threads: the root --threads, else tokensphere.runtime's policy
        sections.append(theorem_section(run_checks(threads=root_threads())))
    index = write_report(sections, folder, title, overwrite=True)
    rows = [v for s in sections for v in s.verdicts]
    failed = sum(v.passed is False for v in rows)
    status.print(escape(
        f"report: {len(sections)} sections from {len(runs)} input(s) "
        f"({', '.join(dict.fromkeys(kinds.values()))}); verdicts "
        f"{sum(v.passed is True for v in rows)} passed, {failed} failed"
    ))
    sys.stdout.write(f"{index}\n")
