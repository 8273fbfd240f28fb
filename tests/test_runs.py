"""Stored runs (tokensphere.io.runs): the schema, exact round trips (dtype, per-system steps, events, controller,
schedules), consolidated metadata, clear errors for paths that are not runs, older stores, and run equality."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import xarray as xr

import tokensphere as ts
from tokensphere import Layerwise, Model, Solver, Trajectory, simulate
from tokensphere.integrate import StepController
from tokensphere.io.runs import SCHEMA, SCHEMA_VERSION, run_to_xarray, same_model
from tokensphere.sweep.phase import PhaseDiagram, run_phase_diagram


def f64(v) -> torch.Tensor:
    return torch.as_tensor(v, dtype=torch.float64)


@pytest.fixture(scope="module")
def run() -> Trajectory:
    """USA with per-system QK, a shared V and a mask, a (B,) per-system step, every system stopped at t = 1 by an
    event (so the last two saved times hold NaN)."""
    g = torch.Generator().manual_seed(2)
    QK = torch.randn(3, 3, 3, generator=g, dtype=torch.float64)
    V = torch.randn(3, 3, generator=g, dtype=torch.float64)
    model = Model(beta=f64([0.5, 1.0, 2.0]), normalization="uniform", QK=QK, V=V, mask=torch.zeros(4, 4))
    return simulate(ts.Uniform(batch=3, n=4, d=3, seed=1), model=model, t_max=2.0, save_at=5,
                    solver=Solver("rk4", dt=f64([0.1, 0.05, 0.025])), events=[lambda t, x: t >= 1.0])


def test_schema(run):
    ds = run.to_xarray()
    assert ds.attrs["schema"] == SCHEMA and ds.attrs["schema_version"] == SCHEMA_VERSION
    assert ds["x"].dims == ("time", "system", "token", "dim")
    for name in ("beta", "steps", "rejected", "event_time"):
        assert ds[name].dims == ("system",)
    names = json.loads(ds.attrs["model_arrays"])
    assert set(names.values()) >= {"beta", "QK", "V", "mask"}
    assert all(var in ds and var.startswith("model_") for var in names)
    assert json.loads(ds.attrs["solver"])["method"] == "rk4"
    assert json.loads(ds.attrs["metadata"]) == run.metadata


def test_round_trip_is_exact(run, tmp_path):
    assert run.event_time.tolist() == [1.0] * 3 and bool(run.positions[-1].isnan().all())
    back = Trajectory.load(run.save(tmp_path / "run.zarr"))
    assert back == run
    assert torch.equal(back.positions.isnan(), run.positions.isnan())
    assert torch.equal(back.solver.dt, run.solver.dt) and back.solver == run.solver
    assert same_model(back.model, run.model) and back.metadata == run.metadata
    x = run.positions[2]
    torch.testing.assert_close(ts.velocity(x, back.model), ts.velocity(x, run.model), rtol=0, atol=0)


def test_float32_and_controller_round_trip(tmp_path):
    solver = Solver("dopri5", controller=StepController(rtol=1e-5, atol=1e-7, safety=0.8, min_factor=0.3,
                                                        max_factor=4.0, dt_max=0.5))
    run = simulate(ts.Uniform(batch=2, n=5, d=3, seed=3), f64([1.0, 3.0]), solver=solver, t_max=1.0, save_at=3,
                   dtype="float32")
    back = Trajectory.load(run.save(tmp_path / "f32.zarr"))
    assert back.positions.dtype == torch.float32 and torch.equal(back.positions, run.positions)
    assert back.solver.controller == solver.controller


def test_schedule_round_trip(tmp_path):
    g = torch.Generator().manual_seed(0)
    Vs = torch.randn(3, 3, 3, generator=g, dtype=torch.float64)
    run = simulate(ts.Uniform(batch=1, n=4, d=3, seed=0), model=Model(beta=1.0, schedule=Layerwise(1.0, V=Vs)),
                   solver="rk4", dt=0.25, t_max=3.0, save_at=4)
    back = Trajectory.load(run.save(tmp_path / "layers.zarr"))
    assert back == run and "schedule_not_restored" not in back.metadata
    x = run.final()
    for t in (0.5, 1.0, 2.5):  # one time in each layer: the weights that ran come back
        torch.testing.assert_close(ts.velocity(x, back.model, t), ts.velocity(x, run.model, t), rtol=0, atol=0)


def test_store_has_consolidated_metadata(run, tmp_path):
    path = run.save(tmp_path / "run.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with xr.open_zarr(path) as ds:  # default: consolidated metadata first, no fallback warning
            assert ds.attrs["schema"] == SCHEMA


def test_paths_that_are_not_runs(run, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(3))
    (tmp_path / "plain").mkdir()
    for path in (tmp_path / "x.npy", tmp_path / "plain"):
        with pytest.raises(ValueError, match="is not a saved tokensphere run \\(no zarr store found\\)"):
            Trajectory.load(path)
        with pytest.raises(ValueError, match="no zarr store found"):
            simulate(path, t_max=1.0)
    with pytest.raises(ValueError, match="does not exist"):
        Trajectory.load(tmp_path / "missing.zarr")
    spec = PhaseDiagram(dims=(2,), betas=(1.0,), t_max=1.0, n_times=2, n=3, batch=2)
    store = run_phase_diagram(spec, tmp_path / "pd.zarr")
    assert bool(store["done"].all())
    with pytest.raises(ValueError, match="not a saved tokensphere run"):
        Trajectory.load(tmp_path / "pd.zarr")


def _legacy_dataset(run: Trajectory) -> xr.Dataset:
    """The store layout written before the schema: describe() JSON, model_<name> arrays, flat solver spec."""
    ds = run_to_xarray(run)
    ds = ds.drop_vars([v for v in ds.data_vars if v.startswith("model_")])
    for key in ("schema", "schema_version", "model_arrays"):
        del ds.attrs[key]
    ds.attrs["model"] = json.dumps(run.model.describe())
    ds["model_V"] = (("model_V_0", "model_V_1"), torch.as_tensor(run.model.V).reshape(3, 3).numpy())
    ds.attrs["solver"] = json.dumps({"method": "rk4", "dt": 0.1, "rtol": 1e-7, "atol": 1e-9,
                                     "projected_field": True, "max_steps": 10_000_000, "dt_max": None})
    return ds


def test_store_from_before_the_schema_is_read(tmp_path):
    g = torch.Generator().manual_seed(5)
    run = simulate(ts.Uniform(batch=2, n=4, d=3, seed=2), f64([1.0, 2.0]), V=torch.randn(3, 3, generator=g,
                   dtype=torch.float64), solver="rk4", dt=0.1, t_max=1.0, save_at=3)
    _legacy_dataset(run).to_zarr(tmp_path / "old.zarr", consolidated=False)
    back = Trajectory.load(tmp_path / "old.zarr")
    assert back == run
    more = simulate(tmp_path / "old.zarr", t_max=2.0, save_at=3)
    assert more.times.tolist() == [1.0, 1.5, 2.0]


def test_equality_compares_the_runs(run):
    same = Trajectory(**{k: getattr(run, k) for k in ("times", "model", "solver", "steps", "rejected",
                                                      "event_time")},
                      positions=run.positions.clone(), metadata={})
    assert same == run  # NaN positions compare equal, metadata is provenance and not compared
    moved = run.positions.clone()
    moved[1, 1, 0, 0] += 1e-15
    assert Trajectory(**{**same.__dict__, "positions": moved}) != run
    assert Trajectory(**{**same.__dict__, "steps": run.steps + 1}) != run
    assert Trajectory(**{**same.__dict__, "solver": Solver("rk4", dt=0.1)}) != run
    assert Trajectory(**{**same.__dict__, "model": Model(beta=f64([0.5, 1.0, 2.0]))}) != run
    assert Trajectory(**{**same.__dict__, "positions": None}) != run
    assert run != "a run"


def test_a_model_of_trainable_tensors_simulates_and_saves_its_values(tmp_path):
    """A model built from torch Parameters (as tokensphere.control trains them) runs through simulate (which is
    not differentiable) and stores the current values; the loaded run equals the run."""
    Q = torch.nn.Parameter(torch.eye(3, dtype=torch.float64) * 1.5)
    model = Model(beta=1.0, Q=Q, K=torch.eye(3, dtype=torch.float64))
    run = simulate(ts.sample_sphere(1, 5, 3, seed=2), model=model, t_max=0.2, save_at=3)
    assert not run.positions.requires_grad
    loaded = Trajectory.load(run.save(tmp_path / "r.zarr"))
    assert loaded == run
    assert torch.equal(loaded.model.weights().q.reshape(3, 3), Q.detach())
