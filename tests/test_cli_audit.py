"""The command line's last defences: a figure path never deletes a directory, the system's refusals of a path
and a damaged store are one line, a run that cannot finish within max_steps is refused before it starts,
options that cannot apply are refused, and a check named twice runs once."""

from __future__ import annotations

from pathlib import Path

import pytest

import tokensphere.cli.check as check_cli

from helpers import assert_one_line_error, invoke  # noqa: E402

SHORT = ["--t-max", "0.5", "--save-at", "3"]
PHASE = ["--d", "2", "--n-beta", "1", "--beta-min", "1", "--beta-max", "1", "--n", "4", "--batch", "2",
         "--t-max", "1", "--n-times", "2"]


def test_a_figure_path_that_is_a_directory_is_refused_and_kept(tmp_path):
    folder = tmp_path / "fig.png"
    folder.mkdir()
    (folder / "keep.txt").write_text("important")
    res = invoke("phase-diagram", "--out", tmp_path / "p.zarr", *PHASE, "--figure", folder)
    assert_one_line_error(res, 2, "existing directory")
    assert (folder / "keep.txt").read_text() == "important"
    assert not (tmp_path / "p.zarr").exists()  # refused before any work


def test_a_path_the_system_refuses_is_one_line(tmp_path):
    res = invoke("simulate", "--n", "4", *SHORT, "--out", tmp_path / ("a" * 300 + ".zarr"))
    assert_one_line_error(res, 2, "cannot read or write")


def test_a_damaged_run_store_is_one_line(tmp_path):
    run = tmp_path / "r.zarr"
    assert invoke("simulate", "--n", "4", *SHORT, "--out", run).exit_code == 0
    chunks = [p for p in (run / "x").rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert chunks
    for p in chunks:
        p.write_bytes(b"not a chunk")
    res = invoke("simulate", "--from-run", run, "--t-max", "1", "--out", tmp_path / "more.zarr")
    assert_one_line_error(res, 2, "is damaged")


def test_a_fixed_step_run_beyond_max_steps_is_refused_before_it_starts(tmp_path):
    res = invoke("simulate", "--n", "4", "--t-max", "1", "--save-at", "3", "--solver", "euler", "--dt", "1e-9",
                 "--out", tmp_path / "e.zarr")
    assert_one_line_error(res, 2, "max_steps")


def test_the_anchor_preset_refuses_tolerances(tmp_path):
    res = invoke("phase-diagram", "--out", tmp_path / "p.zarr", *PHASE, "--preset", "anchor", "--rtol", "1e-3")
    assert_one_line_error(res, 2, "--rtol applies to the adaptive preset")
    assert not (tmp_path / "p.zarr").exists()


def test_a_check_named_twice_runs_once(tmp_path, monkeypatch):
    seen: list[list[str]] = []

    def fake_run_checks(keys, **kw):
        seen.append(list(keys))
        raise ValueError("stop here")

    monkeypatch.setattr(check_cli, "run_checks", fake_run_checks)
    res = invoke("check", "energy_sa", "energy_usa", "--out", tmp_path / "ck")
    assert_one_line_error(res, 2, "stop here")
    assert seen == [["energy_rates"]]  # both names are aliases of one check
