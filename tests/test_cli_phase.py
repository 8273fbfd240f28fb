"""`tokensphere phase-diagram` and `tokensphere figures`: the store, the figure, refusal of a different store,
resume after Ctrl-C (identical numbers), and one-line errors with exit code 2 for bad input."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pytest
import xarray as xr

import tokensphere.cli.phase as phase_cli
from tokensphere.cli import app

from helpers import assert_one_line_error, invoke, runner  # noqa: E402
# 2 dims × 3 β, one β per unit: 6 work units of 4 systems with 6 tokens, t ∈ [0, 4]
TINY = ["--d", "2,3", "--beta-min", "0.5", "--beta-max", "6", "--n-beta", "3", "--t-max", "4", "--n-times", "9",
        "--n", "6", "--batch", "4", "--betas-per-unit", "1"]
VARS = ("clustered_fraction", "clustered_fraction_se", "single_cluster_probability", "cluster_count_quantile")


def load(path):
    with xr.open_zarr(path, consolidated=False) as ds:
        return ds.load()


def test_phase_diagram_writes_store_and_figure(tmp_path):
    out, fig = tmp_path / "pd.zarr", tmp_path / "pd.png"
    res = invoke("phase-diagram", *TINY, "--out", out, "--figure", fig)
    assert res.exit_code == 0, res.output
    ds = load(out)
    assert dict(ds["clustered_fraction"].sizes) == {"d": 2, "beta": 3, "t": 9}
    assert ds["cluster_count_quantile"].dims == ("d", "beta", "quantile", "t")
    assert bool(ds["done"].all())
    np.testing.assert_allclose(ds["beta"].values, [0.5, 3.25, 6.0])
    assert "6 of 6 work units computed now" in res.stdout and f"wrote {out}" in res.stdout
    for png in (fig, tmp_path / "pd_log.png"):
        assert min(mpimg.imread(png).shape[:2]) > 200
    side = json.loads((tmp_path / "pd.png.json").read_text())
    assert side["spec"]["n"] == 6 and side["store"] == str(out.resolve())
    finite = np.isfinite(ds["gamma_curve_time"].values)
    np.testing.assert_allclose(side["gamma_curve"]["t_star"], ds["gamma_curve_time"].values[finite])

    # the same command again: everything is resumed from the store
    res = invoke("phase-diagram", *TINY, "--out", out)
    assert res.exit_code == 0 and "0 of 6 work units computed now (6 resumed" in res.stdout
    # a different diagram is refused without --overwrite, before any work
    res = invoke("phase-diagram", *TINY, "--seed", "1", "--out", out)
    assert_one_line_error(res, 2, "--overwrite")
    res = invoke("phase-diagram", *TINY[:-2], "--seed", "1", "--out", out, "--overwrite")
    assert res.exit_code == 0, res.output
    assert json.loads(load(out).attrs["spec"])["seed"] == 1


def test_ctrl_c_then_resume_gives_the_uninterrupted_numbers(tmp_path, monkeypatch):
    ref_out, out = tmp_path / "ref.zarr", tmp_path / "run.zarr"
    assert invoke("phase-diagram", *TINY, "--out", ref_out).exit_code == 0
    real = phase_cli.run_phase_diagram

    def interrupted(*args, progress=None, **kwargs):
        def stop_after_three(done, total):
            progress(done, total)  # the bar is showing when Ctrl-C arrives
            if done == 3:
                raise KeyboardInterrupt

        return real(*args, progress=stop_after_three, **kwargs)

    monkeypatch.setattr(phase_cli, "run_phase_diagram", interrupted)
    res = invoke("phase-diagram", *TINY, "--out", out)
    assert_one_line_error(res, 130, "interrupted")
    assert "3 of 6 work units are saved" in res.stderr and "resume" in res.stderr
    assert int(load(out)["done"].sum()) == 3

    monkeypatch.setattr(phase_cli, "run_phase_diagram", real)
    res = invoke("phase-diagram", *TINY, "--out", out)
    assert res.exit_code == 0 and "3 of 6 work units computed now (3 resumed" in res.stdout
    a, b = load(ref_out), load(out)
    for name in VARS:
        np.testing.assert_array_equal(a[name].values, b[name].values)


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--d", "1"], "d must be"),
        (["--d", "two"], "d must be"),
        (["--beta-min", "-1"], "beta_min"),
        (["--beta-min", "5", "--beta-max", "1"], "beta_max"),
        (["--n-beta", "1", "--beta-min", "5", "--beta-max", "1"], "beta_max must be >= beta_min, got"),
        (["--n-beta", "1", "--beta-min", "2", "--beta-max", "9"], "would be ignored"),
        (["--n-beta", "0"], "n_beta"),
        (["--n", "1"], "n must be"),
        (["--batch", "1"], "batch"),
        (["--delta", "0"], "delta"),
        (["--t-max", "0"], "t_max"),
        (["--normalization", "sparse"], "normalization"),
        (["--preset", "rk4"], "preset"),
        (["--score", "wishart"], "score"),
        (["--value", "nope"], "value"),
        (["--share", "all"], "share"),
        (["--redraw", "-1"], "redraw"),
        (["--workers", "0"], "workers"),
        (["--full", "--d", "2"], "--full"),
        (["--figure", "FIG.txt"], "figure"),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path, args, word):
    args = [a.replace("FIG", str(tmp_path / "f")) for a in args]
    res = invoke("phase-diagram", "--out", tmp_path / "pd.zarr", *args)
    assert_one_line_error(res, 2, word)
    assert not (tmp_path / "pd.zarr").exists()


def test_out_that_is_not_a_store(tmp_path):
    (tmp_path / "file").write_text("x")
    assert_one_line_error(invoke("phase-diagram", *TINY, "--out", tmp_path / "file"), 2, "out")
    (tmp_path / "dir").mkdir()
    assert_one_line_error(invoke("phase-diagram", *TINY, "--out", tmp_path / "dir"), 2, "not a phase-diagram store")


def test_figures_command_rejects_bad_input(tmp_path):
    assert_one_line_error(invoke("figures", "--out", tmp_path / "f", "--starts", "0"), 2, "starts")
    assert_one_line_error(invoke("figures", "--out", tmp_path / "f", "--measured", tmp_path / "nope.zarr"), 2,
                          "measured")


def test_figures_command_writes_every_figure_with_its_data(tmp_path):
    out = tmp_path / "figs"
    res = invoke("figures", "--out", out, "--starts", "4", "--seed", "0")
    assert res.exit_code == 0, res.output
    for name in ("fig2_regimes", "fig4_circle", "fig4_counts", "fig6_g", "metastability"):
        assert min(mpimg.imread(out / f"{name}.png").shape[:2]) > 200
        assert json.loads((out / f"{name}.json").read_text())["metadata"]["tokensphere_version"]
    fig4 = json.loads((out / "fig4_circle.json").read_text())
    assert fig4["seeds"] == {"seed": 0, "start": 0, "note": fig4["seeds"]["note"]}
    assert set(fig4["cluster_counts"]) == {"4", "9"} and (out / "fig4_circle.zarr").is_dir()
    counts = json.loads((out / "fig4_counts.json").read_text())["counts"]
    assert all(sum(h.values()) == 4 for per_t in counts.values() for h in per_t.values())
    from PIL import Image

    for movie in ("movie_sphere", "movie_circle"):
        meta = json.loads((out / f"{movie}.json").read_text())
        assert Image.open(out / f"{movie}.gif").n_frames == meta["settings"]["frames_drawn"] == 51
        assert (out / f"{movie}.mp4").read_bytes()[4:8] == b"ftyp"
    # rerunning into the same folder needs --overwrite
    assert_one_line_error(invoke("figures", "--out", out, "--starts", "4"), 2, "--overwrite")
