"""Continuing a run: the saved model (β, matrices, schedule) and solver are kept, the clock runs on from t0, and
the continued run equals one uninterrupted run (to the tolerance; exactly for a fixed step that divides t0).

The truth here is the uninterrupted run of the same library, so these tests check the continuation semantics
(which parameters and times carry over), not the integrator (tests/test_exact.py does that).
"""

from __future__ import annotations

import math

import pytest
import torch

import tokensphere as ts
from tokensphere import Clustered, Layerwise, Model, Solver, Trajectory, simulate

TIGHT = Solver("dopri5", rtol=1e-10, atol=1e-12)
AGREE = 1e-8  # continued vs uninterrupted at TIGHT: both are within ~1e-9 of the exact flow


def f64(v) -> torch.Tensor:
    return torch.as_tensor(v, dtype=torch.float64)


def _general_model() -> Model:
    g = torch.Generator().manual_seed(3)
    QK = torch.randn(2, 3, 3, generator=g, dtype=torch.float64) / math.sqrt(3)
    V = torch.randn(3, 3, generator=g, dtype=torch.float64) / math.sqrt(3) + torch.eye(3, dtype=torch.float64)
    return Model(beta=f64([0.5, 2.0]), normalization="uniform", QK=QK, V=V)


def _layers() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 3, 3, generator=g, dtype=torch.float64) / math.sqrt(3) + torch.eye(3, dtype=torch.float64)


CASES = {
    "SA, beta of shape (3,)": (lambda: Model(beta=f64([0.5, 4.0, 9.0])), ts.Uniform(batch=3, n=6, d=3, seed=1)),
    "USA, per-system QK and V": (_general_model, ts.Uniform(batch=2, n=5, d=3, seed=2)),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("from_path", [True, False], ids=["from-path", "from-trajectory"])
def test_continued_run_equals_uninterrupted_run(case, from_path, tmp_path):
    make_model, start = CASES[case]
    model = make_model()
    first = simulate(start, model=model, solver=TIGHT, t_max=1.0, save_at=3)
    x0 = first.save(tmp_path / "first.zarr") if from_path else first
    second = simulate(x0, t_max=2.5, save_at=4)  # nothing but the new final time
    whole = simulate(start, model=model, solver=TIGHT, t_max=2.5, save_at=[0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    assert second.times.tolist() == [1.0, 1.5, 2.0, 2.5]  # the clock continues from t0 = 1
    assert torch.equal(second.positions[0], first.final())
    torch.testing.assert_close(second.positions, whole.positions[2:], rtol=0, atol=AGREE)
    # the model and the solver are the saved ones, not the defaults (β = 1, SA, identity weights, rtol 1e-7)
    torch.testing.assert_close(second.model.beta_tensor(), model.beta_tensor(), rtol=0, atol=0)
    assert second.model.normalization == model.normalization
    assert second.solver == TIGHT
    cont = second.metadata["continuation"]
    assert cont["t0"] == 1.0 and cont["overrides"] == {}
    assert cont["from"] == (str(x0) if from_path else "trajectory")


def test_fixed_step_dividing_t0_continues_exactly(tmp_path):
    """dt = 2^-6 divides t0 = 1 and the output spacing: the continued steps are the uninterrupted ones."""
    start, solver = ts.Uniform(batch=3, n=6, d=3, seed=4), Solver("rk4", dt=2.0**-6)
    model = Model(beta=f64([0.5, 4.0, 9.0]))
    first = simulate(start, model=model, solver=solver, t_max=1.0, save_at=3)
    second = simulate(first.save(tmp_path / "a.zarr"), t_max=2.0, save_at=3)
    whole = simulate(start, model=model, solver=solver, t_max=2.0, save_at=5)
    assert torch.equal(second.positions, whole.positions[2:])
    assert second.steps.tolist() == [64] * 3
    joined = first.join(second)
    assert joined == whole
    assert joined.steps.tolist() == whole.steps.tolist() == [128] * 3
    assert len(joined.metadata["parts"]) == 2


def test_layerwise_schedule_continues_across_a_later_boundary(tmp_path):
    """Layers of length 1 and t0 = 0.5: the boundaries at 1 and 2 come after t0 and are still landed on."""
    model = Model(beta=1.0, schedule=Layerwise(1.0, V=_layers()))
    start = ts.Uniform(batch=1, n=6, d=3, seed=3)
    exact = Solver("rk4", dt=2.0**-5)
    first = simulate(start, model=model, solver=exact, t_max=0.5, save_at=2)
    whole = simulate(start, model=model, solver=exact, t_max=2.5, save_at=[0.0, 0.5, 2.5])
    second = simulate(first, t_max=2.5, save_at=[0.5, 2.5])
    assert torch.equal(second.final(), whole.final())
    # an adaptive solver, continued from the stored run: the schedule comes back from the store
    first = simulate(start, model=model, solver=TIGHT, t_max=0.5, save_at=2)
    whole = simulate(start, model=model, solver=TIGHT, t_max=2.5, save_at=[0.0, 0.5, 2.5])
    second = simulate(first.save(tmp_path / "layers.zarr"), t_max=2.5, save_at=[0.5, 2.5])
    torch.testing.assert_close(second.final(), whole.final(), rtol=0, atol=AGREE)
    # and it really is the layered flow: without the schedule the result differs
    plain = simulate(first.final(), 1.0, solver=TIGHT, t_max=2.0, save_at=2)
    assert float((plain.final() - whole.final()).abs().max()) > 1e-3


# ---------------------------------------------------------------------------------------------------------
# overrides


def test_override_replaces_one_field_and_is_recorded(tmp_path):
    model = _general_model()
    first = simulate(ts.Uniform(batch=2, n=5, d=3, seed=2), model=model, solver=TIGHT, t_max=0.5, save_at=2)
    path = first.save(tmp_path / "run.zarr")
    second = simulate(path, 3.0, t_max=1.0, save_at=2)  # β = 3 for both systems; everything else kept
    assert second.model.normalization == "uniform"
    assert second.model.beta_tensor().tolist() == [3.0]
    assert torch.equal(torch.as_tensor(second.model.V).reshape(3, 3), torch.as_tensor(model.V))
    assert second.solver == TIGHT
    assert second.metadata["continuation"]["overrides"] == {"beta": 3.0}
    # the same step from the saved state with the overridden model, built by hand
    by_hand = simulate(first.final(), model=Model(beta=3.0, normalization="uniform", QK=model.QK, V=model.V),
                       solver=TIGHT, t_max=0.5, save_at=2)
    torch.testing.assert_close(second.final(), by_hand.final(), rtol=0, atol=AGREE)

    looser = simulate(path, t_max=1.0, save_at=2, rtol=1e-6)
    assert looser.solver.method == "dopri5" and looser.solver.rtol == 1e-6 and looser.solver.atol == TIGHT.atol
    assert looser.metadata["continuation"]["overrides"] == {"rtol": 1e-6}
    rk4 = simulate(path, t_max=1.0, save_at=2, solver="rk4", dt=0.25)
    assert rk4.solver.method == "rk4" and rk4.metadata["continuation"]["overrides"]["solver"]["dt"] == 0.25
    new_model = simulate(path, model=Model(beta=1.0), t_max=1.0, save_at=2)
    assert new_model.model.normalization == "softmax"
    assert new_model.metadata["continuation"]["overrides"]["model"]["normalization"] == "softmax"


def test_join_refuses_runs_that_do_not_continue_each_other():
    start = ts.Uniform(batch=2, n=4, d=3, seed=5)
    first = simulate(start, 1.0, solver="rk4", dt=0.1, t_max=1.0, save_at=3)
    later = simulate(first, t_max=2.0, save_at=3)
    assert first.join(later).times.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    with pytest.raises(ValueError, match="starts at"):
        later.join(first)
    with pytest.raises(ValueError, match="model"):
        first.join(simulate(first, 2.0, t_max=2.0, save_at=3))
    other = simulate(ts.Uniform(batch=2, n=4, d=3, seed=6), 1.0, solver="rk4", dt=0.1, t_max=1.0, save_at=3)
    with pytest.raises(ValueError, match="final state"):
        first.join(simulate(other, t_max=2.0, save_at=3))
    with pytest.raises(ValueError, match="systems"):
        first.join(simulate(ts.Uniform(batch=3, n=4, d=3, seed=5), 1.0, solver="rk4", dt=0.1, t_max=1.0, save_at=3))


# ---------------------------------------------------------------------------------------------------------
# the clock and refusals


def test_output_times_run_from_t0(tmp_path):
    first = simulate(ts.Uniform(batch=1, n=4, d=3, seed=0), 1.0, solver="rk4", dt=0.1, t_max=2.0, save_at=3)
    assert simulate(first, t_max=4.0, save_at=5).times.tolist() == [2.0, 2.5, 3.0, 3.5, 4.0]
    explicit = simulate(first, t_max=4.0, save_at=[2.5, 4.0])
    assert explicit.times.tolist() == [2.5, 4.0]
    assert explicit.metadata["init"] == {"kind": "trajectory", "time": 2.0}


BAD_CONTINUATIONS = {
    "t_max before t0": (dict(t_max=1.5), "t0"),
    "t_max equal to t0": (dict(t_max=2.0), "t0"),
    "t_max missing": (dict(), "t_max"),
    "save_at before t0": (dict(t_max=3.0, save_at=[1.0, 3.0]), "save_at"),
}


@pytest.mark.parametrize("case", list(BAD_CONTINUATIONS))
def test_bad_continuation_raises(case):
    first = simulate(ts.Uniform(batch=1, n=4, d=3, seed=0), 1.0, solver="rk4", dt=0.1, t_max=2.0, save_at=3)
    kw, word = BAD_CONTINUATIONS[case]
    with pytest.raises(ValueError, match=word):
        simulate(first, **kw)


def test_run_stopped_by_an_event_is_refused(tmp_path):
    rng = torch.Generator().manual_seed(0)
    pole = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    cap = pole + 0.05 * torch.randn(1, 4, 3, generator=rng, dtype=torch.float64)  # collapses fast
    run = simulate(cap / cap.norm(dim=-1, keepdim=True), 1.0, solver="rk4", dt=0.05, t_max=5.0, save_at=3,
                   events=[Clustered(1e-2)])
    assert math.isfinite(float(run.event_time[0]))
    with pytest.raises(ValueError, match="stopped early by an event"):
        simulate(run, t_max=6.0)
    with pytest.raises(ValueError, match="stopped early by an event"):
        simulate(run.save(tmp_path / "stopped.zarr"), t_max=6.0)


def test_run_without_positions_cannot_be_continued():
    run = simulate(ts.Uniform(batch=1, n=4, d=3, seed=0), 1.0, solver="rk4", dt=0.1, t_max=1.0, save_at=3,
                   store=False)
    with pytest.raises(ValueError, match="kept no positions"):
        simulate(run, t_max=2.0)
    with pytest.raises(ValueError, match="kept no positions"):
        run.at(0.5)
    assert isinstance(run, Trajectory)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_float32_run_continues(dtype):
    """A run integrated in float32 is unit to float32 accuracy; continuing it (in float32, or in float64)
    must not be refused by a float64 unit-norm tolerance."""
    import tokensphere as ts

    run = ts.simulate(ts.Uniform(batch=2, n=6, d=3, seed=3), 2.0, t_max=1.0, save_at=3, dtype="float32")
    assert run.positions.dtype == torch.float32
    more = ts.simulate(run, t_max=2.0, save_at=3, dtype=dtype)
    assert float(more.times[0]) == 1.0 and more.positions.dtype == getattr(torch, dtype)
    norms = torch.linalg.vector_norm(more.positions, dim=-1)
    assert float((norms - 1).abs().max()) <= (1e-6 if dtype == "float32" else 1e-14)
    # and the two parts join: the float64 continuation starts from the float32 final state re-normalised
    joined = run.join(more)
    assert joined.times.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_outputs_on_layer_boundaries_do_not_add_steps():
    """An output time that is also a layer boundary is one stop, not two: the fixed-step run takes its 12 steps
    of 0.25 (not 12 plus a zero-length step per boundary) and ends on the same bits as the run that saves only
    its ends; so a continuation from a boundary equals the uninterrupted run."""
    model = Model(beta=1.0, schedule=Layerwise(1.0, V=_layers()))
    start, solver = ts.Uniform(batch=2, n=6, d=3, seed=3), Solver("rk4", dt=0.25)
    boundaries = simulate(start, model=model, solver=solver, t_max=3.0, save_at=4)  # t = 0, 1, 2, 3
    ends = simulate(start, model=model, solver=solver, t_max=3.0, save_at=[0.0, 3.0])
    assert boundaries.steps.tolist() == ends.steps.tolist() == [12, 12]
    assert boundaries.metadata["field_evaluations"] == ends.metadata["field_evaluations"]
    assert torch.equal(boundaries.final(), ends.final())
    first = simulate(start, model=model, solver=Solver("rk4", dt=2.0**-5), t_max=1.0, save_at=2)
    whole = simulate(start, model=model, solver=Solver("rk4", dt=2.0**-5), t_max=2.0, save_at=3)
    assert first.join(simulate(first, t_max=2.0, save_at=2)) == whole
