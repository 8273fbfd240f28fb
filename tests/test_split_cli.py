"""Discrete Transformer layers by splitting as a solver (SplitSolver): reachable from ``simulate`` and from
``tokensphere simulate --splitting``, stored with the run and continued from it.

Independent truth: the endpoint error of L blocks of step h = T/L against a tight dopri5 integration of the
continuous (2.8) (``simulate`` of the field with its feed-forward term, no splitting involved) halves per halving
of h for Lie–Trotter and quarters for Strang with exact sub-flows, for every normalisation the model names.
Consistency: simulate with a SplitSolver is ``layers.block_stack`` bit for bit; a run continued from its store
is the uninterrupted run of the same layers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tokensphere import Model, Solver, simulate
from tokensphere.feedforward import FeedForward
from tokensphere.integrate.sde import solver_from_spec
from tokensphere.io.runs import load_run, save_run
from tokensphere.layers import Block, SplitSolver, block_stack
from tokensphere.schedule import Layerwise

from helpers import assert_one_line_error, gauss, invoke, sphere  # noqa: E402

D, P = 3, 5
W, A, B_ = gauss(D, P, seed=1, scale=0.5), gauss(P, D, seed=2), gauss(P, seed=3, scale=0.3)
GAIN = [0.5, 1.0, 2.0]
T = 1.0


def _model(norm="post"):
    kw = {"projection": False} if norm in ("pre", "rms") else {}
    if norm == "rms":
        kw["norm_gain"] = GAIN
    return Model(beta=2.0, feedforward=FeedForward(W, A, B_, activation="tanh"), norm=norm, **kw)


def _orders(model, splitting, substeps, depths):
    """Observed orders log2(e_L / e_2L) of the endpoint error at T against dopri5 on the continuous form."""
    x0 = sphere(2, 8, D, seed=5)
    truth = simulate(x0, model=model, t_max=T, solver=Solver("dopri5", rtol=1e-13, atol=1e-15), save_at=[0.0, T])
    errors = []
    for L in depths:
        run = simulate(x0, model=model, t_max=T, solver=SplitSolver(splitting, substeps, dt=T / L), save_at=[0.0, T])
        assert run.steps.tolist() == [L, L]  # one step per layer and system
        errors.append(float((run.final() - truth.final()).norm(dim=-1).max()))
    return [math.log2(errors[i] / errors[i + 1]) for i in range(len(errors) - 1)], errors


def test_lie_trotter_first_order_and_strang_second_against_the_flow_of_2_8():
    lie, e_lie = _orders(_model(), "lie-trotter", "exact", (4, 8, 16, 32))
    strang, e_strang = _orders(_model(), "strang", "exact", (4, 8, 16, 32))
    literal, _ = _orders(_model(), "strang", "euler", (4, 8, 16, 32))
    assert all(abs(p - 1.0) <= 0.25 for p in lie), (lie, e_lie)
    assert all(abs(p - 2.0) <= 0.3 for p in strang), (strang, e_strang)
    assert all(abs(p - 1.0) <= 0.25 for p in literal), literal  # Euler sub-steps: first order whatever the splitting
    assert e_strang[-1] < e_lie[-1] / 10  # and not merely a smaller constant


@pytest.mark.parametrize("norm", ["pre", "rms", "ngpt"])
def test_the_model_norm_sets_the_block_strang_second_order_to_its_continuous_form(norm):
    """The block's normalisation is the model's: its splitting converges to the model's own continuous form."""
    strang, errors = _orders(_model(norm), "strang", "exact", (4, 8, 16))
    literal, _ = _orders(_model(norm), "lie-trotter", "euler", (8, 16))
    assert all(abs(p - 2.0) <= 0.3 for p in strang), (norm, strang, errors)
    assert abs(literal[0] - 1.0) <= 0.25, (norm, literal)


@pytest.mark.parametrize("norm", ["post", "pre", "rms", "ngpt"])
def test_simulate_with_a_split_solver_is_block_stack(norm, tmp_path):
    model = _model(norm)
    x0 = sphere(2, 6, D, seed=7)
    run = simulate(x0, model=model, t_max=T, solver=SplitSolver("strang", "euler", dt=0.125), save_at=5)
    start = run.positions[0]  # rms: the start mapped onto the gain's ellipsoid by simulate
    layers = block_stack(start, _model("post"), 8, T, Block(norm=norm, splitting="strang",
                                                                gain=GAIN if norm == "rms" else None), keep=True)
    assert torch.equal(run.positions, layers[::2])
    assert run.metadata["layers"] == 8 and run.metadata["sub_steps"] == 24
    back = load_run(save_run(run, tmp_path / "r.zarr"))
    assert back.solver == run.solver and back.model.norm == norm and torch.equal(back.positions, run.positions)


def test_layerwise_weights_lie_trotter_is_the_normalised_resnet_by_hand():
    """Attention only, layer k with its own V_k (a Layerwise schedule of layer length h): each block is
    x ← N(x + h Σ_j softmax_j(β⟨x_i, x_j⟩) V_k x_j), written here in NumPy."""
    L, beta, n, d = 5, 1.5, 7, 4
    h = 2.0 / L
    values = np.random.default_rng(3).standard_normal((L, d, d)) / np.sqrt(d)
    x0 = sphere(1, n, d, seed=11)
    model = Model(beta=beta, schedule=Layerwise(h, V=torch.tensor(values)))
    run = simulate(x0, model=model, t_max=2.0, solver=SplitSolver(dt=h), save_at=[0.0, 2.0])
    x = x0[0].numpy()
    for V in values:
        s = beta * (x @ x.T)
        a = np.exp(s - s.max(axis=1, keepdims=True))
        y = x + h * ((a / a.sum(axis=1, keepdims=True)) @ (x @ V.T))
        x = y / np.linalg.norm(y, axis=1, keepdims=True)
    np.testing.assert_allclose(run.final()[0].numpy(), x, rtol=0, atol=1e-12)


def test_exact_substeps_block_stack_and_spec_round_trip():
    model = _model()
    x0 = sphere(1, 6, D, seed=8)
    solver = SplitSolver("lie-trotter", "exact", dt=0.25, rtol=1e-11)
    run = simulate(x0, model=model, t_max=T, solver=solver, save_at=[0.0, 0.5, 1.0])
    assert torch.equal(run.final(), block_stack(x0, model, 4, T, Block(substeps="exact", rtol=1e-11)))
    spec = json.loads(json.dumps(solver.describe()))
    assert spec == {"kind": "split", "splitting": "lie-trotter", "substeps": "exact", "dt": 0.25, "rtol": 1e-11}
    assert solver_from_spec(spec) == solver and SplitSolver("strang", "exact", 0.1).rtol == 1e-12
    assert SplitSolver("strang", "exact", 0.1).order == 2 and SplitSolver("strang", "euler", 0.1).order == 1


@pytest.mark.parametrize("kwargs, word", [
    ({"splitting": "trotter"}, "splitting"),
    ({"substeps": "rk4"}, "substeps"),
    ({"dt": 0.0}, "dt"),
    ({"substeps": "euler", "rtol": 1e-9}, "rtol"),
    ({"substeps": "exact", "rtol": -1.0}, "rtol"),
])
def test_split_solver_validated(kwargs, word):
    with pytest.raises(ValueError, match=word):
        SplitSolver(**{"dt": 0.1, **kwargs})


def test_simulate_refuses_what_layers_cannot_do():
    x0 = sphere(1, 4, D, seed=9)
    solver = SplitSolver(dt=0.25)
    with pytest.raises(ValueError, match="t_max"):
        simulate(x0, model=_model(), t_max=0.9, solver=solver, save_at=2)
    with pytest.raises(ValueError, match="save_at"):
        simulate(x0, model=_model(), t_max=1.0, solver=solver, save_at=[0.0, 0.3, 1.0])
    with pytest.raises(ValueError, match="noise"):
        simulate(x0, model=Model(beta=1.0, noise=0.1), t_max=1.0, solver=solver, save_at=2)
    with pytest.raises(ValueError, match="chunk_size"):
        simulate(x0, model=_model(), t_max=1.0, solver=solver, save_at=2, chunk_size=2)
    with pytest.raises(ValueError, match="projection"):
        simulate(x0, model=Model(beta=1.0, projection=False), t_max=1.0, solver=solver, save_at=2)
    with pytest.raises(ValueError, match="dt/rtol/atol"):
        simulate(x0, model=_model(), t_max=1.0, solver=solver, dt=0.5)
    with pytest.raises(ValueError, match="norm"):  # the block's norm and the model's disagree
        block_stack(x0, _model("ngpt"), 2, 1.0, Block(norm="post"))


# ---------------------------------------------------------------------------------------------------------------
# the command line


@pytest.fixture
def ff_file(tmp_path):
    path = tmp_path / "ff.npz"
    np.savez(path, w=W.numpy(), a=A.numpy(), b=B_.numpy())
    return path


SMALL = ["--n", "6", "--d", "3", "--beta", "2", "--batch", "2", "--activation", "tanh"]


@pytest.mark.parametrize("substeps", ["euler", "exact"])
def test_cli_split_run_stored_equals_the_python_api_and_continues(tmp_path, ff_file, substeps):
    first, cont, whole = tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "w.zarr"
    common = [*SMALL, "--feedforward", ff_file, "--splitting", "strang", "--substeps", substeps, "--dt", "0.125"]
    res = invoke("simulate", *common, "--t-max", "1", "--out", first)
    assert res.exit_code == 0, res.output
    assert "strang splitting of (2.8)" in res.stdout and "8 layers of step h = 0.125" in res.stdout
    run = load_run(first)
    rtol = 1e-12 if substeps == "exact" else None
    assert run.solver == SplitSolver("strang", substeps, dt=0.125, rtol=rtol)
    assert run.times.tolist() == [k / 8 for k in range(9)]  # default output times: every layer boundary
    again = simulate(run.positions[0], model=run.model, t_max=1.0, solver=run.solver, save_at=run.times)
    assert torch.equal(again.positions, run.positions)

    res = invoke("simulate", "--from-run", first, "--t-max", "2", "--out", cont)
    assert res.exit_code == 0, res.output
    assert "model and solver as saved" in res.stdout
    res = invoke("simulate", *common, "--t-max", "2", "--out", whole)
    assert res.exit_code == 0, res.output
    continued, uninterrupted = load_run(cont), load_run(whole)
    assert continued.solver == run.solver and continued.steps.tolist() == [8, 8]
    gap = float((continued.final() - uninterrupted.final()).abs().max())
    assert gap <= 1e-12, gap  # Euler sub-steps: bit for bit; exact sub-flows: their dopri5 from t0 + k h
    if substeps == "euler":
        assert torch.equal(continued.final(), uninterrupted.final())


def test_cli_continuation_overrides_the_layer_step(tmp_path, ff_file):
    first, cont = tmp_path / "a.zarr", tmp_path / "b.zarr"
    res = invoke("simulate", *SMALL, "--feedforward", ff_file, "--splitting", "lie-trotter", "--dt", "0.25",
                 "--t-max", "1", "--out", first)
    assert res.exit_code == 0, res.output
    res = invoke("simulate", "--from-run", first, "--dt", "0.125", "--t-max", "2", "--save-at", "3", "--out", cont)
    assert res.exit_code == 0, res.output
    run = load_run(cont)
    assert run.solver == SplitSolver("lie-trotter", "euler", dt=0.125) and run.steps.tolist() == [8, 8]
    direct = block_stack(load_run(first).final(), run.model, 8, 1.0, Block())
    assert torch.equal(run.final(), direct)


@pytest.mark.parametrize("args, word", [
    (["--splitting", "strang", "--dt", "0.1", "--noise", "0.1"], "--noise"),
    (["--splitting", "strang", "--dt", "0.1", "--anchor"], "--anchor"),
    (["--splitting", "strang", "--dt", "0.1", "--solver", "rk4"], "--solver"),
    (["--splitting", "strang", "--dt", "0.1", "--rtol", "1e-9"], "rtol"),
    (["--splitting", "strang", "--dt", "0.1", "--chunk-size", "2"], "--chunk-size"),
    (["--splitting", "strang"], "--dt"),
    (["--substeps", "exact"], "--splitting"),
    (["--splitting", "trotter", "--dt", "0.1"], "splitting"),
    (["--splitting", "strang", "--substeps", "rk4", "--dt", "0.1"], "substeps"),
    (["--splitting", "strang", "--dt", "0.3", "--t-max", "1"], "t_max"),
    # (a count of outputs, --save-at 4, now lands on the layer boundaries: tests/test_integrate_inputs.py)
    (["--splitting", "strang", "--dt", "0.1", "--t-max", "0.95", "--save-at", "4"], "t_max"),
])
def test_cli_bad_split_options_are_one_line_errors(tmp_path, args, word):
    res = invoke("simulate", "--n", "4", "--d", "3", *args, "--out", tmp_path / "x.zarr")
    assert_one_line_error(res, 2, word)
    assert not (tmp_path / "x.zarr").exists()
