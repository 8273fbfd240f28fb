"""Whole steps: the time of one accepted dopri5 step of the batched driver, and the share of it spent in the field.

Setting of a Figure 3 phase-diagram unit (SA, n = 32, d = 32, β spread over [0.1, 9] across the batch, dopri5 at
the phase preset's rtol 1e-6 / atol 1e-8, an output time every 0.15 as with 200 outputs on [0, 30]), batch
B = 4096, from uniform starts over t ∈ [0, T]. The field is the library's (``velocity`` on the model restricted
to the active systems, as ``simulate`` builds it); a timer around it gives the field's share of the wall time.
Also reported: user and system CPU time and minor page faults of the run (``getrusage``), torch's thread
counts, and the host reads of the step loop (``tensor.__bool__``/``item``/``tolist``/``int``/``float`` and
``torch.nonzero`` called from the driver module), per iteration.

``--compare-to REV`` runs the same measurement, interleaved, in child processes on a copy of the working
tree whose ``integrate/{driver,steps,controller}.py`` come from the git revision REV (the "before"), on the
working tree (the "after"), and on the working tree with the allocator setting of the driver switched off
(``TOKENSPHERE_SYSTEM_MALLOC=1``), and prints the ratios.

``--sync`` compares the loop's host-read schedules (``integrate(..., sync=...)``): "step" and "outputs" (the
device schedule, with the field's device branch), at B = 1024 over t ∈ [0, 6], with outputs every 0.15 and
with outputs only at the start and the end; it reports the reads, the iterations and the extra field
evaluations of the parked systems.

Without either, the working tree is measured with the fused kernel's blocks on one lane and on every core
(``tokensphere.runtime.run_lanes``; ``simulate``'s default), interleaved; ``--lanes K`` measures K only.

    python benchmarks/bench_step.py [--quick] [--compare-to REV | --sync] [--repeats R] [--lanes K] [--record]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kernel import machine, record  # noqa: E402

FULL = {"B": 4096, "n": 32, "d": 32, "T": 1.5}
QUICK = {"B": 64, "n": 8, "d": 4, "T": 0.6}
SYNC = {"B": 1024, "n": 32, "d": 32, "T": 6.0}  # --sync: long enough for run-ahead between output times
_SYNC_METHODS = ("__bool__", "item", "tolist", "__int__", "__float__", "__index__")


class SyncCounter:
    """Counts host reads of tensors made from some source files (by default the driver's): ``bool(t)``,
    ``t.item()``, ``t.tolist()``, ``int(t)``, ``float(t)`` and ``torch.nonzero``. A context manager; on CUDA
    each of these waits for the device, on the CPU it is free but shows the loop's structure.

    filename: one path or several (e.g. :data:`LOOP_FILES`, every module an integration step runs through)."""

    def __init__(self, filename: str | list[str] | None = None) -> None:
        if filename is None:
            import tokensphere.integrate.driver as drv

            filename = drv.__file__
        names = [filename] if isinstance(filename, str) else list(filename)
        self.files, self.count, self._saved = {os.path.realpath(f) for f in names}, 0, {}

    def _wrap(self, fn):
        counter = self

        def wrapped(*args, **kwargs):
            frame = sys._getframe(1)
            if os.path.realpath(frame.f_code.co_filename) in counter.files:
                counter.count += 1
            return fn(*args, **kwargs)

        return wrapped

    def __enter__(self) -> SyncCounter:
        for name in _SYNC_METHODS:
            self._saved[name] = getattr(torch.Tensor, name)
            setattr(torch.Tensor, name, self._wrap(self._saved[name]))
        self._saved["nonzero"] = torch.nonzero
        torch.nonzero = self._wrap(torch.nonzero)
        return self

    def __exit__(self, *exc) -> None:
        torch.nonzero = self._saved.pop("nonzero")
        for name, fn in self._saved.items():
            setattr(torch.Tensor, name, fn)
        self._saved.clear()


def loop_files() -> list[str]:
    """The modules one integration step runs through: driver, steps, controller, field, model, weights."""
    import tokensphere.field
    import tokensphere.integrate.controller
    import tokensphere.integrate.driver
    import tokensphere.integrate.steps
    import tokensphere.model
    import tokensphere.weights

    mods = (tokensphere.integrate.driver, tokensphere.integrate.steps, tokensphere.integrate.controller,
            tokensphere.field, tokensphere.model, tokensphere.weights)
    return [m.__file__ for m in mods]


def measure(B: int, n: int, d: int, T: float, count_syncs: bool = False, sync: str = "step",
            every: float = 0.15, lanes: int | None = None) -> dict:
    """One integration of the setting above; returns its timings and counts. sync="outputs" runs the loop's
    device schedule (and the field's device branch, which reads no values), counting the reads of every
    module of the step (:func:`loop_files`); sync="step" counts the driver's, as before. every: the spacing
    of the output times. lanes: the fused kernel's lanes (default: as ``simulate`` picks them, all cores)."""
    import tokensphere as ts
    import tokensphere.field as field_mod
    from tokensphere.integrate.driver import integrate
    from tokensphere.integrate.saveat import SaveAt
    from tokensphere.runtime import choose_lanes, choose_threads, torch_threads
    from tokensphere.runtime import lanes as kernel_lanes

    beta = torch.linspace(0.1, 9.0, B, dtype=torch.float64)
    model = ts.Model(beta=beta)
    x0 = ts.Uniform(batch=B, n=n, d=d, seed=0).sample()
    field_time = [0.0]

    def f(t, x, idx):
        t0 = time.perf_counter()
        v = ts.velocity(x, model if idx is None else model.take(idx))
        field_time[0] += time.perf_counter() - t0
        return v

    solver = ts.Solver("dopri5", rtol=1e-6, atol=1e-8)
    save = SaveAt(torch.arange(0.0, T + 1e-9, every, dtype=torch.float64), store=False)
    with torch_threads(choose_threads(n)) as threads, kernel_lanes(choose_lanes(lanes)) as used_lanes:
        r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        host_branch = field_mod._reads_are_free
        if sync == "outputs":  # the field as it runs on a device where reads synchronise
            field_mod._reads_are_free = lambda x: False
        try:
            if count_syncs:
                with SyncCounter(None if sync == "step" else loop_files()) as sc:
                    res = integrate(f, x0, save, solver, sync=sync)
                syncs = sc.count
            else:
                res = integrate(f, x0, save, solver, sync=sync)
                syncs = None
        finally:
            field_mod._reads_are_free = host_branch
        wall, r1 = time.perf_counter() - w0, resource.getrusage(resource.RUSAGE_SELF)
        interop = torch.get_num_interop_threads()
    iterations = int((res.steps + res.rejected).max())
    return {
        "B": B, "n": n, "d": d, "T": T, "wall": wall, "field": field_time[0],
        "user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime,
        "minflt": r1.ru_minflt - r0.ru_minflt, "iterations": iterations,
        "accepted": int(res.steps.sum()), "rejected": int(res.rejected.sum()), "evaluations": res.evaluations,
        "threads": threads, "lanes": used_lanes, "interop_threads": interop, "syncs": syncs, "outputs": save.t.tolist(),
    }


def _old_tree(rev: str, dest: Path) -> Path:
    """A copy of the working tree's src/ with the integrate files of ``rev``."""
    import shutil

    src = dest / "src"
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("driver", "steps", "controller"):
        text = subprocess.run(["git", "show", f"{rev}:src/tokensphere/integrate/{name}.py"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout
        (src / "tokensphere" / "integrate" / f"{name}.py").write_text(text)
    return src


def _child(src: Path, env_extra: dict, setting: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), **env_extra)
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(setting)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _row(name: str, r: dict) -> str:
    per = r["wall"] / r["iterations"]
    return (f"| {name} | {r['wall']:.2f} | {r['iterations']} | {per * 1e3:.1f} | "
            f"{r['wall'] / r['accepted'] * 1e6:.1f} | {r['field'] / r['wall']:.2f} | {r['user']:.2f} | "
            f"{r['sys']:.2f} | {r['minflt']} | {r['syncs'] / r['iterations']:.2f} |")


HEADER = ("| driver | wall (s) | iterations | ms per iteration | µs per accepted system-step | field share of wall "
          "| user CPU (s) | system CPU (s) | minor page faults | host reads per iteration |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="B = 64, n = 8, d = 4 (smoke test)")
    p.add_argument("--compare-to", default=None, metavar="REV", help="git revision of the 'before' driver")
    p.add_argument("--repeats", type=int, default=1, help="interleaved repeats (the minimum wall time is kept)")
    p.add_argument("--record", action="store_true")
    p.add_argument("--sync", action="store_true",
                   help="compare the loop's host-read schedules sync='step' and sync='outputs' (the device schedule)")
    p.add_argument("--lanes", type=int, default=None,
                   help="the fused kernel's lanes (default: all cores, as simulate picks them)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        print(json.dumps(measure(**json.loads(args.child), count_syncs=True)))
        return None
    setting = {**(QUICK if args.quick else SYNC if args.sync else FULL), "lanes": args.lanes}
    if args.sync:  # outputs every 0.15 (as the phase preset), then only at the start and the end
        rows, notes = {}, []
        for every in (0.15, setting["T"]):
            pair = {m: measure(**setting, count_syncs=True, sync=m, every=every) for m in ("step", "outputs")}
            a, b = pair["step"], pair["outputs"]
            for m, r in pair.items():
                rows[f"sync={m}, {len(r['outputs'])} output times"] = r
            notes.append(f"{len(b['outputs'])} output times: sync=outputs made {b['syncs']} host reads in "
                         f"{b['iterations']} iterations, field evaluations {b['evaluations']} against "
                         f"{a['evaluations']} with sync=step ({b['evaluations'] / a['evaluations']:.3f}×: the parked "
                         f"systems' idle attempts); same steps: "
                         f"{a['accepted'] == b['accepted'] and a['rejected'] == b['rejected']}")
        text = HEADER + "\n" + "\n".join(_row(k, v) for k, v in rows.items())
        text += ("\n\nHost reads: sync=step counts the driver's; sync=outputs counts every module of the step "
                 "(driver, steps, controller, field, model, weights) with the field's device branch.\n"
                 + "\n".join(f"- {t}" for t in notes))
    elif args.compare_to is None:  # the kernel's lanes: one, and all cores (unless --lanes fixes them), interleaved
        from tokensphere.runtime import all_cores

        counts = [args.lanes] if args.lanes else sorted({1, all_cores()})
        rows = {}
        measure(**{**setting, "lanes": counts[0]})  # warm-up: the first run in a process maps the heap it reuses
        for _ in range(max(args.repeats, 1)):
            for k in counts:
                r = measure(**{**setting, "lanes": k}, count_syncs=True)
                name = f"working tree, kernel lanes {k}"
                if name not in rows or r["wall"] < rows[name]["wall"]:
                    rows[name] = r
        text = HEADER + "\n" + "\n".join(_row(k, v) for k, v in rows.items())
        if len(rows) == 2:
            one, many = rows.values()
            text += (f"\n\nlanes 1 / lanes {many['lanes']}, wall per iteration: "
                     f"{(one['wall'] / one['iterations']) / (many['wall'] / many['iterations']):.2f}× "
                     f"(same steps: {one['accepted'] == many['accepted'] and one['rejected'] == many['rejected']})")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            old = _old_tree(args.compare_to, Path(tmp))
            configs = [(f"before ({args.compare_to})", old, {}), ("after", ROOT / "src", {}),
                       ("after, allocator left alone", ROOT / "src", {"TOKENSPHERE_SYSTEM_MALLOC": "1"})]
            best: dict[str, dict] = {}
            for _ in range(max(args.repeats, 1)):
                for name, src, env in configs:
                    r = _child(src, env, setting)
                    if name not in best or r["wall"] < best[name]["wall"]:
                        best[name] = r
        rows = best
        before, after = best[configs[0][0]], best["after"]
        text = HEADER + "\n" + "\n".join(_row(k, v) for k, v in best.items())
        text += (f"\n\nbefore / after, wall per iteration: "
                 f"{(before['wall'] / before['iterations']) / (after['wall'] / after['iterations']):.2f}×")
    head = (f"B = {setting['B']}, n = {setting['n']}, d = {setting['d']}, t ∈ [0, {setting['T']:g}], dopri5 rtol 1e-6 "
            f"atol 1e-8; torch threads {rows[next(iter(rows))]['threads']} (interop "
            f"{rows[next(iter(rows))]['interop_threads']}), kernel lanes {rows[next(iter(rows))]['lanes']}")
    print(machine())
    print(head)
    print(text)
    if args.record:
        cmd = "python benchmarks/bench_step.py --record" + (" --quick" if args.quick else "") + (
            " --sync" if args.sync else "") + (
            f" --compare-to {args.compare_to}" if args.compare_to else "") + f" --repeats {args.repeats}" + (
            f" --lanes {args.lanes}" if args.lanes else "")
        where = "child processes" if args.compare_to else "this process, after one warm-up run"
        record("Whole steps: one dopri5 step of the batched driver", cmd,
               f"minimum wall over {args.repeats} interleaved repeat(s), {where}", head + "\n\n" + text)
    return rows


if __name__ == "__main__":
    main()
