"""--overwrite replaces only what the library writes (a zarr store, a run folder, an empty folder), never a
folder of other data, a stray file or the folder the command runs in; thread counts are bounded."""

import os

import pytest
import torch

import tokensphere as ts
from helpers import assert_one_line_error, invoke
from tokensphere.io import is_zarr_store, validate_output_path
from tokensphere.runtime import choose_threads, default_threads, max_threads, torch_threads

SMALL = ("--n", 4, "--t-max", 0.5, "--save-at", 3)


def _plain_folder(path):
    path.mkdir()
    (path / "notes.txt").write_text("keep me")
    return path


def test_overwrite_replaces_a_store_or_an_empty_folder_and_refuses_other_data(tmp_path):
    store = tmp_path / "run.zarr"
    ts.simulate(ts.sample_sphere(1, 4, 3, seed=0), 1.0, t_max=0.5, save_at=2).save(store)
    assert is_zarr_store(store)
    assert validate_output_path(store, overwrite=True, replaces="zarr") == store
    empty = tmp_path / "empty"
    empty.mkdir()
    assert validate_output_path(empty, overwrite=True, replaces="zarr") == empty
    assert validate_output_path(empty, overwrite=True, replaces="run") == empty
    plain = _plain_folder(tmp_path / "plain")
    for kind in ("zarr", "run"):
        with pytest.raises(ValueError, match="is not .* or an empty folder"):
            validate_output_path(plain, overwrite=True, replaces=kind)
    run = tmp_path / "trained"
    run.mkdir()
    (run / "summary.json").write_text("{}")
    assert validate_output_path(run, overwrite=True, replaces="run") == run
    with pytest.raises(ValueError, match="not a zarr store"):
        validate_output_path(run, overwrite=True, replaces="zarr")
    stray = tmp_path / "stray.txt"
    stray.write_text("x")
    with pytest.raises(ValueError, match="not a zarr store"):
        validate_output_path(stray, overwrite=True, replaces="zarr")
    assert validate_output_path(stray, overwrite=True) == stray  # a single file target: replaced as such
    with pytest.raises(ValueError, match="replaces must be one of"):
        validate_output_path(tmp_path / "x", overwrite=True, replaces="anything")
    # the Python API's save goes through the same check
    tr = ts.simulate(ts.sample_sphere(1, 4, 3, seed=0), 1.0, t_max=0.5, save_at=2)
    with pytest.raises(ValueError, match="no other data is lost"):
        tr.save(plain, overwrite=True)
    assert (plain / "notes.txt").read_text() == "keep me"


def test_overwrite_never_replaces_the_current_folder_or_one_above(tmp_path, monkeypatch):
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    for path in (".", "", "..", str(tmp_path / "a")):
        with pytest.raises(ValueError, match="not the current folder or one above it"):
            validate_output_path(path, overwrite=True, replaces="zarr")
    assert validate_output_path("new.zarr", overwrite=True, replaces="zarr").name == "new.zarr"


@pytest.mark.parametrize("command", [
    ("simulate", *SMALL),
    ("train", "interpolate", "--steps", 1),
])
def test_cli_overwrite_keeps_a_folder_of_other_data(tmp_path, command):
    plain = _plain_folder(tmp_path / "plain")
    res = invoke(*command, "--out", plain, "--overwrite")
    assert_one_line_error(res, 2, "no other data is lost")
    assert sorted(os.listdir(plain)) == ["notes.txt"]


def test_cli_sweep_overwrite_keeps_a_folder_of_other_data(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text('[sweep]\nseeds = 1\nt_max = 0.5\nn_times = 2\nstatistics = ["pair_fraction"]\n'
                   '[model]\nn = 4\nd = 3\n[grid]\nbeta = [1.0]\n')
    plain = _plain_folder(tmp_path / "plain")
    res = invoke("sweep", cfg, "--out", plain, "--workers", 1, "--overwrite")
    assert_one_line_error(res, 2, "no other data is lost")
    assert sorted(os.listdir(plain)) == ["notes.txt"]


def test_cli_simulate_refuses_the_current_folder_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("keep me")
    res = invoke("simulate", *SMALL, "--out", ".", "--overwrite")
    assert_one_line_error(res, 2, "current folder")
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_thread_counts_are_bounded_with_a_clear_error(tmp_path):
    top = max_threads()
    assert top == 4 * (os.cpu_count() or 1)
    assert choose_threads(10, top) == top
    for call in (lambda: choose_threads(10, top + 1), lambda: default_threads(top + 1).__enter__(),
                 lambda: torch_threads(top + 1).__enter__()):
        with pytest.raises(ValueError, match=rf"threads must be an integer in \[1, {top}\]"):
            call()
    before = torch.get_num_threads()
    res = invoke("--threads", 100_000, "simulate", *SMALL, "--out", tmp_path / "never.zarr")
    assert_one_line_error(res, 2, "threads")
    assert torch.get_num_threads() == before
