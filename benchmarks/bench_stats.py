"""Cost of the statistics pass against one integration step (issue target: ≤ 20% of a step at n = 32, B = 1024).

The statistics pass is what the phase diagram computes at every output time: the clustered-pair fraction
and the connected-component cluster count from one Gram matrix (tokensphere.analysis.pair_statistics). One step is one dopri5 step of the
library (6 field evaluations with FSAL, plus the stage combinations), and, for reference, one step of the
authors' Euler scheme. Timed in the same process, interleaved; minimum over repeats.

    python benchmarks/bench_stats.py [--record] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import tokensphere as ts
from tokensphere.analysis import pair_statistics
from tokensphere.integrate.steps import erk_step
from tokensphere.integrate.tableaux import DOPRI5

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kernel import baseline_step, best_time, machine, record  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--record", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=None)
    args = p.parse_args(argv)
    B, n = (64, 32) if args.quick else (1024, 32)
    repeats = args.repeats or (3 if args.quick else 30)
    rows = []
    for d, beta, when in ((2, 4.0, 5.0), (32, 4.0, 5.0)):
        # a realistic mid-run state: partly clustered tokens at t = 5
        x = ts.simulate(ts.Uniform(batch=B, n=n, d=d, seed=0), beta, t_max=when, save_at=[0, when]).final()
        model = ts.Model(beta=beta)
        t = torch.zeros(B, dtype=torch.float64)
        h = torch.full((B,), 0.1, dtype=torch.float64)

        def field(tt, xx):
            return ts.velocity(xx, model)

        def stats():
            pair_statistics(x, 1e-3)

        def dopri_step():
            erk_step(field, t, x, h, DOPRI5, k1=None)

        def euler_step():
            baseline_step(x, beta)

        for f in (stats, dopri_step, euler_step):
            f()
        ts_, td, te = [], [], []
        for _ in range(repeats):
            ts_.append(best_time(stats, 1))
            td.append(best_time(dopri_step, 1))
            te.append(best_time(euler_step, 1))
        s, dstep, estep = min(ts_), min(td), min(te)
        rows.append((d, s, dstep, estep))
    lines = [
        f"| B, n, d | statistics pass (ms) | one dopri5 step (ms) | stats / dopri5 step | one authors' Euler step (ms) | stats / Euler step |",
        "|---|---|---|---|---|---|",
    ]
    for d, s, dstep, estep in rows:
        lines.append(
            f"| {B}, {n}, {d} | {s * 1e3:.3f} | {dstep * 1e3:.3f} | {s / dstep:.3f} | {estep * 1e3:.3f} | {s / estep:.3f} |"
        )
    text = "\n".join(lines)
    print(machine())
    print(text)
    if args.record:
        cmd = "python benchmarks/bench_stats.py --record" + (" --quick" if args.quick else "")
        record("Statistics pass vs one integration step", cmd,
               f"minimum over {repeats} interleaved repeats; pair fraction + cluster count, δ = 1e-3", text)
    return rows


if __name__ == "__main__":
    main()
