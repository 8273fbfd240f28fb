"""``tokensphere optimal``: search for the n-point configuration of least interaction energy E_β on S^{d−1} (the
repulsive case V = −I), print what was found, write it as an (n, d) array (and a picture for d = 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer import Option

from ..io import atomic_path, validate_output_path
from ..optimal import SYMMETRIES, describe, search
from ..plot.optimal import configuration_figure
from ..plot.save import save_figure
from .options import check_figure_path
from ..validate import validate_choice, validate_int, validate_real
from .progress import stderr_progress

__all__ = ["optimal_command"]


def optimal_command(
    n: Annotated[int, Option("--n", help="Number of points (>= 2).")] = 12,
    d: Annotated[int, Option("--d", help="Dimension of the ambient space: points on S^{d-1} (>= 2).")] = 3,
    beta: Annotated[float, Option("--beta", help="Inverse temperature β > 0 of E_β.")] = 1.0,
    seed: Annotated[int, Option("--seed", help="Seed of the random starts (>= 0).")] = 0,
    restarts: Annotated[int, Option("--restarts", help="Random starts (>= 1), minimised `batch` at a time.")] = 64,
    hops: Annotated[int, Option("--hops", help="Basin-hopping moves after the restarts (>= 0).")] = 0,
    batch: Annotated[int, Option("--batch", help="Local minimisations run together (>= 1).")] = 32,
    symmetry: Annotated[str, Option("--symmetry", help="Kind of restarts: none, antipodal or mixed (half "
                                    "antipodal when n is even).")] = "mixed",
    time_limit: Annotated[float | None, Option("--time-limit", help="Stop after this many seconds (> 0).",
                                               show_default="none")] = None,
    keep_going: Annotated[bool, Option("--keep-going", help="Run every restart even after the known optimal "
                                       "configuration's energy is reached.")] = False,
    out: Annotated[Path | None, Option("--out", help="Write the best configuration here as an (n, d) .npy array.",
                                       show_default="none")] = None,
    figure: Annotated[Path | None, Option("--figure", help="Picture of the configuration (d = 3 only); default: "
                                          "next to --out, with suffix .png.", show_default="none")] = None,
    overwrite: Annotated[bool, Option("--overwrite", help="Replace existing output files.")] = False,
) -> None:
    """Minimise E_β(X) = (1/(2βn²)) Σ_i Σ_j e^{β⟨x_i,x_j⟩} over n points of S^{d−1} by Riemannian L-BFGS from random
    restarts; print the best energy and its structure (inner products, design strength, sharpness, the known
    universally optimal configuration it matches and the gap to its exact energy)."""
    n = validate_int("n", n, minimum=2)
    d = validate_int("d", d, minimum=2)
    beta = validate_real("beta", beta, minimum=0.0, strict_minimum=True)
    validate_int("seed", seed, minimum=0, maximum=2**63 - 1)
    validate_int("restarts", restarts, minimum=1)
    validate_choice("symmetry", symmetry, SYMMETRIES)
    if out is not None:
        if out.suffix != ".npy":
            raise ValueError(f"out must be a .npy file (the configuration is written as a NumPy array), got {out}")
        out = validate_output_path(out, overwrite=overwrite)
    if figure is None and out is not None and d == 3:
        figure = out.with_suffix(".png")
    if figure is not None:
        if d != 3:
            raise ValueError(f"figure is drawn for d = 3 only, got d = {d}")
        figure = check_figure_path(figure, overwrite=overwrite)
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TextColumn("{task.fields[best]}"),
               TimeElapsedColumn())
    with stderr_progress(*columns) as update:
        def progress(done: int, total: int, best: float) -> None:
            update(description="local minimisations", total=total, completed=done, best=f"log E = {best:.12g}")

        res = search(n, d, beta, restarts=restarts, hops=hops, batch=batch, symmetry=symmetry, seed=seed,
                     time_limit=time_limit, stop_at_known=not keep_going, progress=progress)
    s = describe(res.x, beta)
    console = Console(highlight=False, soft_wrap=True)
    table = Table(title=f"best of {res.restarts} restarts and {res.hops} hops: n = {n}, d = {d}, β = {beta:g}")
    table.add_column("quantity")
    table.add_column("value", overflow="fold")
    table.add_row("log E_β", f"{s.log_energy:.15g}")
    table.add_row("E_β", f"{np.exp(s.log_energy):.15g}")
    table.add_row("inner products (value × per point)",
                  escape(", ".join(f"{t:+.6f} × {m:g}" for t, m in s.inner_products)))
    table.add_row("distinct inner products ≠ 1", str(s.distinct))
    table.add_row("spherical design strength t", str(s.strength))
    table.add_row("sharp (t ≥ 2m − 1)", "yes" if s.sharp else "no")
    if s.known is None:
        table.add_row("known optimal configuration", "none known for this (n, d)")
    else:
        table.add_row("known optimal configuration", escape(f"{s.known.name}: " + ("matches" if s.matches else
                                                                               "does NOT match")))
        table.add_row("exact log E_β (known)", f"{s.known.log_energy(beta):.15g}")
        table.add_row("relative gap E/E_known − 1", f"{s.relative_gap:.3e}")
        found = "not reached" if res.found_seconds is None else (
            f"{res.found_seconds:.2f} s, after {res.found_minimisations} local minimisations")
        table.add_row("known energy reached", found)
    table.add_row("time", f"{res.seconds:.2f} s")
    console.print(table)
    written = []
    if out is not None:
        with atomic_path(out) as tmp, open(tmp, "wb") as fh:
            np.save(fh, res.x.detach().cpu().numpy())
        written.append(str(out))
    if figure is not None:
        title = f"n = {n}, β = {beta:g}" + (f": {s.known.name}" if s.matches else "")
        save_figure(configuration_figure(res.x, title=title), figure)
        written.append(str(figure))
    if written:
        console.print(escape("wrote " + ", ".join(written)))
