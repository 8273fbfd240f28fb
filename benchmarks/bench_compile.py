"""torch.compile as a kernel lever: the toy model's field compiled by TorchInductor against our fused back end.

The scale issue suggested fusing the whole evaluation for many small systems with ``torch.compile`` (which
generates C++ for the CPU). This script measures that idea instead of assuming it: the field of the toy model
(Q = K = V = I, one head, SA, β = 1)

    G = x xᵀ,   E = exp(G),   Z_i = Σ_j E_ij,   S = E x,   f_i = (S_i − ⟨x_i, S_i⟩ x_i) / Z_i      (2.3)

written as plain torch calls (no stabilisation: unit vectors, β = 1), compiled once per shape with
``dynamic=False`` in Inductor's default mode and in ``max-autotune-no-cudagraphs`` (which may swap the two
batched products for its own C++ GEMM templates), is timed against ``tokensphere.velocity`` (the plan's back
end) and the authors' step (``bench_kernel.baseline_step``), interleaved in one process at the thread count
of the library's policy, the step loop's allocator setting for all. Each compiled field is checked against
``velocity`` first (float64: agreement to 1e-12). Reports the one-off compile time and, per shape, the
minimum over repeats in ms and the speed-up over the baseline (> 1: faster than the authors' step). Inductor's
on-disk cache is pointed at a fresh folder for the run, so the first compile is a cold start (C++ compiler
included); the later ones reuse what Inductor keeps in the process, and with a warm disk cache a compile takes
~0.1 s.

Needs a C++ compiler (Inductor's CPU back end); without one the compiled columns read "unavailable".

    python benchmarks/bench_compile.py            # print the table
    python benchmarks/bench_compile.py --record   # also append it to BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

import tokensphere as ts
from tokensphere.integrate.driver import reuse_freed_memory
from tokensphere.runtime import choose_threads, torch_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kernel import baseline_step, record  # noqa: E402

SHAPES = [(2048, 32, 2), (2048, 32, 32), (16, 128, 64)]
MODES = {"inductor": "default", "inductor max-autotune": "max-autotune-no-cudagraphs"}


def toy_field(x: torch.Tensor) -> torch.Tensor:
    """The projected SA field of the toy model at β = 1, as plain torch calls. x: (B, n, d) unit rows."""
    e = torch.exp(torch.bmm(x, x.transpose(1, 2)))
    s = torch.bmm(e, x)
    r = (x * s).sum(-1, keepdim=True)
    return (s - r * x) / e.sum(-1, keepdim=True)


def bench_shape(shape, repeats: int, seed: int = 0) -> dict:
    B, n, d = shape
    x = torch.randn(B, n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = x / x.norm(dim=-1, keepdim=True)
    model = ts.Model(beta=1.0)
    row: dict = {"shape": shape, "compile_s": {}, "ms": {}}
    with torch_threads(choose_threads(n)) as threads:
        row["threads"] = threads
        ref = ts.velocity(x, model)
        calls = {"baseline": lambda: baseline_step(x, 1.0), "ours": lambda: ts.velocity(x, model)}
        for name, mode in MODES.items():
            torch._dynamo.reset()
            t0 = time.perf_counter()
            try:
                fn = torch.compile(toy_field, dynamic=False, mode=mode)
                out = fn(x)
            except Exception as exc:  # noqa: BLE001 - no compiler, or Inductor refusing: report, do not fail
                row["compile_s"][name] = f"unavailable ({type(exc).__name__})"
                continue
            row["compile_s"][name] = time.perf_counter() - t0
            err = float((out - ref).abs().max())
            if not err <= 1e-12:
                raise AssertionError(f"{name} differs from velocity by {err:.1e} at {shape}")
            calls[name] = lambda fn=fn: fn(x)
        best = {name: float("inf") for name in calls}
        for i in range(repeats):  # interleaved, the order rotated each repeat
            names = list(calls)
            names = names[i % len(names):] + names[: i % len(names)]
            for name in names:
                t0 = time.perf_counter()
                calls[name]()
                best[name] = min(best[name], time.perf_counter() - t0)
    row["ms"] = {name: 1e3 * t for name, t in best.items()}
    return row


def table(rows: list[dict]) -> str:
    names = ["ours", *MODES]
    lines = ["| shape (B, n, d) | threads | baseline (ms) | " + " | ".join(f"{n} (ms, speed-up)" for n in names)
             + " | compile (s) |",
             "|---|---|---|" + "---|" * len(names) + "---|"]
    for r in rows:
        base = r["ms"]["baseline"]
        cells = [f"{r['ms'][n]:.2f} ({base / r['ms'][n]:.2f}×)" if n in r["ms"] else "unavailable" for n in names]
        comp = ", ".join(f"{v:.1f}" if isinstance(v, float) else v for v in r["compile_s"].values())
        lines.append(f"| {r['shape']} | {r['threads']} | {base:.2f} | " + " | ".join(cells) + f" | {comp} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--record", action="store_true", help="append the table to BENCHMARKS.md")
    p.add_argument("--repeats", type=int, default=20, help="interleaved repeats per shape (default 20)")
    args = p.parse_args(argv)
    reuse_freed_memory()
    cache = tempfile.mkdtemp(prefix="bench-compile-")  # a cold compile: nothing from earlier runs
    old = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    try:
        rows = [bench_shape(s, args.repeats) for s in SHAPES]
    finally:
        if old is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = old
        shutil.rmtree(cache, ignore_errors=True)
    text = table(rows)
    print(text)
    if args.record:
        record("Kernel: torch.compile of the toy field against the fused back end",
               "python benchmarks/bench_compile.py --record",
               f"minimum over {args.repeats} interleaved repeats, float64, the policy's threads, compiled once per "
               "shape with dynamic=False", text)
    return rows


if __name__ == "__main__":
    main()
