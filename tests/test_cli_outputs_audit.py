"""The command line's outputs: a set of files (figures, demo, probe) appears all together or not at all, so a
Ctrl-C midway leaves nothing and a rerun needs no --overwrite; the root ``--threads`` wins over every command's
thread policy and is the count recorded; bad input leaves no new folder behind."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tokensphere.experiments import theorems  # noqa: E402
from tokensphere.experiments.theorems import CheckResult  # noqa: E402
from tokensphere.io import atomic  # noqa: E402

from helpers import assert_one_line_error, invoke  # noqa: E402

THREADS = 3  # neither the policy's count for these small systems (1) nor this machine's core count (2)


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A command run in-process must not leave its thread count behind (the suite runs on one thread)."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _interrupted(res) -> None:
    """Exit 130 with the one-line message last on stderr (a finished progress bar may stand above it)."""
    assert res.exit_code == 130, res.output
    assert res.stderr.strip().splitlines()[-1].startswith("error: interrupted") and "Traceback" not in res.output


def _tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path: content); hidden names included."""
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------------------
# figures: every step replaced by a fast writer of the same files (names as figures._targets lists them)

FIGURE_STEPS = {
    "_fig2": lambda args: ["fig2_regimes.png", "fig2_regimes.json"],
    "_fig4": lambda args: ["fig4_circle.png", "fig4_circle.json", "fig4_circle.zarr"],
    "_fig4_counts": lambda args: ["fig4_counts.png", "fig4_counts.json"],
    "_fig6": lambda args: ["fig6_g.png", "fig6_g.json"],
    "_metastability": lambda args: ["metastability.png", "metastability.json"],
    "_timescales": lambda args: ["metastability_timescales.png", "metastability_timescales.json"],
    "_movie": lambda args: [f"{args[0]}.gif", f"{args[0]}.mp4", f"{args[0]}.json", f"{args[0]}.zarr"],
}


def _fake_figures(monkeypatch, mark: str, interrupt: str | None = None) -> list[tuple[int, int]]:
    """Replace the steps of ``tokensphere figures`` by writers of their files (content ``mark``); the step
    ``interrupt`` writes its first file, then raises KeyboardInterrupt (Ctrl-C). Returns a list that receives
    (torch threads in force, threads recorded in the metadata) per step."""
    from tokensphere.cli import figures

    seen: list[tuple[int, int]] = []

    def step(key):
        def write(folder, *args):
            seen.append((torch.get_num_threads(), args[-1]["threads"]))
            out = []
            for name in FIGURE_STEPS[key](args):
                p = Path(folder) / name
                if name.endswith(".zarr"):  # a store: a folder with its metadata
                    p.mkdir(exist_ok=True)
                    (p / "zarr.json").write_text(mark)
                else:
                    p.write_text(mark)
                out.append(p)
                if key == interrupt:
                    raise KeyboardInterrupt
            return out

        return write

    for key in FIGURE_STEPS:
        monkeypatch.setattr(figures, key, step(key))
    return seen


def test_figures_interrupted_leaves_no_partial_set_and_a_rerun_needs_no_overwrite(tmp_path, monkeypatch):
    out = tmp_path / "new" / "figs"
    _fake_figures(monkeypatch, "first", interrupt="_fig4")  # Figure 2 done, Ctrl-C during Figure 4
    assert_one_line_error(invoke("figures", "--out", out), 130, "interrupted")
    assert list(tmp_path.iterdir()) == []  # no file of the set, no staging folder, no empty folder
    _fake_figures(monkeypatch, "second")
    res = invoke("figures", "--out", out)  # no --overwrite: nothing of the set was there
    assert res.exit_code == 0, res.output
    assert len(_tree(out)) == 21 and set(_tree(out).values()) == {"second"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]


def test_figures_interrupted_overwrite_keeps_the_complete_earlier_set(tmp_path, monkeypatch):
    out = tmp_path / "figs"
    _fake_figures(monkeypatch, "old")
    assert invoke("figures", "--out", out).exit_code == 0
    (out / "notes.txt").write_text("the user's")
    before = _tree(out)
    _fake_figures(monkeypatch, "new", interrupt="_movie")  # the last step
    assert_one_line_error(invoke("figures", "--out", out, "--overwrite"), 130, "interrupted")
    assert _tree(out) == before  # the old set whole, the user's file kept, nothing hidden left
    # a complete set is still protected: replacing it needs --overwrite, which keeps the user's file
    assert_one_line_error(invoke("figures", "--out", out), 2, "--overwrite")
    _fake_figures(monkeypatch, "new")
    assert invoke("figures", "--out", out, "--overwrite").exit_code == 0
    after = _tree(out)
    assert after.pop("notes.txt") == "the user's" and set(after.values()) == {"new"} and len(after) == 21


# ------------------------------------------------------------------------------------------------------------
# demo and probe

DEMO = ["--n-seeds", "1", "--t-max", "1", "--save-at", "6", "--no-report"]


def test_demo_interrupted_leaves_nothing_and_a_rerun_needs_no_overwrite(tmp_path, monkeypatch):
    from tokensphere.cli import demo

    out = tmp_path / "demo"

    def interrupted(run, folder):  # the trajectory is written, Ctrl-C during the figures
        assert (Path(folder) / "trajectory.zarr").exists()
        raise KeyboardInterrupt

    real = demo.demo_figures
    monkeypatch.setattr(demo, "demo_figures", interrupted)
    _interrupted(invoke("demo", "--out", out, *DEMO))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(demo, "demo_figures", real)
    res = invoke("demo", "--out", out, *DEMO)
    assert res.exit_code == 0, res.output
    assert {"trajectory.zarr", "tokens.png", "energy.png", "clusters.png", "summary.json"} == {
        p.name for p in (out / "run").iterdir()}
    assert f"wrote {out / 'run'}/" in res.stdout


def test_demo_interrupted_overwrite_keeps_the_complete_earlier_run(tmp_path, monkeypatch):
    from tokensphere.cli import demo

    out = tmp_path / "demo"
    assert invoke("demo", "--out", out, *DEMO).exit_code == 0
    (out / "notes.txt").write_text("the user's")
    (out / "index.html").write_text("an earlier report")  # not the demo's with --no-report: left alone
    before = {name: p.stat().st_mtime_ns for name, p in ((p.relative_to(out), p) for p in out.rglob("*"))}

    def interrupted(run, folder):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "demo_figures", interrupted)
    _interrupted(invoke("demo", "--out", out, "--overwrite", *DEMO))
    after = {name: p.stat().st_mtime_ns for name, p in ((p.relative_to(out), p) for p in out.rglob("*"))}
    assert after == before  # the earlier run whole and untouched, nothing hidden left
    assert_one_line_error(invoke("demo", "--out", out, *DEMO), 2, "--overwrite")  # a complete run is protected


def test_demo_interrupted_in_the_report_leaves_nothing(tmp_path, monkeypatch):
    from tokensphere.cli import reproduce

    def interrupted(folder, **kwargs):  # the run is done, Figure 2 written, Ctrl-C before the report
        (Path(folder) / "figures").mkdir()
        (Path(folder) / "figures" / "fig2_regimes.png").write_text("x")
        raise KeyboardInterrupt

    monkeypatch.setattr(reproduce, "reproduce", interrupted)
    _interrupted(invoke("demo", "--out", tmp_path / "demo", "--n-seeds", "1", "--t-max", "1", "--save-at", "6",
                        "--quick"))
    assert list(tmp_path.iterdir()) == []


def _fake_probe(monkeypatch, interrupt: bool) -> None:
    """The probe's model, run and drawings replaced by tiny stand-ins; with ``interrupt`` a Ctrl-C arrives while
    the second figure is drawn (after the first was written)."""
    from tokensphere.cli import probe

    data = {"model": {"name": "tiny", "family": "bert"}, "settings": {"dynamics": "euler"}}
    result = SimpleNamespace(data=data, tokens=[["a", "b"]], real=[torch.zeros(2, 2, 3)],
                             simulated=[torch.zeros(2, 2, 3)])

    def statistics(data):
        if interrupt:
            raise KeyboardInterrupt
        return plt.figure(figsize=(1, 1))

    monkeypatch.setattr(probe, "load_checkpoint", lambda model: SimpleNamespace(trained_depth=2))
    monkeypatch.setattr(probe, "probe", lambda *args, **kwargs: result)
    monkeypatch.setattr(probe, "probe_histogram_figure", lambda data: plt.figure(figsize=(1, 1)))
    monkeypatch.setattr(probe, "probe_statistics_figure", statistics)
    monkeypatch.setattr(probe, "_summary", lambda data, folder: None)


def test_probe_interrupted_leaves_no_partial_set_and_a_rerun_needs_no_overwrite(tmp_path, monkeypatch):
    out = tmp_path / "probe"
    _fake_probe(monkeypatch, interrupt=True)
    assert_one_line_error(invoke("probe", "--out", out), 130, "interrupted")
    assert list(tmp_path.iterdir()) == []
    _fake_probe(monkeypatch, interrupt=False)
    res = invoke("probe", "--out", out)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["fig1_probe.png", "probe_statistics.png", "fig1_probe.json", "probe_positions.zarr"])


def test_a_failed_commit_puts_the_old_set_back(tmp_path, monkeypatch):
    """A rename that fails while the new set is moved in: every old entry back, no new one, nothing hidden."""
    out = tmp_path / "set"
    out.mkdir()
    for name in ("a.json", "b.json", "mine.txt"):
        (out / name).write_text("old")
    real, calls = os.replace, []

    def flaky(src, dst):
        calls.append(dst)
        if Path(dst) == out / "b.json" and Path(src).read_text() == "new":  # the second new entry moving in
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", flaky)
    with pytest.raises(OSError, match="No space"), atomic.atomic_folder(out) as stage:
        (stage / "a.json").write_text("new")
        (stage / "b.json").write_text("new")
    assert out / "a.json" in [Path(c) for c in calls]  # the first was in place when the second failed
    assert _tree(out) == {"a.json": "old", "b.json": "old", "mine.txt": "old"}


# ------------------------------------------------------------------------------------------------------------
# the root --threads


def test_train_runs_and_records_the_root_threads(tmp_path, monkeypatch):
    from tokensphere.cli import train

    seen: list[int] = []
    real = train.run_demo

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "run_demo", spy)
    before = torch.get_num_threads()
    res = invoke("--threads", THREADS, "train", "interpolate", "--steps", 1, "--out", tmp_path / "t")
    assert res.exit_code == 0, res.output
    assert seen == [THREADS]
    assert json.loads((tmp_path / "t" / "summary.json").read_text())["metadata"]["threads"] == THREADS
    assert torch.get_num_threads() == before  # restored after the command
    # without --threads: the policy (one thread for 256 tokens), and that is what is recorded
    torch.set_num_threads(2)
    res = invoke("train", "interpolate", "--steps", 1, "--out", tmp_path / "p")
    assert res.exit_code == 0, res.output
    assert seen[-1] == 1 and json.loads((tmp_path / "p" / "summary.json").read_text())["metadata"]["threads"] == 1


def test_figures_runs_and_records_the_root_threads(tmp_path, monkeypatch):
    seen = _fake_figures(monkeypatch, "x")
    res = invoke("--threads", THREADS, "figures", "--out", tmp_path / "f")
    assert res.exit_code == 0, res.output
    assert len(seen) == 8 and set(seen) == {(THREADS, THREADS)}


def test_check_runs_with_the_root_threads(tmp_path, monkeypatch):
    seen: list[int] = []

    def fake(size, budget):
        seen.append(torch.get_num_threads())
        return CheckResult("a fake check", "1", "1", True)

    monkeypatch.setitem(theorems.CHECKS, "tau_star", fake)
    res = invoke("--threads", THREADS, "check", "tau_star", "--out", tmp_path / "c")
    assert res.exit_code == 0, res.output
    assert seen == [THREADS] and (tmp_path / "c" / "tau_star.json").exists()


def test_demo_runs_with_the_root_threads(tmp_path, monkeypatch):
    from tokensphere.cli import demo

    seen: list[int] = []

    def fake_run(**kwargs):
        seen.append(torch.get_num_threads())
        raise ValueError("stop here")

    monkeypatch.setattr(demo, "demo_run", fake_run)
    assert_one_line_error(invoke("--threads", THREADS, "demo", "--out", tmp_path / "d", *DEMO), 2, "stop here")
    assert seen == [THREADS]


def test_library_integrations_inside_a_command_follow_the_root_threads(tmp_path, monkeypatch):
    """A simulate the library starts on its own (here inside a check) uses the root --threads, not the policy's
    one thread for 8 tokens, and records it; outside the command the policy is back."""
    import tokensphere as ts
    from tokensphere.runtime import choose_lanes, choose_threads

    recorded: list[tuple] = []

    def fake(size, budget):
        traj = ts.simulate(ts.Uniform(batch=2, n=8, d=3, seed=0), 1.0, t_max=0.1, save_at=2)
        recorded.append((traj.metadata["threads"], traj.metadata["lanes"], choose_threads(8), choose_lanes()))
        return CheckResult("a fake check", "1", "1", True)

    monkeypatch.setitem(theorems.CHECKS, "tau_star", fake)
    res = invoke("--threads", THREADS, "check", "tau_star", "--out", tmp_path / "c")
    assert res.exit_code == 0, res.output
    assert recorded == [(THREADS, THREADS, THREADS, THREADS)]
    assert choose_threads(8) == 1  # the policy again after the command


# ------------------------------------------------------------------------------------------------------------
# bad input leaves no new folder


def _no_checkpoint(monkeypatch):
    from tokensphere.cli import probe

    monkeypatch.setattr(probe, "load_checkpoint", lambda model: SimpleNamespace(trained_depth=6))


BAD = {
    "train": ["train", "classify", "--time-form", "wavy", "--out", "{out}"],
    "figures": ["figures", "--measured", "{missing}", "--out", "{out}"],
    "optimal": ["optimal", "--n", "3", "--d", "2", "--out", "{out}/x.npy", "--figure", "{out}/x.png"],
    "check": ["check", "tau_star", "--size", "huge", "--out", "{out}"],
    "report": ["report", "{missing}", "--out", "{out}"],
    "demo": ["demo", "--n-seeds", "0", "--no-report", "--out", "{out}"],
    "probe": ["probe", "--depth", "2", "--out", "{out}"],
}


@pytest.mark.parametrize("command", list(BAD))
def test_bad_input_leaves_no_new_folder(command, tmp_path, monkeypatch):
    _no_checkpoint(monkeypatch)
    (tmp_path / "work").mkdir()
    args = [a.format(out=tmp_path / "work" / "new" / "sub", missing=tmp_path / "missing.zarr") for a in BAD[command]]
    res = invoke(*args)
    assert res.exit_code == 2, res.output
    assert list((tmp_path / "work").iterdir()) == []
