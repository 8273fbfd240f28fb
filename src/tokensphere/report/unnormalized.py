"""The report section on pure self-attention without normalisation ((9.1)–(9.3)) and the limit geometries of
Table 1: one seeded run per row, each row's measurement against its predicted limit, and the cross table showing
that the other rows' measurements stay away from theirs; for the hyperplane row, which of its three hyperplanes
are occupied (a mirror-symmetric configuration on all three, its perturbation and random tokens on two). About
12 s on two cores."""

from __future__ import annotations

from typing import Any

from ..experiments.unnormalized import (
    PREDICTED,
    TABLE1_CASES,
    THREE_LEVEL_VARIANTS,
    table1_run,
    table1_table,
    three_level_run,
)
from ..plot.unnormalized import table1_figure, three_level_figure
from .elements import Figure, Section, Verdict, png_bytes

__all__ = ["unnormalized_section"]

# how close a measurement must come to its predicted limit (the runs freeze exponentially fast, except the
# origin, approached like t^{−1/2}: 0.027 at t = 400 for the default run)
TOLERANCE = {"polytope": 1e-12, "hyperplanes": 1e-3, "paranormal": 1e-12, "origin": 0.05}
BOOLEAN_TOL = 1e-6
# the symmetric construction: the middle tokens' |a_i| and the asymmetry |a + b| are round-off (measured 2e-16);
# max_j a_j may rise by the integration error (rtol 1e-9 on x ~ e^t: measured 6e-11)
SYMMETRY_TOL = 1e-9


def unnormalized_section(quick: bool = False) -> Section:
    """Table 1 of the paper, measured. ``quick``: 24 tokens instead of 32."""
    runs = {case: table1_run(case, n=24 if quick else 32) for case in TABLE1_CASES}
    table = table1_table(runs)
    fig = Figure(data=png_bytes(table1_figure(runs), dpi=90), caption=(
        "Top: rescaled tokens z(t) = e^{−tV} x(t) (9.2) of pure self-attention (9.1), starts faint, limits red; "
        "bottom: each row's own measurement over time and the Boolean-ness of the attention matrix."))
    levels_runs = {v: three_level_run(v) for v in THREE_LEVEL_VARIANTS}
    fig_levels = Figure(data=png_bytes(three_level_figure(levels_runs), dpi=90), caption=(
        "The hyperplane row (V = S diag(1, 0) S⁻¹, QᵀK = (SSᵀ)⁻¹): left, mirror pairs (red/blue) and tokens on "
        "⟨ψ₁, z⟩ = 0 (green) end on all three hyperplanes; middle, the same with the green tokens moved by ε leave "
        "the middle one; right, random tokens end on two. Bottom: a_i(t) = ⟨ψ₁, z_i(t)⟩, dotted the measured levels."))
    seconds = sum(r["seconds"] for r in (*runs.values(), *levels_runs.values()))
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
        "\n\nWhich three hyperplanes (arXiv:2305.05465, §4, proved in §9): a_i = ⟨ψ₁, z_i⟩ obeys "
        "ȧ_i = λ₁ Σ_j A_ij (a_j − a_i), so max_j a_j is non-increasing and min_j a_j non-decreasing, with limits b and "
        "a; every a_i converges to one of a, 0, b. A token away from 0 attends to the extreme token of its sign "
        "(scores ≈ β e^{2λ₁t}⟨Qφ₁, Kφ₁⟩ a_i a_j) and joins it; the middle level a_i ≡ 0 is unstable, so random "
        "tokens end on two hyperplanes. A reflection symmetry (mirror pairs plus tokens on a = 0, V and QᵀK "
        "invariant) pins the middle tokens to a = 0 and fills all three, {−b, 0, b} "
        "[construction in tokensphere.experiments.unnormalized.three_level_case]."
    )
    cross = {case: {k: ("n/a" if v is None else f"{v:.3g}") for k, v in row.items()} for case, row in table.items()}
    generic = runs["hyperplanes"]
    levels_table = {v: _levels_text(r) for v, r in levels_runs.items()}
    levels_table["Table 1 run (random, QᵀK = I)"] = _levels_text(generic)
    return Section("Pure self-attention without normalisation: Table 1", text, figures=[fig, fig_levels],
                   tables={"final measurements (rows: runs, columns: measurements)": _flatten(cross),
                           "hyperplane row: occupied levels ⟨ψ₁, z⟩ = c at t_max (counts)": levels_table,
                           "settings": dict(s),
                           "three-level runs": {**levels_runs["symmetric"]["settings"],
                                                "perturbation": levels_runs["perturbed"]["settings"]["perturbation"]}},
                   verdicts=_verdicts(table) + _level_verdicts(levels_runs, generic))


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


def _levels_text(run: dict[str, Any]) -> str:
    pairs = zip(run["levels"].tolist(), run["counts"].tolist())
    text = ", ".join(f"{c:.6g} ({k})" for c, k in pairs)
    if run.get("middle") is not None:
        text += f"; middle tokens max|a_i| {float(run['middle'][-1]):.2g}"
    if run.get("departure") is not None:
        text += f", left a = 0 at t = {run['departure']:g}"
    return text


def _level_verdicts(runs: dict[str, dict[str, Any]], generic: dict[str, Any]) -> list[Verdict]:
    sym, pert, rand = runs["symmetric"], runs["perturbed"], runs["generic"]
    levels, counts = sym["levels"].tolist(), tuple(sym["counts"].tolist())
    want = tuple(sym["predicted"]["counts"])
    mid = float(sym["middle"].amax())
    ok = (len(levels) == 3 and counts == want and abs(levels[0] + levels[2]) <= SYMMETRY_TOL
          and abs(levels[1]) <= SYMMETRY_TOL and mid <= SYMMETRY_TOL)
    rise = max(float(sym["max"].diff().max()), float(-sym["min"].diff().min()))
    b, a = float(sym["max"][-1]), float(sym["min"][-1])
    outer = max(abs(levels[-1] - b), abs(levels[0] - a))
    st = pert["settings"]
    pert_levels = pert["levels"].tolist()
    left = pert["departure"] is not None and min(abs(c) for c in pert_levels) > 0.1
    n_rand = [len(generic["levels"]), len(rand["levels"])]
    return [
        Verdict("Table 1, hyperplanes, mirror-symmetric tokens: all 3 hyperplanes occupied, levels {−b, 0, b}",
                f"levels {', '.join(f'{c:.6g}' for c in levels)}; counts {counts}; "
                f"middle tokens max_t |a_i(t)| = {mid:.2g}",
                f"3 levels, |c₋ + c₊|, |c₀|, |a_middle| ≤ {SYMMETRY_TOL:g}; counts (pairs, middle, pairs) = {want}",
                ok),
        Verdict("max_j a_j(t) non-increasing, min_j a_j(t) non-decreasing; outer levels = their limits b, a",
                f"largest rise {rise:.2g}; |level − limit| ≤ {outer:.2g} (b = {b:.6g})",
                f"rise ≤ {SYMMETRY_TOL:g} (integration error); |level − limit| ≤ {TOLERANCE['hyperplanes']:g}",
                rise <= SYMMETRY_TOL and outer <= TOLERANCE["hyperplanes"]),
        Verdict("The middle hyperplane is unstable: middle tokens moved to a = ε leave it",
                f"ε = {st['perturbation']:g}: left at t = {pert['departure']}; final levels "
                f"{', '.join(f'{c:.6g}' for c in pert_levels)}, counts {tuple(pert['counts'].tolist())}",
                "no level within 0.1 of 0 at t_max", left),
        Verdict("Random tokens: at most 3 hyperplanes (2 occupied: the middle level is unstable)",
                f"{n_rand[0]} levels (Table 1 run), {n_rand[1]} (same V, QᵀK as above)", "≤ 3",
                max(n_rand) <= 3),
    ]
