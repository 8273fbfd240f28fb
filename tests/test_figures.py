"""Figures at reduced size: valid PNGs, the drawn theory overlays equal the library's values (Γ curve, ±τ*_β,
cluster counts in the Figure 4 titles), Figure 2 from the regimes table, animations with the right frame count."""

from __future__ import annotations

import re

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from PIL import Image

from tokensphere.analysis import cluster_count
from tokensphere.experiments import circle_runs, cluster_count_distribution, movie_run
from tokensphere.plot import (
    animate,
    circle_figure,
    cluster_count_distribution_figure,
    frame_indices,
    g_figure,
    phase_difference_figure,
    phase_figure,
    regimes_figure,
    save_figure,
)
from tokensphere.plot.regimes import d_position
from tokensphere.sweep.phase import PhaseDiagram, run_phase_diagram
from tokensphere.theory import large_beta_threshold_d2, regimes, tau_star

TINY = PhaseDiagram(dims=(2, 4), betas=(0.5, 3.0, 8.0), t_max=6.0, n_times=13, n=8, batch=4, betas_per_unit=3)


def assert_png(path, min_side=200):
    img = mpimg.imread(path)
    assert img.ndim == 3 and min(img.shape[:2]) >= min_side, img.shape
    assert float(img[..., :3].std()) > 0.02  # not a blank canvas
    return img


@pytest.fixture(scope="module")
def phase_ds(tmp_path_factory):
    return run_phase_diagram(TINY, tmp_path_factory.mktemp("pd") / "pd.zarr")


@pytest.fixture(scope="module")
def circle_traj():
    return circle_runs((4.0, 9.0), 2, n=12, seed=1, t_max=30.0, save_at=61)


def test_phase_figure_png_and_gamma_curve_from_dataset(phase_ds, tmp_path):
    t_star = phase_ds["gamma_transition_time"].values
    finite = np.isfinite(t_star)
    assert finite.any() and not finite.all()  # the test sees both drawn and omitted β
    for scale in ("linear", "log"):
        fig = phase_figure(phase_ds, scale=scale, level=0.5)
        panels = [ax for ax in fig.axes if ax.get_xlabel() == "t"]
        assert len(panels) == 2
        for ax, d in zip(panels, TINY.dims):
            assert f"d = {d}" in ax.get_title() and "n = 8" in ax.get_title() and "batch = 4" in ax.get_title()
            assert "δ = 0.001" in ax.get_title()
            (curve,) = [ln for ln in ax.get_lines() if ln.get_gid() == "gamma_curve"]
            fine_t = phase_ds["gamma_curve_time"].values
            keep = np.isfinite(fine_t)
            np.testing.assert_array_equal(curve.get_xdata(), fine_t[keep])
            np.testing.assert_array_equal(curve.get_ydata(), phase_ds["gamma_beta"].values[keep])
            mesh = ax.collections[0]
            assert mesh.get_cmap().name.startswith("RdBu_r")
            assert (mesh.norm.vmin, mesh.norm.vmax) == ((0.0, 1.0) if scale == "linear" else (1e-3, 1.0))
        assert_png(save_figure(fig, tmp_path / f"pd_{scale}.png"))


def test_phase_figure_several_datasets_and_bad_input(phase_ds):
    fig = phase_figure([phase_ds, phase_ds], dims=[4], labels=["a", "b"])
    assert [ax.get_title().split("\n")[0] for ax in fig.axes if ax.get_xlabel() == "t"] == ["a", "b"]
    with pytest.raises(ValueError, match="scale"):
        phase_figure(phase_ds, scale="sqrt")
    with pytest.raises(ValueError, match="dims"):
        phase_figure(phase_ds, dims=[3])
    with pytest.raises(ValueError, match="variable"):
        phase_figure(phase_ds, variable="done")


def test_phase_difference_is_centred_at_zero(phase_ds, tmp_path):
    other = phase_ds.copy(deep=True)
    other["clustered_fraction"] = other["clustered_fraction"] * 0.5
    fig = phase_difference_figure(phase_ds, other, labels=("anchor", "adaptive"))
    mesh = fig.axes[0].collections[0]
    assert mesh.norm.vcenter == 0.0 and mesh.norm.vmin == -mesh.norm.vmax
    diff = (phase_ds["clustered_fraction"] * 0.5).sel(d=2).transpose("beta", "t").values
    np.testing.assert_allclose(np.ma.getdata(mesh.get_array()).reshape(diff.shape), diff)
    assert_png(save_figure(fig, tmp_path / "diff.png"))
    with pytest.raises(ValueError, match="grid"):
        phase_difference_figure(phase_ds, phase_ds.isel(t=slice(0, 5)))


def test_regimes_figure_from_theory(tmp_path):
    n = 16
    measured = {"d": [2, 3, 16, 64], "beta": [4.0, 4.0, 9.0, 1.0], "value": [0.2, 0.9, 1.0, 1.0]}
    fig = regimes_figure(n, measured=measured)
    ax = fig.axes[0]
    texts = " ".join(t.get_text() for t in ax.texts)
    for r in regimes(n):
        if r.theorem:
            assert r.theorem in texts
    assert "no result when d = 2" in texts
    gids = {p.get_gid() for p in ax.patches}
    assert {"region:none", "region:Theorem 5.1", "region:Theorem 6.9"} <= gids
    assert "printed_vs_proof" not in gids and not any(p.get_hatch() for p in ax.patches)  # no erratum band
    assert "proof needs" not in texts and "erratum" not in texts.lower()
    (red,) = [p for p in ax.patches if p.get_gid() == "region:none"]
    assert red.get_y() == 1.0 and red.get_y() + red.get_height() == pytest.approx(large_beta_threshold_d2(n))
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "1" and "n²/π²" in labels[1]
    (dots,) = [c for c in ax.collections if c.get_gid() == "measured"]
    np.testing.assert_allclose(dots.get_offsets()[:, 0], d_position(measured["d"], n))
    assert_png(save_figure(fig, tmp_path / "fig2.png"))
    with pytest.raises(ValueError, match="measured"):
        regimes_figure(n, measured=[(2, 1.0)])


def test_regimes_figure_theorem_6_9_edge_follows_d_star_of_each_beta():
    """The Theorem 6.9 region starts at d*(n, β) of (D.9) for the β of each height, not at d*(n, 1)."""
    from tokensphere.plot.regimes import _log10_position, beta_top
    from tokensphere.theory import d_star_log10

    n = 16
    ax = regimes_figure(n).axes[0]
    (poly,) = [p for p in ax.patches if p.get_gid() == "region:Theorem 6.9"]
    xy = poly.get_xy()
    inside = (xy[:, 1] > 1.0) & (xy[:, 1] < beta_top(n)) & (xy[:, 0] < 3.6)
    assert inside.sum() >= 10
    for x, b in xy[inside]:  # d* overflows a float beyond β ≈ 30: compare positions computed from log10 d*
        assert x == pytest.approx(float(_log10_position(d_star_log10(n, b), n, d_star_log10(n, beta_top(n)))),
                                  abs=1e-9)
    assert float(d_position(1e12, n)) == pytest.approx(float(_log10_position(12.0, n, d_star_log10(n, beta_top(n)))))
    # the edge moves right as β grows (d* ≈ e^{20β}); at β = 1 it sits at d*(n, 1)
    order = np.argsort(xy[inside, 1])
    assert np.all(np.diff(xy[inside, 0][order]) > 0)
    assert d_star_log10(n, beta_top(n)) > 100 * d_star_log10(n, 1.0)


def test_g_figure_marks_tau_star(tmp_path):
    fig = g_figure()
    ax, ax2 = fig.axes[:2]
    for beta in (2.0, 6.0):
        xs = sorted(ln.get_xdata()[0] for ln in ax.get_lines() if ln.get_gid() == f"tau_star:{beta:g}")
        np.testing.assert_allclose(xs, [-tau_star(beta), tau_star(beta)], rtol=0, atol=1e-15)
        assert all(ln.get_linestyle() == "--" for ln in ax.get_lines() if ln.get_gid() == f"tau_star:{beta:g}")
    assert ax.get_ylim() == (-2.0, 7.0) and ax.get_xlim() == pytest.approx((-np.pi, np.pi))
    colours = [ln.get_color() for ln in ax.get_lines() if ln.get_gid() is None and len(ln.get_xdata()) > 2]
    assert colours[:2] == ["magenta", "cyan"]
    for d in (2, 3, 8, 32):
        (ln,) = [ln for ln in ax2.get_lines() if ln.get_gid() == f"tau_star_d:{d}"]
        assert ln.get_xdata()[0] == pytest.approx(tau_star(6.0, d), abs=1e-15)
    assert_png(save_figure(fig, tmp_path / "fig6.png"))


def test_circle_figure_titles_carry_cluster_counts(circle_traj, tmp_path):
    fig = circle_figure(circle_traj, systems=[0, 2])  # start 0 at β = 4 and β = 9
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 6
    for title, (b, t) in zip(titles, [(s, t) for s in (0, 2) for t in (0.0, 18.0, 30.0)]):
        m = re.fullmatch(r"β = (\S+), t = (\S+): (\d+) clusters?", title)
        assert m, title
        assert float(m.group(1)) == (4.0 if b == 0 else 9.0) and float(m.group(2)) == t
        k = int(torch.argmin((circle_traj.times - t).abs()))
        assert int(m.group(3)) == int(cluster_count(circle_traj.positions[k, b], 1e-3))
    dashed = [ln for ln in fig.axes[1].get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 12  # one dashed path per token
    assert_png(save_figure(fig, tmp_path / "fig4.png"))
    with pytest.raises(ValueError, match="outside"):
        circle_figure(circle_traj, snapshot_times=(0.0, 40.0))


def test_cluster_count_distribution(circle_traj, tmp_path):
    dist = cluster_count_distribution(circle_traj, (18.0, 30.0))
    assert set(dist) == {4.0, 9.0}
    for per_t in dist.values():
        assert all(sum(h.values()) == 2 for h in per_t.values())  # two starts per β
    k = int(torch.argmin((circle_traj.times - 30.0).abs()))
    assert dist[9.0][30.0] == dict(zip(*np.unique(cluster_count(circle_traj.positions[k, 2:], 1e-3).numpy(),
                                                  return_counts=True)))
    fig = cluster_count_distribution_figure(circle_traj)
    for ax in fig.axes:
        for c in ax.containers:
            assert sum(p.get_height() for p in c.patches) == pytest.approx(1.0)
    assert_png(save_figure(fig, tmp_path / "counts.png"))


def test_animations_gif_frames_and_mp4(tmp_path):
    traj = movie_run(n=8, d=3, t_max=1.5, dt=0.1, start="half")  # 16 saved times
    assert traj.shape == (16, 1, 8, 3)
    assert bool((traj.positions[0, 0, :, 2] >= 0).all())
    gif = animate(traj, tmp_path / "s.gif", every=2, size=2.5, dpi=60, tail=3)
    assert Image.open(gif).n_frames == len(frame_indices(16, 2)) == 8
    gif2 = animate(traj, tmp_path / "s2.gif", max_frames=5, substeps=2, size=2.5, dpi=60)
    assert Image.open(gif2).n_frames == 5 * 2 - 1
    mp4 = animate(traj, tmp_path / "s.mp4", size=2.5, dpi=60)
    data = mp4.read_bytes()
    assert len(data) > 1000 and data[4:8] == b"ftyp"
    circle = circle_runs((4.0,), 1, n=6, t_max=2.0, save_at=11)
    assert Image.open(animate(circle, tmp_path / "c.gif", size=2.5, dpi=60)).n_frames == 11
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.gif", "s.gif", "s.mp4", "s2.gif"]  # no temp files
    with pytest.raises(ValueError, match="suffix"):
        animate(traj, tmp_path / "s.avi")
    with pytest.raises(ValueError, match="system"):
        animate(traj, tmp_path / "s.gif", system=3)
