"""Kernel benchmark: our velocity evaluation against the authors' batched Euler step, in the same process.

The baseline is the step of the authors' ``phase-diagrams.py`` script, re-implemented here:
scores S = β M Mᵀ, A = softmax(S), M ← normalise(M + η A M), float64 (float32 as the option). We time one
``tokensphere.velocity`` call (projection included) against one baseline step, interleaved, and report
the minimum over repeats in ns per B·n²·d and the ratio ours / baseline (< 1: ours is faster).

    python benchmarks/bench_kernel.py            # print the table
    python benchmarks/bench_kernel.py --record   # also append it to BENCHMARKS.md
    python benchmarks/bench_kernel.py --quick    # tiny shapes, for the test suite
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from pathlib import Path

import torch

import tokensphere as ts

SHAPES = [(2048, 32, 2), (16, 128, 64), (1, 2048, 64)]
QUICK_SHAPES = [(8, 8, 2), (2, 16, 4)]
DTYPES = [torch.float64, torch.float32]


def baseline_step(m: torch.Tensor, beta: float, eta: float = 0.1) -> torch.Tensor:
    """The authors' SA step (``phase-diagrams.py``): Euler on the unprojected field, then renormalisation."""
    s = beta * torch.bmm(m, m.transpose(1, 2))
    a = torch.softmax(s, dim=-1)
    m = m + eta * torch.bmm(a, m)
    return m / torch.linalg.vector_norm(m, dim=-1, keepdim=True)


def best_time(fn, repeats: int, warmup: int = 0) -> float:
    """Minimum wall time of ``fn`` over ``repeats`` (at least 1) calls after ``warmup`` untimed calls: the
    timer every benchmark script shares."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench(shape, dtype, repeats: int, chunk_size: int | None = None) -> dict:
    B, n, d = shape
    x = ts.sample_sphere(B, n, d, seed=0, dtype=dtype)
    model = ts.Model(beta=1.0).to(dtype)

    def ours():
        return ts.velocity(x, model, chunk_size=chunk_size)

    def base():
        return baseline_step(x, 1.0)

    for _ in range(2):  # warm-up
        ours()
        base()
    t_ours, t_base = [], []
    for _ in range(repeats):  # interleaved, so drift in machine speed hits both alike
        t_base += _time(base, 1)
        t_ours += _time(ours, 1)
    work = B * n * n * d
    ns_ours = min(t_ours) * 1e9 / work
    ns_base = min(t_base) * 1e9 / work
    return {
        "shape": shape,
        "dtype": str(dtype).replace("torch.", ""),
        "chunk": chunk_size,
        "ns_ours": ns_ours,
        "ns_base": ns_base,
        "ratio": ns_ours / ns_base,
    }


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def table(rows: list[dict]) -> str:
    lines = [
        "| shape (B, n, d) | dtype | back end | ours ns/(B·n²·d) | baseline ns/(B·n²·d) | ratio ours/baseline |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        backend = "dense" if r["chunk"] is None else f"streaming (chunk {r['chunk']})"
        lines.append(
            f"| {r['shape']} | {r['dtype']} | {backend} | {r['ns_ours']:.4f} | {r['ns_base']:.4f} | {r['ratio']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny shapes and few repeats (smoke test)")
    p.add_argument("--record", action="store_true", help="append the table to BENCHMARKS.md")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default 20, quick 3)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 20)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    rows = [bench(s, dt_, repeats) for s in shapes for dt_ in DTYPES]
    # the O(n)-memory streaming back end at the largest shape, against the same baseline
    big = shapes[-1]
    rows += [bench(big, dt_, repeats, chunk_size=max(1, big[1] // 4)) for dt_ in DTYPES]
    text = table(rows)
    print(machine())
    print(text)
    if args.record:
        cmd = "python benchmarks/bench_kernel.py --record" + (" --quick" if args.quick else "")
        record("Kernel: one velocity evaluation vs the authors' step", cmd, f"minimum over {repeats} interleaved repeats", text)
    return rows


def record(title: str, command: str, how: str, text: str) -> None:
    """Append a measured table to BENCHMARKS.md with its command, date and machine."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    path = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
    if not path.exists():
        path.write_text("# Benchmarks\n\nEvery figure below was measured by the command shown beside it.\n")
    with path.open("a") as fh:
        fh.write(f"\n## {title} — {stamp}\n\n- command: `{command}` ({how})\n- machine: {machine()}\n\n{text}\n")


if __name__ == "__main__":
    main()
