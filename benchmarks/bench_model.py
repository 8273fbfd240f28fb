"""Model-layer overheads inside the step loop, as ratios measured in one process.

1. ``take``: restricting a model with per-system β, a per-system QK and a mask to a subset of its systems
   and evaluating the field there (what the integrator does every step once some systems have finished),
   against the field of an already restricted model. Target (architecture issue): ratio ≤ 1.05.
2. ``Layerwise``: the cost per field evaluation of a run whose value matrix changes every layer
   (``Model(schedule=Layerwise(1.0, V=Vs))``), against the same run with a constant value matrix, both
   integrated by adaptive dopri5 so that systems sit at different times. Target: ≤ 1.3×.

The script uses only the public API (``Model.take``, ``velocity``, ``simulate``, ``Layerwise``), so the same
file measures older versions of the package too (run it with that version on the path for the "before"
column).

    python benchmarks/bench_model.py            # print the table
    python benchmarks/bench_model.py --record   # also append it to BENCHMARKS.md
    python benchmarks/bench_model.py --quick    # tiny sizes, for the test suite
"""

from __future__ import annotations

import argparse
import time

import torch

import tokensphere as ts

try:  # the record helper lives next to this file
    from bench_kernel import machine, record
except ImportError:  # pragma: no cover - run from another directory
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_kernel import machine, record


def _best(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def take_overhead(B: int, n: int, d: int, repeats: int) -> dict:
    """Time of ``model.take(idx)`` over the time of ``velocity(x[idx], model.take(idx))``, half the systems."""
    g = torch.Generator().manual_seed(0)
    x = ts.sample_sphere(B, n, d, seed=0)
    qk = torch.randn(B, d, d, generator=g, dtype=torch.float64) / d**0.5
    mask = torch.zeros(n, n, dtype=torch.float64)
    mask[torch.rand(n, n, generator=g) < 0.3] = float("-inf")
    mask.fill_diagonal_(0.0)
    model = ts.Model(beta=torch.linspace(0.5, 4.0, B, dtype=torch.float64), QK=qk, mask=mask)
    idx = torch.arange(0, B, 2)
    xs = x[idx]
    sub = model.take(idx)
    ts.velocity(xs, sub)  # warm caches (dtype conversion) as the step loop would
    t_call, t_vel = [], []
    for _ in range(repeats):  # interleaved
        t_call.append(_best(lambda: ts.velocity(xs, model.take(idx)), 1))
        t_vel.append(_best(lambda: ts.velocity(xs, sub), 1))
    return {"case": f"take, QK + mask, (B, n, d) = ({B}, {n}, {d}), half the systems",
            "ours": min(t_call), "base": min(t_vel),
            "what": "velocity(x, model.take(idx)) / velocity(x, prepared sub-model)"}


def layerwise_overhead(B: int, n: int, d: int, t_max: float, repeats: int) -> dict:
    """Wall time per field evaluation, Layerwise V (a new V every unit of time) over a constant V."""
    g = torch.Generator().manual_seed(1)
    layers = int(t_max) + 1
    vs = torch.eye(d, dtype=torch.float64) + 0.3 * torch.randn(layers, d, d, generator=g, dtype=torch.float64) / d**0.5
    beta = torch.linspace(0.5, 4.0, B, dtype=torch.float64)
    x0 = ts.sample_sphere(B, n, d, seed=2)
    solver = ts.Solver("dopri5", rtol=1e-8, atol=1e-10)

    def per_eval(model) -> float:
        traj = ts.simulate(x0, model=model, solver=solver, t_max=t_max, save_at=2)
        return traj.metadata["wall_seconds"] / traj.metadata["field_evaluations"]

    layered = ts.Model(beta=beta, schedule=ts.Layerwise(1.0, V=vs))
    constant = ts.Model(beta=beta, V=vs[0])
    a, b = [], []
    for _ in range(repeats):
        a.append(per_eval(layered))
        b.append(per_eval(constant))
    return {"case": f"Layerwise V ({layers} layers) vs constant V, dopri5, (B, n, d) = ({B}, {n}, {d})",
            "ours": min(a), "base": min(b), "what": "time per field evaluation, layered / constant"}


def table(rows: list[dict]) -> str:
    lines = ["| case | measured | ours (µs) | reference (µs) | ratio |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['what']} | {r['ours'] * 1e6:.1f} | {r['base'] * 1e6:.1f} | "
                     f"{r['ours'] / r['base']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (smoke test)")
    p.add_argument("--record", action="store_true", help="append the table to BENCHMARKS.md")
    p.add_argument("--label", default="", help="a label for the recorded table (e.g. 'before', 'after')")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1, the policy for small n)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        rows = [take_overhead(8, 8, 3, 3), layerwise_overhead(4, 6, 3, 2.0, 1)]
    else:
        rows = [take_overhead(256, 32, 8, 30), take_overhead(1024, 32, 2, 30),
                layerwise_overhead(64, 32, 8, 5.0, 3)]
    text = table(rows)
    print(machine())
    print(text)
    if args.record:
        title = "Model layer: take and Layerwise inside the step loop" + (f" ({args.label})" if args.label else "")
        record(title, "python benchmarks/bench_model.py --record", "minimum over interleaved repeats, 1 thread", text)
    return rows


if __name__ == "__main__":
    main()
