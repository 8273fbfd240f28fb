"""Accuracy against cost: every solver (and float32) against a tight dopri5 reference.

Setting of the authors' sphere.py run (see docs/numerics.md): SA, n = 64, d = 3, T = 15, uniform starts
(4 seeds), β = 1 and β = 9. The error is the largest geodesic distance 2·arcsin(|x − x_ref|/2) over tokens
and systems at t = T; the cost is the number of field evaluations and the wall time. The authors' scheme
(Euler, dt = 0.1, unprojected field) is the first row.

    python benchmarks/bench_accuracy.py [--record] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import tokensphere as ts

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kernel import machine, record  # noqa: E402

CASES = [
    ("anchor (authors' Euler, dt 0.1)", lambda m: ts.anchor_solver(m), "float64"),
    ("euler dt 0.1 (projected)", lambda m: ts.Solver("euler", dt=0.1), "float64"),
    ("rk4 dt 0.1", lambda m: ts.Solver("rk4", dt=0.1), "float64"),
    ("cg3 dt 0.1", lambda m: ts.Solver("cg3", dt=0.1), "float64"),
    ("bosh3 rtol 1e-6", lambda m: ts.Solver("bosh3", rtol=1e-6, atol=1e-8), "float64"),
    ("dopri5 rtol 1e-5", lambda m: ts.Solver("dopri5", rtol=1e-5, atol=1e-7), "float64"),
    ("dopri5 rtol 1e-7 (default)", lambda m: ts.Solver("dopri5"), "float64"),
    ("dopri5 rtol 1e-7, float32", lambda m: ts.Solver("dopri5"), "float32"),
    ("rk4 dt 0.05, float32", lambda m: ts.Solver("rk4", dt=0.05), "float32"),
]


def geodesic(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """2 arcsin(|x − y|/2): accurate for nearby points (arccos loses accuracy near 1, ~1e-8 rad)."""
    return 2 * torch.arcsin((torch.linalg.vector_norm(x - y, dim=-1) / 2).clamp(max=1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--record", action="store_true")
    p.add_argument("--quick", action="store_true", help="n = 8, T = 2 (smoke test)")
    args = p.parse_args(argv)
    n, T = (8, 2.0) if args.quick else (64, 15.0)
    x0 = ts.Uniform(batch=4, n=n, d=3, seed=0)
    rows = []
    for beta in (1.0, 9.0):
        model = ts.Model(beta=beta)
        ref = ts.simulate(x0, model=model, solver=ts.Solver("dopri5", rtol=1e-12, atol=1e-14), t_max=T, save_at=[0, T])
        for name, make, dtype in CASES:
            t0 = time.perf_counter()
            tr = ts.simulate(x0, model=model, solver=make(model), t_max=T, save_at=[0, T], dtype=dtype)
            wall = time.perf_counter() - t0
            err = float(geodesic(tr.final().double(), ref.final()).max())
            rows.append((beta, name, err, tr.metadata["field_evaluations"], wall))
    lines = [
        f"| β | solver | max geodesic error at t = {T:g} (rad) | field evaluations | wall (s) |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {b:g} | {name} | {err:.2e} | {ev} | {w:.3f} |" for b, name, err, ev, w in rows]
    text = "\n".join(lines)
    print(machine())
    print(text)
    if args.record:
        cmd = "python benchmarks/bench_accuracy.py --record" + (" --quick" if args.quick else "")
        record(f"Accuracy vs cost (SA, n = {n}, d = 3, T = {T:g}, 4 seeds)", cmd, "one run", text)
    return rows


if __name__ == "__main__":
    main()
