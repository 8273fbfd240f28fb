"""The circle d = 2: the angle form (7.1) against the vector form (2.6), timed in one process.

1. **field**: one evaluation of ``tokensphere.circle.angle_velocity`` on θ (B, n) against
   ``tokensphere.velocity`` on x = (cos θ, sin θ) (B, n, 2) (the field the vector integrator calls), SA.
2. **run**: ``simulate_angles`` against ``tokensphere.simulate`` (both adaptive dopri5, same rtol/atol, same
   start and output times), SA and USA. The two error norms differ (angles up to 2π against coordinates up to 1,
   one component against two), so the step counts differ at the same tolerances: the table gives both field
   evaluations and the largest angle difference between the two runs.

Ratios are vector time / angle time (> 1: angles faster), minimum over repeats after one warm-up.

    python benchmarks/bench_circle.py            # print the table
    python benchmarks/bench_circle.py --record   # also append it to BENCHMARKS.md
    python benchmarks/bench_circle.py --quick    # tiny sizes, for the test suite
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

import tokensphere as ts
from tokensphere.circle import angle_velocity, angles_to_positions, positions_to_angles, simulate_angles

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers live next to this file
from bench_kernel import best_time, machine, record  # noqa: E402


def _start(B: int, n: int) -> torch.Tensor:
    return 2 * math.pi * torch.rand((B, n), generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def field_ratio(B: int, n: int, beta: float, repeats: int) -> dict:
    theta = _start(B, n)
    x = angles_to_positions(theta)
    model = ts.Model(beta=beta)
    block = 20  # calls per timed sample

    def vec():
        for _ in range(block):
            ts.velocity(x, model)

    def ang():
        for _ in range(block):
            angle_velocity(theta, beta)

    tv, ta = best_time(vec, repeats, warmup=1) / block, best_time(ang, repeats, warmup=1) / block
    return {"case": f"field SA B={B} n={n} β={beta:g}", "vector_ms": 1e3 * tv, "angle_ms": 1e3 * ta,
            "ratio": tv / ta, "evals": "", "max_diff": ""}


def run_ratio(B: int, n: int, beta: float, normalization: str, t_max: float, repeats: int) -> dict:
    theta = _start(B, n)
    opts = dict(normalization=normalization, t_max=t_max, save_at=11, rtol=1e-8, atol=1e-10, threads=1)
    out = {}

    def vec():
        out["v"] = ts.simulate(angles_to_positions(theta), beta, **opts)

    def ang():
        out["a"] = simulate_angles(theta, beta, **opts)

    tv, ta = best_time(vec, repeats, warmup=1), best_time(ang, repeats, warmup=1)
    d = out["a"].theta - positions_to_angles(out["v"].positions)
    diff = float((torch.pi - torch.remainder(torch.pi - d, 2 * torch.pi)).abs().max())
    ev = f"{out['v'].metadata['field_evaluations']}/{out['a'].evaluations}"
    return {"case": f"run {'SA' if normalization == 'softmax' else 'USA'} B={B} n={n} β={beta:g} t={t_max:g}",
            "vector_ms": 1e3 * tv, "angle_ms": 1e3 * ta, "ratio": tv / ta, "evals": ev, "max_diff": f"{diff:.1e}"}


def table(rows: list[dict]) -> str:
    lines = ["| case | vector (ms) | angles (ms) | ratio vector/angles | field evals vector/angles | max angle diff |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['vector_ms']:.3f} | {r['angle_ms']:.3f} | {r['ratio']:.2f} | "
                     f"{r['evals']} | {r['max_diff']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes and one repeat (smoke test)")
    p.add_argument("--record", action="store_true", help="append the table to BENCHMARKS.md")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1, the policy for small n)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        rows = [field_ratio(4, 8, 4.0, 1), run_ratio(2, 8, 4.0, "softmax", 1.0, 1)]
    else:
        rows = [field_ratio(64, 32, 4.0, 10), field_ratio(1024, 32, 4.0, 5), field_ratio(16, 512, 4.0, 5),
                run_ratio(64, 32, 4.0, "softmax", 10.0, 3), run_ratio(256, 32, 9.0, "softmax", 10.0, 2),
                run_ratio(64, 32, 1.0, "uniform", 3.0, 3)]
    text = table(rows)
    print(machine())
    print(text)
    if args.record:
        record("Circle: angle form (7.1) against the vector form", "python benchmarks/bench_circle.py --record",
               "minimum over repeats after a warm-up, 1 thread", text)
    return rows


if __name__ == "__main__":
    main()
