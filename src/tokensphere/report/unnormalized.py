"""The report section on pure self-attention without normalisation ((9.1)–(9.3)) and the limit geometries of
Table 1: one seeded run per row, each row's measurement against its predicted limit, and the cross table showing
that the other rows' measurements stay away from theirs. About 10 s on two cores."""

from __future__ import annotations

from typing import Any

from ..experiments.unnormalized import PREDICTED, TABLE1_CASES, table1_run, table1_table
from ..plot.unnormalized import table1_figure
from .elements import Figure, Section, Verdict, png_bytes

__all__ = ["unnormalized_section"]

# how close a measurement must come to its predicted limit (the runs freeze exponentially fast, except the
# origin, approached like t^{−1/2}: 0.027 at t = 400 for the default run)
TOLERANCE = {"polytope": 1e-12, "hyperplanes": 1e-3, "paranormal": 1e-12, "origin": 0.05}
BOOLEAN_TOL = 1e-6


def unnormalized_section(quick: bool = False) -> Section:
    """Table 1 of the paper, measured. ``quick``: 24 tokens instead of 32."""
    runs = {case: table1_run(case, n=24 if quick else 32) for case in TABLE1_CASES}
    table = table1_table(runs)
    fig = Figure(data=png_bytes(table1_figure(runs), dpi=90), caption=(
        "Top: rescaled tokens z(t) = e^{−tV} x(t) (9.2) of pure self-attention (9.1), starts faint, limits red; "
        "bottom: each row's own measurement over time and the Boolean-ness of the attention matrix."))
    seconds = sum(r["seconds"] for r in runs.values())
    s = runs["polytope"]["settings"]
    text = (
        "Without the projection onto the sphere, tokens move in R^d by ẋ_i = Σ_j A_ij V x_j (9.1) and are read through "
        "z_i(t) = e^{−tV} x_i(t) (9.2), which solve ż_i = Σ_j A_ij V (z_j − z_i) with the same attention (9.3). "
        "Table 1 of the paper (from Geshkovski–Letrouit–Polyanskiy–Rigollet, NeurIPS 2023) lists the limits by the spectrum of "
        "V; each row below is one seeded run of (9.1) (Model(projection=False), dopri5 at rtol 1e-9) from "
        f"n = {s['n']} points uniform in a cube, β = {s['beta']:g}, QᵀK = I. Measurements: the fraction of tokens at "
        "vertices of the convex hull (of z, or of its components on the top eigenspace F for paranormal V); how far "
        "the coordinates ⟨ψ₁, z_i⟩ along the leading eigenvector are from taking at most 3 values; max|x_i(t)|/"
        "max|x_i(0)| for V = −I, which decays like t^{−1/2} [derived in tokensphere.experiments.unnormalized]; and "
        f"1 − min_i max_j A_ij, zero for a Boolean attention matrix. Computed in {seconds:.0f} s."
    )
    cross = {case: {k: ("n/a" if v is None else f"{v:.3g}") for k, v in row.items()} for case, row in table.items()}
    return Section("Pure self-attention without normalisation: Table 1", text, figures=[fig],
                   tables={"final measurements (rows: runs, columns: measurements)": _flatten(cross),
                           "settings": dict(s)},
                   verdicts=_verdicts(table))


def _flatten(cross: dict[str, dict[str, str]]) -> dict[str, str]:
    return {case: "; ".join(f"{k} {v}" for k, v in row.items()) for case, row in cross.items()}


def _verdicts(table: dict[str, dict[str, Any]]) -> list[Verdict]:
    rows = []
    for case, (key, target) in PREDICTED.items():
        value = table[case][key]
        ok = abs(value - target) <= TOLERANCE[case]
        others = {c: table[c][key] for c in table if c != case and table[c][key] is not None}
        apart = min((abs(v - target) for v in others.values()), default=float("nan"))
        rows.append(Verdict(
            f"Table 1, {case}: {key} measurement → {target:g}",
            f"{value:.3g} (other runs: {', '.join(f'{c} {v:.3g}' for c, v in others.items()) or 'n/a'})",
            f"|· − {target:g}| ≤ {TOLERANCE[case]:g}; closest other run {apart:.3g} away", ok))
    b = table["polytope"]["booleanness"]
    rows.append(Verdict("V = I: the attention matrix tends to a Boolean matrix (leaders)",
                        f"1 − min_i max_j A_ij = {b:.2g}, {table['polytope']['leaders']:g} leaders",
                        f"≤ {BOOLEAN_TOL:g}", b <= BOOLEAN_TOL))
    return rows
