"""The velocity field of this working tree against the field module of an earlier git revision, in one process.

Both versions of ``tokensphere/field.py`` are loaded side by side (the old one from ``git show REV:...`` as a
sibling module of the current package, so it uses today's model, weights and runtime), evaluated on the same
input alternately, and compared by the median over rounds of each round's minimum — the way to see a kernel
change on a machine whose speed drifts by ±30 % from minute to minute. The fields are checked to agree.

    python benchmarks/bench_field_ab.py --rev d0d73f0             # the default shapes, one thread, one lane
    python benchmarks/bench_field_ab.py --rev d0d73f0 --record    # also append the table to BENCHMARKS.md
    python benchmarks/bench_field_ab.py --rev 97c8f31 --large     # n = 2048 … 8192, the policy's threads

Default shapes: the step benchmark's field (B = 4096, n = d = 32, per-system β from 0.1 to 9, as in
``bench_step.py``) and the kernel benchmark's small shapes at β = 1. ``--large``: systems of 2048 to 8192
tokens (the symmetric and fused-attention back ends) at the thread count of the library's policy
(``runtime.choose_threads``).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import tokensphere as ts
from tokensphere import field as current
from tokensphere.integrate.driver import reuse_freed_memory
from tokensphere.runtime import choose_threads, lanes, torch_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kernel import machine, record  # noqa: E402

CASES = [((4096, 32, 32), "0.1..9"), ((2048, 32, 32), 1.0), ((2048, 32, 2), 1.0), ((16, 128, 64), 1.0)]
LARGE_CASES = [((1, 2048, 64), 1.0), ((4, 2048, 32), 1.0), ((1, 4096, 16), 1.0), ((1, 8192, 64), 1.0),
               ((1, 8192, 3), 1.0)]


def load_field(rev: str):
    """tokensphere/field.py as it was at ``rev``, imported as ``tokensphere.field_<rev>``."""
    root = Path(__file__).resolve().parent.parent
    src = subprocess.run(["git", "show", f"{rev}:src/tokensphere/field.py"], cwd=root, capture_output=True,
                         text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "field_rev.py"
    path.write_text(src)
    name = f"tokensphere.field_{rev}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "tokensphere"
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rev", required=True, help="git revision of the 'before' field module")
    p.add_argument("--rounds", type=int, default=7, help="alternating rounds (the median of their minima is kept)")
    p.add_argument("--repeats", type=int, default=5, help="calls per version per round")
    p.add_argument("--quick", action="store_true", help="one tiny shape, 2 rounds (smoke test)")
    p.add_argument("--record", action="store_true", help="append the table to BENCHMARKS.md")
    p.add_argument("--large", action="store_true", help="large systems, at the policy's thread count")
    args = p.parse_args(argv)
    reuse_freed_memory()  # the step loop's allocator setting, for both
    old = load_field(args.rev)
    cases = [((64, 8, 4), 1.0)] if args.quick else LARGE_CASES if args.large else CASES
    rounds = 2 if args.quick else args.rounds
    rows = ["| shape (B, n, d) | β | before (ms) | after (ms) | speed-up | max difference |", "|---|---|---|---|---|---|"]
    for shape, beta in cases:
        x = ts.sample_sphere(*shape, seed=0)
        b = torch.linspace(0.1, 9.0, shape[0], dtype=torch.float64) if beta == "0.1..9" else beta
        model = ts.Model(beta=b)
        diff = float((old.velocity(x, model) - current.velocity(x, model)).abs().max())
        times: dict[str, list[float]] = {"before": [], "after": []}
        threads = choose_threads(shape[1]) if args.large else 1
        with lanes(1), torch_threads(threads):
            for _ in range(rounds):
                for key, mod in (("before", old), ("after", current)):
                    best = float("inf")
                    for _ in range(args.repeats):
                        t0 = time.perf_counter()
                        mod.velocity(x, model)
                        best = min(best, time.perf_counter() - t0)
                    times[key].append(best * 1e3)
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        rows.append(f"| {shape} | {beta} | {med['before']:.2f} | {med['after']:.2f} | "
                    f"{med['before'] / med['after']:.2f}× | {diff:.1e} |")
    text = "\n".join(rows)
    print(machine())
    how = "the policy's thread count" if args.large else "one thread, one lane"
    print(f"field at {args.rev} (before) against this tree (after); {how}; median over {rounds} "
          "alternating rounds of the minimum of each round's calls")
    print(text)
    if args.record:
        record(f"Kernel: the field against revision {args.rev}, one process", f"python benchmarks/bench_field_ab.py "
               f"--rev {args.rev} --record" + (" --large" if args.large else ""),
               f"median over {rounds} alternating rounds, {how}", text)
    return text


if __name__ == "__main__":
    main()
