"""Kernel benchmark: our velocity evaluation against the authors' batched Euler step, in the same process.

The baseline is the step of the authors' ``phase-diagrams.py`` script, re-implemented here:
scores S = β M Mᵀ, A = softmax(S), M ← normalise(M + η A M), float64 (float32 as the option). We time one
``tokensphere.velocity`` call (projection included) against one baseline step, interleaved, at the thread
count of the library's policy (``runtime.choose_threads``) for both. Each repeat times each of the two
``STEADY`` = 2 times in a row, the two taking turns to go first, so that the best call of each runs as it does in
a loop of that step alone (in an integration the velocity follows the velocity, in the authors' loop the step
follows the step). Before 2026-11-29 20:20 UTC the two alternated call by call, so that each velocity call ran right after
a baseline step had swept its 32 MiB score matrices through the caches: on a machine with a 48 MiB L3, tables
of the two protocols taken minutes apart (``--runs 5 --heap-reuse``) gave our kernel at (1, 2048, 64) medians of
1.74× and 1.76× the old way, 1.82× the new. We report the minimum over repeats in
ns per B·n²·d, the speed-up baseline / ours (> 1: ours is faster), the back end ``tokensphere.field.plan``
chose, and the fraction of this machine's limit: the time a perfect kernel would need for the two matrix
products (4·B·n²·d flops at the matmul rate measured here) plus the B·n² exponentials (at the exp rate
measured here), divided by our time. float32 rows also give the speed-up against the float64 baseline.

The large entry (n = 65,536, d = 64, float64) runs in a subprocess and reports its peak resident memory
(``resource.getrusage``) and its time against ``torch.nn.functional.scaled_dot_product_attention`` on the same
input in the same subprocess.

    python benchmarks/bench_kernel.py            # print the table
    python benchmarks/bench_kernel.py --record   # also append it to BENCHMARKS.md
    python benchmarks/bench_kernel.py --quick    # tiny shapes, no large entry, for the test suite
    python benchmarks/bench_kernel.py --heap-reuse   # both under the step loop's allocator setting
    python benchmarks/bench_kernel.py --runs 5       # the table in 5 fresh processes: median [min, max]

The baseline's time moves from run to run by more than our kernel's (up to 2.5× at (1, 2048, 64): how often
glibc maps fresh pages for its 32 MiB score matrices depends on the state the process's heap is in), so one
run's minimum can land anywhere in that spread; ``--runs K`` repeats the whole table in K fresh processes
and reports, per row, the median speed-up with the lowest and highest.

The last column compares the two on every core of the machine: the baseline with torch's intra-op threads
(as the authors' script runs), ours with the library's policy for small systems — one intra-op thread, the
fused kernel's blocks of systems spread over one lane per core (``tokensphere.runtime.run_lanes``).

The allocator matters at (2048, 32, ·): each (B, n, d) temporary is 16 MiB, and glibc's default allocator maps
and zero-fills such blocks anew after it has trimmed its heap — system time that the authors' step (about five
such temporaries per step) pays more often than our fused kernel (one output). The library's step loop turns
that off (``reuse_freed_memory``); ``--heap-reuse`` measures both kernels under that setting, which speeds the
baseline up more than ours, so both tables are recorded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

import tokensphere as ts
from tokensphere.field import plan
from tokensphere.integrate.driver import reuse_freed_memory
from tokensphere.runtime import all_cores, choose_threads, torch_threads

SHAPES = [(2048, 32, 2), (2048, 32, 32), (16, 128, 64), (1, 2048, 64)]
QUICK_SHAPES = [(8, 8, 2), (2, 16, 4)]
DTYPES = [torch.float64, torch.float32]
LARGE = (1, 65536, 64)
STEADY = 2  # calls of a case in a row per repeat: the first may pay for the cache state the other case left


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


def machine_limits(dtype: torch.dtype, size: int = 512):
    """Two probes of this machine's limits at the current thread count: a square matrix product of ``size``
    (flops) and the exponential of 4·size² elements. Returns (probe, flops per call, exps per call); time the
    probe interleaved with the kernels and take the minimum."""
    a = torch.randn(size, size, dtype=dtype)
    e = torch.randn(4 * size * size, dtype=dtype)
    out = torch.empty_like(e)

    def mm():
        torch.mm(a, a)

    def ex():
        torch.exp(e, out=out)

    return mm, ex, 2 * size**3, e.numel()


def bench(
    shape, dtype, repeats: int, chunk_size: int | None = None, model: ts.Model | None = None, quick: bool = False
) -> dict:
    B, n, d = shape
    x = ts.sample_sphere(B, n, d, seed=0, dtype=dtype)
    model = (model or ts.Model(beta=1.0)).to(dtype)
    x64 = x.double()
    threads = choose_threads(n)
    with torch_threads(threads):
        mm, ex, flops, exps = machine_limits(dtype, 128 if quick else 512)

        def ours():
            return ts.velocity(x, model, chunk_size=chunk_size)

        def base():
            return baseline_step(x, 1.0)

        def base64():
            return baseline_step(x64, 1.0)

        for _ in range(2):  # warm-up
            ours()
            base()
        other = 1 if threads > 1 else all_cores()  # the thread policy, checked: ours at the other count
        t_ours, t_base, t_b64, t_other, t_base_other, t_mm, t_ex = [], [], [], [], [], [], []
        # interleaved, so drift in machine speed hits all alike; each case STEADY calls in a row (the last ones
        # run as in a loop of that step alone, after themselves rather than after the other case's cache
        # traffic), and the two kernels take turns going first
        for r in range(repeats):
            pair = [(base, t_base), (ours, t_ours)]
            for fn, acc in pair if r % 2 == 0 else pair[::-1]:
                acc += _time(fn, STEADY)
            t_mm += _time(mm, 1)
            t_ex += _time(ex, 1)
            if dtype != torch.float64:
                t_b64 += _time(base64, STEADY)
            if other != threads:
                with torch_threads(other):  # ours: the small systems' blocks spread over `other` lanes
                    t_other += _time(ours, STEADY)
                    t_base_other += _time(base, STEADY)
    work = B * n * n * d
    cores = all_cores()  # both on every core: the baseline with torch's threads, ours with its policy and lanes
    if threads == cores:
        on_all = min(t_base) / min(t_ours)
    elif other == cores:
        on_all = min(t_base_other) / min(t_other)
    else:
        on_all = None
    # a perfect kernel: the two products at the matmul rate, the B·n² exponentials at the exp rate
    bound = 4 * work * min(t_mm) / flops + B * n * n * min(t_ex) / exps
    # a perfect kernel that uses e_ij = e_ji (the symmetric back end's idea): half the score product and half
    # the exponentials, the whole weighted sum
    bound_sym = 3 * work * min(t_mm) / flops + B * n * n * min(t_ex) / exps / 2
    return {
        "shape": shape,
        "dtype": str(dtype).replace("torch.", ""),
        "model": "SA" if model.normalization == "softmax" else "USA",
        "chunk": chunk_size,
        "backend": plan(x, model, chunk_size=chunk_size).describe(),
        "threads": threads,
        "ns_ours": min(t_ours) * 1e9 / work,
        "ns_base": min(t_base) * 1e9 / work,
        "speedup": min(t_base) / min(t_ours),
        "speedup_vs_f64": (min(t_b64) / min(t_ours)) if t_b64 else None,
        "limit_fraction": bound / min(t_ours),
        "base_fraction": bound / min(t_base),  # 1 / this: the most any kernel could gain on this baseline
        "symmetric_gain": min(t_base) / bound_sym,  # the most a kernel using the symmetry could gain
        "other_threads": (other, min(t_other) / min(t_ours)) if t_other else None,
        "cores": cores,
        "speedup_all_cores": on_all,
        "ratio": min(t_ours) / min(t_base),
    }


_LARGE_CHILD = r"""
import json, resource, sys, time, torch, tokensphere as ts
from tokensphere.field import plan
B, n, d = map(int, sys.argv[1:4])
x = ts.sample_sphere(B, n, d, seed=0)
m = ts.Model(beta=1.0)
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter(); ts.velocity(x, m); t_ours = time.perf_counter() - t0
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
xh = x.unsqueeze(1)
t0 = time.perf_counter(); torch.nn.functional.scaled_dot_product_attention(xh, xh, xh, scale=1.0)
t_sdpa = time.perf_counter() - t0
t0 = time.perf_counter(); ts.velocity(x, m); t_ours = min(t_ours, time.perf_counter() - t0)
print(json.dumps({"backend": plan(x, m).describe(), "t_ours": t_ours, "t_sdpa": t_sdpa,
                  "rss_before_kib": rss0, "rss_peak_kib": rss1, "threads": torch.get_num_threads()}))
"""


def bench_large(shape=LARGE) -> dict:
    """Velocity at n = 65,536 in a fresh process: peak RSS and time against torch's SDPA in that process."""
    out = subprocess.run(
        [sys.executable, "-c", _LARGE_CHILD, *map(str, shape)], capture_output=True, text=True, check=True
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["shape"] = shape
    return r


def float32_accuracy(quick: bool = False) -> list[tuple[str, float, float | None]]:
    """Measured error of float32 against float64 on the same input: the field (max |f32 − f64| relative to
    max |f64| of the projected field, and relative to the unprojected field, per back end the plan picks) and a
    trajectory (rk4, dt = 0.05, T = 5; max geodesic distance in rad)."""
    out = []
    shapes = [(2, 16, 4)] if quick else [(2048, 32, 2), (16, 128, 64), (1, 2048, 64)]
    for shape in shapes:
        for beta in (1.0, 9.0):
            for norm in ("softmax", "uniform"):
                x = ts.sample_sphere(*shape, seed=1)
                kw = {"time_scale": "exp_beta"} if norm == "uniform" else {}
                m = ts.Model(beta=beta, normalization=norm, **kw)
                f64 = ts.velocity(x, m)
                f32 = ts.velocity(x.float(), m.to(torch.float32)).double()
                raw = ts.velocity(x, m, project=False).abs().max()
                err = float((f32 - f64).abs().max() / f64.abs().max())
                err_raw = float((f32 - f64).abs().max() / raw)
                name = "SA" if norm == "softmax" else "USA (exp_beta)"
                label = f"field {shape} β = {beta:g} {name} [{plan(x.float(), m).backend}]"
                out.append((label, err, err_raw))
    B, n, d = (2, 16, 4) if quick else (4, 256, 8)
    x = ts.sample_sphere(B, n, d, seed=2)
    for beta in (1.0, 9.0):
        runs = [
            ts.simulate(x.to(dt_), beta=beta, solver=ts.Solver("rk4", dt=0.05), t_max=5.0, save_at=[0.0, 5.0],
                        dtype=dt_).final().double()
            for dt_ in (torch.float64, torch.float32)
        ]
        chord = torch.linalg.vector_norm(runs[0] - runs[1], dim=-1)  # 2 asin(chord / 2): no acos round-off floor
        out.append((f"trajectory ({B}, {n}, {d}) β = {beta:g}, rk4 dt 0.05 to T = 5 (rad)",
                    float((2 * torch.asin((chord / 2).clamp(max=1.0))).max()), None))
    return out


def machine() -> str:
    """The CPU's name, with its model number and cache sizes where Linux gives them (the name alone can be the
    same for different processor generations: "Intel(R) Xeon(R) Processor @ 2.80GHz" has been both a Sapphire
    Rapids and an Ice Lake part here), the core count and torch's version and threads."""
    name = model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name" and not name:
                name = value
            elif key == "model" and not model:
                model = f"model {value}"
    except OSError:
        pass
    cpu = name or platform.processor() or "unknown CPU"
    caches = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = ((index / f).read_text().strip() for f in ("level", "type", "size"))
        except OSError:
            continue
        if kind != "Instruction" and level != "1":
            caches.append(f"L{level} {size}")
    detail = ", ".join(x for x in [model, " ".join(caches)] if x)
    cpu = f"{cpu} ({detail})" if detail else cpu
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def table(rows: list[dict]) -> str:
    lines = [
        "| shape (B, n, d) | model | dtype | threads | back end | ours ns/(B·n²·d) | baseline ns/(B·n²·d) "
        "| speed-up baseline/ours | speed-up vs float64 baseline | fraction of machine limit "
        "| ours at the other thread count: time / time at the policy's "
        "| speed-up on all cores (baseline on torch's threads / ours with lanes) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        vs64 = "" if r["speedup_vs_f64"] is None else f"{r['speedup_vs_f64']:.2f}×"
        oth = "" if r["other_threads"] is None else f"{r['other_threads'][1]:.2f} ({r['other_threads'][0]} threads)"
        allc = "" if r["speedup_all_cores"] is None else f"{r['speedup_all_cores']:.2f}× ({r['cores']} cores)"
        lines.append(
            f"| {r['shape']} | {r['model']} | {r['dtype']} | {r['threads']} | {r['backend']} | {r['ns_ours']:.4f} | "
            f"{r['ns_base']:.4f} | {r['speedup']:.2f}× | {vs64} | {100 * r['limit_fraction']:.0f} % | {oth} | {allc} |"
        )
    return "\n".join(lines)


def large_line(r: dict) -> str:
    return (
        f"Large system {r['shape']} float64, back end {r['backend']}, {r['threads']} threads: one velocity "
        f"{r['t_ours']:.2f} s, torch SDPA on the same input {r['t_sdpa']:.2f} s "
        f"(ratio {r['t_ours'] / r['t_sdpa']:.2f}); "
        f"peak RSS {r['rss_peak_kib'] / 2**20:.2f} GiB (the process held {r['rss_before_kib'] / 2**20:.2f} GiB "
        f"before the call: torch, the input)."
    )


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny shapes and few repeats (smoke test)")
    p.add_argument("--record", action="store_true", help="append the table to BENCHMARKS.md")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default 20, quick 3)")
    p.add_argument("--no-large", action="store_true", help="skip the n = 65,536 entry")
    p.add_argument("--heap-reuse", action="store_true",
                   help="measure both kernels under the allocator setting of the library's step loop "
                        "(tokensphere.integrate.driver.reuse_freed_memory: freed (B, n, d) blocks stay in the "
                        "heap); default: glibc's own allocator for both, as the authors' script runs")
    p.add_argument("--runs", type=int, default=1,
                   help="repeat the table in this many fresh processes and report median [min, max] per row")
    p.add_argument("--rows-json", action="store_true", help=argparse.SUPPRESS)  # a child of --runs
    args = p.parse_args(argv)
    if args.runs > 1:
        return _spread(args)
    if args.heap_reuse and not reuse_freed_memory():
        raise SystemExit("--heap-reuse: the allocator setting is not available here (Linux with glibc only)")
    repeats = args.repeats or (3 if args.quick else 20)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    q = args.quick
    rows = [bench(s, dt_, repeats, quick=q) for s in shapes for dt_ in DTYPES]
    big = shapes[-1]
    usa = ts.Model(beta=1.0, normalization="uniform", time_scale="exp_beta")
    rows += [bench(big, torch.float64, repeats, model=usa, quick=q)]
    # the O(n)-memory streaming back end with an explicit chunk, against the same baseline
    rows += [bench(big, torch.float64, repeats, chunk_size=max(1, big[1] // 4), quick=q)]
    if args.rows_json:
        print(json.dumps(rows))
        return rows
    text = table(rows)
    acc = float32_accuracy(args.quick)
    text += (
        "\n\n| float32 against float64 | error (relative to the projected field / rad) | relative to the "
        "unprojected field |\n|---|---|---|\n"
    ) + "\n".join(f"| {lab} | {e:.1e} | {'' if r is None else f'{r:.1e}'} |" for lab, e, r in acc)
    if not args.quick and not args.no_large:
        text += "\n\n" + large_line(bench_large())
    print(machine())
    print(text)
    if args.record:
        cmd = "python benchmarks/bench_kernel.py --record" + (" --quick" if args.quick else "") + (
            " --heap-reuse" if args.heap_reuse else "") + (" --no-large" if args.no_large else "") + (
            f" --repeats {args.repeats}" if args.repeats else "")
        alloc = ("the library's heap-reuse allocator setting for both" if args.heap_reuse
                 else "glibc's default allocator for both")
        record("Kernel: one velocity evaluation vs the authors' step", cmd,
               f"minimum over {repeats} interleaved repeats, both at the policy's thread count, {alloc}", text)
    return rows


def _spread(args) -> list[dict]:
    """``--runs K``: the table in K fresh processes (each the minimum over its interleaved repeats), then per
    row the median speed-up and the lowest and highest; the float32 accuracy and the large entry once."""
    flags = ["--rows-json"] + (["--quick"] if args.quick else []) + (["--heap-reuse"] if args.heap_reuse else [])
    flags += ["--repeats", str(args.repeats)] if args.repeats else []
    runs = []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, __file__, *flags], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))

    def spread(vals: list[float | None], fmt: str) -> str:
        vals = sorted(v for v in vals if v is not None)
        if not vals:
            return ""
        mid = vals[len(vals) // 2] if len(vals) % 2 else 0.5 * (vals[len(vals) // 2 - 1] + vals[len(vals) // 2])
        return f"{mid:{fmt}} [{vals[0]:{fmt}}, {vals[-1]:{fmt}}]"

    lines = [
        "| shape (B, n, d) | model | dtype | threads | back end | speed-up baseline/ours | speed-up vs float64 "
        "baseline | our fraction of the machine limit (%) | the baseline's (%) | most a perfect kernel could gain (×) "
        "| … using e_ij = e_ji (×) | speed-up on all cores (baseline on torch's threads / ours with lanes) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary = []
    for i, r in enumerate(runs[0]):
        col = [run[i] for run in runs]
        lines.append(
            f"| {tuple(r['shape'])} | {r['model']} | {r['dtype']} | {r['threads']} | {r['backend']} | "
            f"{spread([c['speedup'] for c in col], '.2f')} | {spread([c['speedup_vs_f64'] for c in col], '.2f')} | "
            f"{spread([100 * c['limit_fraction'] for c in col], '.0f')} | "
            f"{spread([100 * c['base_fraction'] for c in col], '.0f')} | "
            f"{spread([1 / c['base_fraction'] for c in col], '.2f')} | "
            f"{spread([c['symmetric_gain'] for c in col], '.2f') if r['backend'].startswith('symmetric') else ''} | "
            f"{spread([c.get('speedup_all_cores') for c in col], '.2f')} |"
        )
        summary.append({**r, "speedups": [c["speedup"] for c in col]})
    text = (f"Each row: median [lowest, highest] over {args.runs} fresh processes, each the minimum over its "
            "interleaved repeats. The machine limit: the two matrix products at the matmul rate and the "
            "exponentials at the exp rate measured in the same run (memory traffic not counted); a kernel at "
            "100 % of it would be faster than the baseline by 1 / (the baseline's fraction). For the symmetric back "
            "end, the most a perfect kernel using e_ij = e_ji could gain (half the score product and half the "
            "exponentials, the whole weighted sum: 3/4 of the products)."
            "\n\n" + "\n".join(lines))
    if not args.quick and not args.no_large:
        text += "\n\n" + large_line(bench_large())
    print(machine())
    print(text)
    if args.record:
        cmd = (f"python benchmarks/bench_kernel.py --record --runs {args.runs}" + (" --quick" if args.quick else "")
               + (" --heap-reuse" if args.heap_reuse else "") + (" --no-large" if args.no_large else "")
               + (f" --repeats {args.repeats}" if args.repeats else ""))
        alloc = ("the library's heap-reuse allocator setting for both" if args.heap_reuse
                 else "glibc's default allocator for both")
        record("Kernel: one velocity evaluation vs the authors' step, spread over fresh processes", cmd,
               f"both at the policy's thread count, {alloc}", text)
    return summary


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
