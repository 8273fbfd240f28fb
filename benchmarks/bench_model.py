"""Model-layer overheads inside the step loop, as ratios measured in one process.

1. ``take``: restricting a model with per-system β, a per-system QK and a mask to a subset of its systems
   and evaluating the field there (what the integrator does every step once some systems have finished),
   against the field of an already restricted model. Target (architecture issue): ratio ≤ 1.05. Two rows:
   the same active set as at the previous call (the step loop's usual case: ``take`` remembers its last
   restriction) and a new active set at every call (the restriction computed afresh).
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
import sys
import time
from pathlib import Path

import torch

import tokensphere as ts

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers live next to this file
from bench_kernel import best_time, machine, record  # noqa: E402


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
    block = 20  # calls per timed sample: single calls of ~100 µs are at the mercy of the machine's noise
    fresh = [idx[torch.randperm(idx.numel(), generator=g)] for _ in range(block)]  # a new active set each call

    def same():
        for _ in range(block):
            ts.velocity(xs, model.take(idx))

    def new():
        for k in range(block):
            ts.velocity(xs, model.take(fresh[k]))

    def prepared():
        for _ in range(block):
            ts.velocity(xs, sub)

    t_call, t_new, t_vel = [], [], []
    for _ in range(repeats):  # interleaved
        t_call.append(best_time(same, 1, warmup=1) / block)
        t_new.append(best_time(new, 1, warmup=1) / block)
        t_vel.append(best_time(prepared, 1, warmup=1) / block)
    case = f"take, QK + mask, (B, n, d) = ({B}, {n}, {d}), half the systems"
    return [{"case": case + ", same active set as the last step",
             "ours": min(t_call), "base": min(t_vel),
             "what": "velocity(x, model.take(idx)) / velocity(x, prepared sub-model)"},
            {"case": case + ", a new active set",
             "ours": min(t_new), "base": min(t_vel),
             "what": "velocity(x, model.take(idx)) / velocity(x, prepared sub-model)"}]


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


def redraw_draws() -> int:
    """Matrix sets drawn by the Figure 5 redraw schedule (τ = 1) of a 6-system unit integrated to t = 3 by
    dopri5: one per (system, layer) = 18 is the minimum. Counted by wrapping ``Ensemble.draw_one``, so it
    works on versions without a draw counter."""
    try:
        from tokensphere.ensembles import Ensemble, RedrawSchedule
    except ImportError:  # versions before the architecture issue
        from tokensphere.sweep.ensembles import Ensemble, RedrawSchedule
    count = [0]
    original = Ensemble.draw_one

    def counted(self, *args, **kwargs):
        count[0] += 1
        return original(self, *args, **kwargs)

    Ensemble.draw_one = counted
    try:
        ens = Ensemble(score="goe", value="psd", share="independent", redraw=1.0)
        sched = RedrawSchedule(ens, 3, 3, [0, 0, 0, 1, 1, 1], list(range(6)))
        model = ts.Model(beta=torch.tensor([0.5] * 3 + [4.0] * 3, dtype=torch.float64), schedule=sched)
        ts.simulate(ts.Uniform(batch=6, n=6, d=3, seed=1), model=model, solver=ts.Solver("dopri5", rtol=1e-8,
                    atol=1e-10), t_max=3.0, save_at=4)
    finally:
        Ensemble.draw_one = original
    return count[0]


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
    p.add_argument("--draws", action="store_true", help="only count the redraw schedule's draws (see redraw_draws)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.draws:
        print(f"redraw schedule, 6 systems, 3 layers: {redraw_draws()} matrix sets drawn (minimum 18)")
        return []
    if args.quick:
        rows = [*take_overhead(8, 8, 3, 1), layerwise_overhead(4, 6, 3, 2.0, 1)]
    else:
        rows = [*take_overhead(16, 32, 8, 10), *take_overhead(256, 32, 8, 5), *take_overhead(1024, 32, 2, 3),
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
