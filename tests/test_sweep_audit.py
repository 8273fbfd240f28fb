"""Sweep audit: what validation must refuse before a store exists, Dask failures as one line, ``~`` in the out path,
resume after lost or damaged chunks, Ctrl-C while workers start, the stored TOML text, store identity up to
changes that cannot alter a stored value, provenance outside a checkout, long names and symlinked targets in the
atomic writes, and the documented options."""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

import tokensphere.sweep.runner as runner
from tokensphere.io.atomic import atomic_path, write_json
from tokensphere.model import NORMALIZATIONS
from tokensphere.sweep.config import load_config, parse_config
from tokensphere.sweep.runner import run_sweep
from tokensphere.sweep.store import done_units, open_or_create, read_store
from tokensphere.sweep.units import check_units

from helpers import assert_one_line_error, invoke  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# 2 β values, one per unit: 2 units of 2 systems with 4 tokens on the circle
SMALL = """
[sweep]
seeds = 2
t_max = 1.0
n_times = 3
betas_per_unit = 1

[model]
n = 4
d = 2

[grid]
beta = [0.5, 1.0]
"""


def _config_file(tmp_path: Path, text: str = SMALL) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def _chunk_file(store: Path, name: str, index: tuple[int, ...]) -> Path:
    """The file of one chunk of the variable ``name`` (the key as zarr encodes it, v2 or v3)."""
    arr = zarr.open_array(str(store), path=name, mode="r")
    return store / name / arr.metadata.encode_chunk_key(index)


# ------------------------------------------------------------------------------------------------
# 1. what validation must refuse before any store exists


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[model]\nn = 4\nnoise = 0.1\n[solver]\nmethod = \"heun\"\ndt = 0.1\nanchor = true\n[grid]\nbeta = [1.0]\n",
         ["solver.anchor", "model.noise"]),
        ("[solver]\nanchor = true\nmethod = \"heun\"\ndt = 0.1\n[model]\nn = 4\n[grid]\nnoise = [0.0, 0.1]\n",
         ["solver.anchor", "model.noise"]),
        ("[model]\nn = 4\nprojection = false\n[solver]\nmethod = \"lie-euler\"\ndt = 0.1\n[grid]\nbeta = [1.0]\n",
         ["solver.method 'lie-euler'", "model.projection"]),
        ("[model]\nn = 4\n[solver]\ndt = 0.1\n[grid]\nmethod = [\"rk4\", \"lie-euler\"]\nprojection = [true, false]\n",
         ["solver.method 'lie-euler'", "model.projection"]),
    ],
)
def test_combinations_that_only_a_unit_would_refuse_fail_before_the_store(tmp_path, text, words):
    res = invoke("sweep", _config_file(tmp_path, text), "--out", tmp_path / "s.zarr", "--workers", "1")
    assert_one_line_error(res, 2, words[0])
    for word in words[1:]:
        assert word in res.stderr
    assert "'euler'" not in res.stderr  # not the anchor scheme's own method, which the user did not name
    assert not (tmp_path / "s.zarr").exists()


def test_check_units_resolves_each_solver_as_simulate_does():
    """A combination that slipped past the config checks (built here by hand) is still refused by check_units,
    with simulate's own message: the solver is resolved against the model exactly as a unit's run does."""
    cfg = parse_config("[model]\nn = 4\nd = 2\n[solver]\nmethod = \"lie-euler\"\ndt = 0.1\n[grid]\nbeta = [1.0]\n")
    unchecked = replace(cfg, fixed=tuple(sorted({**dict(cfg.fixed), "projection": False}.items())))
    with pytest.raises(ValueError, match="moves tokens on the sphere"):
        check_units(unchecked)
    noisy = replace(cfg, fixed=tuple(sorted({**dict(cfg.fixed), "method": "heun", "noise": 0.1,
                                             "anchor": True}.items())))
    with pytest.raises(ValueError, match="stochastic"):
        check_units(noisy)
    check_units(cfg)  # the valid one passes


# ------------------------------------------------------------------------------------------------
# 2. a unit that keeps killing its Dask worker, a lost scheduler


def test_killed_worker_and_lost_scheduler_become_one_line_errors_naming_the_unit():
    """The translation of Dask's failures: KilledWorker → MemoryError naming the unit and memory; a lost
    connection (cancelled futures, CommClosedError) → ValueError naming the scheduler; the unit's own error,
    raised on the worker, passes unchanged."""
    from concurrent.futures import CancelledError

    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    cfg = parse_config(SMALL)
    unit = cfg.units()[1]
    killed = runner.dask_failure(KilledWorker("compute_unit-1", "tcp://w:1", 3), "error", cfg, unit, "tcp://s:1")
    assert isinstance(killed, MemoryError)
    assert "beta = [1.0]" in str(killed) and "memory" in str(killed) and "resume" in str(killed)
    for exc, status in ((CancelledError("x cancelled for reason: scheduler-connection-lost"), "cancelled"),
                        (CommClosedError("in <TCP>: Stream is closed"), "pending")):
        lost = runner.dask_failure(exc, status, cfg, unit, "tcp://s:1")
        assert isinstance(lost, ValueError) and "lost the connection to the Dask scheduler tcp://s:1" in str(lost)
        assert "\n" not in str(lost)
    own = OSError("the unit's own file error")
    assert runner.dask_failure(own, "error", cfg, unit, "tcp://s:1") is own


def _kill_own_worker(cfg, unit):
    """A unit that kills the worker process running it (as the kernel's OOM killer would)."""
    os._exit(1)


@pytest.mark.slow  # worker processes start (and import torch to unpickle the config): 10-30 s on 2 cores
def test_unit_that_kills_its_worker_is_one_line_naming_it(tmp_path, monkeypatch):
    import cloudpickle
    import dask

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    monkeypatch.setattr(runner, "compute_unit", _kill_own_worker)
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):  # one death is enough
            res = invoke("sweep", _config_file(tmp_path), "--out", tmp_path / "k.zarr", "--workers", "2")
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert_one_line_error(res, 2, "killed its Dask worker")
    assert "beta = [" in res.stderr and "memory" in res.stderr


# ------------------------------------------------------------------------------------------------
# 3. ~ in the out path


def test_out_path_with_tilde_is_expanded_everywhere(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    ds = run_sweep(parse_config(SMALL), "~/s.zarr", workers=1)
    assert bool(ds["done"].all()) and (home / "s.zarr" / "zarr.json").is_file()
    assert done_units(Path("~/s.zarr"), parse_config(SMALL)) == [True, True]
    write_json("~/a.json", {"v": 1})
    assert (home / "a.json").is_file()
    assert os.listdir(cwd) == []  # no literal "~" folder, no orphan store
    res = invoke("sweep", _config_file(tmp_path), "--out", "~/s.zarr", "--workers", "1")
    assert res.exit_code == 0, res.output  # resumed: the store is found at the expanded path
    assert "0 of 2 work units computed now (2 resumed" in res.stdout


# ------------------------------------------------------------------------------------------------
# 4. resume after a data chunk was deleted; 5. a damaged chunk


def test_unit_whose_data_chunk_was_deleted_is_computed_again(tmp_path, monkeypatch):
    cfg = parse_config(SMALL)
    ref = run_sweep(cfg, tmp_path / "ref.zarr", workers=1)
    out = tmp_path / "run.zarr"
    run_sweep(cfg, out, workers=1)
    _chunk_file(out, "cluster_count", (1, 0, 0)).unlink()
    assert done_units(out, cfg) == [True, False]
    computed = []
    real = runner.compute_unit
    monkeypatch.setattr(runner, "compute_unit", lambda c, u: computed.append(u) or real(c, u))
    ds = run_sweep(cfg, out, workers=1)
    assert computed == [cfg.units()[1]]
    for name in ("pair_fraction", "cluster_count", "done"):
        np.testing.assert_array_equal(ds[name].values, ref[name].values, err_msg=name)


def test_all_nan_chunk_is_written_so_it_does_not_count_as_missing(tmp_path, monkeypatch):
    """A unit whose values are all NaN (the fill value) still writes its chunks: otherwise it would count as
    missing and be computed again on every resume."""
    cfg = parse_config(SMALL)
    real = runner.compute_unit
    monkeypatch.setattr(runner, "compute_unit",
                        lambda c, u: {k: np.full_like(v, np.nan) for k, v in real(c, u).items()})
    run_sweep(cfg, tmp_path / "nan.zarr", workers=1)
    assert done_units(tmp_path / "nan.zarr", cfg) == [True, True]


def test_damaged_chunk_is_one_line_naming_the_store_and_variable(tmp_path):
    path = _config_file(tmp_path)
    out = tmp_path / "d.zarr"
    assert invoke("sweep", path, "--out", out, "--workers", "1").exit_code == 0
    _chunk_file(out, "pair_fraction", (0, 0, 0)).write_bytes(b"\x28\xb5\x2f\xfd not a zstd frame")
    with pytest.raises(ValueError, match=r"is damaged \(variable pair_fraction"):
        read_store(out)
    res = invoke("sweep", path, "--out", out, "--workers", "1")
    assert_one_line_error(res, 2, f"store {out} is damaged (variable pair_fraction")
    assert "--overwrite" in res.stderr
    assert invoke("sweep", path, "--out", out, "--workers", "1", "--overwrite").exit_code == 0


# ------------------------------------------------------------------------------------------------
# 6. Ctrl-C while the local cluster's workers start


def _group_members(pgid: int) -> list[str]:
    out = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout
    return out.split()


@pytest.mark.slow  # two worker processes that import torch: 10-40 s on a busy 2-core machine
def test_ctrl_c_while_workers_start_prints_no_traceback(tmp_path):
    """Ctrl-C (SIGINT to the foreground process group) while the spawned workers import: the workers were
    started with SIGINT ignored, so none prints a traceback; the sweep ends with one line or completes."""
    if shutil.which("pgrep") is None:
        pytest.skip("pgrep is needed to see the worker processes appear")
    text = SMALL.replace("beta = [0.5, 1.0]", "beta = [0.5, 1.0, 2.0, 3.0]")
    log = (tmp_path / "log.txt").open("w")
    proc = subprocess.Popen([sys.executable, "-c", "from tokensphere.cli import main; main()", "sweep",
                             str(_config_file(tmp_path, text)), "--out", str(tmp_path / "c.zarr"), "--workers", "2"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(_group_members(proc.pid)) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the workers are importing now
        os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    output = (tmp_path / "log.txt").read_text()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert rc in (0, 130), output


# ------------------------------------------------------------------------------------------------
# 7. the stored TOML text


def test_stored_config_text_is_toml_that_reads_back_as_the_effective_config(tmp_path):
    path = _config_file(tmp_path, "# a sweep\n" + SMALL)
    overrides = ["sweep.seeds = 3", "grid.beta = [2.0]", "model.normalization = \"uniform\""]
    out = tmp_path / "o.zarr"
    args = [a for o in overrides for a in ("--set", o)]
    assert invoke("sweep", path, "--out", out, "--workers", "1", *args).exit_code == 0
    with xr.open_zarr(out) as ds:
        text = ds.attrs["config"]
    effective = load_config(str(path), overrides)
    assert parse_config(text) == effective
    assert all(o in text for o in overrides)  # the overrides stay visible (as comments)


# ------------------------------------------------------------------------------------------------
# 8. statistics that would be computed and thrown away; 11. a repeated summary


def test_statistic_without_summaries_is_refused_when_per_seed_is_false(tmp_path):
    text = ("[sweep]\nper_seed = false\nstatistics = [\"pair_fraction\", \"energy\"]\n"
            "summaries = {pair_fraction = [\"mean\"]}\n[model]\nn = 4\n[grid]\nbeta = [1.0]\n")
    res = invoke("sweep", _config_file(tmp_path, text), "--out", tmp_path / "s.zarr", "--workers", "1")
    assert_one_line_error(res, 2, "'energy'")
    assert "sweep.summaries" in res.stderr and "per_seed" in res.stderr
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.parametrize(("summaries", "where"), [("[\"mean\", \"median\", \"mean\"]", "sweep.summaries "),
                                                  ("{cluster_count = [\"se\", \"se\"]}",
                                                   "sweep.summaries.cluster_count ")])
def test_repeated_summary_is_refused_naming_sweep_summaries(tmp_path, summaries, where):
    text = f"[sweep]\nsummaries = {summaries}\n[model]\nn = 4\n[grid]\nbeta = [1.0]\n"
    res = invoke("sweep", _config_file(tmp_path, text), "--out", tmp_path / "s.zarr", "--workers", "1")
    assert_one_line_error(res, 2, where)
    assert "twice" in res.stderr and "[names]" not in res.stderr and "names " not in res.stderr


# ------------------------------------------------------------------------------------------------
# 9. provenance: git only when it tracks the package


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo.parent)}
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True, env=env).stdout.strip()


def _metadata_copy(repo: Path):
    """tokensphere/io/metadata.py copied to repo/pkg/io/metadata.py, imported from there."""
    target = repo / "pkg" / "io" / "metadata.py"
    target.parent.mkdir(parents=True)
    shutil.copy(ROOT / "src" / "tokensphere" / "io" / "metadata.py", target)
    spec = importlib.util.spec_from_file_location("metadata_copy", target)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_commit_only_from_a_checkout_that_tracks_the_package(tmp_path):
    repo = tmp_path / "project"  # a user's project with the package inside it, not tracked (e.g. a venv)
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "notes.txt").write_text("a")
    _git(repo, "add", "notes.txt")
    _git(repo, "commit", "-q", "-m", "user's commit")
    mod = _metadata_copy(repo)
    assert mod.git_commit() == "unknown"

    _git(repo, "add", "pkg")  # now the package's checkout
    _git(repo, "commit", "-q", "-m", "package")
    head = _git(repo, "rev-parse", "HEAD")
    mod.git_commit.cache_clear()
    assert mod.git_commit() == head
    (repo / "notes.txt").write_text("b")  # a change outside the package does not make it dirty
    mod.git_commit.cache_clear()
    assert mod.git_commit() == head
    with (repo / "pkg" / "io" / "metadata.py").open("a") as f:
        f.write("\n# edited\n")
    mod.git_commit.cache_clear()
    assert mod.git_commit() == head + "-dirty"


# ------------------------------------------------------------------------------------------------
# 10. changes that cannot alter a stored value do not make the store "another sweep"


BASE = """[sweep]
seeds = 2
t_max = 1.0
n_times = 3
statistics = ["pair_fraction", "cluster_count"]
summaries = ["mean", "median"]
betas_per_unit = 2
[model]
n = 4
d = 2
[grid]
beta = [0.5, 1.0]
"""


@pytest.mark.parametrize(
    ("change", "accepted"),
    [
        (("statistics = [\"pair_fraction\", \"cluster_count\"]", "statistics = [\"cluster_count\", \"pair_fraction\"]"),
         True),
        (("summaries = [\"mean\", \"median\"]", "summaries = [\"median\", \"mean\"]"), True),
        (("[grid]", "[weights]\nweights_seed = 0\n[grid]"), True),  # the default it resolves to ([sweep] seed)
        (("betas_per_unit = 2", "betas_per_unit = 100"), True),  # same blocks: both cover the 2 β values
        (("[grid]\nbeta = [0.5, 1.0]", "[grid]\nnormalization = [\"softmax\", \"uniform\"]"), False),
        (("[grid]", "[weights]\nweights_seed = 1\n[grid]"), False),
        (("betas_per_unit = 2", "betas_per_unit = 1"), False),  # other batches: other rounding
        (("seeds = 2", "seeds = 3"), False),
    ],
)
def test_store_identity_ignores_only_changes_without_effect(tmp_path, change, accepted):
    store = tmp_path / "s.zarr"
    old, new = change
    base = BASE
    if "normalization" in new:  # β not swept: betas_per_unit groups nothing, any value is the same sweep
        base = BASE.replace(old, new)
        old, new = "betas_per_unit = 2", "betas_per_unit = 7"
        accepted = True
    open_or_create(parse_config(base), store, overwrite=False)
    other = parse_config(base.replace(old, new))
    assert other.to_dict() != parse_config(base).to_dict()
    if accepted:
        open_or_create(other, store, overwrite=False)
    else:
        with pytest.raises(ValueError, match="holds a different sweep"):
            open_or_create(other, store, overwrite=False)


# ------------------------------------------------------------------------------------------------
# 12. long names; 13. a symlinked target


def test_out_name_at_the_file_name_limit_is_written(tmp_path):
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    out = tmp_path / ("a" * (limit - 5) + ".zarr")
    ds = run_sweep(parse_config(SMALL), out, workers=1)
    assert bool(ds["done"].all()) and out.is_dir()
    run_sweep(parse_config(SMALL), out, workers=1, overwrite=True)  # replacing it renames the old one aside too
    name = tmp_path / ("b" * (limit - 5) + ".json")
    write_json(name, {"v": 1})
    write_json(name, {"v": 2})
    assert sorted(os.listdir(tmp_path)) == sorted([out.name, name.name])  # no temporary left behind


def test_symlink_to_a_directory_is_replaced_without_leftovers(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "keep").write_text("k")
    link = tmp_path / "link"
    link.symlink_to(real)
    with atomic_path(link) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("n")
    assert sorted(os.listdir(tmp_path)) == ["link", "real"]  # no hidden .link.old-XXXX left
    assert not link.is_symlink() and (link / "new").is_file()
    assert (real / "keep").read_text() == "k"  # what the link pointed to is not touched


# ------------------------------------------------------------------------------------------------
# 14. the documented options agree with the code


def test_docs_list_every_normalization_and_the_hemisphere_angle():
    doc = (ROOT / "docs" / "sweeps.md").read_text()
    row = next(line for line in doc.splitlines() if line.startswith("| model | `normalization`"))
    for name in NORMALIZATIONS:
        assert f"`\"{name}\"`" in row or f"`{name}`" in row, name
    angle = next(line for line in doc.splitlines() if line.startswith("| init | `angle`"))
    assert "hemisphere" in angle


def test_init_angle_behaviour_matches_its_message():
    """init.angle is taken by kind = 'cap' and, at π/2 only, by 'hemisphere'; the refusal for other kinds says so."""
    check_units(parse_config(f"[model]\nn = 4\n[init]\nkind = \"hemisphere\"\nangle = {math.pi / 2!r}\n"
                             "[grid]\nbeta = [1.0]\n"))
    with pytest.raises(ValueError, match="angle of a hemisphere is π/2"):
        check_units(parse_config("[model]\nn = 4\n[init]\nkind = \"hemisphere\"\nangle = 0.3\n[grid]\nbeta = [1.0]\n"))
    with pytest.raises(ValueError) as err:
        check_units(parse_config("[model]\nn = 4\n[init]\nkind = \"uniform\"\nangle = 0.3\n[grid]\nbeta = [1.0]\n"))
    assert "'cap'" in str(err.value) and "'hemisphere'" in str(err.value)
