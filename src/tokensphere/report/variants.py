"""The report sections on the attention variants and Transformer blocks: Sinkhorn attention against SA and USA
(Remark 3.5), the non-unique hardmax dynamics of Example 9.3, the β → ∞ limit (9.4) → (9.5), and the
splitting orders of full Transformer blocks (2.8)."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..experiments.layers import splitting_orders
from ..experiments.variants import example_9_3_branches, hardmax_limit, normalization_clustering
from ..plot.variants import (
    example_9_3_figure,
    hardmax_limit_figure,
    normalization_clustering_figure,
    splitting_figure,
)
from .elements import Figure, Section, Verdict, png_bytes

__all__ = ["variants_sections"]

SINKHORN_ITERS = 100


def _sinkhorn_section(seed: int, quick: bool) -> Section:
    r = normalization_clustering(n=12, batch=2 if quick else 3, beta=4.0, t_max=20.0, save=21 if quick else 41,
                                 seed=seed, sinkhorn_iters=SINKHORN_ITERS)
    final = {name: r.clusters[name][-1] for name in r.names}
    fig = normalization_clustering_figure(r.times, r.clusters, r.pairs,
                                          title=f"n = {r.n}, d = {r.d}, β = {r.beta:g}, same seeded starts",
                                          delta=r.delta)
    table = {LAB: f"final clusters {', '.join(str(int(c)) for c in final[name])}; final pair fraction "
                  f"{float(np.mean(r.pairs[name][-1])):.3f}" for name, LAB in
             (("softmax", "SA"), ("uniform", "USA"), ("sinkhorn", "Sinkhorn"))}
    verdicts = [
        Verdict("Sinkhorn attention clusters (fewer clusters at T than tokens at 0)",
                f"{float(np.mean(final['sinkhorn'])):.2f} clusters (mean)", f"< n = {r.n}",
                bool(np.all(final["sinkhorn"] < r.n)), f"δ = {r.delta:g}"),
        Verdict("Sinkhorn column sums along the run (rows sum to 1 exactly)", f"max |Σ_i A_ij − 1| = {r.sinkhorn_error:.1e}",
                f"recorded; {SINKHORN_ITERS} iterations, tol 1e-9", None,
                "slow convergence on nearly decoupled clusters"),
    ]
    text = ("Remark 3.5 of the paper replaces the row normalisation of e^{β⟨x_i, x_j⟩} by Sinkhorn's alternate "
            "row and column normalisations, making the attention matrix doubly stochastic. Whether the resulting "
            "dynamics cluster is open. The three normalisations run here from the same seeded uniform starts on "
            "S²; the cluster count and pair fraction use the package's one cluster test. Sinkhorn's iterations run "
            "in the log domain and end with a row normalisation; their column error is recorded, since on nearly "
            "decoupled clusters the scaling converges slowly.")
    return Section("Sinkhorn attention against SA and USA (Remark 3.5)", text,
                   figures=[Figure(data=png_bytes(fig, dpi=90), caption="cluster count (log) and pair fraction over time")],
                   tables={"at the final time": table}, verdicts=verdicts)


def _hardmax_sections(quick: bool) -> list[Section]:
    runs = example_9_3_branches(dt=2e-3 if quick else 1e-3, t_max=3.0)
    rows = {f"{r.policy}": f"branch {r.branch}; max |z₃ − closed form| = {r.error:.1e} (Euler dt = {r.dt:g}); "
                           f"tie events at saved times: {int(r.ties.sum())}" for r in runs}
    want = {"average": "midpoint", "lowest": "z1", "highest_other_index": "z2"}
    verdicts = [Verdict(f"policy {r.policy} reaches the branch toward {want.get(r.policy, '?')}", r.branch,
                        want.get(r.policy, "?"), r.branch == want.get(r.policy)) for r in runs]
    verdicts += [Verdict(f"{r.policy}: z₃ follows its closed form z₃(t) = c + (z₃(0) − c)e^(−t)", f"{r.error:.1e}",
                         f"≤ 0.3·dt = {0.3 * r.dt:.1e} (Euler, first order)", r.error <= 0.3 * r.dt) for r in runs]
    verdicts.append(Verdict("z₁ and z₂ never move", f"{max(r.still for r in runs):.1e}", "0",
                            max(r.still for r in runs) == 0.0))
    ex = Section(
        "Hardmax dynamics: Example 9.3's three continuations", (
            "As β → ∞ the attention concentrates on C_i = argmax_j ⟨Q z_i, K z_j⟩ (9.6) and the rescaled dynamics "
            "become (9.5), whose right-hand side jumps at ties. In Example 9.3 (d = 2, n = 3, Q = K = V = I, "
            "z₁ = (1,1), z₂ = (−1,1), z₃ = (0,0)) C₃ = {1, 2, 3} at t = 0 and three continuations are admissible. "
            "Fixed-step Euler through simulate with the tie policy as the Filippov selection reaches each: "
            "'average' (literally (9.5)) the midpoint, 'lowest' z₁, a user rule (highest other index) z₂. Ties "
            "are flagged by the hardmax arithmetic and counted along the run."),
        figures=[Figure(data=png_bytes(example_9_3_figure(runs), dpi=90),
                        caption="z₃'s path under each policy (solid) and its closed-form branch (dashed)")],
        tables={"branches": rows}, verdicts=verdicts)
    lim = hardmax_limit((10.0, 20.0, 30.0, 40.0) if quick else (10.0, 20.0, 30.0, 40.0, 50.0, 60.0))
    d = np.array(lim.distances)
    lim_sec = Section(
        "β → ∞: the softmax dynamics (9.4) converge to the hardmax dynamics (9.5)", (
            "From z₁ = (2,0), z₂ = (1,0.5), z₃ = (−1,1) (no tie on [0, T]: z₂ attends to z₁, the others to "
            "themselves) the hardmax solution is explicit: z₂(t) = z₁ + (z₂(0) − z₁)e^(−t). The distance "
            "sup_{t ≤ T} |z^β(t) − z^∞(t)| (dopri5 at rtol 1e-12) decreases exponentially in β; the softmax "
            "weight off the argmax is ≈ e^(−β·gap), so the fitted rate approaches the smallest score gap on "
            "[0, T] from above (a 1/β prefactor)."),
        figures=[Figure(data=png_bytes(hardmax_limit_figure(lim.betas, lim.distances, rate=lim.rate, prefactor=lim.prefactor,
                                                       gap=lim.gap, t_max=lim.t_max), dpi=90),
                        caption="uniform distance on [0, T] against β")],
        tables={"distance per β": {f"β = {b:g}": f"{v:.2e}" for b, v in zip(lim.betas, lim.distances)},
                "fit": {"rate": f"{lim.rate:.4f}", "score gap": f"{lim.gap:.4f}", "T": lim.t_max,
                        "hardmax run vs closed form": f"{lim.hardmax_error:.1e}"}},
        verdicts=[
            Verdict("the distance decreases monotonically in β", "yes" if bool(np.all(np.diff(d) < 0)) else "no",
                    "monotone", bool(np.all(np.diff(d) < 0))),
            Verdict("fitted exponential rate against the score gap", f"{lim.rate:.4f}",
                    f"in [gap, 1.4·gap] = [{lim.gap:.3f}, {1.4 * lim.gap:.3f}]", lim.gap < lim.rate < 1.4 * lim.gap),
        ])
    return [ex, lim_sec]


def _splitting_section(quick: bool) -> Section:
    r = splitting_orders(steps=(0.1, 0.05, 0.025), depths=(20, 40, 80), batch=1 if quick else 2)
    want = {"lie-trotter": 1.0, "lie-trotter, exact sub-flows": 1.0, "strang, exact sub-flows": 2.0}
    verdicts = [Verdict(f"{name}: order from local errors", f"{r.orders[name]:.2f}", f"{want[name]:g} ± 0.2",
                        abs(r.orders[name] - want[name]) <= 0.2) for name in r.errors]
    verdicts.append(Verdict("literal Lie–Trotter stack against the flow at T", f"{r.global_order:.2f}", "1 ± 0.2",
                            abs(r.global_order - 1.0) <= 0.2, f"T = {r.t_max:g}, L = T/h blocks"))
    gain = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    others = {norm: splitting_orders(steps=(0.1, 0.05, 0.025), depths=(20, 40, 80), batch=1, norm=norm,
                                     gain=gain if norm == "rms" else None) for norm in (() if quick else ("pre", "rms", "ngpt"))}
    for norm, o in others.items():
        for name in ("lie-trotter", "strang, exact sub-flows"):
            verdicts.append(Verdict(f"{norm}: {name}, order from local errors", f"{o.orders[name]:.2f}",
                                    f"{want[name]:g} ± 0.2", abs(o.orders[name] - want[name]) <= 0.2,
                                    "gain (0.5, 1, 2)" if norm == "rms" else ""))
    text = ("A Transformer block applies the attention term and the feed-forward term of (2.8) one after the other, "
            "each followed by the normalisation (Lie–Trotter splitting, first order). Strang splitting (half "
            "attention, full feed-forward, half attention) is second order when each sub-step is the exact "
            "sub-flow, here dopri5 at rtol 1e-13 so that the splitting error, not the sub-step error, is measured. "
            "The reference is the continuous flow of (2.8) itself (simulate, dopri5 at rtol 1e-12). The other "
            "normalisations (pre-norm ẏ = F(N(Y)); RMSNorm with gain g on the ellipsoid Σ(y_k/g_k)² = d; nGPT, "
            "each term normalised; docs/blocks.md) are measured the same way against their continuous forms.")
    return Section("Transformer blocks: Lie–Trotter and Strang splitting of (2.8)", text,
                   figures=[Figure(data=png_bytes(splitting_figure(r.steps, r.errors), dpi=90),
                                   caption="local error of one block of step h (post-norm, tanh feed-forward)")],
                   tables={"local errors": {name: ", ".join(f"{e:.2e}" for e in v) for name, v in r.errors.items()},
                           "global (literal stack)": {f"h = {h:g}": f"{e:.2e}" for h, e in
                                                      zip(r.global_steps, r.global_errors)}},
                   verdicts=verdicts)


def variants_sections(seed: int = 0, *, quick: bool = False) -> list[Section]:
    """The sections (Sinkhorn vs SA/USA, Example 9.3, β → ∞, splitting orders of the four block normalisations),
    computed now (seeded; 8–30 s on an idle 2-core machine; ``quick``: smaller runs, post-norm splitting only).
    Returns a list of :class:`Section`."""
    start = time.perf_counter()
    with torch.no_grad():
        out = [_sinkhorn_section(seed, quick), *_hardmax_sections(quick), _splitting_section(quick)]
    seconds = time.perf_counter() - start
    last = out[-1]
    out[-1] = Section(last.title, f"{last.text} (All variant sections: {seconds:.0f} s.)", figures=last.figures,
                      tables=last.tables, verdicts=last.verdicts)
    return out
