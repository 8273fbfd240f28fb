"""The command line: version/help, simulate writes a readable store, overwrite rules, one-line errors with exit
code 2 for every bad input, Ctrl-C and integration failures, and the demo at reduced size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

import tokensphere
from tokensphere import IntegrationError, Trajectory
from tokensphere.cli import app

from helpers import assert_one_line_error, invoke, runner  # noqa: E402
SCRIPT = Path(sys.executable).parent / "tokensphere"
SMALL = ["--n", "6", "--d", "3", "--t-max", "1", "--save-at", "5"]


def test_version_and_help():
    res = invoke("--version")
    assert res.exit_code == 0 and tokensphere.__version__ in res.stdout
    res = invoke("--help")
    assert res.exit_code == 0 and "simulate" in res.stdout and "demo" in res.stdout


def test_console_script_version_and_error(tmp_path):
    """The installed entry point (main) behaves like the app: version, and bad input → one line, exit 2."""
    if not SCRIPT.exists():
        pytest.skip("console script not installed next to this interpreter")
    res = subprocess.run([SCRIPT, "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == f"tokensphere {tokensphere.__version__}"
    res = subprocess.run(
        [SCRIPT, "simulate", "--beta", "-1", "--out", tmp_path / "x.zarr"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 2
    assert res.stderr.strip() == "error: beta must be a finite number >= 0, got -1.0"
    assert not (tmp_path / "x.zarr").exists()


def test_simulate_writes_loadable_store(tmp_path):
    out = tmp_path / "run.zarr"
    res = invoke("simulate", *SMALL, "--batch", "2", "--beta", "1", "--beta", "4,9", "--seed", "3", "--out", out)
    assert res.exit_code == 0, res.output
    assert str(out) in res.stdout and "clusters at t = 1" in res.stdout
    run = Trajectory.load(out)
    assert run.shape == (5, 6, 6, 3)
    ds_beta = run.model.beta_tensor().tolist()
    assert ds_beta == [1.0, 1.0, 4.0, 4.0, 9.0, 9.0]
    assert torch.allclose(run.positions[-1].norm(dim=-1), torch.ones(6, 6, dtype=run.positions.dtype))
    # start k is shared by every β; starts differ within a β
    x0 = run.positions[0]
    assert torch.equal(x0[0], x0[2]) and not torch.equal(x0[0], x0[1])
    assert run.metadata["seed"] == 3 and run.metadata["cli"]["command"] == "simulate"


def test_overwrite_rules(tmp_path):
    out = tmp_path / "run.zarr"
    assert invoke("simulate", *SMALL, "--out", out).exit_code == 0
    res = invoke("simulate", *SMALL, "--out", out)
    assert_one_line_error(res, 2, "--overwrite")
    res = invoke("simulate", *SMALL, "--batch", "3", "--out", out, "--overwrite")
    assert res.exit_code == 0, res.output
    assert Trajectory.load(out).shape[1] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]  # no temporary leftovers


def test_from_run_continues(tmp_path):
    """The saved final state, model and solver continue from the saved final time (t_max is absolute)."""
    first, second = tmp_path / "a.zarr", tmp_path / "b.zarr"
    assert invoke("simulate", *SMALL, "--batch", "2", "--beta", "1,9", "--out", first).exit_code == 0
    res = invoke("simulate", "--from-run", first, "--t-max", "2", "--save-at", "3", "--out", second)
    assert res.exit_code == 0, res.output
    assert f"continued from {first} at t = 1; model and solver as saved" in res.stdout
    a, b = Trajectory.load(first), Trajectory.load(second)
    assert torch.equal(b.positions[0], a.positions[-1])
    assert b.times.tolist() == [1.0, 1.5, 2.0]
    assert b.model.beta_tensor().tolist() == [1.0, 1.0, 9.0, 9.0]
    assert b.metadata["continuation"]["t0"] == 1.0


@pytest.fixture
def bad_runs(tmp_path):
    """A saved run whose positions are not unit vectors, a saved run with 3 systems, and a regular file."""
    good = tmp_path / "three.zarr"
    assert invoke("simulate", *SMALL, "--batch", "3", "--out", good).exit_code == 0
    run = Trajectory.load(good)
    run.positions = run.positions * 2.0
    run.save(tmp_path / "nonunit.zarr")
    (tmp_path / "file").write_text("not a folder")
    return tmp_path


BAD_INPUTS = [
    (["--n", "0"], "n must be"),
    (["--d", "1"], "d must be"),
    (["--beta", "-1"], "beta must be a finite number >= 0, got -1.0"),
    (["--beta", "nan"], "beta"),
    (["--beta", "1,x"], "beta"),
    (["--t-max", "0"], "t_max"),
    (["--t-max", "-2"], "t_max"),
    (["--solver", "rk45"], "solver"),
    (["--solver", "euler"], "dt"),
    (["--solver", "rk4", "--dt", "0"], "dt"),
    (["--rtol", "-1"], "rtol"),
    (["--save-at", "1"], "save_at"),
    (["--batch", "0"], "batch"),
    (["--seed", "-1"], "seed"),
    (["--init", "gaussian"], "init"),
    (["--init", "orthonormal", "--n", "5", "--d", "3"], "orthonormal"),
    (["--init", "cap", "--cap-angle", "4"], "angle"),
    (["--init", "equiangular", "--n", "3", "--gamma0", "1.5"], "gamma0"),
    (["--normalization", "sinkhorn-knopp"], "normalization"),
    (["--time-scale", "exp_beta"], "time_scale"),
    (["--dtype", "float16"], "dtype"),
    (["--device", "gpu0"], "device"),
    (["--chunk-size", "0"], "chunk_size"),
    (["--anchor", "--solver", "rk4"], "anchor"),
    (["--out", "{tmp}/file/run.zarr"], "not writable"),
]


@pytest.mark.parametrize("args, word", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_one_line_exit_2(bad_runs, args, word):
    args = [a.replace("{tmp}", str(bad_runs)) for a in args]
    if "--out" not in args:
        args += ["--out", str(bad_runs / "out.zarr")]
    res = invoke("simulate", *SMALL, *args)
    assert_one_line_error(res, 2, word)
    assert not (bad_runs / "out.zarr").exists()


BAD_RUNS = [
    (["--from-run", "{tmp}/missing.zarr"], "missing.zarr"),
    (["--from-run", "{tmp}/file"], "file"),
    (["--from-run", "{tmp}/nonunit.zarr"], "unit vectors"),
    (["--from-run", "{tmp}/three.zarr", "--beta", "1,9"], "--beta gives 2 values"),
    (["--from-run", "{tmp}/three.zarr", "--n", "6"], "--n"),
    (["--from-run", "{tmp}/three.zarr", "--t-max", "0.5"], "t_max"),  # before the saved final time t = 1
]


@pytest.mark.parametrize("args, word", BAD_RUNS, ids=[" ".join(a) for a, _ in BAD_RUNS])
def test_bad_from_run_one_line_exit_2(bad_runs, args, word):
    args = [a.replace("{tmp}", str(bad_runs)) for a in args]
    res = invoke("simulate", *args, "--out", bad_runs / "out.zarr")
    assert_one_line_error(res, 2, word)
    assert not (bad_runs / "out.zarr").exists()


def test_usage_error_exits_2():
    res = invoke("simulate", "--n", "abc", "--out", "x.zarr")
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_ctrl_c_exits_130_and_writes_nothing(tmp_path, monkeypatch):
    def interrupted(*args, progress=None, **kwargs):
        progress(0.3)  # the bar is showing when Ctrl-C arrives
        raise KeyboardInterrupt

    monkeypatch.setattr("tokensphere.cli.simulate.simulate", interrupted)
    res = invoke("simulate", *SMALL, "--out", tmp_path / "run.zarr")
    assert_one_line_error(res, 130, "interrupted")
    assert list(tmp_path.iterdir()) == []


def test_integration_error_exits_1(tmp_path, monkeypatch):
    def fails(*args, **kwargs):
        raise IntegrationError("step size underflow in system 0 at t = 0.5")

    monkeypatch.setattr("tokensphere.cli.simulate.simulate", fails)
    res = invoke("simulate", *SMALL, "--out", tmp_path / "run.zarr")
    assert_one_line_error(res, 1, "step size underflow")


def test_demo_small(tmp_path):
    top = tmp_path / "demo"
    out = top / "run"
    res = invoke("demo", "--out", top, "--n-seeds", "1", "--t-max", "3", "--save-at", "16", "--seed", "2",
                 "--no-report")
    assert res.exit_code == 0, res.output
    names = {"trajectory.zarr", "tokens.png", "energy.png", "clusters.png", "summary.json"}
    assert names <= {p.name for p in out.iterdir()}
    assert f"wrote {out}" in res.stdout
    for png in ("tokens.png", "energy.png", "clusters.png"):
        img = mpimg.imread(out / png)
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300
        assert np.ptp(img[..., :3]) > 0.5  # not a blank canvas
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"]["seed"] == 2
    assert set(summary["final_cluster_counts"]["delta_fixed"]["by_beta"]) == {"1", "9"}
    assert summary["energy_normalized"]["non_decreasing"] is True
    run = Trajectory.load(out / "trajectory.zarr")
    assert run.shape == (16, 2, 32, 3) and run.model.beta_tensor().tolist() == [1.0, 9.0]
    # an existing folder is refused without --overwrite, replaced with it
    assert_one_line_error(invoke("demo", "--out", top, "--n-seeds", "1", "--t-max", "1"), 2, "--overwrite")
    res = invoke("demo", "--out", top, "--overwrite", "--n-seeds", "1", "--t-max", "1", "--save-at", "6",
                 "--no-report")
    assert res.exit_code == 0 and Trajectory.load(out / "trajectory.zarr").shape[0] == 6


def test_demo_quick_writes_the_report(tmp_path):
    """The whole pipeline of `make demo` at tiny size: run, figures, phase diagrams, comparison, report."""
    top = tmp_path / "demo"
    res = invoke("demo", "--out", top, "--n-seeds", "1", "--t-max", "2", "--save-at", "6", "--quick")
    assert res.exit_code == 0, res.output
    index = top / "index.html"
    assert index.exists() and f"report: {index}" in res.stdout
    html = index.read_text()
    for needle in ("Figure 5", "Anchor preset against adaptive", "Theorem checks",
                   "Sinkhorn attention against SA and USA", "Example 9.3", "Lie–Trotter and Strang",
                   "without normalisation: Table 1", "Noise on the sphere", "optimal configurations (V = −I)",
                   "Control: gradients", "Control: transport"):
        assert needle in html, needle
    assert "real-model issue" not in html  # no developer placeholder for Figure 1 on the page
    assert "fig1_probe.png" in html and (top / "probe" / "fig1_probe.json").exists()  # Figure 1 from MiniLM
    assert (top / "phase" / "figure3.zarr").exists() and (top / "phase" / "figure3_anchor.zarr").exists()
    assert len(list((top / "figure5").glob("figure5?.zarr"))) == 4


def test_check_command_runs_selected_checks(tmp_path):
    res = invoke("check", "tau_star", "gradient_flows", "--out", tmp_path / "check")
    assert res.exit_code == 0, res.output
    assert "2 passed, 0 failed" in res.stdout
    assert_one_line_error(invoke("check", "--only", "nope"), 2, "unknown check")
    (tmp_path / "a_file").write_text("x")  # refused before any check runs, not after
    assert_one_line_error(invoke("check", "tau_star", "--out", tmp_path / "a_file"), 2, "out must be a folder")


@pytest.mark.parametrize("exc", [MemoryError("velocity: the dense scores need 96.00 GiB"),
                                 RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8e10 bytes")])
def test_out_of_memory_is_one_error_line(exc, capsys):
    import typer

    from tokensphere.cli import _guarded

    def fail():
        raise exc

    with pytest.raises(typer.Exit) as info:
        _guarded(fail)
    assert info.value.exit_code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: out of memory:")
    with pytest.raises(RuntimeError, match="something else"):  # other runtime errors are not swallowed
        _guarded(lambda: (_ for _ in ()).throw(RuntimeError("something else")))
