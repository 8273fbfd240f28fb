"""Large n: 10^5 tokens on S^2 and S^63, integrated for a short time, clusters counted — no n × n matrix anywhere.

The velocity kernel chooses its back end from the shapes and the free memory: at this size, for the toy model
in float64, the symmetric back end (half of the score matrix, in blocks of 512 tokens: memory O(n·d)); the fused
attention with an online softmax (memory O(n·d)) for other models and float32. The cluster statistics above ``CHUNKED_MIN_N`` tokens sort the tokens
along their principal axis and compare each block only with the tokens within reach of it (memory
O(n·block)). Printed per dimension: the kernel's back end, the time per step and per field evaluation, the
peak resident memory of the run (what a dense n × n float64 matrix would need, for scale), the pair fraction
and the cluster count at δ = 1e-3 before and after, and the time they took.

    python examples/large_n.py            # n = 100 000, d = 3 and 64, one Euler step of 0.05 (minutes)
    python examples/large_n.py --quick    # n = 3000 (seconds)
    python examples/large_n.py --n 20000 --dims 3 --method rk4 --steps 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import tokensphere as ts
from tokensphere.analysis.clusters import CHUNKED_MIN_N, pair_statistics
from tokensphere.field import plan
from tokensphere.runtime import all_cores

DELTA = 1e-3


def _peak_rss_reset() -> bool:
    """Reset the process's peak resident set size (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss() -> int:
    """Peak resident set size of the process in bytes (VmHWM), 0 where it cannot be read."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run(n: int, d: int, *, beta: float = 1.0, method: str = "euler", dt: float = 0.05, steps: int = 1,
        dtype: str = "float64", seed: int = 0, initial_statistics: bool = True) -> dict:
    """Integrate n tokens in dimension d for ``steps`` steps of ``dt`` and measure; returns the figures."""
    x0 = ts.Uniform(batch=1, n=n, d=d, seed=seed).sample(dtype=getattr(torch, dtype))
    backend = plan(x0, ts.Model(beta=beta)).backend
    t0 = time.perf_counter()
    before = pair_statistics(x0, DELTA) if initial_statistics else (torch.tensor(float("nan")), torch.tensor(-1))
    stats_before = time.perf_counter() - t0
    reset = _peak_rss_reset()
    rss0 = _peak_rss()
    t0 = time.perf_counter()
    tr = ts.simulate(x0, beta, solver=ts.Solver(method, dt=dt), t_max=dt * steps, save_at=[0.0, dt * steps],
                     threads=all_cores())
    wall = time.perf_counter() - t0
    peak = _peak_rss()
    x1 = tr.final()
    t0 = time.perf_counter()
    after = pair_statistics(x1, DELTA)
    stats_after = time.perf_counter() - t0
    return {
        "n": n, "d": d, "dtype": dtype, "backend": backend, "method": method, "steps": int(tr.steps.max()),
        "evaluations": tr.metadata["field_evaluations"], "wall": wall, "per_step": wall / int(tr.steps.max()),
        "per_evaluation": wall / tr.metadata["field_evaluations"], "peak_rss": peak, "rss_before": rss0,
        "peak_reset": reset, "dense_matrix_bytes": n * n * x0.element_size(),
        "fraction": (float(before[0]), float(after[0])), "clusters": (int(before[1]), int(after[1])),
        "stats_seconds": (stats_before, stats_after), "chunked": n > CHUNKED_MIN_N,
        "unit_norm_error": float((torch.linalg.vector_norm(x1, dim=-1) - 1).abs().max()),
    }


def table(rows: list[dict]) -> str:
    lines = ["| n | d | kernel | steps × method | s per step | s per field evaluation | peak RSS (MiB) | peak RSS − RSS "
             "before the run (MiB) | one n×n matrix (MiB) | pair fraction t=0 → end | clusters t=0 → end | "
             "statistics (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['d']} | {r['backend']} | {r['steps']} × {r['method']} | {r['per_step']:.2f} | "
            f"{r['per_evaluation']:.2f} | {r['peak_rss'] / 2**20:.0f} | {(r['peak_rss'] - r['rss_before']) / 2**20:.0f} | "
            f"{r['dense_matrix_bytes'] / 2**20:.0f} | "
            f"{r['fraction'][0]:.2e} → {r['fraction'][1]:.2e} | {r['clusters'][0]} → {r['clusters'][1]} | "
            f"{r['stats_seconds'][0]:.1f}, {r['stats_seconds'][1]:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"n = 3000 (> {CHUNKED_MIN_N}: the chunked statistics)")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dims", type=int, nargs="+", default=[3, 64])
    p.add_argument("--method", default="euler")
    p.add_argument("--dt", type=float, default=0.05)
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--no-initial-statistics", action="store_true", help="count clusters at the end only")
    args = p.parse_args(argv)
    n = 3000 if args.quick else args.n
    rows = []
    for d in args.dims:
        r = run(n, d, method=args.method, dt=args.dt, steps=args.steps, dtype=args.dtype,
                initial_statistics=not args.no_initial_statistics)
        rows.append(r)
        print(table([r]).splitlines()[-1], flush=True)
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
