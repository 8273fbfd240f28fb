"""The report section on the repulsive case V = −I and optimal configurations (§9 of the paper, Theorem 9.2 in its
correct direction: the known universally optimal configurations minimise E_β; descent must not go below them)."""

from __future__ import annotations

import math

import torch

from ..experiments.optimal import OptimalExperiment, run_optimal
from ..optimal.known import known_for
from ..plot.optimal import configuration_figure, flow_arrival_figure
from .elements import Figure, Section, Verdict, png_bytes

__all__ = ["optimal_section", "optimal_experiment_section"]

ENERGY_TOL = 1e-9  # |log E_β − log E_β(known)| accepted as equal (the optimiser's gtol makes the error ≈ 1e-16)


def optimal_section(exp: OptimalExperiment) -> Section:
    """A :class:`Section` from an :class:`~tokensphere.experiments.optimal.OptimalExperiment`: the flow's arrival
    (figure, arrival times), the optimiser's icosahedron (picture, structure) and the known-configuration table
    (exact against found energy, design strengths), with verdicts."""
    flow, opt, s = exp.flow, exp.optimiser, exp.optimiser_structure
    arrived = [float(t) for t in flow.arrival_time if math.isfinite(float(t))]
    flow_matches = sum(st.matches for st in flow.structures)
    known = known_for(flow.n, flow.d)  # what the flow and the optimiser should find, for the experiment's (n, d)
    target = known.name if known is not None else "known optimal configuration (none is listed for this n, d)"
    shape = f"n = {flow.n}, d = {flow.d}"
    figs = [
        Figure(data=png_bytes(flow_arrival_figure(flow.times, flow.field_norm, flow.log_gap, flow.arrival_time, flow.tol,
                                             title=f"repulsive flow, n = {flow.n}, d = {flow.d}, β = {flow.beta:g}"),
                         dpi=90),
               caption="V = −I flow: field norm and energy gap; arrival when max_i |ẋ_i| < tol"),
        Figure(data=png_bytes(configuration_figure(opt.x, title=f"optimiser, n = {opt.n}, β = {opt.beta:g}"), dpi=90),
               caption="best configuration of the random-start search (edges: nearest neighbours)"),
    ]
    flow_table = {f"start {b}": (f"t = {float(t):.1f}" if math.isfinite(float(t)) else "not arrived") + ", " + (
        st.known.name if st.matches else "other") for b, (t, st) in enumerate(zip(flow.arrival_time, flow.structures))}
    opt_table = {
        "restarts": opt.restarts, "seconds": f"{opt.seconds:.2f}",
        "log E_β found": f"{s.log_energy:.15g}",
        "log E_β exact (known)": "none" if s.known is None else f"{s.known.log_energy(opt.beta):.15g}",
        "inner products (value × per point)": ", ".join(f"{t:+.4f} × {m:g}" for t, m in s.inner_products),
        "design strength": s.strength, "sharp": s.sharp,
    }
    known_table = {r.name: f"exact {r.exact:.12f} | found {r.found:.12f} | t-design {r.strength_known} "
                           f"(found {r.strength_found}) | {'sharp' if r.sharp else 'not sharp'}" for r in exp.table}
    verdicts = [
        Verdict("V = −I flow arrives (field below tolerance)", f"{len(arrived)}/{len(flow.arrival_time)} starts",
                "all starts", len(arrived) == len(flow.arrival_time),
                f"tol {flow.tol:g}, arrival t in [{min(arrived, default=float('nan')):.0f}, "
                f"{max(arrived, default=float('nan')):.0f}]"),
        Verdict(f"the flow's arrival state is the {target} ({shape})", f"{flow_matches}/{len(flow.structures)}",
                "its inner-product distribution "
                + (", ".join(f"{t:+.4g} × {m}" for t, m in known.distribution) if known is not None else "")
                + " and its exact energy", flow_matches == len(flow.structures)),
        Verdict("the optimiser finds the known configuration from random starts",
                f"gap {s.gap:.1e}" if s.gap is not None else "no known", "|log E − log E_exact| ≤ 1e-9",
                bool(s.matches)),
    ]
    for r in exp.table:
        verdicts.append(Verdict(f"{r.name}: no minimum below the exact energy (Cohn–Kumar)",
                                f"{r.found - r.exact:+.1e}", f"≥ −{ENERGY_TOL:g}", r.found - r.exact >= -ENERGY_TOL,
                                f"n = {r.n}, d = {r.d}"))
        verdicts.append(Verdict(f"{r.name}: found it, same design strength", f"t = {r.strength_found}",
                                f"t = {r.strength_known}", r.matches and r.strength_found == r.strength_known))
    text = (
        "With V = −I the dynamics decrease E_β(X) = (1/(2βn²)) Σ_i Σ_j e^{β⟨x_i,x_j⟩} and spread the points; its "
        "minimisers over n-point sets are optimal configurations (§9 of the paper). The sharp configurations and "
        "the 600-cell are universally optimal (Cohn–Kumar): no descent may go below their exact energies, computed "
        f"here in closed form from their inner-product distributions. The repulsive flow ({shape}, β = "
        f"{flow.beta:g}) from {len(flow.arrival_time)} random starts arrived in {len(arrived)} of them"
        + (f", at t between {min(arrived):.0f} and {max(arrived):.0f}" if arrived else "")
        + f", and its final state is the {target} in {flow_matches}; its arrival is the first step at which "
        "the field is below the tolerance. A batched Riemannian L-BFGS from "
        f"{opt.restarts} random restarts (n = {opt.n}, β = {opt.beta:g}) "
        + ("finds the same configuration" if s.matches else "does not find the known configuration")
        + f" in {opt.seconds:.2f} s. Total time {exp.seconds:.0f} s."
    )
    return Section("Repulsive dynamics and optimal configurations (V = −I)", text, figures=figs,
                   tables={"flow arrival": flow_table, "optimiser": opt_table, "known configurations": known_table},
                   verdicts=verdicts)


def optimal_experiment_section(seed: int = 0, *, quick: bool = False) -> Section:
    """Run :func:`tokensphere.experiments.optimal.run_optimal` (seeded) and build its section (seconds)."""
    with torch.no_grad():
        return optimal_section(run_optimal(seed, quick=quick))
