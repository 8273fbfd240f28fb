"""Phase diagrams: determinism, chunking, resume, Dask, the anchor preset and the physics of Theorem 6.9."""

import numpy as np
import pytest
import torch

from tokensphere.analysis import pair_fraction
from tokensphere.init import Uniform
from tokensphere.ensembles import Ensemble
from tokensphere.sweep.phase import PhaseDiagram, run_phase_diagram, unit_statistics
from tokensphere.theory import transition_curve

SMALL = PhaseDiagram(dims=(2, 4), betas=(0.5, 3.0, 8.0), t_max=6.0, n_times=13, n=8, batch=6, betas_per_unit=2)


def _vars(ds):
    return {v: ds[v].values for v in ("clustered_fraction", "clustered_fraction_se", "cluster_count_quantile")}


def test_dataset_layout_and_gamma_curve(tmp_path):
    ds = run_phase_diagram(SMALL, tmp_path / "pd.zarr")
    assert ds["clustered_fraction"].dims == ("d", "beta", "t")
    assert ds["clustered_fraction"].shape == (2, 3, 13)
    assert bool(ds["done"].all())
    f = ds["clustered_fraction"].values
    assert np.all((f >= 0) & (f <= 1))
    np.testing.assert_allclose(
        ds["gamma_transition_time"].values, transition_curve(SMALL.betas, SMALL.delta, SMALL.n, SMALL.t_max), equal_nan=True
    )
    q = ds["cluster_count_quantile"].values
    assert np.all(q[:, :, 0] <= q[:, :, 1]) and np.all(q[:, :, 1] <= q[:, :, 2])


def test_deterministic_and_independent_of_unit_size(tmp_path):
    a = run_phase_diagram(SMALL, tmp_path / "a.zarr")
    b = run_phase_diagram(SMALL, tmp_path / "b.zarr")
    c = run_phase_diagram(PhaseDiagram(**{**SMALL.describe(), "ensemble": Ensemble(), "betas_per_unit": 1}), tmp_path / "c.zarr")
    for name, arr in _vars(a).items():
        np.testing.assert_array_equal(arr, _vars(b)[name])
        np.testing.assert_allclose(arr, _vars(c)[name], rtol=0, atol=1e-12)


def test_resume_after_interruption_gives_identical_numbers(tmp_path):
    ref = run_phase_diagram(SMALL, tmp_path / "ref.zarr")
    calls = []

    def interrupt(done, total):
        calls.append(done)
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_phase_diagram(SMALL, tmp_path / "run.zarr", progress=interrupt)
    import xarray as xr

    with xr.open_zarr(tmp_path / "run.zarr", consolidated=False) as partial:
        assert 0 < int(partial["done"].sum()) < partial["done"].size
    resumed = []
    out = run_phase_diagram(SMALL, tmp_path / "run.zarr", progress=lambda d, t: resumed.append(d))
    assert resumed[0] == 2  # the finished units were not recomputed
    for name, arr in _vars(ref).items():
        np.testing.assert_array_equal(arr, _vars(out)[name])


def test_different_spec_refuses_existing_store(tmp_path):
    run_phase_diagram(SMALL, tmp_path / "pd.zarr")
    other = PhaseDiagram(**{**SMALL.describe(), "ensemble": Ensemble(), "delta": 1e-2})
    with pytest.raises(ValueError, match="overwrite"):
        run_phase_diagram(other, tmp_path / "pd.zarr")
    ds = run_phase_diagram(other, tmp_path / "pd.zarr", overwrite=True)
    assert bool(ds["done"].all())


@pytest.mark.slow  # Dask in the default suite: tests/test_sweep.py (one shared cluster)
def test_dask_workers_match_serial(tmp_path):
    serial = run_phase_diagram(SMALL, tmp_path / "s.zarr")
    parallel = run_phase_diagram(SMALL, tmp_path / "p.zarr", workers=2)
    for name, arr in _vars(serial).items():
        np.testing.assert_array_equal(arr, _vars(parallel)[name])


def test_integration_error_is_far_below_monte_carlo_error():
    """The default tolerance moves the statistic by far less than its standard error (issue: no Euler bias)."""
    spec = PhaseDiagram(dims=(2,), betas=(1.0, 4.0), t_max=10.0, n_times=11, n=16, batch=12, betas_per_unit=2)
    tight = PhaseDiagram(**{**spec.describe(), "ensemble": Ensemble(), "rtol": 1e-10, "atol": 1e-12})
    a = unit_statistics(spec, 0, 0, 2)
    b = unit_statistics(tight, 0, 0, 2)
    se = a["clustered_fraction_se"]
    diff = np.abs(a["clustered_fraction"] - b["clustered_fraction"])
    assert np.all(diff[se > 0] <= 0.05 * se[se > 0])


def _authors_loop(x, beta, n_steps, delta):
    """Independent re-implementation of the authors' batched SA loop (their Figure 3 code), statistics after each step."""
    out = [pair_fraction(x, delta)]
    m = x.clone()
    for _ in range(n_steps):
        a = torch.softmax(beta * torch.bmm(m, m.transpose(1, 2)), dim=-1)
        m = m + 0.1 * torch.bmm(a, m)
        m = m / m.norm(dim=-1, keepdim=True)
        out.append(pair_fraction(m, delta))
    return torch.stack(out)


def test_anchor_preset_reproduces_the_authors_step():
    spec = PhaseDiagram(dims=(3,), betas=(2.0,), t_max=3.0, n_times=31, n=10, batch=5, preset="anchor", delta=1e-2)
    stats = unit_statistics(spec, 0, 0, 1)
    # the sweep's starts: grid point p = 0, seeds 0 … 4 are the streams (seed, 0 … 4) of tokensphere.init
    x0 = Uniform(batch=5, n=10, d=3, seed=spec.seed, first_system=0).sample()
    ref = _authors_loop(x0, 2.0, 30, 1e-2).mean(1).numpy()
    np.testing.assert_allclose(stats["clustered_fraction"][0], ref, rtol=0, atol=1e-12)
    assert "authors_cluster_rank_median" in stats


def test_large_d_transition_follows_gamma_curve():
    """Theorem 6.9: for d ≫ n all pairs follow γ_β(t), so the fraction jumps from 0 to 1 near t*(β)."""
    beta, n = 1.0, 6
    tstar = float(transition_curve([beta], 1e-3, n, 20.0)[0])
    spec = PhaseDiagram(dims=(2048,), betas=(beta,), t_max=round(tstar + 2, 1), n_times=2, n=n, batch=6)
    spec = PhaseDiagram(**{**spec.describe(), "ensemble": Ensemble(), "n_times": 3})
    times = spec.times
    stats = unit_statistics(spec, 0, 0, 1)
    f = stats["clustered_fraction"][0]
    assert times[1] < tstar - 0.5 and f[1] == 0.0
    assert times[2] > tstar + 1.5 and f[2] == 1.0


def test_stores_open_without_warnings_after_runs_and_resume(tmp_path):
    import warnings

    import xarray as xr

    def stop_after_one(done, total):
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_phase_diagram(SMALL, tmp_path / "pd.zarr", progress=stop_after_one)
    for _ in range(2):  # interrupted, then resumed to the end
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with xr.open_zarr(tmp_path / "pd.zarr") as ds:  # consolidated metadata, no fallback warning
                assert ds["clustered_fraction"].shape == (2, 3, 13)
        run_phase_diagram(SMALL, tmp_path / "pd.zarr")


def test_spec_builds_its_solver_and_lets_the_objects_validate():
    import math

    from tokensphere import Model, Solver, anchor_solver

    model = Model(beta=torch.tensor(SMALL.betas, dtype=torch.float64))
    assert SMALL.solver(model) == Solver("dopri5", rtol=SMALL.rtol, atol=SMALL.atol)
    anchor = PhaseDiagram(**{**SMALL.describe(), "ensemble": Ensemble(), "preset": "anchor",
                             "normalization": "uniform"})
    usa = Model(beta=torch.tensor(SMALL.betas, dtype=torch.float64), normalization="uniform")
    assert anchor.solver(usa) == anchor_solver(usa)
    assert math.isclose(float(torch.as_tensor(anchor.solver(usa).dt)[-1]), 0.1 / (math.sqrt(8) * math.exp(7.5)))
    base = {**SMALL.describe(), "ensemble": Ensemble()}
    for change, word in (({"betas": (1.0, -1.0)}, "beta"), ({"betas": (float("nan"),)}, "beta"),
                         ({"normalization": "uniform", "betas": (800.0,)}, "700"),
                         ({"rtol": 0.0}, "rtol"), ({"atol": -1.0}, "atol")):
        with pytest.raises(ValueError, match=word):
            PhaseDiagram(**{**base, **change})
