"""How fast a float32 evaluation at (1, 2048, 64) can get here, against the float64 baseline step.

The scale issue asks one float32 `velocity` evaluation at (B, n, d) = (1, 2048, 64) to run 4× faster than
the authors' float64 step. This script measures, in one process and interleaved in random order, the
ceilings that bound every kernel built from torch's products on this machine:

- ``baseline (float64)``: the authors' step (``bench_kernel.baseline_step``), the reference of the ratios;
- ``velocity (float32)``: the library's evaluation, with the back end its plan picks (``sdpa`` here);
- ``symmetric back end (float32)``: the half-score back end (e_ij = e_ji), unprojected;
- ``symmetric products alone (float32)``: the same blocks' three products (scores, rows of the block, rows of
  the strip, values of width d: no padding), and nothing else: no exponentials, no row sums, no division.
  Any implementation of the symmetric scheme from these products takes at least this long;
- ``full products alone (float32)``: the two products of the whole matrix, X Xᵀ and E X, nothing else: the
  floor of every full-matrix kernel built from them.

It also prints the machine limit (a square float32 product's FLOP/s and torch's float32 exponentials/s,
timed in the same rounds) as the time a perfect kernel would take for the full work (2 products of 2n²d
flops, n² exponentials) and for the symmetric work (1.5 such products, n²/2 exponentials).

Every call runs twice in a row (the first brings its operands into the cache; the second is timed), the
rounds in random order; each row reports the median and the minimum over rounds and the speed-up over the
baseline's median and minimum. Both under the library's heap-reuse allocator setting (the stable comparison,
see ``bench_kernel.py``), at torch's thread count of the policy for n ≥ 512 (all cores).

    python benchmarks/bench_f32_ceiling.py            # print the table
    python benchmarks/bench_f32_ceiling.py --record   # also append it to BENCHMARKS.md
    python benchmarks/bench_f32_ceiling.py --quick    # tiny shapes, for the test suite
"""

from __future__ import annotations

import argparse
import random
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
from bench_kernel import baseline_step, machine, machine_limits, record  # noqa: E402


def symmetric_products(x: torch.Tensor, c: int, strip: int) -> torch.Tensor:
    """The symmetric back end's products for x (1, n, d) in blocks of c rows against strips of strip·c columns,
    with nothing between them (the scores stand in for the exponentials): a floor on that scheme's time."""
    B, n, d = x.shape
    acc = torch.zeros_like(x)
    width = strip * c
    buf = torch.empty(B * min(c, n) * min(width, n), dtype=x.dtype)
    for i0 in range(0, n, c):
        i1 = min(i0 + c, n)
        for j0 in range(i0, n, width):
            j1 = min(j0 + width, n)
            e = buf[: B * (i1 - i0) * (j1 - j0)].view(B, i1 - i0, j1 - j0)
            torch.bmm(x[:, i0:i1], x[:, j0:j1].transpose(1, 2), out=e)
            acc[:, i0:i1].baddbmm_(e, x[:, j0:j1])
            k0 = max(j0, i1)
            if k0 < j1:
                acc[:, k0:j1].baddbmm_(e[:, :, k0 - j0 :].transpose(1, 2), x[:, i0:i1])
    return acc


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a tiny shape and few rounds (smoke test)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 25, quick 2)")
    p.add_argument("--record", action="store_true", help="append the table to BENCHMARKS.md")
    args = p.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 25)
    B, n, d = (1, 256, 16) if args.quick else (1, 2048, 64)
    heap = reuse_freed_memory()
    x32 = ts.sample_sphere(B, n, d, seed=0, dtype=torch.float32)
    x64 = x32.double()
    model = ts.Model(beta=1.0).to(torch.float32)
    w = field.weights_at(model, x32)
    c = min(field.SYMMETRIC_BLOCK, n // 4)
    full_e = torch.empty(B, n, n, dtype=torch.float32)
    full_out = torch.empty_like(x32)

    def full_products() -> None:
        torch.bmm(x32, x32.transpose(1, 2), out=full_e)
        torch.bmm(full_e, x32, out=full_out)

    threads = choose_threads(n)
    with torch_threads(threads):
        mm, ex, mm_flops, exps = machine_limits(torch.float32, 128 if args.quick else 512)
        cases = {
            "baseline (float64)": lambda: baseline_step(x64, 1.0),
            f"velocity (float32), plan: {field.plan(x32, model).describe()}": lambda: ts.velocity(x32, model),
            "symmetric back end (float32)": lambda: field._symmetric(x32, w, c),
            "symmetric products alone (float32)": lambda: symmetric_products(x32, c, field.SYMMETRIC_STRIP),
            "full products alone (float32)": full_products,
            "_mm": mm,
            "_exp": ex,
        }
        times: dict[str, list[float]] = {k: [] for k in cases}
        order = list(cases)
        rng = random.Random(0)
        for _ in range(rounds):
            rng.shuffle(order)
            for k in order:
                cases[k]()
                t0 = time.perf_counter()
                cases[k]()
                times[k].append(time.perf_counter() - t0)
    rate = mm_flops / min(times["_mm"])  # FLOP/s of a square float32 product
    exp_rate = exps / min(times["_exp"])  # float32 exponentials per second
    product = 2 * B * n * n * d  # flops of one n × n × d product
    limits = {
        "machine limit, full work (float32)": 2 * product / rate + B * n * n / exp_rate,
        "machine limit, symmetric work (float32)": 1.5 * product / rate + B * n * n / 2 / exp_rate,
    }
    base = times["baseline (float64)"]
    base_med, base_min = statistics.median(base), min(base)
    rows = []
    for k, v in times.items():
        if k.startswith("_"):
            continue
        med, lo = statistics.median(v), min(v)
        rows.append({"what": k, "median_ms": 1e3 * med, "min_ms": 1e3 * lo,
                     "ratio_median": base_med / med, "ratio_min": base_min / lo})
    for k, t in limits.items():
        rows.append({"what": k, "median_ms": float("nan"), "min_ms": 1e3 * t,
                     "ratio_median": float("nan"), "ratio_min": base_min / t})
    text = "\n".join(
        [f"(B, n, d) = ({B}, {n}, {d}), β = 1, {threads} torch threads, {rounds} rounds; square float32 product "
         f"{rate / 1e9:.0f} GFLOP/s, float32 exponentials {exp_rate / 1e9:.2f} G/s (best round)", "",
         "| what | median ms | min ms | speed-up over the float64 baseline (median / min) |",
         "|---|---|---|---|"]
        + [f"| {r['what']} | {r['median_ms']:.2f} | {r['min_ms']:.2f} | "
           + f"{r['ratio_median']:.2f}× / {r['ratio_min']:.2f}× |" if r["ratio_median"] == r["ratio_median"]
           else f"| {r['what']} | — | {r['min_ms']:.2f} | — / {r['ratio_min']:.2f}× (times from the rates) |"
           for r in rows]
    )
    print(machine())
    print(text)
    if args.record:
        how = ("interleaved in random order, each call twice in a row with the second timed; "
               + ("the heap-reuse allocator setting" if heap else "glibc's default allocator (heap reuse unavailable)"))
        record("Float32 at (1, 2048, 64): the ceilings of kernels made of torch's products",
               "python benchmarks/bench_f32_ceiling.py" + (f" --rounds {args.rounds}" if args.rounds else "")
               + " --record", how, text)
    return rows


if __name__ == "__main__":
    main()
