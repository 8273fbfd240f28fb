"""`tokensphere sweep`: configs and their errors, the store's numbers against separate single-system runs,
Dask (2 workers = 1 process, a worker killed mid-run, a cluster started with the dask CLI), SIGKILL of the sweep and resume (only the missing units,
bit-identical), refusal of a store of another sweep, an unreachable scheduler, and the shipped example."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

import tokensphere.sweep.runner as runner
from tokensphere import Solver, simulate
from tokensphere.init import Uniform
from tokensphere.sweep.config import PARAMS, load_config, parse_config, to_toml
from tokensphere.sweep.runner import run_sweep
from tokensphere.sweep.statistics import QUANTILES

from helpers import assert_one_line_error, invoke  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# 2 d × 3 β, one β per unit: 6 units of 3 systems with 6 tokens
TINY = """
[sweep]
seeds = 3
t_max = 6.0
n_times = 4
statistics = ["pair_fraction", "cluster_count", "energy_normalized"]
summaries = ["mean", "quantile"]
delta = 0.05
betas_per_unit = 1

[model]
n = 6

[grid]
d = [2, 3]
beta = [0.5, 3.0, 9.0]
"""
VARIABLES = ("pair_fraction", "cluster_count", "energy_normalized", "pair_fraction_mean",
             "cluster_count_quantile", "energy_normalized_mean")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(config file, config, the uninterrupted single-process store)."""
    folder = tmp_path_factory.mktemp("sweep")
    path = folder / "tiny.toml"
    path.write_text(TINY)
    config = load_config(str(path))
    ref = run_sweep(config, folder / "ref.zarr", workers=1)
    return path, config, ref


def assert_same(a: xr.Dataset, b: xr.Dataset) -> None:
    for name in (*VARIABLES, "done"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


# ------------------------------------------------------------------------------------------------
# the numbers


def test_store_layout_and_numbers_match_separate_single_system_runs(tiny):
    """Each (d, β, seed) cell equals a run of that one system alone, measured by hand (numpy)."""
    _, config, ds = tiny
    assert ds["pair_fraction"].dims == ("d", "beta", "seed", "t")
    assert ds["cluster_count_quantile"].dims == ("d", "beta", "quantile", "t")
    assert ds["done"].dims == ("d", "beta") and bool(ds["done"].all())
    np.testing.assert_array_equal(ds["t"].values, np.linspace(0, 6, 4))
    np.testing.assert_array_equal(ds["quantile"].values, QUANTILES)
    S, K = 3, 3
    for i, d in enumerate((2, 3)):
        for k, beta in enumerate((0.5, 3.0, 9.0)):
            for s in range(S):
                g = (i * K + k) * S + s  # system g = p·S + s of grid point p (row-major)
                x0 = Uniform(batch=1, n=6, d=d, seed=0, first_system=g).sample()
                traj = simulate(x0, beta, solver=Solver("dopri5", rtol=1e-6, atol=1e-8), t_max=6.0, save_at=4)
                x = traj.positions[:, 0].numpy()  # (T, n, d)
                gram = x @ x.transpose(0, 2, 1)
                off = ~np.eye(6, dtype=bool)
                pairs = (gram[:, off] > 1 - 0.05).mean(-1)
                energy = np.exp(beta * (gram - 1)).mean((-1, -2))
                cell = ds.isel(d=i, beta=k, seed=s)
                np.testing.assert_allclose(cell["pair_fraction"].values, pairs, rtol=0, atol=1e-12)
                np.testing.assert_allclose(cell["energy_normalized"].values, energy, rtol=1e-9)
    per_seed = ds["pair_fraction"].values
    np.testing.assert_allclose(ds["pair_fraction_mean"].values, per_seed.mean(2), rtol=1e-15)
    q = np.moveaxis(np.quantile(ds["cluster_count"].values, QUANTILES, axis=2), 0, 2)
    np.testing.assert_array_equal(ds["cluster_count_quantile"].values, q)
    # gradient flow (SA, V = I): the energy never decreases along a run, and 1 clusters ≤ count ≤ n
    assert np.all(np.diff(ds["energy_normalized"].values, axis=-1) >= -1e-12)
    assert ds["cluster_count"].min() >= 1 and ds["cluster_count"].max() <= 6


def test_string_and_bool_axes_and_renamed_variables(tmp_path):
    cfg = parse_config("""
[sweep]
seeds = 2
t_max = 1.0
n_times = 2
statistics = ["pair_fraction"]
per_seed = false
summaries = ["mean", "fraction_one"]
[model]
n = 4
d = 2
[grid]
normalization = ["softmax", "uniform"]
causal = [false, true]
[names]
pair_fraction_mean = "clustered"
""")
    assert len(cfg.units()) == 4
    ds = run_sweep(cfg, tmp_path / "s.zarr", workers=1)
    assert list(ds["normalization"].values) == ["softmax", "uniform"]
    assert list(ds["causal"].values) == [False, True]
    assert set(ds.data_vars) == {"clustered", "pair_fraction_fraction_one", "done"}
    assert "seed" not in ds.dims
    assert parse_config(to_toml(cfg)) == cfg  # the printed config reads back equal


NOISY = """
[sweep]
seeds = 2
t_max = 1.0
n_times = 3
statistics = ["energy_normalized"]
betas_per_unit = 1
[model]
n = 4
d = 2
{model}
[solver]
method = "geodesic"
dt = 0.05
[grid]
{grid}
beta = [1.0, 2.0, 4.0]
"""  # a small noisy sweep: {model} and {grid} add lines to those tables


def test_noisy_sweep_resumes_to_the_same_numbers(tmp_path):
    """With noise (Problem 7) the Brownian increments are seeded per system: an interrupted and resumed run equals
    an uninterrupted one, and the noise acts (two seeds' starts differ, so do their paths; check the statistic
    moves)."""
    cfg = parse_config(NOISY.format(model="noise = 0.5", grid=""))
    ref = run_sweep(cfg, tmp_path / "ref.zarr", workers=1)

    def stop_after_one(done, total):
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfg, tmp_path / "run.zarr", workers=1, progress=stop_after_one)
    ds = run_sweep(cfg, tmp_path / "run.zarr", workers=1)
    np.testing.assert_array_equal(ref["energy_normalized"].values, ds["energy_normalized"].values)
    quiet = run_sweep(parse_config(cfg.text.replace("noise = 0.5", "noise = 0.0").replace('"geodesic"', '"rk4"')),
                      tmp_path / "quiet.zarr", workers=1)
    e, e0 = ds["energy_normalized"].values, quiet["energy_normalized"].values
    np.testing.assert_array_equal(e[..., 0], e0[..., 0])  # same starts
    assert np.abs(e[..., -1] - e0[..., -1]).max() > 1e-3  # different paths


# ------------------------------------------------------------------------------------------------
# Dask


@pytest.fixture
def threaded_cluster():
    """A 2-worker LocalCluster of threads in this process (starts in about a second): (cluster, client)."""
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as lc, \
            Client(lc) as client:
        yield lc, client


def test_two_worker_cluster_equals_single_process(tiny, threaded_cluster, tmp_path):
    _, config, ref = tiny
    lc, _ = threaded_cluster
    infos = []
    ds = run_sweep(config, tmp_path / "two.zarr", scheduler=lc.scheduler_address, on_start=infos.append)
    assert infos[0]["executor"] == "scheduler" and infos[0]["workers"] == 2
    assert_same(ref, ds)


def _die_once(marker: str, cfg, unit):
    """compute_unit, except that the first call of the whole run kills its worker process (SIGKILL)."""
    from tokensphere.sweep.units import compute_unit as compute

    if not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return compute(cfg, unit)


@pytest.mark.slow  # worker processes import torch (and one is started again): 11 s idle, 30 s on a busy 2-core machine
def test_worker_process_killed_mid_run_still_gives_the_same_store(tiny, tmp_path, monkeypatch):
    import functools

    import cloudpickle
    from dask.distributed import Client, LocalCluster

    _, config, ref = tiny
    marker = tmp_path / "killed"
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    monkeypatch.setattr(runner, "compute_unit", functools.partial(_die_once, str(marker)))
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
                Client(lc):
            ds = run_sweep(config, tmp_path / "killed.zarr", scheduler=lc.scheduler_address)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert marker.exists()  # a worker process was killed (the nanny started a new one)
    assert_same(ref, ds)


@pytest.mark.slow  # worker processes import torch: 10 s here, tens of seconds on a busy 2-core machine
def test_embedded_local_cluster_through_the_cli(tiny, tmp_path):
    path, _, ref = tiny
    res = invoke("sweep", path, "--out", tmp_path / "lc.zarr", "--workers", "2")
    assert res.exit_code == 0, res.output
    assert "local Dask cluster: 2 workers; dashboard" in res.stdout
    with xr.open_zarr(tmp_path / "lc.zarr") as ds:
        assert_same(ref, ds.load())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # a scheduler and two worker processes that import torch: 20-60 s on a 2-core machine
def test_existing_cluster_started_with_the_dask_cli_as_documented(tiny, tmp_path):
    """The docs' recipe, as a user runs it: `dask scheduler`, two `dask worker ADDRESS --nthreads 1`, then
    `tokensphere sweep CONFIG --scheduler ADDRESS` in another process. The store equals the single-process one
    and the cluster is left running, unchanged (its two workers still there)."""
    from dask.distributed import Client

    path, _, ref = tiny
    address = f"tcp://127.0.0.1:{_free_port()}"
    dask_cli = [sys.executable, "-m", "dask"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True,
             "cwd": tmp_path}  # the workers' scratch space in the test's folder
    procs = [subprocess.Popen([*dask_cli, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                               "--no-dashboard"], **quiet)]
    try:
        procs += [subprocess.Popen([*dask_cli, "worker", address, "--nthreads", "1", "--no-dashboard"], **quiet)
                  for _ in range(2)]
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            out = tmp_path / "external.zarr"
            res = subprocess.run([sys.executable, "-c", "from tokensphere.cli import main; main()", "sweep", str(path),
                                  "--out", str(out), "--scheduler", address], capture_output=True, text=True,
                                 timeout=300)
            assert res.returncode == 0, res.stdout + res.stderr
            assert "existing Dask cluster: 2 workers" in res.stdout, res.stdout
            assert len(client.scheduler_info()["workers"]) == 2  # the cluster is not closed or resized by the sweep
        with xr.open_zarr(out) as ds:
            assert_same(ref, ds.load())
    finally:
        for p in procs[::-1]:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def test_unreachable_scheduler_fails_fast_with_one_line(tiny, tmp_path):
    path, _, _ = tiny
    start = time.perf_counter()
    res = invoke("sweep", path, "--out", tmp_path / "x.zarr", "--scheduler", f"tcp://127.0.0.1:{_free_port()}",
                 "--connect-timeout", "1")
    assert_one_line_error(res, 2, "could not connect to the scheduler tcp://127.0.0.1:")
    assert "within 1 s" in res.stdout + res.stderr
    assert time.perf_counter() - start < 15
    assert not (tmp_path / "x.zarr").exists()


# ------------------------------------------------------------------------------------------------
# resume


def _done_count(store: Path) -> int:
    try:
        return int(np.sum(zarr.open_array(str(store), path="done", mode="r")[:]))
    except Exception:  # noqa: BLE001 - not created yet
        return 0


def test_sigkill_then_rerun_computes_only_missing_units_and_equals_uninterrupted(tiny, tmp_path, monkeypatch):
    path, config, ref = tiny
    out = tmp_path / "run.zarr"
    proc = subprocess.Popen([sys.executable, "-c", "from tokensphere.cli import main; main()", "sweep", str(path),
                             "--out", str(out), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while _done_count(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    saved = _done_count(out)
    assert 2 <= saved < len(config.units()), saved  # killed between units (or inside one)

    computed = []
    real = runner.compute_unit
    monkeypatch.setattr(runner, "compute_unit", lambda cfg, unit: computed.append(unit) or real(cfg, unit))
    first = []
    ds = run_sweep(config, out, workers=1, progress=lambda done, total: first.append(done))
    assert first[0] == saved and len(computed) == len(config.units()) - saved
    assert_same(ref, ds)


def test_ctrl_c_one_line_and_resume_through_the_cli(tiny, tmp_path, monkeypatch):
    path, config, ref = tiny
    out = tmp_path / "c.zarr"
    import tokensphere.cli.sweep as sweep_cli

    real = sweep_cli.run_sweep

    def interrupted(*args, progress=None, **kwargs):
        def stop(done, total):
            progress(done, total)
            if done == 4:
                raise KeyboardInterrupt

        return real(*args, progress=stop, **kwargs)

    monkeypatch.setattr(sweep_cli, "run_sweep", interrupted)
    res = invoke("sweep", path, "--out", out, "--workers", "1")
    assert_one_line_error(res, 130, "4 of 6 work units are saved")
    monkeypatch.setattr(sweep_cli, "run_sweep", real)
    res = invoke("sweep", path, "--out", out, "--workers", "1")
    assert res.exit_code == 0, res.output
    assert "2 of 6 work units computed now (4 resumed from the store)" in res.stdout
    assert "running in this process" in res.stdout and f"wrote {out}" in res.stdout
    with xr.open_zarr(out) as ds:
        assert_same(ref, ds.load())
        assert ds.attrs["config"] == TINY and "sweep_config" in ds.attrs and "git_commit" in ds.attrs["metadata"]


def test_store_of_another_config_is_refused(tiny, tmp_path):
    path, config, _ = tiny
    out = tmp_path / "small.zarr"
    res = invoke("sweep", path, "--out", out, "--workers", "1", "--set", "grid.beta = [1.0]")
    assert res.exit_code == 0, res.output
    res = invoke("sweep", path, "--out", out, "--workers", "1", "--set", "grid.beta = [2.0]")
    assert_one_line_error(res, 2, "holds a different sweep (differs in grid)")
    assert "--overwrite" in res.stderr
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "zarr.json").write_text("{}")
    assert_one_line_error(invoke("sweep", path, "--out", tmp_path / "plain"), 2, "not a sweep store")


# ------------------------------------------------------------------------------------------------
# bad configs


BASE = "[model]\nn = 4\n[grid]\nbeta = [1.0]\n"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[model]\nbetas = 1.0\n[grid]\nd = [2]\n", ["unknown key 'betas' in [model]", "allowed keys:", "beta,"]),
        (BASE + "[sweep]\nseed_count = 3\n", ["unknown key 'seed_count' in [sweep]", "seeds"]),
        (BASE + "[solver]\nbeta = 1.0\n", ["unknown key 'beta' in [solver]", "belongs in [model]"]),
        ("[grid]\nbogus = [1]\n", ["unknown key 'bogus' in [grid]", "normalization"]),
        (BASE + "[output]\nx = 1\n", ["unknown section [output]", "sweep, model"]),
        ("[model]\nn = 2.5\n[grid]\nbeta = [1.0]\n", ["model.n must be an integer", "2.5"]),
        ("[grid]\nbeta = [1.0, \"hot\"]\n", ["grid.beta[1] must be a number", "'hot'"]),
        ("[grid]\ncausal = [1]\n", ["grid.causal[0] must be true or false"]),
        ("[grid]\nnormalization = [\"softmax\", \"sparse\"]\n", ["grid.normalization[1] must be one of"]),
        ("[grid]\nbeta = 1.0\n", ["grid.beta must be a list"]),
        ("[grid]\nbeta = []\n", ["grid.beta is empty"]),
        ("[grid]\n", ["grid is empty"]),
        ("[model]\nn = 4\n", ["grid is empty"]),
        ("[grid]\nbeta = [1.0, 1.0]\n", ["twice"]),
        ("[model]\nbeta = 2.0\n[grid]\nbeta = [1.0]\n", ["both fixed in [model] and swept in [grid]"]),
        (BASE + "[sweep]\nstatistics = [\"entropy\"]\n", ["sweep.statistics[0] must be one of", "pair_fraction"]),
        (BASE + "[sweep]\nstatistics = []\n", ["sweep.statistics is empty"]),
        (BASE + "[sweep]\nsummaries = [\"mode\"]\n", ["sweep.summaries.pair_fraction[0] must be one of"]),
        (BASE + "[sweep]\nseeds = 0\n", ["sweep.seeds must be an integer >= 1"]),
        (BASE + "[sweep]\nper_seed = false\n", ["would record nothing"]),
        (BASE + "[names]\nenergy = \"e\"\n", ["unknown key 'energy' in [names]"]),
        ("[grid]\nbeta = [1.0, -1.0]\n", ["beta must be a finite number >= 0"]),  # refused by Model
        ("[model]\nheads = 2\n[sweep]\nstatistics = [\"energy\"]\n[grid]\nbeta = [1.0]\n", ["one head"]),
        ("[init]\nangle = 0.5\n[grid]\nbeta = [1.0]\n", ["init.angle applies to kind"]),
        ("[init]\nkind = \"hemisphere\"\nangle = 0.2\n[grid]\nbeta = [1.0]\n", ["angle of a hemisphere is π/2"]),
        ("[model\nn = 4\n", ["not valid TOML"]),
        ("[model]\nnoise = 0.1\n[grid]\nbeta = [1.0]\n", ["model.noise > 0 needs a stochastic solver.method",
                                                            "geodesic", "'dopri5'"]),
        ("[model]\nnoise = 0.1\n[solver]\nmethod = \"heun\"\n[grid]\nbeta = [1.0]\n", ["model.noise > 0 needs solver.dt"]),
        ("[solver]\nmethod = \"euler-maruyama\"\ndt = 0.1\n[grid]\nnoise = [0.0, 0.1]\n",
         ["solver.method 'euler-maruyama' is a stochastic method", "'heun'"]),
        ("[weights]\nweights_seed = -1\n[grid]\nbeta = [1.0]\n", ["weights.weights_seed must be >= 0"]),
        ("[grid]\nweights_seed = [0, -2]\n", ["grid.weights_seed must be >= 0", "-2"]),
        ("[grid]\nn = [1, 4]\n", ["grid.n must be >= 2", "pairs of tokens"]),
        ("[model]\nV = \"repulsive\"\n[weights]\nvalue = \"psd\"\n[grid]\nbeta = [1.0]\n",
         ["model.V = 'repulsive' and a random weights.value"]),
    ],
)
def test_bad_config_is_one_error_line_naming_the_key(tmp_path, text, words):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    res = invoke("sweep", cfg, "--out", tmp_path / "s.zarr", "--workers", "1")
    assert_one_line_error(res, 2, words[0])
    for word in words[1:]:
        assert word in res.stderr
    assert not (tmp_path / "s.zarr").exists()


def test_every_sweepable_key_is_accepted_in_its_table_and_in_the_grid():
    for key, p in PARAMS.items():
        if p.default is None:
            continue
        value = {bool: "true" if p.default else "false", str: f'"{p.default}"'}.get(p.kind, repr(p.default))
        fixed = parse_config(f"[{p.section}]\n{key} = {value}\n[grid]\nweights_seed = [1]\n")
        assert dict(fixed.fixed)[key] == p.default
        swept = parse_config(f"[grid]\n{key} = [{value}]\n")
        assert swept.axes == ((key, (p.default,)),)


def test_missing_config_file(tmp_path):
    assert_one_line_error(invoke("sweep", tmp_path / "none.toml"), 2, "config must be a TOML file")
    assert_one_line_error(invoke("sweep", tmp_path), 2, "(a directory)")


def test_sde_method_list_names_each_method_once():
    choices = PARAMS["method"].choices
    assert len(choices) == len(set(choices)) and {"heun", "euler-maruyama", "dopri5"} <= set(choices)


def test_failed_unit_on_the_local_cluster_is_one_line_naming_its_grid_point(tmp_path):
    """A unit whose integration fails on a Dask worker: the CLI prints one error line (no worker traceback),
    which names the unit's swept values, and exits 1."""
    cfg = tmp_path / "fails.toml"
    cfg.write_text("[model]\nn = 4\nnormalization = \"uniform\"\n[solver]\nmethod = \"dopri5\"\n"
                   "[sweep]\nseeds = 2\nt_max = 1.0\nn_times = 2\nbetas_per_unit = 1\n"
                   "[grid]\nbeta = [1.0, 200.0]\nd = [2]\n")
    # a separate process: the workers write to the real stderr, which an in-process runner would not see
    res = subprocess.run([sys.executable, "-c", "from tokensphere.cli import main; main()", "sweep", str(cfg),
                          "--out", str(tmp_path / "f.zarr"), "--workers", "2"], capture_output=True, text=True,
                         timeout=300)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: integration failed"), res.stderr
    assert "in the unit beta = [200.0], d = 2" in lines[0] and "seed b % 2" in lines[0]


# ------------------------------------------------------------------------------------------------
# the example


def test_example_config_runs_in_quick_form(tmp_path):
    example = ROOT / "examples" / "sweep_small.toml"
    out = tmp_path / "example.zarr"
    res = invoke("sweep", example, "--out", out, "--workers", "1", "--set", "sweep.seeds = 2",
                 "--set", "sweep.t_max = 2.0", "--set", "model.n = 6", "--set", "grid.beta = [1.0, 4.0]")
    assert res.exit_code == 0, res.output
    full = load_config(str(example))
    with xr.open_zarr(out) as ds:
        assert ds.sizes["seed"] == 2 and list(ds["beta"].values) == [1.0, 4.0]
        assert set(full.axis_names) <= set(ds.dims)
        assert bool(ds["done"].all())


def test_noisy_sweep_regrouped_agrees_to_rounding(tmp_path):
    """With noise, system g draws from the stream (noise seed, g) whatever unit it runs in: grouping the β values
    otherwise changes only the rounding of the batched drift, not the Brownian paths."""
    text = NOISY.format(model="", grid="noise = [0.3, 0.5]")
    one = run_sweep(parse_config(text), tmp_path / "one.zarr", workers=1)
    three = run_sweep(parse_config(text.replace("betas_per_unit = 1", "betas_per_unit = 3")), tmp_path / "three.zarr",
                      workers=1)
    np.testing.assert_allclose(one["energy_normalized"].values, three["energy_normalized"].values, rtol=0, atol=1e-12)
