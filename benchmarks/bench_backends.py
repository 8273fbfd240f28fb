"""The toy model's back ends side by side: is the one ``tokensphere.field.plan`` picks the fastest?

For each shape the same input is evaluated by every back end that can run the toy model there — the fused
small-system path, the symmetric one (half the scores), torch's fused attention (``sdpa``) — alternately in
one process, at the thread count of the library's policy (``runtime.choose_threads``), and each is reported
by the median over rounds of its time (ms per unprojected field, the projection being the same for all).
The fields are checked to agree. The last columns name the plan's choice and its time relative to the
fastest back end of the row (1.00: the plan picked the fastest). The shapes straddle the plan's threshold
``field.FUSED_MAX_N`` = 512 (the fused path below it; from it on the symmetric back end in float64 and the fused
attention in float32).

    python benchmarks/bench_backends.py              # print the table
    python benchmarks/bench_backends.py --record     # also append it to BENCHMARKS.md
    python benchmarks/bench_backends.py --quick      # small shapes, a few rounds (the test suite's smoke run)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

import tokensphere as ts
from tokensphere import field
from tokensphere.integrate.driver import reuse_freed_memory
from tokensphere.runtime import choose_threads, torch_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kernel import record  # noqa: E402

SHAPES = [
    ((16, 128, 64), torch.float64), ((4, 256, 64), torch.float64), ((2, 384, 64), torch.float64),
    ((1, 512, 64), torch.float64), ((1, 768, 64), torch.float64), ((1, 1024, 64), torch.float64),
    ((1, 2048, 64), torch.float64), ((1, 4096, 64), torch.float64),
    ((4, 256, 32), torch.float64), ((2, 384, 32), torch.float64), ((1, 768, 32), torch.float64),
    ((4, 256, 3), torch.float64), ((4, 512, 3), torch.float64), ((1, 768, 3), torch.float64),
    ((1, 1024, 3), torch.float64), ((1, 2048, 3), torch.float64), ((1, 4096, 3), torch.float64),
    ((4, 256, 64), torch.float32), ((1, 768, 64), torch.float32), ((1, 2048, 64), torch.float32),
    ((1, 4096, 64), torch.float32),
]
QUICK_SHAPES = [((2, 64, 8), torch.float64), ((1, 128, 3), torch.float32)]
FUSED_MAX_BYTES = 512 * 1024**2  # the fused path holds the whole B·n² scores when run by hand: skip it above


def candidates(x: torch.Tensor) -> dict[str, field.KernelPlan]:
    """The back ends that can run the toy model on ``x``, as plans to hand to the kernel."""
    B, n, _ = x.shape
    out = {}
    if 2 * B * n * n * x.element_size() <= FUSED_MAX_BYTES:
        out["fused"] = field.KernelPlan("fused", reason="benchmark")
    out["symmetric"] = field.KernelPlan("symmetric", chunk_size=min(field.SYMMETRIC_BLOCK, n), reason="benchmark")
    out["sdpa"] = field.KernelPlan("sdpa", reason="benchmark")
    return out


def bench_shape(shape, dtype, rounds: int, seed: int = 0) -> dict:
    B, n, d = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, n, d, generator=g, dtype=torch.float64)
    x = (x / x.norm(dim=-1, keepdim=True)).to(dtype)
    model = ts.Model(beta=1.0)
    w = field.weights_at(model, x)
    plans = candidates(x)
    threads = choose_threads(n)
    with torch_threads(threads):
        picked = field.plan(x, model).backend
        ref = None
        for name, p in plans.items():  # warm up, and the same field from each
            f = field._run(p, x, w)
            ref = f if ref is None else ref
            scale = float(ref.abs().max())
            err = float((f - ref).abs().max()) / scale
            tol = 1e-12 if dtype == torch.float64 else 1e-5
            if not err <= tol:
                raise AssertionError(f"{name} differs from {next(iter(plans))} by {err:.1e} at {shape} {dtype}")
        times: dict[str, list[float]] = {name: [] for name in plans}
        for _ in range(rounds):
            for name, p in plans.items():
                t0 = time.perf_counter()
                field._run(p, x, w)
                times[name].append(time.perf_counter() - t0)
    ms = {name: 1e3 * statistics.median(v) for name, v in times.items()}
    best = min(ms, key=ms.get)
    return dict(shape=shape, dtype=str(dtype).replace("torch.", ""), threads=threads, ms=ms, best=best,
                picked=picked, ratio=ms[picked] / ms[best] if picked in ms else float("nan"))


def table(rows: list[dict]) -> str:
    names = ["fused", "symmetric", "sdpa"]
    lines = ["| shape (B, n, d) | dtype | threads | " + " | ".join(f"{n} (ms)" for n in names)
             + " | fastest | plan picks | plan / fastest |",
             "|---|---|---|" + "---|" * len(names) + "---|---|---|"]
    for r in rows:
        cells = [f"{r['ms'][n]:.2f}" if n in r["ms"] else "–" for n in names]
        lines.append(f"| {r['shape']} | {r['dtype']} | {r['threads']} | " + " | ".join(cells)
                     + f" | {r['best']} | {r['picked']} | {r['ratio']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--record", action="store_true", help="append the table to BENCHMARKS.md")
    p.add_argument("--quick", action="store_true", help="small shapes, 3 rounds (smoke test)")
    p.add_argument("--rounds", type=int, default=15, help="alternating rounds per shape (default 15)")
    args = p.parse_args(argv)
    reuse_freed_memory()  # the step loop's allocator setting, so the back ends' temporaries cost the same
    shapes = QUICK_SHAPES if args.quick else SHAPES
    rounds = 3 if args.quick else args.rounds
    rows = [bench_shape(s, dt, rounds) for s, dt in shapes]
    text = table(rows)
    print(text)
    if args.record:
        record("Kernel: the toy model's back ends side by side, and the plan's pick", "python "
               "benchmarks/bench_backends.py --record" + ("" if args.rounds == 15 else f" --rounds {args.rounds}"),
               f"median over {rounds} alternating rounds, the policy's threads, the heap-reuse allocator setting",
               text)
    return rows


if __name__ == "__main__":
    main()
