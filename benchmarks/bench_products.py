"""Matrix-product rates on the shapes the kernel's back ends use, against a square product, in one process.

The kernel benchmark's "machine limit" counts the two products of an evaluation at the rate of one square
512 × 512 product. The back ends' products are not square: the fused path multiplies many 32 × 32 matrices
per call, the symmetric back end strips of 512 rows by 2048 columns against 64 or 72 columns. This script
times each of those products interleaved with the square one (each called twice in a row and the second call
timed, with its operands in the cache; the minimum over rounds, so drift in the machine's speed hits all
alike) and reports GFLOP/s and the fraction of the square product's rate: how far a kernel made of these
products can get towards the limit, at best. The symmetric strip's three products are also timed with the strip
stored transposed, (2048, 512) instead of (512, 2048): the orientation the back end could have taken instead.

    python benchmarks/bench_products.py            # print the table
    python benchmarks/bench_products.py --record   # also append it to BENCHMARKS.md
    python benchmarks/bench_products.py --quick    # tiny shapes, for the test suite
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from tokensphere.runtime import torch_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kernel import machine, record  # noqa: E402


def cases(quick: bool) -> list[tuple[str, int, object, int]]:
    """(label, threads, product, flops): the square reference at 1 and 2 threads, then the back ends'
    products at the thread count they run with (fused: 1 per lane; symmetric: torch's threads)."""
    f64 = torch.float64
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=f64)

    s = 64 if quick else 512
    a = rand(s, s)
    k, n, d = (4, 8, 8) if quick else (64, 32, 32)  # one cache-sized block of the fused path
    x, e, y = rand(k, n, d), rand(k, n, n), torch.empty(k, n, d, dtype=f64)
    xt = x.transpose(1, 2).contiguous()
    g_out = torch.empty(k, n, n, dtype=f64)
    c, w, dd, m = (16, 64, 8, 16) if quick else (512, 2048, 64, 72)  # one strip of the symmetric back end
    q, keys, strip = rand(c, dd), rand(w, dd), torch.empty(c, w, dtype=f64)
    es, v, vi = rand(c, w), rand(w, m), rand(c, m)
    strip_t, es_t = torch.empty(w, c, dtype=f64), rand(w, c)  # the other orientation: the strip as (w, c)
    acc, acc_t = torch.zeros(c, m, dtype=f64), torch.zeros(w, m, dtype=f64)
    both = min(2, torch.get_num_threads()) if not quick else 1
    out = []
    for t in sorted({1, both}):
        out.append((f"square {s} × {s} × {s}", t, lambda: torch.mm(a, a), 2 * s**3))
    out += [
        (f"fused: scores, {k} × ({n} × {d}) · ({d} × {n}), transposed operand", 1,
         lambda: torch.bmm(x, x.transpose(1, 2), out=g_out), 2 * k * n * n * d),
        ("fused: the same with the transpose contiguous", 1,
         lambda: torch.bmm(x, xt, out=g_out), 2 * k * n * n * d),
        (f"fused: weighted sums, {k} × ({n} × {n}) · ({n} × {d})", 1,
         lambda: torch.bmm(e, x, out=y), 2 * k * n * n * d),
        (f"symmetric: scores, ({c} × {dd}) · ({dd} × {w})", both,
         lambda: torch.mm(q, keys.t(), out=strip), 2 * c * w * dd),
        (f"symmetric: rows of the block, ({c} × {w}) · ({w} × {m})", both, lambda: acc.addmm_(es, v), 2 * c * w * m),
        (f"symmetric: rows of the strip, ({w} × {c}) · ({c} × {m})", both, lambda: acc_t.addmm_(es.t(), vi),
         2 * c * w * m),
        # the strip stored transposed, (w, c): the same three products with the operands' roles swapped
        (f"symmetric, strip stored transposed: scores, ({w} × {dd}) · ({dd} × {c})", both,
         lambda: torch.mm(keys, q.t(), out=strip_t), 2 * c * w * dd),
        ("symmetric, strip stored transposed: rows of the block", both, lambda: acc.addmm_(es_t.t(), v),
         2 * c * w * m),
        ("symmetric, strip stored transposed: rows of the strip", both, lambda: acc_t.addmm_(es_t, vi),
         2 * c * w * m),
    ]
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny shapes, few repeats (smoke test)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 60, quick 2)")
    p.add_argument("--record", action="store_true", help="append the table to BENCHMARKS.md")
    args = p.parse_args(argv)
    rounds = args.repeats or (2 if args.quick else 60)
    todo = cases(args.quick)
    best = [float("inf")] * len(todo)
    for count in sorted({threads for _, threads, _, _ in todo}):  # one thread setting at a time: switching it
        mine = [i for i, case in enumerate(todo) if case[1] == count]  # between calls slows the next call
        with torch_threads(count):
            for _ in range(rounds):  # interleaved: every product once per round
                for i in mine:
                    todo[i][2]()  # the operands into the cache: the second call is timed (a product's own rate)
                    t0 = time.perf_counter()
                    todo[i][2]()
                    best[i] = min(best[i], time.perf_counter() - t0)
    square = {threads: flops / best[i] for i, (label, threads, _, flops) in enumerate(todo)
              if label.startswith("square")}
    rows = []
    for (label, threads, _, flops), t in zip(todo, best):
        rate = flops / t
        rows.append({"product": label, "threads": threads, "gflops": rate / 1e9,
                     "fraction": rate / square[threads]})
    text = "\n".join(
        ["| product | threads | GFLOP/s | fraction of the square product's rate at these threads |",
         "|---|---|---|---|"]
        + [f"| {r['product']} | {r['threads']} | {r['gflops']:.1f} | {100 * r['fraction']:.0f} % |" for r in rows]
    )
    print(machine())
    print(text)
    if args.record:
        record("Matrix-product rates on the back ends' shapes", "python benchmarks/bench_products.py --record",
               f"float64, the minimum over {rounds} interleaved rounds", text)
    return rows


if __name__ == "__main__":
    main()
