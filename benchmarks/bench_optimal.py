"""Optimal configurations: how the search finds the 600-cell (n = 120, d = 4, β = 5) from random starts, and when
the repulsive flow arrives at the icosahedron (n = 12, d = 3, β = 1).

1. **restarts**: per-restart success rate (a local minimum within 1e-7 of the exact log E_β of the 600-cell) and
   seconds per local minimisation, for free restarts (plain Riemannian L-BFGS from uniform starts: the baseline)
   and antipodal restarts (the minimisation kept among antipodal sets), one batch each, in the same process.
   Expected seconds to find = seconds per minimisation / success rate.
2. **hops**: basin hopping (σ = 0.1 rad) from the best of a batch of free restarts: whether it reaches the
   600-cell within the hop budget.
3. **search**: the default search (``tokensphere optimal --n 120 --d 4 --beta 5``: mixed antipodal/free batches of
   32, stop at the known energy) over several seeds: time to find.
4. **flow**: arrival times of the V = −I flow (SA, β = 1) at the icosahedron, max_i |ẋ_i| < tol, for two tolerances.

    python benchmarks/bench_optimal.py            # print the tables
    python benchmarks/bench_optimal.py --record   # also append them to BENCHMARKS.md
    python benchmarks/bench_optimal.py --quick    # tiny sizes (icosahedron), for the test suite
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

from tokensphere.experiments.optimal import flow_arrival
from tokensphere.optimal import describe, known_for, lbfgs, search
from tokensphere.optimal.search import FOUND_RTOL
from tokensphere.init import sample_sphere

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers live next to this file
from bench_kernel import record  # noqa: E402


def restarts_row(kind: str, n: int, d: int, beta: float, count: int, seed: int, beta0: float | None = None) -> dict:
    """One batch of ``count`` restarts of one kind: success rate and seconds per local minimisation. With beta0,
    β-continuation: free starts minimised at beta0 first, then at beta."""
    exact = known_for(n, d).log_energy(beta)
    anti = kind == "antipodal"
    x0 = sample_sphere(count, n // 2 if anti else n, d, seed=seed)
    t0 = time.perf_counter()
    if beta0 is not None:
        x0 = lbfgs(x0, beta0, gtol=1e-6).x
    r = lbfgs(x0, beta, gtol=1e-6, antipodal=anti)
    seconds = time.perf_counter() - t0
    gaps = r.log_energy - exact
    hits = int((gaps.abs() <= FOUND_RTOL).sum())
    per = seconds / count
    rest = gaps[gaps.abs() > FOUND_RTOL]
    return {"kind": kind, "restarts": count, "found": hits, "rate": hits / count, "s_per_min": per,
            "expected_s": per / (hits / count) if hits else math.inf,
            "iterations": float(r.iterations.float().mean()),
            "lowest_other_gap": float(rest.min()) if rest.numel() else math.nan}


def hops_row(n: int, d: int, beta: float, restarts: int, hops: int, seed: int) -> dict:
    res = search(n, d, beta, restarts=restarts, hops=hops, batch=restarts, sigma=0.1, symmetry="none", seed=seed)
    exact = known_for(n, d).log_energy(beta)
    first = res.minima[:restarts]
    return {"restarts": restarts, "hops": res.hops, "best_gap_restarts": float(first.min()) - exact,
            "best_gap_after_hops": float(res.minima.min()) - exact, "found": res.found_seconds is not None,
            "seconds": res.seconds}


def search_rows(n: int, d: int, beta: float, seeds: list[int], restarts: int) -> list[dict]:
    rows = []
    for seed in seeds:
        res = search(n, d, beta, restarts=restarts, seed=seed)
        s = describe(res.x, beta)
        rows.append({"seed": seed, "found_s": res.found_seconds, "minimisations": res.found_minimisations,
                     "matches": s.matches, "strength": s.strength, "seconds": res.seconds})
    return rows


def flow_rows(starts: int, tols: list[float], seed: int, t_max: float) -> list[dict]:
    rows = []
    for tol in tols:
        t0 = time.perf_counter()
        r = flow_arrival(12, 3, 1.0, starts=starts, seed=seed, tol=tol, t_max=t_max)
        rows.append({"tol": tol, "arrival": [float(t) for t in r.arrival_time],
                     "icosahedron": sum(describe(x, 1.0, tol=1e-3).matches for x in r.final),
                     "starts": starts, "seconds": time.perf_counter() - t0})
    return rows


def tables(restart_rows: list[dict], hop: dict | None, searches: list[dict], flows: list[dict], case: str) -> str:
    out = [f"Search for {case}: one batch per kind, minimum gradient norm 1e-6, same process.", "",
           "| restarts | count | found | success rate | s per local min. | mean iterations | expected s to find "
           "| lowest other minimum (log-energy gap) |", "|---|---|---|---|---|---|---|---|"]
    for r in restart_rows:
        out.append(f"| {r['kind']} | {r['restarts']} | {r['found']} | {r['rate']:.3f} | {r['s_per_min']:.3f} | "
                   f"{r['iterations']:.0f} | {r['expected_s']:.1f} | {r['lowest_other_gap']:.2e} |")
    free = next((r for r in restart_rows if r["kind"] == "none"), None)
    anti = next((r for r in restart_rows if r["kind"] == "antipodal"), None)
    if free and anti and anti["expected_s"] < math.inf:
        ratio = free["expected_s"] / anti["expected_s"]
        out += ["", f"Expected time to find, free / antipodal restarts: {ratio:.1f}"
                + (" (free: none found, a lower bound is the batch time)" if math.isinf(ratio) else "")]
    if hop is not None:
        out += ["", "| basin hopping σ = 0.1 | restarts | hops | best gap after restarts | best gap after hops | "
                "found | seconds |", "|---|---|---|---|---|---|---|",
                f"| free restarts then hops | {hop['restarts']} | {hop['hops']} | {hop['best_gap_restarts']:.2e} | "
                f"{hop['best_gap_after_hops']:.2e} | {hop['found']} | {hop['seconds']:.1f} |"]
    if searches:
        out += ["", "Default search (mixed antipodal/free batches of 32, stops at the known energy):", "",
                "| seed | found after (s) | local minimisations | matches | design strength | total s |",
                "|---|---|---|---|---|---|"]
    for r in searches:
        found = "not found" if r["found_s"] is None else f"{r['found_s']:.1f}"
        out.append(f"| {r['seed']} | {found} | {r['minimisations']} | {r['matches']} | {r['strength']} | "
                   f"{r['seconds']:.1f} |")
    if searches:
        ok = [r["found_s"] for r in searches if r["found_s"] is not None]
        out += ["", f"Found in {len(ok)}/{len(searches)} seeds" + (
            f"; time to find median {sorted(ok)[len(ok) // 2]:.1f} s, max {max(ok):.1f} s." if ok else ".")]
    if flows:
        out += ["", "V = −I flow (SA, β = 1, dopri5 rtol 1e-9, steps ≤ 5), n = 12, d = 3, arrival: max_i |ẋ_i| < tol:",
                "",
                "| tol | arrival times | arrived at the icosahedron | wall s |", "|---|---|---|---|"]
        for r in flows:
            times = ", ".join("—" if math.isnan(t) else f"{t:.0f}" for t in r["arrival"])
            out.append(f"| {r['tol']:g} | {times} | {r['icosahedron']}/{r['starts']} | {r['seconds']:.1f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (icosahedron at β = 1), for the test suite")
    p.add_argument("--record", action="store_true", help="append the tables to BENCHMARKS.md")
    p.add_argument("--seeds", type=int, default=5, help="seeds of the default search")
    p.add_argument("--free", type=int, default=128, help="free restarts in the success-rate batch")
    p.add_argument("--antipodal", type=int, default=64, help="antipodal restarts in the success-rate batch")
    p.add_argument("--hops", type=int, default=64, help="basin-hopping moves (0: skip)")
    p.add_argument("--continuation", type=int, default=0,
                   help="free restarts per β-continuation row (β0 = 1 and 2.5, then β = 5); 0: skip")
    p.add_argument("--no-flow", action="store_true", help="skip the flow's arrival times")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        n, d, beta, case = 12, 3, 1.0, "the icosahedron (n = 12, d = 3, β = 1)"
        rows = [restarts_row("none", n, d, beta, 4, 0), restarts_row("antipodal", n, d, beta, 4, 1)]
        hop = hops_row(n, d, beta, 2, 2, 0)
        searches = search_rows(n, d, beta, [0], 8)
        flows = []
    else:
        n, d, beta, case = 120, 4, 5.0, "the 600-cell (n = 120, d = 4, β = 5)"
        rows = [restarts_row("none", n, d, beta, args.free, 10)] if args.free else []
        if args.antipodal:
            rows.append(restarts_row("antipodal", n, d, beta, args.antipodal, 11))
        for beta0 in (1.0, 2.5) if args.continuation else ():
            rows.append(restarts_row(f"none, from β0 = {beta0:g}", n, d, beta, args.continuation, 10, beta0))
        hop = hops_row(n, d, beta, 32, args.hops, 12) if args.hops else None
        searches = search_rows(n, d, beta, list(range(args.seeds)), 256)
        flows = [] if args.no_flow else flow_rows(4, [1e-6, 1e-8], 0, 20000.0)
    text = tables(rows, hop, searches, flows, case)
    print(text)
    if args.record and not args.quick:
        title = ("Optimal configurations: the 600-cell from random starts, the repulsive flow's arrival"
                 if args.free else "Optimal configurations: further restart strategies for the 600-cell")
        record(title,
               "python benchmarks/bench_optimal.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "1 thread; wall times on a shared machine", text)
    return text


if __name__ == "__main__":
    main()
