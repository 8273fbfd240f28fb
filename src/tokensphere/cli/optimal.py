"""``tokensphere optimal``: search for the n-point configuration of least interaction energy E_β on S^{d−1} (the
repulsive case V = −I), print what was found, write it as an (n, d) array (and a picture for d = 3)."""

from __future__ import annotations

import math
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
from ..optimal.search import POLISH_GRACE
from ..plot.optimal import configuration_figure
from ..plot.save import save_figure
from .options import check_figure_path
from ..validate import validate_choice, validate_int, validate_real
from .progress import stderr_progress

__all__ = ["optimal_command"]

MAX_LISTED = 40  # distinct inner products printed at most (the first and last half of them)


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
    time_limit: Annotated[float | None, Option("--time-limit", help="Stop the search after this many seconds "
                                               "(> 0). Checked before every optimiser iteration: the search ends "
                                               f"within {POLISH_GRACE:g} × the limit plus about one iteration past "
                                               f"it (the final polish of the best gets that {POLISH_GRACE:g} × the "
                                               "limit); start-up, the printout and writing --out/--figure come on "
                                               "top.",
                                               show_default="none")] = None,
    keep_going: Annotated[bool, Option("--keep-going", help="Run every restart even after the known optimal "
                                       "configuration is reached (its energy and inner products).")] = False,
    out: Annotated[Path | None, Option("--out", help="Write the best configuration here as an (n, d) .npy array.",
                                       show_default="none")] = None,
    figure: Annotated[Path | None, Option("--figure", help="Picture of the configuration (d = 3 only); default: "
                                          "next to --out, with suffix .png.", show_default="none")] = None,
    overwrite: Annotated[bool, Option("--overwrite", help="Replace existing output files.")] = False,
) -> None:
    """Minimise E_β(X) = (1/(2βn²)) Σ_i Σ_j e^{β⟨x_i,x_j⟩} over n points of S^{d−1} by Riemannian L-BFGS from random
    restarts; print the best energy and its structure (inner products, design strength, sharpness, the known
    universally optimal configuration it matches and the gap to its exact energy). Energies are computed in log
    form (finite for any β); the search compares the interaction part F_β = E_β − e^β/(2βn), since for large β
    the constant self term e^β/(2βn) swamps the differences of E_β."""
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
    table.add_row("E_β", exp_text(s.log_energy))
    table.add_row("log F_β, F_β = E_β − e^β/(2βn)", f"{s.log_interaction:.15g}")
    ips = [f"{t:+.6f} × {m:g}" for t, m in s.inner_products]
    if len(ips) > MAX_LISTED:  # an unstructured configuration: n² values, too many to print (or render quickly)
        ips = ips[:MAX_LISTED // 2] + [f"… {len(ips) - MAX_LISTED} more …"] + ips[-(MAX_LISTED // 2):]
    table.add_row("inner products (value × per point)", escape(", ".join(ips)))
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
        table.add_row("exact log F_β (known)", f"{s.known.log_interaction_energy(beta):.15g}")
        table.add_row("relative gap F/F_known − 1", f"{s.relative_interaction_gap:.3e}")
        found = "not reached" if res.found_seconds is None else (
            f"{res.found_seconds:.2f} s, after {res.found_minimisations} local minimisations")
        table.add_row("known configuration reached (energy and inner products)", found)
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


def exp_text(log_value: float) -> str:
    """e^{log_value} in decimal, formed from its logarithm so that it never overflows (E_β ≈ e^β/(2βn) passes the
    float64 range near β = 710). Digits: 15 significant where the value is a float64, otherwise as many as the
    logarithm's round-off leaves (about 12 for log_value ≈ 1000)."""
    if not math.isfinite(log_value):  # nan, inf, or −inf (a zero energy)
        return "0" if log_value == -math.inf else str(log_value)
    if abs(log_value) < 700:
        return f"{math.exp(log_value):.15g}"
    exponent = math.floor(log_value / math.log(10))
    mantissa = math.exp(log_value - exponent * math.log(10))
    if mantissa >= 10:  # round-off at a power of ten
        mantissa, exponent = mantissa / 10, exponent + 1
    digits = max(1, min(15, math.floor(-math.log10(8 * math.ulp(log_value)))))
    return f"{mantissa:.{digits - 1}f}e{exponent:+d}"
