"""The experiments layer: the β × starts batch, grouping by β, the energy trend statistic, the model text, the
demo's run, and stores opened without xarray's consolidated-metadata fallback warning."""

from __future__ import annotations

import warnings

import pytest
import torch
import xarray as xr

import tokensphere as ts
from tokensphere.analysis import cluster_count, energy_monotonicity, energy_series, step_against_trend
from tokensphere.experiments import (
    beta_batch,
    counts_by_beta,
    demo_run,
    describe_model,
    group_by_beta,
    system_betas,
    systems_by_beta,
)
from tokensphere.io import atomic_zarr_write
from tokensphere.io.atomic import has_consolidated_metadata, open_zarr_store


def test_beta_batch_repeats_every_start_for_every_beta():
    spec = ts.Uniform(batch=3, n=5, d=2, seed=4)
    x0, beta, init = beta_batch(spec, [1, 9])
    assert x0.shape == (6, 5, 2) and beta.dtype == torch.float64
    assert beta.tolist() == [1.0, 1.0, 1.0, 9.0, 9.0, 9.0]
    assert torch.equal(x0[:3], spec.sample()) and torch.equal(x0[3:], spec.sample())  # system i·3 + k: start k
    assert init["shared_across_beta"] is True and init["seed"] == 4
    with pytest.raises(ValueError, match="betas"):
        beta_batch(spec, [])


def test_grouping_by_beta_keeps_first_appearance_order():
    betas = [9.0, 1.0, 9.0, 1.0, 4.0]
    assert systems_by_beta(betas) == {9.0: [0, 2], 1.0: [1, 3], 4.0: [4]}
    assert list(systems_by_beta(betas)) == [9.0, 1.0, 4.0]
    assert group_by_beta(list("abcde"), betas) == {9.0: ["a", "c"], 1.0: ["b", "d"], 4.0: ["e"]}
    with pytest.raises(ValueError, match="one entry per system"):
        group_by_beta([1, 2], betas)
    assert system_betas(ts.Model(beta=2.0), 3) == [2.0, 2.0, 2.0]


def test_counts_by_beta_matches_cluster_count():
    x = ts.sample_sphere(4, 6, 3, seed=1)
    x[1] = x[1, :1].expand(6, 3)  # system 1: one cluster
    groups = counts_by_beta(x, [1.0, 1.0, 2.0, 2.0], 1e-3)
    counts = cluster_count(x, 1e-3).tolist()
    assert groups == {1.0: counts[:2], 2.0: counts[2:]} and groups[1.0][1] == 1


def test_step_against_trend_known_series():
    e = torch.tensor([[1.0, 2.0], [2.0, 1.5], [1.9, 1.0], [3.0, float("nan")]], dtype=torch.float64)
    up = step_against_trend(e)
    # relative to each column's largest finite |e| (3 and 2)
    assert up[0] == pytest.approx(0.1 / 3) and up[1] == pytest.approx(0.25)  # (2 − 1.9)/3 and (2 − 1.5)/2
    down = step_against_trend(e, decreasing=True)
    assert down[0] == pytest.approx(1.1 / 3) and down[1] == 0.0  # (3 − 1.9)/3; the second column only decreases
    assert torch.isnan(step_against_trend(torch.full((3, 1), float("nan"))))[0]


def test_energy_monotonicity_along_flows_and_backwards():
    """Non-decreasing along SA (V = I, also at β = 0 through the finite part of E_β), non-increasing along V = −I;
    running time backwards breaks it."""
    traj = ts.simulate(ts.Uniform(batch=3, n=6, d=3, seed=0), torch.tensor([0.0, 1.0, 4.0]), t_max=2.0, save_at=9,
                       rtol=1e-10, atol=1e-12)
    assert float(energy_monotonicity(traj.positions, traj.model).max()) <= 1e-9
    assert bool((energy_monotonicity(traj.positions.flip(0), traj.model) > 1e-4).all())
    rep = ts.simulate(ts.Uniform(batch=2, n=5, d=3, seed=1), 2.0, V="repulsive", t_max=1.0, save_at=6)
    assert float(energy_monotonicity(rep.positions, rep.model).max()) <= 1e-6


def test_energy_monotonicity_when_the_energy_decays_to_zero():
    """β = 0, V = −I: the finite part (1/2n²)|Σ_i x_i|² is non-increasing and decays to round-off level (the
    tokens spread to zero mean); the check stays at the integrator's tolerance instead of dividing round-off by
    an energy of 1e-18."""
    m = ts.Model(beta=0.0, V="repulsive")
    tr = ts.simulate(ts.Uniform(batch=2, n=8, d=3, seed=0), model=m, t_max=60.0, save_at=61, rtol=1e-10, atol=1e-12)
    e = energy_series(tr.positions, m, "energy")
    assert float(e[-1].abs().max()) < 1e-12 * float(e[0].abs().min())  # it did decay to round-off
    assert float(energy_monotonicity(tr.positions, m).max()) <= 1e-9


def test_describe_model_names_what_differs_from_the_toy_model():
    assert describe_model(ts.Model()) == "SA (softmax), V = I"
    text = describe_model(ts.Model(normalization="uniform", V="repulsive", causal=True, projection=False))
    assert text == "USA (1/n), V = −I (repulsive), causal mask, no projection (pure SA on R^d)"
    assert "general QᵀK" in describe_model(ts.Model(QK=torch.eye(3)))
    assert "time s = e^β t" in describe_model(ts.Model(normalization="uniform", time_scale="exp_beta"))
    assert describe_model(ts.Model(norm="ngpt")) == "SA (softmax), V = I, nGPT blocks"
    text = describe_model(ts.Model(norm="pre", projection=False))  # block dynamics, not pure self-attention
    assert "pre-norm blocks" in text and "pure SA" not in text


def test_demo_run_measures_the_run():
    run = demo_run(n_seeds=1, t_max=2.0, save_at=5)
    T, B, n, d = run.traj.shape
    assert (T, B, n, d) == (5, 2, 32, 3)
    assert run.energy.shape == run.k_fixed.shape == run.k_scaled.shape == (5, 2)
    assert set(run.final["fixed"]) == {1.0, 9.0} and run.monotone
    assert run.final["fixed"][9.0] == [int(run.k_fixed[-1, 1])]


def test_stores_open_without_the_consolidation_warning(tmp_path):
    ds = xr.Dataset({"a": ("x", [1.0, 2.0])}, attrs={"spec": "{}"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr's note that consolidated metadata is not in the v3 spec
        atomic_zarr_write(ds, tmp_path / "c.zarr")
        ds.to_zarr(tmp_path / "n.zarr", consolidated=False)
    assert has_consolidated_metadata(tmp_path / "c.zarr") and not has_consolidated_metadata(tmp_path / "n.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("c.zarr", "n.zarr"):
            with open_zarr_store(tmp_path / name) as opened:
                assert opened["a"].values.tolist() == [1.0, 2.0]


def test_energy_series_names_the_shape_it_needs():
    with pytest.raises(ValueError, match=r"positions must have shape \(T, B, n, d\)"):
        energy_series(torch.ones(2, 4, 3, dtype=torch.float64), ts.Model())
