"""simulate(): the authors' anchor scheme (their code for Figures 3 and 5), the 1/n of (USA) and its s = e^β t
scaling, time-dependent weights Q(t), K(t), V(t) in (2.3), float32, trajectory storage (atomic zarr) and input
validation.

Truth is independent: the authors' batched step and the field written in NumPy here and in tests/problems.py,
reduced ODEs solved with SciPy DOP853 at rtol 1e-12.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

import problems as P
import tokensphere as ts
from tokensphere import Layerwise, Model, Solver, Trajectory, anchor_solver, anchor_usa_step, simulate
from tokensphere.io import validate_output_path
from tokensphere.io.runs import same_model


def f64(v) -> torch.Tensor:
    """A float64 tensor (torch.as_tensor(0.1) would be float32 and off by 1.5e-9)."""
    return torch.as_tensor(v, dtype=torch.float64)

# ---------------------------------------------------------------------------------------------------------
# the authors' scheme: Euler on the unprojected field, then renormalisation


def test_anchor_solver_sa_settings():
    s = anchor_solver(Model(beta=f64([0.1, 4.0, 9.0]), normalization="softmax"))
    assert s.method == "euler" and s.projected_field is False
    assert float(f64(s.dt).reshape(-1)[0]) == 0.1 and f64(s.dt).numel() == 1


def test_anchor_solver_usa_step_rule():
    betas = [0.1, 0.5, 1.0, 2.0, 5.0, 9.0]
    s = anchor_solver(Model(beta=f64(betas), normalization="uniform"))
    assert s.method == "euler" and s.projected_field is False
    expected = [0.1 / max(math.sqrt(b) * math.exp(b - 0.5), 1.0) for b in betas]
    np.testing.assert_allclose(f64(s.dt).numpy(), expected, rtol=1e-14, atol=0)
    assert expected[0] == 0.1 and expected[-1] < 1e-4  # both branches of the max are exercised
    np.testing.assert_allclose(anchor_usa_step(f64(betas)).numpy(), expected, rtol=1e-14)
    # scalar β gives a scalar step
    s1 = anchor_solver(Model(beta=3.0, normalization="uniform"))
    assert f64(s1.dt).numel() == 1
    assert float(f64(s1.dt).reshape(-1)[0]) == pytest.approx(0.1 / (math.sqrt(3) * math.exp(2.5)),
                                                                         rel=1e-14)


@pytest.mark.parametrize("normalization", P.NORMALIZATIONS)
def test_anchor_one_step_equals_authors_step(normalization):
    betas = [0.3, 1.0, 4.0]
    x0 = ts.sample_sphere(3, 16, 2, seed=5)
    for b, beta in enumerate(betas):
        model = Model(beta=beta, normalization=normalization)
        solver = anchor_solver(model)
        eta = float(f64(solver.dt).reshape(-1)[0])
        tr = simulate(x0[b:b + 1], model=model, solver=solver, t_max=eta, save_at=2)
        assert int(tr.steps[0]) == 1
        expected = P.authors_step(x0[b:b + 1].numpy(), [beta], [eta], normalization)
        np.testing.assert_allclose(tr.final().numpy(), expected, rtol=0, atol=1e-15)
        # the projected Euler step is a different map (so this test tells the two schemes apart)
        proj = simulate(x0[b:b + 1], model=model, solver=Solver("euler", dt=eta), t_max=eta, save_at=2)
        assert float((proj.final() - tr.final()).abs().max()) > 1e-6


@pytest.mark.parametrize("normalization", P.NORMALIZATIONS)
def test_anchor_batched_many_steps_equals_authors_loop(normalization):
    """A (B,) β batch with per-system η: k full steps of η_b, then one shortened step landing on t_max."""
    betas = np.array([0.2, 1.0, 2.5])
    x0 = ts.sample_sphere(3, 8, 3, seed=6)
    model = Model(beta=torch.from_numpy(betas), normalization=normalization)
    solver = anchor_solver(model)
    t_max = 0.5
    tr = simulate(x0, model=model, solver=solver, t_max=t_max, save_at=2)
    etas = f64(solver.dt).expand(3).numpy()
    for b in range(3):
        M = x0[b:b + 1].numpy()
        k = int(math.floor(t_max / etas[b] + 1e-9))
        for _ in range(k):
            M = P.authors_step(M, betas[b:b + 1], etas[b:b + 1], normalization)
        rest = t_max - k * etas[b]
        if rest > 1e-12:
            M = P.authors_step(M, betas[b:b + 1], [rest], normalization)
        np.testing.assert_allclose(tr.final()[b].numpy(), M[0], rtol=0, atol=1e-12)


def test_usa_velocity_keeps_one_over_n():
    """Regression ((USA) in §2 of the paper): a fork dropped 1/n. n·ẋ_i must equal Σ_j e^{β⟨x_i,x_j⟩} P⊥_{x_i} x_j."""
    x = ts.sample_sphere(2, 7, 4, seed=3)
    beta = 1.7
    v = ts.velocity(x, Model(beta=beta, normalization="uniform"))
    a = x.numpy()
    s = np.exp(beta * a @ a.transpose(0, 2, 1))  # (B, n, n)
    proj = a[:, None, :, :] - (a[:, :, None, :] * a[:, None, :, :]).sum(-1, keepdims=True) * a[:, :, None, :]
    expected = np.einsum("bij,bijd->bid", s, proj)  # Σ_j e^{β⟨x_i,x_j⟩} P⊥_{x_i} x_j
    np.testing.assert_allclose(7 * v.numpy(), expected, rtol=1e-12, atol=1e-13)


def test_usa_simulation_is_not_n_times_too_fast():
    n = 6
    tr = simulate(ts.OrthonormalFrame(batch=1, n=n, d=n, seed=2), 1.0, normalization="uniform",
                  solver=Solver("dopri5", rtol=1e-10, atol=1e-12), t_max=1.0, save_at=11)
    t = tr.times.numpy()
    X = tr.positions[:, 0].numpy()
    gamma = P.offdiagonal(X @ X.transpose(0, 2, 1)).mean(-1)
    right = P.equiangular_gamma(t, n, 1.0, "uniform")
    fork = P.solve_scalar(lambda s, g: n * P.equiangular_rhs("uniform", 1.0, n)(s, g), 0.0, t)  # without 1/n
    assert np.abs(gamma - right).max() < 1e-8
    assert np.abs(gamma - fork).max() > 0.1


# ---------------------------------------------------------------------------------------------------------
# time-dependent weights: (2.3) with Q(t), K(t), V(t)


def _layer_stack() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 3, 3, generator=g, dtype=torch.float64) / math.sqrt(3) + torch.eye(3, dtype=torch.float64)


@pytest.mark.parametrize("method", ["euler", "midpoint", "heun", "rk3", "rk4", "lie-euler", "cg3"])
def test_layerwise_equals_constant_layers_in_sequence(method):
    Vs = _layer_stack()
    x0 = ts.sample_sphere(1, 6, 3, seed=3)
    solver = Solver(method, dt=0.1)  # divides the layer time 1
    layered = simulate(x0, model=Model(beta=1.0, schedule=Layerwise(1.0, V=Vs)), solver=solver, t_max=3.0,
                       save_at=[0.0, 1.0, 2.0, 3.0])
    x = x0
    for k in range(3):
        x = simulate(x, 1.0, V=Vs[k], solver=solver, t_max=1.0, save_at=2).final()
        torch.testing.assert_close(layered.positions[k + 1], x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["heun", "rk4"])
def test_layerwise_small_step_equals_constant_layers_in_sequence(method):
    Vs = _layer_stack()
    x0 = ts.sample_sphere(1, 6, 3, seed=3)
    solver = Solver(method, dt=2.0**-10)  # exact in binary: the step grid hits t = 1 without rounding
    layered = simulate(x0, model=Model(beta=1.0, schedule=Layerwise(1.0, V=Vs[:2])), solver=solver, t_max=2.0,
                       save_at=[0.0, 1.0, 2.0])
    x = x0
    for k in range(2):
        x = simulate(x, 1.0, V=Vs[k], solver=solver, t_max=1.0, save_at=2).final()
        torch.testing.assert_close(layered.positions[k + 1], x, rtol=0, atol=1e-12)


def test_layerwise_matches_reference():
    """The layered flow against DOP853 run layer by layer (independent of the library's schedule handling).
    No output time sits on a layer boundary: the adaptive steps must stop there on their own."""
    Vs = _layer_stack()
    x0 = ts.sample_sphere(1, 6, 3, seed=3)
    tr = simulate(x0, model=Model(beta=1.0, schedule=Layerwise(1.0, V=Vs)),
                  solver=Solver("dopri5", rtol=1e-10, atol=1e-12), t_max=3.0, save_at=[0.0, 0.5, 3.0])
    x = x0[0].numpy()
    for k in range(3):
        x = P.reference_trajectory(x, 1.0, "softmax", [0.0, 1.0], V=Vs[k].numpy())[-1]
    assert float(np.abs(tr.final()[0].numpy() - x).max()) < 1e-8


# ---------------------------------------------------------------------------------------------------------
# float32 and large β


def test_float32_close_to_float64():
    x0 = ts.sample_sphere(1, 16, 3, seed=13)
    kw = dict(solver="rk4", dt=0.01, t_max=5.0, save_at=2)
    a = simulate(x0, 1.0, dtype="float32", **kw)
    b = simulate(x0, 1.0, dtype="float64", **kw)
    assert a.positions.dtype == torch.float32 and b.positions.dtype == torch.float64
    assert a.metadata["dtype"] == "float32"
    diff = float((a.final().double() - b.final()).abs().max())
    assert 0 < diff < 1e-4


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_usa_exp_beta_time_scale_at_beta_1e4(dtype):
    """β = 10^4 in s = e^β t (docs/numerics.md, "Large β"): two particles with β(1 − γ0) = 2 move at an O(1) rate in s;
    dγ/ds = e^{β(γ−1)}(1 − γ²) (two-particle USA ODE in the s variable)."""
    beta = 1e4
    gamma0 = 1 - 2.0 / beta
    rng = np.random.default_rng(4)
    pair = P.two_particle_start(gamma0, 3, rng)
    far = P.unit(rng.standard_normal((2, 3)))
    x0 = torch.from_numpy(np.concatenate([pair, far])[None])  # two far tokens barely interact
    tr = simulate(x0, beta, normalization="uniform", time_scale="exp_beta", dtype=dtype, t_max=2.0, save_at=5,
                  solver=Solver("dopri5", rtol=1e-9, atol=1e-12))
    assert torch.isfinite(tr.positions).all()
    assert float((torch.linalg.vector_norm(tr.positions.double(), dim=-1) - 1).abs().max()) < (
        1e-12 if dtype == "float64" else 1e-6)
    if dtype == "float64":
        X = tr.positions[:, 0].numpy()
        # 1 − γ from the chord, accurate near coincidence: 1 − γ = |x_1 − x_2|²/2
        one_minus = (np.linalg.norm(X[:, 0] - X[:, 1], axis=-1) ** 2) / 2
        t = tr.times.numpy()
        # USA with n = 4 tokens, the far pair contributing e^{β(⟨x_i,x_j⟩−1)} ≈ 0: per particle
        # dx_1/ds = (1/n) e^{β(γ−1)} P⊥x_2, so with u = 1 − γ: du/ds = −(2/n) e^{−βu} u (2 − u)
        u = P.solve_scalar(lambda s, u: -(2 / 4) * np.exp(-beta * u) * u * (2 - u), 2.0 / beta, t)
        np.testing.assert_allclose(one_minus, u, rtol=1e-6)
        assert one_minus[-1] < 0.9 * one_minus[0]  # it moved


# ---------------------------------------------------------------------------------------------------------
# trajectory storage


@pytest.fixture(scope="module")
def saved_run():
    g = torch.Generator().manual_seed(1)
    Q = torch.randn(2, 3, generator=g, dtype=torch.float64)
    K = torch.randn(2, 3, generator=g, dtype=torch.float64)
    V = torch.randn(3, 3, generator=g, dtype=torch.float64)
    tr = simulate(ts.Uniform(batch=2, n=4, d=3, seed=7), f64([0.5, 1.5]), normalization="uniform", Q=Q,
                  K=K, V=V, solver="rk4", dt=0.05, t_max=1.0, save_at=5)
    return tr, Q, K, V


def test_save_load_round_trip(saved_run, tmp_path):
    tr, Q, K, V = saved_run
    path = tr.save(tmp_path / "run.zarr")
    assert Path(path) == tmp_path / "run.zarr"
    ld = Trajectory.load(path)
    assert torch.equal(ld.positions, tr.positions)
    assert torch.equal(ld.times, tr.times)
    assert torch.equal(ld.steps, tr.steps) and torch.equal(ld.event_time.isnan(), tr.event_time.isnan())
    assert ld.model.normalization == "uniform"
    assert torch.equal(ld.model.beta_tensor().double(), torch.tensor([0.5, 1.5], dtype=torch.float64))
    # the matrices come back bit for bit (in the model's canonical shape (B or 1, H, r, c))
    for stored, given in ((ld.model.Q, Q), (ld.model.K, K), (ld.model.V, V)):
        assert torch.equal(torch.as_tensor(stored).reshape(given.shape), given)
    assert same_model(ld.model, tr.model) and ld == tr
    assert ld.solver.method == "rk4" and float(ld.solver.dt) == 0.05
    meta = ld.metadata
    assert meta["tokensphere_version"] == ts.__version__
    assert isinstance(meta["git_commit"], str) and meta["git_commit"]
    assert meta["dtype"] == "float64" and meta["device"] == "cpu"
    assert meta["init"]["seed"] == 7 and meta["init"]["kind"] == "Uniform"
    assert meta == tr.metadata
    # the reloaded model is the same dynamics
    v1 = ts.velocity(tr.final(), tr.model)
    v2 = ts.velocity(ld.final(), ld.model)
    torch.testing.assert_close(v1, v2, rtol=0, atol=0)


def test_to_xarray_dims_and_coords(saved_run):
    tr = saved_run[0]
    ds = tr.to_xarray()
    assert ds["x"].dims == ("time", "system", "token", "dim")
    assert ds["x"].shape == (5, 2, 4, 3)
    np.testing.assert_array_equal(ds["time"].values, tr.times.numpy())
    np.testing.assert_array_equal(ds["system"].values, np.arange(2))
    np.testing.assert_array_equal(ds["token"].values, np.arange(4))
    np.testing.assert_array_equal(ds["dim"].values, np.arange(3))
    np.testing.assert_array_equal(ds["beta"].values, [0.5, 1.5])
    assert ds["beta"].dims == ("system",) and ds["event_time"].dims == ("system",)
    np.testing.assert_array_equal(ds["x"].sel(time=1.0, system=1).values, tr.final()[1].numpy())


def test_save_refuses_existing_path_and_overwrites_on_request(saved_run, tmp_path):
    tr = saved_run[0]
    path = tmp_path / "run.zarr"
    tr.save(path)
    with pytest.raises(ValueError, match="overwrite"):
        tr.save(path)
    other = simulate(ts.Uniform(batch=2, n=4, d=3, seed=8), 1.0, solver="rk4", dt=0.1, t_max=0.5, save_at=3)
    other.save(path, overwrite=True)
    ld = Trajectory.load(path)
    assert torch.equal(ld.positions, other.positions)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]


def _interrupting_to_zarr(monkeypatch):
    original = xr.Dataset.to_zarr

    def interrupted(self, store, *args, **kwargs):
        original(self.isel(time=slice(0, 1)), store, *args, **kwargs)  # write something, then die
        assert any(Path(store).iterdir())
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.Dataset, "to_zarr", interrupted)


def test_save_is_atomic_when_interrupted(saved_run, tmp_path, monkeypatch):
    tr = saved_run[0]
    target = tmp_path / "run.zarr"
    _interrupting_to_zarr(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        tr.save(target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary sibling left behind


def test_interrupted_overwrite_keeps_the_old_store(saved_run, tmp_path, monkeypatch):
    tr = saved_run[0]
    target = tmp_path / "run.zarr"
    tr.save(target)
    _interrupting_to_zarr(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        tr.save(target, overwrite=True)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]
    assert torch.equal(Trajectory.load(target).positions, tr.positions)


def test_atomic_path_restores_the_old_directory_when_the_replacing_rename_fails(tmp_path, monkeypatch):
    """The old store is moved aside before the new one is renamed in; if that second rename fails (or is
    interrupted), the old store must be back at its path and nothing else left behind."""
    from tokensphere.io import atomic

    target = tmp_path / "store"
    target.mkdir()
    (target / "old.txt").write_text("old")
    real, calls = os.replace, []

    def flaky(a, b):
        calls.append((a, b))
        if len(calls) == 2:  # the rename of the new result into place
            raise KeyboardInterrupt
        return real(a, b)

    monkeypatch.setattr(atomic.os, "replace", flaky)
    with pytest.raises(KeyboardInterrupt), atomic.atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    assert (target / "old.txt").read_text() == "old"


def test_atomic_path_with_nothing_written_keeps_the_old_directory(tmp_path):
    from tokensphere.io import atomic_path

    target = tmp_path / "store"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(FileNotFoundError, match="produced nothing"), atomic_path(target):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    assert (target / "old.txt").read_text() == "old"


def test_simulate_from_saved_run_uses_final_state(tmp_path):
    first = simulate(ts.Uniform(batch=2, n=5, d=3, seed=2), f64([1.0, 2.0]), solver="rk4", dt=0.01,
                     t_max=1.0, save_at=3)
    path = first.save(tmp_path / "first.zarr")
    second = simulate(path, t_max=2.0, save_at=3)  # t_max is the absolute final time: the clock runs on
    assert torch.equal(second.positions[0], first.final())
    assert second.metadata["init"]["kind"] == "saved_run"
    assert second.times.tolist() == [1.0, 1.5, 2.0]
    # continuing for 1 more unit equals one run of 2 units (same grid of steps)
    whole = simulate(ts.Uniform(batch=2, n=5, d=3, seed=2), f64([1.0, 2.0]), solver="rk4", dt=0.01,
                     t_max=2.0, save_at=3)
    torch.testing.assert_close(second.final(), whole.final(), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------
# bad input: every case raises ValueError whose message names the parameter

_X = ts.sample_sphere(1, 4, 3, seed=0)
_I3 = torch.eye(3, dtype=torch.float64)

BAD_INPUT = {
    "n < 1": (dict(x0=torch.zeros(1, 0, 3)), "n"),
    "d < 2": (dict(x0=torch.ones(1, 4, 1)), "d"),
    "negative beta": (dict(beta=-1.0), "beta"),
    "NaN beta": (dict(beta=float("nan")), "beta"),
    "inf beta": (dict(beta=float("inf")), "beta"),
    "t_max = 0": (dict(t_max=0.0), "t_max"),
    "t_max < 0": (dict(t_max=-1.0), "t_max"),
    "t_max NaN": (dict(t_max=float("nan")), "t_max"),
    "Q wrong d": (dict(Q=torch.eye(2, 4, dtype=torch.float64), K=torch.eye(2, 4, dtype=torch.float64)), "Q"),
    "K wrong shape": (dict(Q=_I3, K=torch.eye(2, 3, dtype=torch.float64)), "K"),
    "V wrong d": (dict(V=torch.eye(4, dtype=torch.float64)), "V"),
    "V not square": (dict(V=torch.ones(3, 4, dtype=torch.float64)), "V"),
    "x0 NaN": (dict(x0=torch.full((1, 4, 3), float("nan"))), "x0"),
    "x0 inf": (dict(x0=torch.full((1, 4, 3), float("inf"))), "x0"),
    "x0 not unit": (dict(x0=2 * _X), "x0"),
    "unknown solver": (dict(solver="rk45"), "solver"),
    "fixed step without dt": (dict(solver="rk4"), "dt"),
    "dt = 0": (dict(solver="rk4", dt=0.0), "dt"),
    "dt < 0": (dict(solver="euler", dt=-0.1), "dt"),
    "save_at unsorted": (dict(save_at=[0.0, 0.5, 0.25]), "save_at"),
    "save_at beyond t_max": (dict(save_at=[0.0, 2.0]), "save_at"),
    "unknown dtype": (dict(dtype="float16"), "dtype"),
    "batch mismatch": (dict(x0=ts.sample_sphere(3, 4, 3), beta=f64([1.0, 2.0])), "beta"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_raises_value_error_naming_parameter(case):
    kw, word = BAD_INPUT[case]
    kw = dict(kw)
    x0 = kw.pop("x0", _X)
    kw.setdefault("t_max", 1.0)
    with pytest.raises(ValueError) as info:
        simulate(x0, **kw)
    assert re.search(rf"\b{re.escape(word)}\b", str(info.value)), str(info.value)


def test_valid_input_of_the_same_shape_runs():
    """The bad-input cases differ from a valid call in one argument only."""
    tr = simulate(_X, 1.0, t_max=1.0, solver="rk4", dt=0.1, save_at=[0.0, 0.25, 0.5])
    assert tr.shape == (3, 1, 4, 3)


def _under_file(tmp_path: Path) -> Path:
    f = tmp_path / "a_file"
    f.write_text("not a directory")
    return f / "run.zarr"


def _under_read_only_dir(tmp_path: Path) -> Path:
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    if os.access(d, os.W_OK):  # root ignores permission bits
        pytest.skip("permission bits are not enforced for this user")
    return d / "run.zarr"


@pytest.mark.parametrize("make", [_under_file, _under_read_only_dir], ids=["under-file", "read-only-dir"])
def test_unwritable_output_path(make, tmp_path):
    path = make(tmp_path)
    with pytest.raises(ValueError, match="path"):
        validate_output_path(path, overwrite=False)
    tr = simulate(_X, 1.0, solver="rk4", dt=0.5, t_max=1.0, save_at=2)
    with pytest.raises(ValueError, match="path"):
        tr.save(path)


def test_output_path_existing_needs_overwrite(tmp_path):
    p = tmp_path / "exists"
    p.mkdir()
    with pytest.raises(ValueError, match="overwrite"):
        validate_output_path(p, overwrite=False)
    assert validate_output_path(p, overwrite=True) == p
    assert validate_output_path(tmp_path / "new" / "run.zarr", overwrite=False) == tmp_path / "new" / "run.zarr"


def test_fixed_step_outputs_lie_on_the_step_grid():
    """A count of output times with a fixed-step solver gives times on t0 + k·dt, so every step is dt (the
    authors' η = 0.1 is kept: 30 steps to t = 3, not 100 steps of 0.03 to land on linspace(0, 3, 101)); t_max
    off the grid is appended; explicit off-grid times are kept with a warning and shorten the steps."""
    x0 = ts.sample_sphere(2, 8, 3, seed=41)
    model = Model(beta=1.0)
    tr = simulate(x0, model=model, solver=anchor_solver(model), t_max=3.0)
    assert tr.steps.tolist() == [30, 30]
    torch.testing.assert_close(tr.times, 0.1 * torch.arange(31, dtype=torch.float64), rtol=0, atol=1e-12)
    loop = x0.clone()  # the authors' loop, 30 steps of 0.1
    for _ in range(30):
        loop = torch.from_numpy(P.authors_step(loop.numpy(), [1.0, 1.0], [0.1, 0.1], "softmax"))
    torch.testing.assert_close(tr.final(), loop, rtol=0, atol=1e-13)
    tr = simulate(x0, model=model, solver="rk4", dt=0.7, t_max=3.0)
    assert tr.steps.tolist() == [5, 5]
    torch.testing.assert_close(tr.times, torch.tensor([0.0, 0.7, 1.4, 2.1, 2.8, 3.0], dtype=torch.float64),
                               rtol=0, atol=1e-12)
    tr = simulate(x0, model=model, solver="rk4", dt=0.01, t_max=10.0, save_at=11)  # every 100th step
    assert tr.steps.tolist() == [1000, 1000] and len(tr.times) == 11
    with pytest.warns(UserWarning, match="not on the step grid"):
        tr = simulate(x0, model=model, solver="rk4", dt=0.1, t_max=3.0, save_at=[0.0, 0.15, 3.0])
    assert tr.steps.tolist() == [31, 31]
    adaptive = simulate(x0, model=model, t_max=3.0, save_at=7)  # adaptive methods keep the equally spaced count
    torch.testing.assert_close(adaptive.times, torch.linspace(0, 3, 7, dtype=torch.float64))


def test_overwrite_replaces_a_store_but_never_a_file(saved_run, tmp_path):
    tr = saved_run[0]
    target = tmp_path / "was_a_file.npy"
    target.write_bytes(b"not a store")
    with pytest.raises(ValueError, match="not a zarr store"):  # data the library did not write stays
        tr.save(target, overwrite=True)
    assert target.read_bytes() == b"not a store"
    store = tmp_path / "run.zarr"
    simulate(ts.sample_sphere(1, 4, 3, seed=0), 1.0, t_max=0.5, save_at=2).save(store)  # another run
    tr.save(store, overwrite=True)
    assert torch.equal(Trajectory.load(store).positions, tr.positions)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr", "was_a_file.npy"]  # nothing left aside
