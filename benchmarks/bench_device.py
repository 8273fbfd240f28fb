"""The GPU column: the kernel and the step loop on an accelerator, in one short run.

Run it whenever a CUDA device is available (no test needs one); ``--device cpu --quick`` is its smoke test.

1. **Kernel.** One ``tokensphere.velocity`` evaluation against one step of the authors' batched Euler scheme
   (``bench_kernel.baseline_step``), both on the device, interleaved, each timed with a device
   synchronisation before and after; the minimum over repeats, at the kernel benchmark's shapes, float64 and
   float32. A correctness line per shape: the device field against the CPU field.
2. **Large n.** n = 65,536, d = 64, float64: our velocity (the back end ``field.plan`` picks from the device's
   free memory) against ``torch.nn.functional.scaled_dot_product_attention`` on the same input, and the
   device's peak memory (``torch.cuda.max_memory_allocated``).
3. **Step loop.** A dopri5 integration of a batch of mixed-β systems with ``sync="step"`` and with
   ``sync="outputs"``: the same steps bit for bit (checked), their wall times, and the ratio.

    python benchmarks/bench_device.py [--device cuda] [--quick] [--record]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import tokensphere as ts
from tokensphere.field import plan
from tokensphere.integrate.driver import integrate
from tokensphere.integrate.saveat import SaveAt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kernel import LARGE, SHAPES, baseline_step, machine, record  # noqa: E402

QUICK_SHAPES = [(8, 8, 2), (2, 16, 4)]


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _best(fn, dev: torch.device, repeats: int) -> float:
    """Minimum wall time of ``fn`` over ``repeats`` calls, the device drained before and after each."""
    best = float("inf")
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        best = min(best, time.perf_counter() - t0)
    return best


def kernel_rows(dev: torch.device, shapes, repeats: int) -> list[dict]:
    rows = []
    for shape in shapes:
        for dtype in (torch.float64, torch.float32):
            x_cpu = ts.sample_sphere(*shape, seed=0, dtype=dtype)
            x = x_cpu.to(dev)
            model = ts.Model(beta=1.0).to(dtype, dev)
            for _ in range(2):  # warm-up (kernel selection, caches)
                ts.velocity(x, model)
                baseline_step(x, 1.0)
            t_ours = t_base = float("inf")
            for _ in range(repeats):  # interleaved
                t_base = min(t_base, _best(lambda: baseline_step(x, 1.0), dev, 1))
                t_ours = min(t_ours, _best(lambda: ts.velocity(x, model), dev, 1))
            ref = ts.velocity(x_cpu, ts.Model(beta=1.0).to(dtype))
            err = float((ts.velocity(x, model).cpu() - ref).abs().max() / ref.abs().max())
            rows.append({"shape": shape, "dtype": str(dtype).replace("torch.", ""), "backend": plan(x, model).backend,
                         "ours_ms": t_ours * 1e3, "base_ms": t_base * 1e3, "speedup": t_base / t_ours,
                         "err_vs_cpu": err})
    return rows


def large_row(dev: torch.device, shape=LARGE) -> dict:
    x = ts.sample_sphere(*shape, seed=0).to(dev)
    model = ts.Model(beta=1.0).to(torch.float64, dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t_ours = _best(lambda: ts.velocity(x, model), dev, 2)
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
    xh = x.unsqueeze(1)
    try:  # float64 SDPA falls back to the math kernel, which materialises the n × n scores
        t_sdpa = _best(lambda: torch.nn.functional.scaled_dot_product_attention(xh, xh, xh, scale=1.0), dev, 2)
    except torch.OutOfMemoryError:
        t_sdpa = None
    return {"shape": shape, "backend": plan(x, model).describe(), "ours_s": t_ours, "sdpa_s": t_sdpa,
            "peak_gib": None if peak is None else peak / 2**30}


def loop_rows(dev: torch.device, B: int, n: int, d: int, T: float) -> dict:
    model = ts.Model(beta=torch.linspace(0.1, 9.0, B, dtype=torch.float64)).to(torch.float64, dev)
    x0 = ts.Uniform(batch=B, n=n, d=d, seed=0).sample().to(dev)

    def f(t, x, idx):
        return ts.velocity(x, model if idx is None else model.take(idx))

    out = {}
    for sync in ("step", "outputs"):
        _sync(dev)
        t0 = time.perf_counter()
        res = integrate(f, x0, SaveAt(torch.tensor([0.0, T / 2, T], dtype=torch.float64)),
                        ts.Solver("dopri5", rtol=1e-6, atol=1e-8), sync=sync)
        _sync(dev)
        out[sync] = (time.perf_counter() - t0, res)
    (t_step, a), (t_out, b) = out["step"], out["outputs"]
    same = bool(torch.equal(a.positions, b.positions) and torch.equal(a.steps, b.steps))
    return {"B": B, "n": n, "d": d, "T": T, "step_s": t_step, "outputs_s": t_out, "same": same,
            "iterations": int((a.steps + a.rejected).max())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="torch device (default cuda)")
    p.add_argument("--quick", action="store_true", help="tiny shapes, no large entry (smoke test)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default 20, quick 2)")
    p.add_argument("--record", action="store_true", help="append the tables to BENCHMARKS.md")
    args = p.parse_args(argv)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: nothing measured (run with --device cpu for the smoke test)")
        return None
    repeats = args.repeats or (2 if args.quick else 20)
    rows = kernel_rows(dev, QUICK_SHAPES if args.quick else SHAPES, repeats)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else machine()
    text = (f"device: {name}\n\n| shape (B, n, d) | dtype | back end | ours (ms) | baseline (ms) | speed-up "
            "baseline/ours | field vs the CPU field (relative) |\n|---|---|---|---|---|---|---|\n")
    text += "\n".join(f"| {r['shape']} | {r['dtype']} | {r['backend']} | {r['ours_ms']:.3f} | {r['base_ms']:.3f} | "
                      f"{r['speedup']:.2f}× | {r['err_vs_cpu']:.1e} |" for r in rows)
    if not args.quick:
        big = large_row(dev)
        peak = "" if big["peak_gib"] is None else f", peak device memory {big['peak_gib']:.2f} GiB"
        sdpa = ("torch SDPA out of memory" if big["sdpa_s"] is None else
                f"torch SDPA {big['sdpa_s']:.3f} s (ratio {big['ours_s'] / big['sdpa_s']:.2f})")
        text += (f"\n\nLarge system {big['shape']} float64, back end {big['backend']}: one velocity "
                 f"{big['ours_s']:.3f} s, {sdpa}{peak}.")
    loop = loop_rows(dev, *((16, 8, 4, 1.0) if args.quick else (4096, 32, 32, 6.0)))
    text += (f"\n\nStep loop, B = {loop['B']}, n = {loop['n']}, d = {loop['d']}, dopri5 rtol 1e-6 to t = {loop['T']:g}, "
             f"3 output times, {loop['iterations']} iterations: sync='step' {loop['step_s']:.2f} s, sync='outputs' "
             f"{loop['outputs_s']:.2f} s ({loop['step_s'] / loop['outputs_s']:.2f}×); same steps and states: "
             f"{loop['same']}.")
    print(text)
    if args.record:
        cmd = f"python benchmarks/bench_device.py --device {args.device} --record" + (" --quick" if args.quick else "")
        record("Device (GPU column): kernel and step loop", cmd,
               f"minimum over {repeats} interleaved repeats, the device synchronised around each call", text)
    return {"kernel": rows, "loop": loop}


if __name__ == "__main__":
    main()
