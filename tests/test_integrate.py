"""Integrators (docs/numerics.md): measured order, norm drift, batching, output times, events, and the solver
objects (Solver, StepController, SaveAt), the start time t0, the step cap and the thread policy.

Truth is independent of the library: a NumPy field solved with SciPy DOP853 at rtol 1e-12 (tests/problems.py).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import problems as P
from helpers import load_benchmark
import tokensphere as ts
from tokensphere import METHODS, Clustered, IntegrationError, Solver, simulate
from tokensphere.integrate import SaveAt, StepController, integrate

# nominal orders (solver.py table, docs/numerics.md); "anchor" is the authors' scheme: Euler on the raw field, then
# renormalisation
FIXED = {
    "euler": 1,
    "midpoint": 2,
    "heun": 2,
    "rk3": 3,
    "rk4": 4,
    "lie-euler": 1,
    "cg3": 3,
    "anchor": 1,
}
ADAPTIVE = ("bosh3", "dopri5")


def fixed_solver(name: str, dt) -> Solver:
    if name == "anchor":
        return Solver(method="euler", dt=dt, projected_field=False)
    return Solver(method=name, dt=dt)


def max_err(a: torch.Tensor, b: np.ndarray) -> float:
    return float(np.abs(a.detach().cpu().numpy() - b).max())


def test_method_registry_is_what_we_test():
    # a new method must get an order test here; a missing one must not go unnoticed
    assert set(METHODS) == (set(FIXED) - {"anchor"}) | set(ADAPTIVE)
    for name, p in FIXED.items():
        assert fixed_solver(name, 0.1).order == p


# ---------------------------------------------------------------------------------------------------------
# measured order of accuracy: slope of log error against log h

T_ORDER = 2.0
BETA_ORDER = 1.0


@pytest.fixture(scope="module")
def order_problem():
    """A random start (n = 6, d = 3) and its DOP853 reference at t = 2 for SA and USA (β = 1)."""
    x0 = ts.sample_sphere(1, 6, 3, seed=11)
    ref = {
        norm: P.reference_trajectory(x0[0].numpy(), BETA_ORDER, norm, [0.0, T_ORDER])[-1]
        for norm in P.NORMALIZATIONS
    }
    return x0, ref


@pytest.mark.parametrize("normalization", P.NORMALIZATIONS)
@pytest.mark.parametrize("method", list(FIXED))
def test_measured_order_fixed_step(order_problem, method, normalization):
    x0, ref = order_problem
    p = FIXED[method]
    dt0 = 0.1 if p <= 2 else 0.2  # start in the asymptotic regime, end above round-off (rk4: ~1e-10)
    dts = tuple(dt0 / 2**k for k in range(5))  # halved 4 times
    errors = []
    for h in dts:
        tr = simulate(x0, BETA_ORDER, normalization=normalization, solver=fixed_solver(method, h), t_max=T_ORDER,
                      save_at=2)
        # max over all coordinates: a single Gram entry can cross zero and spoil the fit
        errors.append(max_err(tr.final()[0], ref[normalization]))
    conv = P.Convergence(dts, tuple(errors))
    assert abs(conv.slope - p) <= 0.2, f"{method}: slope {conv.slope:.3f}, errors {errors}"
    assert errors[-1] < errors[0]


@pytest.mark.parametrize("normalization", P.NORMALIZATIONS)
@pytest.mark.parametrize("method", ADAPTIVE)
def test_adaptive_error_tracks_tolerance(order_problem, method, normalization):
    x0, ref = order_problem
    errs = {}
    for rtol in (1e-6, 1e-9):
        tr = simulate(x0, BETA_ORDER, normalization=normalization,
                      solver=Solver(method, rtol=rtol, atol=rtol * 1e-2), t_max=T_ORDER, save_at=2)
        errs[rtol] = max_err(tr.final()[0], ref[normalization])
    assert errs[1e-6] < 1e-4  # the error is of the order of the tolerance, not just decreasing
    assert errs[1e-6] >= 100 * errs[1e-9], errs


@pytest.mark.slow
@pytest.mark.parametrize("method", list(FIXED))
def test_measured_order_fixed_step_thorough(method):
    """More refinements, a larger system, larger β and a longer horizon (SA and USA)."""
    x0 = ts.sample_sphere(1, 12, 4, seed=5)
    p = FIXED[method]
    for normalization, beta in (("softmax", 4.0), ("uniform", 1.5)):
        ref = P.reference_trajectory(x0[0].numpy(), beta, normalization, [0.0, 4.0])[-1]
        dt0 = {1: 0.05, 2: 0.05, 3: 0.1, 4: 0.1}[p]
        dts = tuple(dt0 / 2**k for k in range(6))
        errors = tuple(
            max_err(simulate(x0, beta, normalization=normalization, solver=fixed_solver(method, h), t_max=4.0,
                             save_at=2).final()[0], ref)
            for h in dts
        )
        slope = P.Convergence(dts, errors).slope
        assert abs(slope - p) <= 0.2, (normalization, slope, errors)


# ---------------------------------------------------------------------------------------------------------
# unit norm after many steps (the exact flow stays on the sphere: ⟨ẋ_i, x_i⟩ = 0)


def _drift_solver(method: str, dt: float) -> Solver:
    if method in ADAPTIVE:
        return Solver(method, rtol=1e-6, atol=1e-9, dt_max=dt)  # dt_max forces the step count
    return fixed_solver(method, dt)


def _check_norm_drift(method: str, steps: int) -> None:
    dt = 1e-3
    x0 = ts.sample_sphere(1, 8, 3, seed=4)
    tr = simulate(x0, 1.0, solver=_drift_solver(method, dt), t_max=steps * dt, save_at=11)
    assert int(tr.steps[0]) >= steps
    assert torch.isfinite(tr.positions).all()
    dev = (torch.linalg.vector_norm(tr.positions, dim=-1) - 1).abs().max()
    assert float(dev) <= 1e-12


@pytest.mark.parametrize("method", list(METHODS) + ["anchor"])
def test_norm_drift_after_2k_steps(method):
    """The default-suite version (the whole 10^4-step set costs ~25 s on two idle cores, far more when shared)."""
    _check_norm_drift(method, 2_000)


@pytest.mark.slow
@pytest.mark.parametrize("method", list(METHODS) + ["anchor"])
def test_norm_drift_after_10k_steps(method):
    _check_norm_drift(method, 10_000)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["rk4", "dopri5", "cg3", "anchor"])
def test_norm_drift_after_100k_steps(method):
    dt, steps = 1e-3, 100_000
    x0 = ts.sample_sphere(2, 16, 5, seed=4)
    betas = torch.tensor([1.0, 4.0], dtype=torch.float64)
    tr = simulate(x0, betas, solver=_drift_solver(method, dt), t_max=steps * dt, save_at=11)
    assert int(tr.steps.min()) >= steps
    dev = (torch.linalg.vector_norm(tr.positions, dim=-1) - 1).abs().max()
    assert float(dev) <= 1e-12


# ---------------------------------------------------------------------------------------------------------
# determinism and batching (one random stream and one step size per system)


def test_same_seed_is_bit_identical_and_other_seed_differs():
    def run(seed):
        betas = torch.tensor([0.5, 1.0, 4.0], dtype=torch.float64)
        return simulate(ts.Uniform(batch=3, n=7, d=3, seed=seed), betas, t_max=3.0, save_at=7,
                        solver=Solver("dopri5", rtol=1e-8, atol=1e-10))

    a, b, c = run(3), run(3), run(4)
    assert torch.equal(a.positions, b.positions)
    assert torch.equal(a.steps, b.steps)
    assert not torch.allclose(a.positions[0], c.positions[0])


@pytest.mark.parametrize(
    "solver",
    [Solver("dopri5", rtol=1e-8, atol=1e-10), Solver("bosh3", rtol=1e-6, atol=1e-8), Solver("rk4", dt=0.05),
     Solver("cg3", dt=0.05)],
    ids=["dopri5", "bosh3", "rk4", "cg3"],
)
def test_system_alone_equals_system_in_batch(solver):
    """Per-system step control: a system's steps do not depend on its batch neighbours (other β, other x0)."""
    betas = torch.tensor([0.5, 2.0, 9.0, 0.0], dtype=torch.float64)
    x0 = ts.sample_sphere(4, 6, 3, seed=2)
    big = simulate(x0, betas, normalization="softmax", solver=solver, t_max=3.0, save_at=7)
    for b in range(4):
        one = simulate(x0[b:b + 1], float(betas[b]), normalization="softmax", solver=solver, t_max=3.0, save_at=7)
        torch.testing.assert_close(one.positions[:, 0], big.positions[:, b], rtol=0, atol=1e-12)
        assert int(one.steps[0]) == int(big.steps[b])
    if solver.kind == "adaptive":  # the batch really had different step sequences
        assert len(set(big.steps.tolist())) > 1


def test_per_system_dt_array():
    betas = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    dts = [0.1, 0.05, 0.025]
    x0 = ts.sample_sphere(3, 5, 3, seed=8)
    big = simulate(x0, betas, solver=Solver("rk4", dt=torch.tensor(dts, dtype=torch.float64)), t_max=1.0, save_at=3)
    assert big.steps.tolist() == [10, 20, 40]
    for b, h in enumerate(dts):
        one = simulate(x0[b:b + 1], float(betas[b]), solver=Solver("rk4", dt=h), t_max=1.0, save_at=3)
        torch.testing.assert_close(one.positions[:, 0], big.positions[:, b], rtol=0, atol=1e-12)
        ref = P.reference_trajectory(x0[b].numpy(), float(betas[b]), "softmax", [0.0, 0.5, 1.0])
        assert max_err(big.positions[:, b], ref) < 10 * h**4


def test_beta_vector_broadcasts_single_start():
    x0 = ts.sample_sphere(1, 5, 3, seed=9)
    betas = torch.tensor([0.0, 1.0, 5.0], dtype=torch.float64)
    tr = simulate(x0, betas, t_max=2.0, save_at=5, solver=Solver("dopri5", rtol=1e-10, atol=1e-12))
    assert tr.shape == (5, 3, 5, 3)
    for b in range(3):
        assert torch.equal(tr.positions[0, b], x0[0])
        ref = P.reference_trajectory(x0[0].numpy(), float(betas[b]), "softmax", tr.times.numpy())
        assert max_err(tr.positions[:, b], ref) < 1e-8
    # different β really give different trajectories
    assert not torch.allclose(tr.final()[0], tr.final()[2], atol=1e-3)


# ---------------------------------------------------------------------------------------------------------
# output times (taken at the requested times, not "the first step past")


UNEVEN = [0.0, 0.013, 0.2, 0.21, 0.5, 1.37, 2.0]


@pytest.mark.parametrize(
    "solver,tol",
    [(Solver("rk4", dt=0.03), 1e-6), (Solver("cg3", dt=0.03), 1e-5), (Solver("dopri5", rtol=1e-10, atol=1e-12), 1e-8)],
    ids=["rk4", "cg3", "dopri5"],
)
def test_output_times_are_exact(solver, tol):
    """dt = 0.03 divides none of the gaps; states at the requested times must match the reference there."""
    x0 = ts.sample_sphere(2, 6, 3, seed=12)
    tr = simulate(x0, torch.tensor([1.0, 3.0], dtype=torch.float64), solver=solver, t_max=2.0, save_at=UNEVEN)
    assert torch.equal(tr.times, torch.tensor(UNEVEN, dtype=torch.float64))
    assert torch.equal(tr.positions[0], x0)
    for b, beta in enumerate((1.0, 3.0)):
        ref = P.reference_trajectory(x0[b].numpy(), beta, "softmax", UNEVEN)
        # a state from one step past the requested time would be off by ~dt·|ẋ| ~ 1e-2
        assert max_err(tr.positions[:, b], ref) < tol


def test_output_count_is_linspace_and_starts_at_x0():
    """An adaptive solver: a count is linspace(t0, t_max, count) (a fixed-step one puts a count on its step
    grid instead: test_simulate.py::test_fixed_step_outputs_lie_on_the_step_grid)."""
    x0 = ts.sample_sphere(1, 4, 3, seed=1)
    tr = simulate(x0, 1.0, solver=Solver("dopri5", rtol=1e-9, atol=1e-11), t_max=3.0, save_at=31)
    expected = np.linspace(0.0, 3.0, 31)
    assert tr.times.dtype == torch.float64
    assert float(tr.times[0]) == 0.0 and float(tr.times[-1]) == 3.0
    np.testing.assert_allclose(tr.times.numpy(), expected, rtol=0, atol=1e-15)
    assert torch.equal(tr.positions[0], x0)
    ref = P.reference_trajectory(x0[0].numpy(), 1.0, "softmax", expected)
    assert max_err(tr.positions[:, 0], ref) < 1e-6


def test_fixed_step_count_when_dt_divides_output_spacing():
    """dt = 0.25 divides the spacing 0.5 exactly in binary: exactly t_max/dt steps, no extra landing steps."""
    x0 = ts.sample_sphere(1, 4, 3, seed=1)
    tr = simulate(x0, 1.0, solver=Solver("rk4", dt=0.25), t_max=4.0, save_at=9)
    assert int(tr.steps[0]) == 16


# ---------------------------------------------------------------------------------------------------------
# events


def _first_crossing(x0: np.ndarray, beta: float, delta: float, t_max: float, grid: float = 1e-3) -> float:
    """First time the reference solution has min_ij ⟨x_i, x_j⟩ > 1 − δ (to grid resolution)."""
    t = np.arange(0.0, t_max + grid / 2, grid)
    X = P.reference_trajectory(x0, beta, "softmax", t)
    gmin = (X @ X.transpose(0, 2, 1)).reshape(len(t), -1).min(axis=1)
    hit = np.nonzero(gmin > 1 - delta)[0]
    return float(t[hit[0]]) if len(hit) else math.inf


def test_clustered_event_stops_collapsed_systems_only():
    delta, dt, t_max = 1e-2, 0.01, 8.0
    n, d = 4, 4
    rng = np.random.default_rng(0)
    cap, _ = P.cap_start(n, d, 0.6, rng)  # collapses quickly
    simplex = ts.Equiangular(n=n, d=d, gamma0=-1 / (n - 1), seed=1).sample()[0].numpy()  # stationary
    spread = ts.sample_sphere(1, n, d, seed=6)[0].numpy()  # collapses later
    x0 = torch.from_numpy(np.stack([cap, simplex, spread]))
    betas = [1.0, 1.0, 0.5]
    tr = simulate(x0, torch.tensor(betas, dtype=torch.float64), solver=Solver("rk4", dt=dt), t_max=t_max, save_at=81,
                  events=[Clustered(delta)])
    et = tr.event_time
    assert math.isnan(float(et[1]))  # the simplex never clusters: it runs to t_max
    assert torch.isfinite(tr.positions[:, 1]).all()
    for b in (0, 2):
        t_star = _first_crossing(x0[b].numpy(), betas[b], delta, t_max)
        assert t_star < t_max
        # detection at step resolution: the end of the first step where the condition holds
        assert t_star - 2e-3 <= float(et[b]) <= t_star + dt + 2e-3
        after = tr.times > et[b]
        assert after.any() and torch.isnan(tr.positions[after, b]).all()
        assert torch.isfinite(tr.positions[~after, b]).all()
    assert float(et[0]) < float(et[2])
    assert torch.isfinite(et[[0, 2]]).all()


# ---------------------------------------------------------------------------------------------------------
# the solver objects: method, step-size controller, what to save


def test_solver_shortcuts_build_the_controller():
    s = Solver("dopri5", rtol=1e-10, atol=1e-12)
    assert s.controller == StepController(rtol=1e-10, atol=1e-12)
    assert (s.rtol, s.atol, s.dt_max) == (1e-10, 1e-12, None)
    # the DOPRI5 defaults (Hairer, Nørsett & Wanner): safety 0.9, 0.2 ≤ h_new/h ≤ 10
    assert StepController() == StepController(1e-7, 1e-9, 0.9, 0.2, 10.0, None)
    # shortcuts replace only their fields of a given controller
    s = Solver("bosh3", controller=StepController(safety=0.8, max_factor=5.0), rtol=1e-6, dt_max=0.5)
    assert s.controller == StepController(rtol=1e-6, safety=0.8, max_factor=5.0, dt_max=0.5)
    assert Solver("rk4", dt=0.05).kind == "fixed" and Solver("cg3", dt=0.1).kind == "lie"


@pytest.mark.parametrize(
    "solver",
    [Solver(), Solver("rk4", dt=0.05), Solver("rk4", dt=torch.tensor([0.1, 0.2], dtype=torch.float64)),
     Solver("dopri5", controller=StepController(rtol=1e-5, safety=0.7, min_factor=0.1), dt=0.01, max_steps=99),
     Solver("euler", dt=0.1, projected_field=False)],
    ids=["default", "rk4", "per-system dt", "controller", "anchor"],
)
def test_solver_describe_round_trip(solver):
    spec = solver.describe()
    assert json.loads(json.dumps(spec)) == spec
    back = Solver.from_spec(spec)
    assert back == solver and hash(back) == hash(solver)
    assert back != Solver("heun", dt=0.3)


def test_solver_from_the_flat_spec_of_older_runs():
    old = {"method": "dopri5", "dt": None, "rtol": 1e-8, "atol": 1e-10, "projected_field": True,
           "max_steps": 1000, "dt_max": 0.5}
    assert Solver.from_spec(old) == Solver("dopri5", rtol=1e-8, atol=1e-10, dt_max=0.5, max_steps=1000)


BAD_SOLVERS = {
    "rtol = 0": (lambda: StepController(rtol=0.0), "rtol"),
    "atol < 0": (lambda: Solver(atol=-1.0), "atol"),
    "safety > 1": (lambda: StepController(safety=1.5), "safety"),
    "min_factor > 1": (lambda: StepController(min_factor=2.0), "min_factor"),
    "max_factor < 1": (lambda: StepController(max_factor=0.5), "max_factor"),
    "dt_max = 0": (lambda: Solver(dt_max=0.0), "dt_max"),
    "unknown method": (lambda: Solver("rk45"), "solver"),
    "fixed step without dt": (lambda: Solver("rk4"), "dt"),
    "dt NaN": (lambda: Solver("rk4", dt=float("nan")), "dt"),
    "max_steps = 0": (lambda: Solver(max_steps=0), "max_steps"),
    "raw field with rk4": (lambda: Solver("rk4", dt=0.1, projected_field=False), "projected_field"),
    "controller not a StepController": (lambda: Solver(controller={"rtol": 1e-3}), "controller"),
    "save_at unsorted": (lambda: SaveAt([0.0, 1.0, 0.5]), "save_at"),
    "save_at empty": (lambda: SaveAt([]), "save_at"),
    "save_at NaN": (lambda: SaveAt([0.0, float("nan")]), "save_at"),
    "on_save not callable": (lambda: SaveAt([0.0, 1.0], on_save=3), "on_save"),
}


@pytest.mark.parametrize("case", list(BAD_SOLVERS))
def test_bad_solver_objects_raise_value_error_naming_the_field(case):
    make, word = BAD_SOLVERS[case]
    with pytest.raises(ValueError, match=rf"\b{word}\b"):
        make()


def test_controller_bounds_act_on_the_step_sequence():
    """Tighter factor bounds and a smaller safety give more steps (the controller is really used)."""
    x0 = ts.sample_sphere(1, 6, 3, seed=3)
    runs = {name: simulate(x0, 4.0, solver=Solver("dopri5", controller=ctrl), t_max=3.0, save_at=2)
            for name, ctrl in (("default", StepController(rtol=1e-8, atol=1e-10)),
                               ("cautious", StepController(rtol=1e-8, atol=1e-10, safety=0.5, max_factor=1.2)))}
    assert int(runs["cautious"].steps[0]) > int(runs["default"].steps[0])
    torch.testing.assert_close(runs["cautious"].final(), runs["default"].final(), rtol=0, atol=1e-6)


def test_save_at_object_equals_the_shortcuts_and_feeds_the_hook():
    x0 = ts.sample_sphere(2, 5, 3, seed=7)
    betas = torch.tensor([1.0, 3.0], dtype=torch.float64)
    seen = []
    hooked = simulate(x0, betas, solver=Solver("rk4", dt=0.05), save_at=SaveAt(UNEVEN, store=False,
                      on_save=lambda k, s, x: seen.append((k.clone(), s.clone(), x.clone()))))
    listed = simulate(x0, betas, solver=Solver("rk4", dt=0.05), t_max=2.0, save_at=UNEVEN)
    assert hooked.positions is None and torch.equal(hooked.times, listed.times)  # t_max from the SaveAt
    got = torch.full_like(listed.positions, float("nan"))
    for k, s, x in seen:
        got[k, s] = x
    assert torch.equal(got, listed.positions)


def test_driver_starts_at_t0():
    """integrate from t0 = 0.5: one rk4 step of 0.5 to t = 1 equals the second half of a run from 0."""
    x0 = ts.sample_sphere(1, 5, 3, seed=2)
    whole = simulate(x0, 1.0, solver=Solver("rk4", dt=0.5), t_max=1.0, save_at=3)
    model = ts.Model(beta=1.0)
    res = integrate(lambda t, x, idx: ts.velocity(x, model), whole.positions[1], SaveAt([0.5, 1.0]),
                    Solver("rk4", dt=0.5), t0=0.5)
    assert res.steps.tolist() == [1]
    assert torch.equal(res.positions[0], whole.positions[1]) and torch.equal(res.positions[1], whole.final())
    with pytest.raises(ValueError, match="t0"):
        integrate(lambda t, x, idx: ts.velocity(x, model), x0, SaveAt([0.0, 1.0]), Solver("rk4", dt=0.5), t0=0.5)


def test_step_cap_is_per_system():
    x0 = ts.sample_sphere(2, 4, 3, seed=1)
    dt = torch.tensor([0.5, 0.01], dtype=torch.float64)
    with pytest.raises(IntegrationError, match="max_steps"):
        simulate(x0, 1.0, solver=Solver("rk4", dt=dt, max_steps=10), t_max=1.0, save_at=2)
    ok = simulate(x0[:1], 1.0, solver=Solver("rk4", dt=0.5, max_steps=2), t_max=1.0, save_at=2)
    assert ok.steps.tolist() == [2]


def test_threads_policy_is_applied_and_recorded():
    from tokensphere.runtime import all_cores

    seen = []
    before = torch.get_num_threads()
    tr = simulate(ts.sample_sphere(1, 4, 3, seed=0), 1.0, solver=Solver("rk4", dt=0.1), t_max=0.2, save_at=2,
                  threads=2, chunk_size=2, on_save=lambda k, s, x: seen.append(torch.get_num_threads()))
    assert set(seen) == {2} and torch.get_num_threads() == before
    assert tr.metadata["threads"] == 2 and tr.metadata["lanes"] == 2 and tr.metadata["chunk_size"] == 2
    small = simulate(ts.sample_sphere(1, 4, 3, seed=0), 1.0, solver=Solver("rk4", dt=0.1), t_max=0.2, save_at=2)
    assert small.metadata["threads"] == 1 and small.metadata["chunk_size"] is None  # n < LARGE_N: one thread
    assert small.metadata["lanes"] == all_cores()  # and the fused kernel's blocks on every core
    with pytest.raises(ValueError, match="threads"):
        simulate(ts.sample_sphere(1, 4, 3, seed=0), 1.0, threads=0, t_max=0.2)


def test_api_runs_small_systems_on_one_thread_whatever_the_global_setting():
    """The thread policy is the library's, not only the CLI's: with torch set to two threads, a batch of small
    systems still integrates on one (the API used to inherit torch's setting and run 12-75x slower on a busy
    machine), and the global setting is restored afterwards."""
    from tokensphere.runtime import LARGE_N, choose_threads

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        simulate(ts.sample_sphere(4, 8, 3, seed=0), 1.0, t_max=0.5, save_at=3,
                 on_save=lambda k, s, x: seen.append(torch.get_num_threads()))
        assert set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert choose_threads(LARGE_N - 1) == 1 and choose_threads(LARGE_N) >= 1 and choose_threads(8, 3) == 3


# ---------------------------------------------------------------------------------------------------------
# the step loop: buffers reused, host reads counted


def _bench_step():
    return load_benchmark("bench_step")


@pytest.mark.parametrize("solver, on_sphere", [
    (Solver("dopri5", rtol=1e-7), True),
    (Solver("bosh3", rtol=1e-5), True),
    (Solver("rk4", dt=0.05), True),
    (Solver("dopri5", rtol=1e-6), False),
], ids=["dopri5", "bosh3", "rk4", "dopri5-Rd"])
def test_step_loop_on_lanes_is_bitwise_one_lane(solver, on_sphere, monkeypatch):
    """The step loop's passes over (B, n, d) arrays (stage sums, error norm, retraction) and the fused field
    spread the batch's rows over the lanes; with the size thresholds lowered so that a small batch takes that
    road, 3 lanes give exactly the run of one: states, steps and rejections."""
    import tokensphere.field as field
    import tokensphere.runtime as runtime
    from tokensphere.integrate.driver import integrate
    from tokensphere.runtime import lanes, torch_threads

    monkeypatch.setattr(runtime, "LANES_MIN_ELEMENTS", 0)
    monkeypatch.setattr(field, "_LANES_MIN_SCORES", 0)
    calls = []
    inner = runtime.run_lanes
    monkeypatch.setattr(runtime, "run_lanes", lambda k, fn: (calls.append(k), inner(k, fn)))
    B = 150
    model = ts.Model(beta=torch.linspace(0.5, 6.0, B, dtype=torch.float64), projection=on_sphere)
    x0 = ts.sample_sphere(B, 16, 3, seed=9)

    def f(t, x, idx):
        return ts.velocity(x, model if idx is None else model.take(idx))

    runs = []
    for k in (1, 3):
        with torch_threads(1), lanes(k):
            runs.append(integrate(f, x0, torch.tensor([0.0, 0.4, 1.0], dtype=torch.float64), solver,
                                  on_sphere=on_sphere))
    one, three = runs
    assert calls and set(calls) == {3}  # the second run went through the lanes, the first did not
    assert torch.equal(one.positions, three.positions)
    assert torch.equal(one.steps, three.steps) and torch.equal(one.rejected, three.rejected)


@pytest.mark.parametrize("method", sorted(ts.integrate.tableaux.TABLEAUX))
@pytest.mark.parametrize("aliasing", [False, True])
def test_erk_step_in_reused_buffers_is_bitwise_the_allocating_step(method, aliasing):
    """The workspace path does the same arithmetic in the same order: identical bits, step after step with the
    same buffers; a field that returns its own input (aliasing the stage buffer) is copied, not overwritten."""
    from tokensphere.integrate.steps import StageBuffers, erk_step
    from tokensphere.integrate.tableaux import TABLEAUX

    tab = TABLEAUX[method]
    model = ts.Model(beta=torch.tensor([0.5, 3.0, 8.0], dtype=torch.float64))
    x = ts.sample_sphere(3, 6, 4, seed=3)
    h = torch.tensor([0.1, 0.03, 0.2], dtype=torch.float64)
    t = torch.zeros(3, dtype=torch.float64)

    def f(tt, xx):
        return xx if aliasing else ts.velocity(xx, model)

    work = StageBuffers()
    ctrl = StepController()
    for _ in range(3):
        y0, e0, k0 = erk_step(f, t, x, h, tab)
        y1, e1, k1 = erk_step(f, t, x, h, tab, work=work)
        assert torch.equal(y0, y1) and torch.equal(k0, k1)
        if tab.e is not None:
            assert torch.equal(e0, e1)
            scratch = (work.get("stage", x), work.get("combine", x))
            assert torch.equal(ctrl.error_ratio(e0, x, y0), ctrl.error_ratio(e1, x, y1, scratch=scratch))
        x = y0 / torch.linalg.vector_norm(y0, dim=-1, keepdim=True)


def test_step_loop_reads_the_host_once_per_step_between_saves():
    """An iteration of the driver makes one host read (its flag vector); a system reaching an output time on
    its own, leaving, or an event check add a bounded number. Counted on tensor.__bool__/item/tolist/int/float
    and nonzero called from the driver module (each would be a device synchronisation on CUDA). The driver
    before the working set made about 6.5 reads per iteration here."""
    counter = _bench_step().SyncCounter
    B = 8
    x0 = ts.sample_sphere(B, 6, 3, seed=0)
    model = ts.Model(beta=torch.linspace(0.5, 6.0, B, dtype=torch.float64))

    def f(t, x, idx):
        return ts.velocity(x, model if idx is None else model.take(idx))

    same = ts.Model(beta=2.0)
    x_same = x0[:1].expand(B, -1, -1).clone()  # systems in lockstep: every output reached by all at once
    saves = torch.linspace(0.0, 3.0, 11, dtype=torch.float64)
    for solver in (Solver("dopri5", rtol=1e-8, atol=1e-10), Solver("rk4", dt=0.01)):
        with counter() as sc:
            res = integrate(f, x0, torch.tensor([0.0, 3.0], dtype=torch.float64), solver)
        iterations = int((res.steps + res.rejected).max())
        assert iterations > 25
        assert sc.count <= iterations + 3 * B + 4  # + the start; each system leaving at its own step: ≤ 3
        with counter() as sc:
            res = integrate(lambda t, x, idx: ts.velocity(x, same), x_same, saves, solver)
        iterations = int((res.steps + res.rejected).max())
        assert sc.count <= iterations + 7  # 11 outputs reached together: no extra read (+1: the check of x0)
    with counter() as sc:
        res = integrate(f, x0, torch.tensor([0.0, 3.0], dtype=torch.float64), Solver("rk4", dt=0.01),
                        events=[Clustered(1e-9)])
    assert sc.count <= 2 * int(res.steps.max()) + 3 * B + 4  # with events: one more read (did one fire?)


def test_step_benchmark_quick_runs():
    rows = _bench_step().main(["--quick"])
    from tokensphere.runtime import all_cores

    assert {r["lanes"] for r in rows.values()} == {1, all_cores()}  # one lane and every core, interleaved
    for r in rows.values():
        assert r["iterations"] > 0 and 0 < r["field"] <= r["wall"] and r["syncs"] > 0
    assert len({(r["accepted"], r["rejected"]) for r in rows.values()}) == 1  # the same steps


def test_accuracy_per_cost_panel_quick_runs():
    """The Figure 3 panel benchmark in its smoke setting: the authors' loop converges at first order in η
    (halving η roughly halves the error of the panel statistic) and our adaptive runs are more accurate."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_accuracy.py"
    spec = importlib.util.spec_from_file_location("bench_accuracy", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.main(["--panel", "--quick", "--ref-rtol", "1e-9"])
    base = [r for r in rows if r["kind"] == "baseline"]
    ours = [r for r in rows if r["kind"] == "ours"]
    assert len(base) == 3 and all(r["wall"] > 0 for r in rows)
    assert base[0]["mean"] > base[1]["mean"] > base[2]["mean"] > 0
    assert 1.3 < base[0]["mean"] / base[1]["mean"] < 3.5
    assert max(r["mean"] for r in ours) < base[-1]["mean"]


# ---------------------------------------------------------------------------------------------------------
# inputs of the step loop


def test_step_loop_refuses_malformed_inputs():
    x = ts.Uniform(batch=3, n=4, d=3, seed=0)
    with pytest.raises(ValueError, match="strictly increasing"):
        SaveAt([0.0, 1.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="1-D"):
        SaveAt([[0.0, 1.0], [2.0, 3.0]])
    with pytest.raises(ValueError, match="dt must be"):
        Solver("rk4", dt=[])
    with pytest.raises(ValueError, match="events must be callables"):
        simulate(x, 1.0, t_max=1.0, events=[1])
    with pytest.raises(ValueError, match="progress must be a callable"):
        simulate(x, 1.0, t_max=1.0, progress=1)
    with pytest.raises(ValueError, match="dt = 1e-300 is too small"):
        simulate(x, 1.0, t_max=1.0, solver="rk4", dt=1e-300)
    f = lambda t, y, idx=None: ts.velocity(y, ts.Model(beta=1.0))  # noqa: E731
    x0 = ts.Uniform(batch=2, n=4, d=3, seed=0).sample()
    with pytest.raises(ValueError, match="t0 must be a finite number"):
        integrate(f, x0, SaveAt([1.0, 2.0]), Solver("rk4", dt=0.1), t0=float("nan"))


def test_an_event_of_the_wrong_shape_is_refused_not_broadcast():
    """An event must flag each system: a 0-d result (an .any() left in) would otherwise stop every system."""
    x = ts.Uniform(batch=3, n=6, d=3, seed=1)
    with pytest.raises(ValueError, match=r"must return a \(B,\) bool tensor"):
        simulate(x, 4.0, t_max=10.0, events=[lambda t, y: Clustered()(t, y).any()])
    single = simulate(x, 1.0, t_max=40.0, events=Clustered())  # one event on its own is accepted
    listed = simulate(x, 1.0, t_max=40.0, events=[Clustered()])
    assert bool(torch.isfinite(single.event_time).all())
    assert torch.equal(single.event_time, listed.event_time)


def test_save_at_counts_of_any_integer_type():
    x = ts.Uniform(batch=1, n=4, d=3, seed=0)
    for count in (np.int64(5), torch.tensor(5), np.array(5)):
        assert simulate(x, 1.0, t_max=2.0, save_at=count).times.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    with pytest.raises(ValueError, match="save_at must be a count"):
        simulate(x, 1.0, t_max=2.0, save_at=True)
    run = simulate(x, 1.0, t_max=2.0, save_at=3)
    with pytest.raises(ValueError, match="t must be a finite number"):
        run.at(float("nan"))


def test_a_zero_dimensional_object_without_an_integer_dtype_is_not_a_count():
    from tokensphere.simulate import _save_count

    class Scalar:  # 0-d, no dtype: explicit times, not a count
        ndim = 0

    assert _save_count(Scalar()) is None and _save_count(np.array(5)) == 5 and _save_count(np.array(5.0)) is None
