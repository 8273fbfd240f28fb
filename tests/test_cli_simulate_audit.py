"""Audit of ``tokensphere simulate`` (and the sweep's config reader): a run too large for the memory is refused
before anything is sampled; options that would have no effect are refused naming both flags; messages name the
CLI flag (not the library's parameter) and the file at fault. Every refusal: one stderr line, exit code 2."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import assert_one_line_error, invoke  # noqa: E402

import tokensphere.cli.simulate as simulate_cli
from tokensphere.sweep.config import load_config

SHORT = ["--n", "4", "--d", "3", "--t-max", "0.2", "--save-at", "2"]
EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "sweep_small.toml"


def _no_sampling(*args, **kwargs):
    raise AssertionError("the starts were sampled: the memory check must come first")


def _no_integration(*args, **kwargs):
    raise AssertionError("simulate was called: the memory check must come first")


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A tiny saved run (softmax, no noise) to continue."""
    path = tmp_path_factory.mktemp("saved") / "run.zarr"
    res = invoke("simulate", *SHORT, "--out", path)
    assert res.exit_code == 0, res.output
    return path


# ---------------------------------------------------------------------------------------------------------------
# 1. sizes: refused up front, naming the option and the memory needed against the memory available


@pytest.mark.parametrize(
    "extra, flag",
    [
        (["--batch", "1000000000"], "--batch 1000000000"),
        (["--batch", "1000", "--beta", "1,2,3", "--n", "1000000", "--d", "1000"], "--batch 1000"),
        (["--n", "1000000000"], "--n"),
        (["--d", "1000000000"], "--d"),
        (["--save-at", "1000000000000"], "--save-at 1000000000000"),
    ],
    ids=["batch", "batch-beta-n-d", "n", "d", "save-at"],
)
def test_simulate_audit_too_large_a_run_is_refused_before_sampling(tmp_path, monkeypatch, extra, flag):
    monkeypatch.setattr(simulate_cli, "beta_batch", _no_sampling)  # unfixed code fails here, allocating nothing
    args = ["--t-max", "0.2", *extra, "--out", tmp_path / "r.zarr"]
    start = time.perf_counter()
    res = invoke("simulate", *args)
    assert time.perf_counter() - start < 10.0
    assert_one_line_error(res, 2, flag)
    line = res.stderr.strip()
    assert "too large for the memory" in line and "available" in line and "need at least" in line, line
    assert not (tmp_path / "r.zarr").exists()


def test_simulate_audit_huge_batch_fails_fast_without_stubs(tmp_path):
    """The real path (nothing patched): --batch 10^9 returns within seconds instead of growing until killed."""
    start = time.perf_counter()
    res = invoke("simulate", "--batch", "1000000000", "--out", tmp_path / "r.zarr")
    assert time.perf_counter() - start < 10.0
    assert_one_line_error(res, 2, "--batch 1000000000")
    assert "GiB is available" in res.stderr


def test_simulate_audit_memory_check_uses_the_available_memory(tmp_path, monkeypatch):
    """The estimate is compared with runtime.available_memory: with 1 MiB free a modest batch is refused."""
    monkeypatch.setattr(simulate_cli, "available_memory", lambda device="cpu": 2**20)
    monkeypatch.setattr(simulate_cli, "beta_batch", _no_sampling)
    res = invoke("simulate", "--batch", "1000", "--n", "32", "--out", tmp_path / "r.zarr")
    assert_one_line_error(res, 2, "--batch 1000")
    assert "1 MiB is available" in res.stderr


def test_simulate_audit_memory_check_for_start_files_and_continued_runs(tmp_path, saved_run, monkeypatch):
    monkeypatch.setattr(simulate_cli, "simulate", _no_integration)
    np.save(tmp_path / "x0.npy", np.tile(np.eye(3)[:1], (5, 1)))
    res = invoke("simulate", "--init", tmp_path / "x0.npy", "--save-at", "100000000000", "--out", tmp_path / "a")
    assert_one_line_error(res, 2, "--save-at 100000000000")
    assert f"--init {tmp_path / 'x0.npy'}" in res.stderr
    res = invoke("simulate", "--from-run", saved_run, "--save-at", "100000000000", "--out", tmp_path / "b")
    assert_one_line_error(res, 2, "--save-at 100000000000")
    assert "--from-run" in res.stderr


# ---------------------------------------------------------------------------------------------------------------
# 2. options that would have no effect are refused, naming both flags (given, not merely defaulted)


INAPPLICABLE = [
    (["--cap-angle", "0.5"], "--cap-angle applies only with --init cap"),
    (["--init", "hemisphere", "--cap-angle", "0.5"], "--cap-angle applies only with --init cap"),
    (["--gamma0", "0.2"], "--gamma0 applies only with --init equiangular"),
    (["--init", "cap", "--gamma0", "0.2"], "--gamma0 applies only with --init equiangular"),
    (["--sinkhorn-iters", "5"], "--sinkhorn-iters applies only with --normalization sinkhorn"),
    (["--normalization", "uniform", "--sinkhorn-tol", "1e-3"],
     "--sinkhorn-tol applies only with --normalization sinkhorn"),
    (["--normalization", "hardmax", "--sinkhorn-iters", "5"],
     "--sinkhorn-iters applies only with --normalization sinkhorn"),
    (["--uniform-count", "attended"], "--uniform-count applies only with --normalization uniform"),
    (["--normalization", "sinkhorn", "--uniform-count", "n"],  # the default value, but given
     "--uniform-count applies only with --normalization uniform"),
    (["--normalization", "hardmax", "--tie-seed", "3"], "--tie-seed applies only with --ties random"),
    (["--noise-seed", "3"], "--noise-seed applies only with --noise > 0"),
    (["--norm-gain", "1,1,1"], "--norm-gain applies only with --norm rms"),
]


@pytest.mark.parametrize("extra, message", INAPPLICABLE, ids=[" ".join(a) for a, _ in INAPPLICABLE])
def test_simulate_audit_inapplicable_option_is_refused(tmp_path, extra, message):
    res = invoke("simulate", *SHORT, *extra, "--out", tmp_path / "r.zarr")
    assert_one_line_error(res, 2, message)
    assert not (tmp_path / "r.zarr").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sinkhorn-iters", "5"], "--sinkhorn-iters applies only with --normalization sinkhorn, got "
                                    "--normalization softmax"),
        (["--noise-seed", "3"], "--noise-seed applies only with --noise > 0"),
        (["--uniform-count", "attended"], "--uniform-count applies only with --normalization uniform"),
    ],
)
def test_simulate_audit_inapplicable_option_is_refused_when_continuing(tmp_path, saved_run, extra, message):
    """With --from-run the saved run's normalisation and noise decide."""
    res = invoke("simulate", "--from-run", saved_run, *extra, "--out", tmp_path / "r.zarr")
    assert_one_line_error(res, 2, message)


def test_simulate_audit_applicable_options_and_defaults_still_run(tmp_path):
    """The same options where they apply, and a run with every default, are accepted."""
    runs = [
        [],
        ["--init", "cap", "--cap-angle", "0.5"],
        ["--init", "equiangular", "--n", "3", "--gamma0", "0.2"],
        ["--normalization", "sinkhorn", "--sinkhorn-iters", "5", "--sinkhorn-tol", "1e-6"],
        ["--normalization", "uniform", "--uniform-count", "attended", "--causal"],
        ["--normalization", "hardmax", "--ties", "random", "--tie-seed", "3", "--solver", "euler", "--dt", "0.1"],
        ["--noise", "0.1", "--dt", "0.1", "--noise-seed", "3"],
        ["--norm", "rms", "--no-projection", "--norm-gain", "0.5,1,2"],
    ]
    for k, extra in enumerate(runs):
        res = invoke("simulate", *SHORT, *extra, "--out", tmp_path / f"r{k}.zarr")
        assert res.exit_code == 0, (extra, res.output)


# ---------------------------------------------------------------------------------------------------------------
# 3. messages name the CLI flag and the file


FLAG_NAMES = [
    (["--noise", "0.1", "--dt", "0.1", "--noise-seed", "-1"],
     "--noise-seed must be an integer in [0, 18446744073709551615], got -1"),
    (["--init", "cap", "--cap-angle", "4"], "--cap-angle must be a finite number > 0 and <= 3.14159, got 4"),
    (["--init", "cap", "--cap-angle", "0"], "--cap-angle must be a finite number > 0"),
    (["--norm", "rms", "--no-projection", "--norm-gain", "1,2"], "--norm-gain must be d = 3 comma-separated"),
    (["--norm", "rms", "--no-projection", "--norm-gain", "0,1,1"], "--norm-gain must be d = 3 comma-separated"),
    (["--norm", "rms", "--no-projection", "--norm-gain", "a,b,c"], "--norm-gain must be d = 3 comma-separated"),
]


@pytest.mark.parametrize("extra, message", FLAG_NAMES, ids=[" ".join(a) for a, _ in FLAG_NAMES])
def test_simulate_audit_range_errors_name_the_flag(tmp_path, extra, message):
    res = invoke("simulate", *SHORT, *extra, "--out", tmp_path / "r.zarr")
    assert_one_line_error(res, 2, message)


def test_simulate_audit_pickled_feedforward_names_the_file(tmp_path):
    path = tmp_path / "ff.npz"
    np.savez(path, w=np.array([{"a": 1}], dtype=object), a=np.zeros((2, 3)))
    res = invoke("simulate", *SHORT, "--feedforward", path, "--out", tmp_path / "r.zarr")
    assert_one_line_error(res, 2, f"--feedforward {path}")
    assert "pickled" in res.stderr


def test_simulate_audit_feedforward_that_is_not_an_npz_names_the_file(tmp_path):
    path = tmp_path / "ff.npz"
    path.write_text("not an archive")
    res = invoke("simulate", *SHORT, "--feedforward", path, "--out", tmp_path / "r.zarr")
    assert_one_line_error(res, 2, f"--feedforward {path}")
    assert "not a NumPy .npz file" in res.stderr


def test_simulate_audit_pickled_start_names_the_file(tmp_path):
    """A pickled .npz or .npy as --init is refused naming the option, the file and what it holds."""
    path = tmp_path / "x0.npz"
    np.savez(path, x0=np.array([{"a": 1}], dtype=object))
    res = invoke("simulate", "--init", path, "--out", tmp_path / "r.zarr")
    assert_one_line_error(res, 2, "--init")
    assert "x0.npz" in res.stderr and "pickled Python objects" in res.stderr
    np.save(tmp_path / "x0.npy", np.array([{"a": 1}], dtype=object))
    res = invoke("simulate", "--init", tmp_path / "x0.npy", "--out", tmp_path / "r.zarr")
    assert_one_line_error(res, 2, "pickled Python objects")
    with zipfile.ZipFile(tmp_path / "raw.npz", "w") as z:  # a member that is not an .npy array
        z.writestr("x0.npy", b"\x80\x04junk")
    res = invoke("simulate", "--init", tmp_path / "raw.npz", "--out", tmp_path / "r.zarr")
    assert_one_line_error(res, 2, "raw.npz")


def test_simulate_audit_non_utf8_config_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_bytes(EXAMPLE_CONFIG.read_bytes() + b"# caf\xe9\n")  # Latin-1 é
    res = invoke("sweep", path, "--out", tmp_path / "s.zarr")
    assert_one_line_error(res, 2, f"config {path} is not UTF-8")
    assert "0xe9" in res.stderr
    assert not (tmp_path / "s.zarr").exists()


def test_simulate_audit_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[grid\n")
    res = invoke("sweep", path, "--out", tmp_path / "s.zarr")
    assert_one_line_error(res, 2, f"config {path} is not valid TOML")


def test_simulate_audit_config_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + EXAMPLE_CONFIG.read_bytes())
    assert load_config(str(path)).to_dict() == load_config(str(EXAMPLE_CONFIG)).to_dict()
