"""The integrators' inputs and defaults: non-finite starts and fields fail at once and say why, a count of
outputs lands on every fixed-step grid (stochastic and layered too), the controller's options belong to the
adaptive methods only, flags are not numbers, and the exact sub-flows keep a tolerance their dtype can meet."""

import math

import numpy as np
import pytest
import torch

import tokensphere as ts
from tokensphere import FeedForward, Model, SplitSolver, simulate
from tokensphere.integrate import SaveAt, SDESolver, Solver, StepController, integrate
from tokensphere.integrate.driver import IntegrationError
from tokensphere.integrate.events import Clustered

from helpers import gauss, sphere


def test_integrate_refuses_a_non_finite_start():
    x0 = sphere(3, 4, 3, seed=1)
    x0[1, 2, 0] = math.nan
    for method in ("dopri5", "rk4"):
        with pytest.raises(ValueError, match=r"x0 must hold finite values; system\(s\) \[1\]"):
            integrate(lambda t, x, idx: x, x0, SaveAt(torch.tensor([0.0, 1.0])), Solver(method, dt=0.1)
                      if method == "rk4" else Solver(method))


def test_a_non_finite_field_fails_at_the_first_step():
    """A field that returns NaN gives a NaN initial step: the run stops there and says so (it used to spin until
    max_steps and blame it)."""
    x0 = sphere(2, 4, 3, seed=2)
    with pytest.raises(IntegrationError, match="step size is not finite"):
        integrate(lambda t, x, idx: x * math.nan, x0, SaveAt(torch.tensor([0.0, 1.0])), Solver("dopri5", max_steps=50))


def test_a_count_of_outputs_lands_on_the_stochastic_step_grid():
    """With noise, the default 101 outputs or 3 on [0, 1] at dt = 0.1: ten steps of exactly dt either way (not
    100 steps of 0.01 to reach 101 equally spaced times), so the same seed gives the same path whatever the
    number of outputs."""
    runs = [simulate(ts.Uniform(2, 5, 3, seed=3), 1.0, noise=0.2, dt=0.1, t_max=1.0, save_at=k) for k in (101, 3)]
    for r in runs:
        assert r.steps.tolist() == [10, 10]
    torch.testing.assert_close(runs[0].final(), runs[1].final(), rtol=0, atol=1e-15)
    assert runs[0].times.tolist() == pytest.approx([0.1 * k for k in range(11)], abs=1e-15)


def test_a_count_of_outputs_lands_on_the_layer_grid():
    """SplitSolver(dt=0.3) to t = 3 with the default count of outputs: layer boundaries, not 0.03-spaced times."""
    r = simulate(ts.Uniform(1, 5, 3, seed=4), 1.0, solver=SplitSolver(dt=0.3), t_max=3.0)
    assert r.times.tolist() == pytest.approx([0.3 * k for k in range(11)], abs=1e-12)


def test_a_stochastic_step_too_small_for_the_interval_is_refused():
    with pytest.raises(ValueError, match="dt = 1e-300 is too small"):
        simulate(ts.Uniform(1, 4, 3, seed=5), 1.0, noise=0.1, dt=1e-300, t_max=1.0, save_at=[0.0, 0.5, 1.0])


def test_controller_options_belong_to_the_adaptive_methods():
    for kw in (dict(rtol=1e-2), dict(atol=1e-3), dict(dt_max=1e-3), dict(controller=StepController(rtol=1e-3))):
        with pytest.raises(ValueError, match="adaptive methods"):
            Solver("rk4", dt=0.1, **kw)
    with pytest.raises(ValueError, match="adaptive methods"):
        simulate(ts.Uniform(1, 4, 3, seed=6), 1.0, solver="cg3", dt=0.1, rtol=1e-3, t_max=1.0)
    # a stored fixed-step solver with controller fields (as older runs hold) still loads, and equals a fresh one
    spec = {**Solver("rk4", dt=0.1).describe(), "rtol": 1e-3}
    assert Solver.from_spec(spec) == Solver("rk4", dt=0.1)
    assert Solver("dopri5", rtol=1e-3).rtol == 1e-3


def test_flags_are_not_numbers():
    for make in (lambda: Solver("rk4", dt=True), lambda: SDESolver(dt=True), lambda: SplitSolver(dt=True),
                 lambda: StepController(rtol=True), lambda: Clustered(True), lambda: Solver("rk4", dt=torch.tensor(True))):
        with pytest.raises(ValueError, match="must be a finite number"):
            make()
    assert type(Clustered(np.float64(0.1)).delta) is float


def test_stochastic_seeds_beyond_64_bits_are_refused_by_name():
    assert SDESolver(dt=0.1, seed=2**64 - 1).seed == 2**64 - 1
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 18446744073709551615\]"):
        SDESolver(dt=0.1, seed=2**64)


def test_exact_sub_flows_in_float32_keep_a_tolerance_float32_can_meet():
    """One Strang layer with exact sub-flows: the default rtol (1e-12) is below float32's resolution; raised to 10
    machine epsilons, the float32 layer agrees with the float64 one to float32 accuracy (it was 2e-5 off, after
    hundreds of rejected sub-steps)."""
    g = torch.Generator().manual_seed(3)
    w = torch.randn(3, 4, generator=g, dtype=torch.float64)
    a = torch.randn(4, 3, generator=g, dtype=torch.float64)
    m = Model(beta=1.0, feedforward=FeedForward(w, a, None, activation="tanh"))
    x0 = ts.sample_sphere(1, 6, 3, seed=11)
    solver = SplitSolver(splitting="strang", substeps="exact", dt=0.1)
    ref = simulate(x0, model=m, solver=solver, t_max=0.1, save_at=2).final()
    got = simulate(x0, model=m, solver=solver, t_max=0.1, save_at=2, dtype="float32").final().double()
    assert float((got - ref).abs().max()) < 1e-6
