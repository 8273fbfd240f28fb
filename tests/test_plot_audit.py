"""Figures drawn from the data they are given: systems stopped by a terminal event, one-row/one-column phase
grids, shared y-limits that hold every curve, titles built from the model and the measurements, refused bad
input; and the example script's report of the files it wrote."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from tokensphere import Model, sample_sphere, simulate
from tokensphere.analysis import cluster_count
from tokensphere.experiments import metastability_data, metastability_runs
from tokensphere.integrate.events import Clustered
from tokensphere.plot import (
    animate,
    circle_figure,
    cluster_count_distribution_figure,
    metastability_figure,
    phase_figure,
    regimes_figure,
    tokens_figure,
)
from tokensphere.plot.probe import probe_histogram_figure
from tokensphere.plot.sweep import sweep_figure
from tokensphere.plot.variants import normalization_clustering_figure

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stopped():
    """One system on the circle stopped by Clustered(1e-3) at t ≈ 9.8; NaN positions from t = 10 on."""
    run = simulate(sample_sphere(1, 8, 2, seed=0), 1.0, t_max=30, save_at=31, events=[Clustered(1e-3)])
    ev = float(run.event_time[0])
    assert 0 < ev < 30 and bool(run.positions[-1].isnan().all())
    last = int(np.flatnonzero(np.isfinite(run.positions.numpy()).all(axis=(1, 2, 3)))[-1])
    return run, ev, last


def _drawn_points(ax) -> np.ndarray:
    """Offsets of the token dots of a panel (the top scatter, zorder 3)."""
    (dots,) = [c for c in ax.collections if c.get_zorder() == 3]
    return np.asarray(dots.get_offsets())


# ---------------------------------------------------------------------------------------------------------
# 1. systems stopped by a terminal event


def test_circle_figure_draws_stopped_system_at_its_last_state(stopped):
    run, ev, last = stopped
    fig = circle_figure(run, snapshot_times=(0.0, 18.0, 30.0), delta=1e-3)
    first, *later = fig.axes
    assert "stopped" not in first.get_title()
    x_last = run.positions[last, 0]
    k_last = int(cluster_count(x_last, 1e-3))
    for ax in later:
        title = ax.get_title()
        assert f"stopped at t = {ev:.2f}" in title, title
        m = re.search(r": (\d+) clusters?$", title)
        assert m and int(m.group(1)) == k_last != 8  # the count of the drawn state, not n
        pts = _drawn_points(ax)
        assert np.isfinite(pts).all()
        np.testing.assert_allclose(pts, x_last.numpy())


def test_cluster_count_distribution_counts_stopped_systems_at_their_last_state(stopped):
    run, ev, last = stopped
    fig = cluster_count_distribution_figure(run, times=(18.0, 30.0), delta=1e-3)
    (ax,) = fig.axes
    k_last = int(cluster_count(run.positions[last, 0], 1e-3))
    ticks = [int(t) for t in ax.get_xticks()]
    assert ticks == [k_last]  # not n = 8 clusters of NaN positions
    assert "stopped" in fig._suptitle.get_text()


def test_tokens_figure_draws_stopped_system_at_its_last_state(stopped):
    run, ev, last = stopped
    fig = tokens_figure(run.positions, run.times, event_time=run.event_time, snapshot_times=(0.0, 30.0))
    ax0, ax1 = fig.axes
    assert "stopped" not in ax0.get_title()
    assert f"stopped at t = {ev:.2f}" in ax1.get_title()
    np.testing.assert_allclose(_drawn_points(ax1), run.positions[last, 0].numpy())
    trails = [ln for ln in ax1.get_lines() if len(ln.get_xdata()) == last + 1]
    assert len(trails) == 8 and all(np.isfinite(ln.get_xydata()).all() for ln in trails)


class _Recorder:
    """Stands in for the animation writer: records the title and the dots of every grabbed frame."""

    def __init__(self):
        self.frames = []

    @contextlib.contextmanager
    def saving(self, fig, path, dpi):
        self.fig = fig
        Path(path).write_bytes(b"frames")
        yield self

    def grab_frame(self):
        ax = self.fig.axes[0]
        self.frames.append((self.fig._suptitle.get_text(), np.array(_drawn_points(ax))))


def test_animate_holds_stopped_system_and_says_so(stopped, tmp_path, monkeypatch):
    run, ev, last = stopped
    rec = _Recorder()
    monkeypatch.setattr(sys.modules["tokensphere.plot.animate"], "_writer", lambda suffix, fps: rec)
    for substeps in (1, 2):
        rec.frames.clear()
        animate(run, tmp_path / "a.gif", substeps=substeps)
        assert len(rec.frames) == (31 - 1) * substeps + 1
        title0, pts0 = rec.frames[0]
        assert "stopped" not in title0 and "SA" in title0
        title, pts = rec.frames[-1]
        assert f"stopped at t = {ev:.2f}" in title, title
        np.testing.assert_allclose(pts, run.positions[last, 0].numpy())
        assert all(np.isfinite(p).all() for _, p in rec.frames)


# ---------------------------------------------------------------------------------------------------------
# 2. Figure 1: the shared y-limit holds the simulated densities


def _probe_data(real_peak: float, sim_peak: float) -> dict:
    edges = [[-0.4, 0.0, 0.5, 1.0]] * 3
    real = [[[10, 10, int(10 * real_peak)]] * 3]
    sim = [[[1, 1, int(10 * sim_peak)]] * 3]
    return {
        "depth": {"depth": 2, "trained_depth": 2, "how": "the model as trained"},
        "histograms": {"edges": edges, "counts": real},
        "histograms_simulated": {"edges": edges, "counts": sim},
        "model": {"name": "toy", "family": "bert", "d": 4, "heads": 1},
        "texts": [{"n_tokens": 5}],
    }


def test_probe_histogram_ylim_holds_the_simulated_densities():
    fig = probe_histogram_figure(_probe_data(1.0, 20.0))
    for ax in (ax for ax in fig.axes if ax.get_visible()):
        tops = [float(np.max(p.get_data().values)) for p in ax.patches]
        assert len(tops) == 2
        assert ax.get_ylim()[1] >= max(tops)


# ---------------------------------------------------------------------------------------------------------
# 3. phase diagrams with one β or one time


def _phase_ds(betas, times) -> xr.Dataset:
    betas, times = np.asarray(betas, float), np.asarray(times, float)
    z = np.linspace(0.1, 0.9, len(betas) * len(times)).reshape(1, len(betas), len(times))
    return xr.Dataset(
        {"clustered_fraction": (("d", "beta", "t"), z),
         "gamma_transition_time": (("beta",), np.full(len(betas), np.nan))},
        coords={"d": [2], "beta": betas, "t": times},
        attrs={"spec": json.dumps({"n": 8, "batch": 4, "delta": 1e-3})},
    )


@pytest.mark.parametrize("betas, times", [([3.0], [0.0, 1.0, 2.0]), ([0.5, 3.0, 8.0], [6.0]), ([3.0], [6.0])])
def test_phase_figure_draws_a_single_row_or_column(betas, times):
    fig = phase_figure(_phase_ds(betas, times))
    ax = fig.axes[0]
    (mesh,) = ax.collections
    xy = mesh.get_coordinates()  # (rows + 1, cols + 1, 2) cell corners
    assert xy.shape == (len(betas) + 1, len(times) + 1, 2)
    widths, heights = np.diff(xy[0, :, 0]), np.diff(xy[:, 0, 1])
    assert (widths > 0).all() and (heights > 0).all()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x0 < min(times) <= max(times) < x1 or (len(times) > 1 and (x0, x1) == (times[0], times[-1]))
    assert y0 < min(betas) <= max(betas) < y1 or (len(betas) > 1 and (y0, y1) == (betas[0], betas[-1]))
    # the drawn cells lie inside the view
    assert xy[..., 0].min() <= x0 + 1e-12 and xy[..., 1].min() <= y0 + 1e-12
    np.testing.assert_allclose(np.ma.getdata(mesh.get_array()).reshape(len(betas), len(times)),
                               _phase_ds(betas, times)["clustered_fraction"].values[0])


# ---------------------------------------------------------------------------------------------------------
# 4. titles from the model and the measurements


def test_circle_titles_name_the_models_normalization():
    x0 = sample_sphere(2, 8, 2, seed=0)
    run = simulate(x0, model=Model(beta=torch.tensor([1.0, 4.0]), normalization="uniform"), t_max=30.0,
                   save_at=31)
    for fig in (circle_figure(run), cluster_count_distribution_figure(run)):
        text = fig._suptitle.get_text()
        assert "USA" in text and "SA on" not in text and "n = 8" in text, text


def test_animate_names_sinkhorn_and_hardmax(tmp_path, monkeypatch):
    rec = _Recorder()
    monkeypatch.setattr(sys.modules["tokensphere.plot.animate"], "_writer", lambda suffix, fps: rec)
    x0 = sample_sphere(1, 6, 3, seed=0)
    for normalization, word in (("sinkhorn", "Sinkhorn"), ("hardmax", "hardmax"), ("uniform", "USA")):
        run = simulate(x0, model=Model(beta=1.0, normalization=normalization), solver="euler", dt=0.1,
                       t_max=0.2, save_at=3)
        rec.frames.clear()
        animate(run, tmp_path / "s.gif")
        title = rec.frames[0][0]
        assert word in title and "n = 6, d = 3" in title, title
        if normalization != "uniform":
            assert "USA" not in title


@pytest.fixture(scope="module")
def meta_run():
    traj = metastability_runs(betas=(9.0,), starts=2, n=8, d=2, t_max=20.0, n_times=30)
    return traj, metastability_data(traj)


def test_metastability_titles_from_model_and_measured_merges(meta_run):
    traj, data = meta_run
    fig = metastability_figure(data, model=traj.model, n=8, d=2)
    text = fig._suptitle.get_text()
    assert "n = 8" in text and "n = 32" not in text and "SA (softmax)" in text and "circle" in text, text
    ax_m = fig.axes[2]
    stats = data["by_beta"]["9"]
    assert "mostly" not in ax_m.get_title()
    if stats["merge_events"]:
        assert f"{100 * stats['pairwise_fraction']:.0f}%" in ax_m.get_title()
    # without the model or n nothing is claimed about them
    bare = metastability_figure(data)._suptitle.get_text()
    assert "n = " not in bare and "SA" not in bare and "circle" not in bare
    # the model's description recorded in the JSON of the CLI is read as well
    with_json = metastability_figure({**data, "model": {"normalization": "uniform"}})._suptitle.get_text()
    assert "USA" in with_json


# ---------------------------------------------------------------------------------------------------------
# 8, 9. Figure 2: refused input and small n


def test_regimes_figure_refuses_non_finite_measured():
    for bad in (float("nan"), float("inf")):
        for measured in ({"d": [2, 3], "beta": [1.0, 2.0], "value": [0.5, bad]},
                         {"d": [2, bad], "beta": [1.0, 2.0], "value": [0.5, 0.5]},
                         [(2, bad, 0.5)]):
            with pytest.raises(ValueError, match="measured"):
                regimes_figure(16, measured=measured)


def test_regimes_figure_small_n():
    for n in (2, 3):
        with pytest.raises(ValueError, match="n"):
            regimes_figure(n)
    for n in (4, 5, 16):
        ax = regimes_figure(n).axes[0]
        ticks = list(ax.get_xticks())
        assert len(set(ticks)) == len(ticks)
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert len(set(labels)) == len(labels)
        texts = [t.get_text() for t in ax.texts]
        assert len(set(texts)) == len(texts)
        for p in ax.patches:  # every labelled region has an area
            if hasattr(p, "get_width"):
                assert p.get_width() > 0 and p.get_height() > 0, p.get_gid()
        assert ("no result when d = 2" in " ".join(texts)) == (n >= 5)  # empty at n = 4: threshold < 1
        assert ("red: no result" in ax.get_title()) == (n >= 5)


# ---------------------------------------------------------------------------------------------------------
# 10. labels of the variants and sweep figures, the example's report


def test_normalization_clustering_figure_title_and_delta():
    times = np.linspace(0.0, 5.0, 6)
    clusters = {"softmax": np.tile(np.arange(6, 0, -1)[:, None], (1, 2)), "sinkhorn": np.full((6, 2), 3)}
    pairs = {k: np.linspace(0, 1, 12).reshape(6, 2) for k in clusters}
    fig = normalization_clustering_figure(times, clusters, pairs, delta=1e-3)
    text = fig._suptitle.get_text() if fig._suptitle is not None else ""
    assert "SA" in text and "Sinkhorn" in text and "2 starts" in text, text
    a, b = fig.axes
    assert "δ = 0.001" in b.get_ylabel() and "δ = 0.001" in a.get_ylabel()


def test_sweep_figure_labels_its_y_axes():
    t = np.linspace(0, 1, 4)
    ds = xr.Dataset({"energy_mean": (("beta", "t"), np.ones((2, 4))), "energy_se": (("beta", "t"), np.zeros((2, 4))),
                     "clusters_mean": (("beta", "t"), np.ones((2, 4)))}, coords={"beta": [1.0, 2.0], "t": t})
    fig = sweep_figure(ds)
    assert [ax.get_ylabel() for ax in fig.axes] == ["energy (mean over seeds ± s.e.)", "clusters (mean over seeds)"]


def test_variants_example_reports_both_files(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("variants", ROOT / "examples" / "variants.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "v.png"
    mod.main(["--out", str(out), "--t-max", "2", "--n", "6", "--depth", "2", "--dt", "0.01"])
    printed = capsys.readouterr().out
    both = [out, tmp_path / "v_9_3.png"]
    assert all(p.exists() for p in both)
    assert all(str(p) in printed for p in both), printed
