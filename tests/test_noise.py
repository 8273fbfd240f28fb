"""Noisy dynamics on the sphere (Problem 7): the SDE integrators against closed forms of Brownian motion on
S^{d−1} (generator (σ²/2)Δ), their measured weak and strong orders, reproducibility, and the routing through
``simulate`` and the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tokensphere.analysis.geometry import order_parameter
from tokensphere.field import velocity
from tokensphere.init import normalize
from tokensphere.integrate import Clustered, SaveAt, Solver
from tokensphere.integrate.sde import (
    SDE_METHODS,
    SDESolver,
    continuation_seed,
    integrate_sde,
    sde_step,
    solver_from_spec,
)
from tokensphere.model import Model
from tokensphere.simulate import simulate


def _uniform(B: int, n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return normalize(torch.randn(B, n, d, generator=g, dtype=torch.float64))


def _no_drift(d: int, sigma: float) -> Model:
    """V = 0: the attention drift vanishes identically, only the noise moves the tokens."""
    return Model(beta=0.0, V=torch.zeros(d, d, dtype=torch.float64), noise=sigma)


# --------------------------------------------------------------------------------------------------------
# closed forms of Brownian motion on S^{d−1}


@pytest.mark.parametrize("d", [2, 4])
def test_heat_kernel_first_and_second_harmonics(d):
    """F = 0: E⟨x_t, x_0⟩ = e^{−(d−1)σ²t/2} (degree-1 harmonics, eigenvalue −(d−1) of Δ) and
    E⟨x_t, x_0⟩² = 1/d + (1 − 1/d) e^{−dσ²t} (the zonal degree-2 harmonic ⟨x, x_0⟩² − 1/d, eigenvalue −2d)."""
    sigma, h = 0.8, 0.01
    x0 = _uniform(1000, 8, d, seed=1)
    times = [0.0, 0.25, 0.5, 1.0, 2.0]
    traj = simulate(x0, model=_no_drift(d, sigma), solver="geodesic", dt=h, t_max=2.0, save_at=times, seed=11)
    c = (traj.positions * x0).sum(-1).flatten(1)  # (T, samples)
    M = c.shape[1]
    for k, t in enumerate(times):
        first = math.exp(-(d - 1) * sigma**2 * t / 2)
        second = 1 / d + (1 - 1 / d) * math.exp(-d * sigma**2 * t)
        m1, m2 = float(c[k].mean()), float((c[k] ** 2).mean())
        # Monte-Carlo: 4 standard errors; scheme: weak error ≤ h·t·(d σ²)²/4 (its measured constant is ~1/6·(d−1)²σ⁴)
        tol1 = 4 * float(c[k].std()) / math.sqrt(M) + h * t * (d * sigma**2) ** 2 / 4
        tol2 = 4 * float((c[k] ** 2).std()) / math.sqrt(M) + h * t * (d * sigma**2) ** 2 / 4
        assert abs(m1 - first) <= tol1 + 1e-15, (t, m1, first, tol1)
        assert abs(m2 - second) <= tol2 + 1e-15, (t, m2, second, tol2)


def test_law_tends_to_uniform():
    """Long times: mean → 0 and second moment E[x xᵀ] → I/d (the uniform measure σ_d)."""
    d, sigma = 3, 1.0
    x0 = normalize(torch.ones(1, 1, d, dtype=torch.float64)).expand(2000, 4, d).clone()  # all at one point
    traj = simulate(x0, model=_no_drift(d, sigma), solver="heun", dt=0.05, t_max=8.0, save_at=[0.0, 8.0], seed=5)
    x = traj.final().reshape(-1, d)
    M = x.shape[0]
    mean = x.mean(0)
    second = x.T @ x / M
    se_mean = x.std(0) / math.sqrt(M)
    assert bool((mean.abs() <= 4 * se_mean + 2e-3).all()), mean  # e^{−(d−1)σ²t/2} = e^{−8} ≈ 3e-4 left
    assert torch.allclose(second, torch.eye(d, dtype=torch.float64) / d, atol=4 * 0.5 / math.sqrt(M) + 1e-3)
    # the order parameter of the uniform law is O(1/√n) per system, not 1
    assert float(order_parameter(traj.final()).mean()) < 0.8
    assert float(order_parameter(x0).min()) == pytest.approx(1.0)


@pytest.mark.parametrize("method", SDE_METHODS)
def test_mean_under_rotation_drift(method):
    """n = 1 with V antisymmetric: the drift is V x (tangent), and the mean solves the linear ODE
    d/dt E x = (V − (d−1)σ²/2) E x, so E x_t = e^{−(d−1)σ²t/2} e^{tV} x_0 exactly."""
    d, sigma, omega, T, h = 3, 0.6, 2.0, 1.0, 0.01
    V = torch.zeros(d, d, dtype=torch.float64)
    V[1, 0], V[0, 1] = omega, -omega
    x0 = torch.tensor([[[1.0, 0.0, 0.0]]], dtype=torch.float64).expand(10000, 1, d).clone()
    traj = simulate(x0, model=Model(beta=1.0, V=V, noise=sigma), solver=method, dt=h, t_max=T,
                    save_at=[0.0, T], seed=2)
    x = traj.final()[:, 0]
    exact = math.exp(-(d - 1) * sigma**2 * T / 2) * (torch.linalg.matrix_exp(T * V) @ x0[0, 0])
    tol = 4 * x.std(0) / math.sqrt(x.shape[0]) + h  # Monte-Carlo, and a weak error C·h with C ≤ 1
    assert bool(((x.mean(0) - exact).abs() <= tol).all()), (x.mean(0), exact)
    # without noise the same drift would give |E x| = 1: the damping is measured, not assumed
    assert float(x.mean(0).norm()) < 0.8


# --------------------------------------------------------------------------------------------------------
# measured orders


@pytest.mark.parametrize("method", SDE_METHODS)
def test_weak_order_one(method):
    """Local weak error of one step, E⟨x_1, x_0⟩ − e^{−(d−1)σ²h/2}, is O(h²) (global weak order 1).

    Rotation invariance makes E[x_{k+1} | x_k] = m(h) x_k, so the global error of E⟨x_T, x_0⟩ is
    m(h)^{T/h} − e^{−(d−1)σ²T/2} = O(h) exactly when the local one is O(h²). The control variate
    1 − σ²|P⊥ΔW|²/2 (mean 1 − (d−1)σ²h/2, known) removes the O(h) fluctuation of the estimate."""
    d, sigma, M = 3, 1.0, 200_000
    x = _uniform(M, 1, d, seed=3)
    g = torch.Generator().manual_seed(4)
    zero = lambda t, y: torch.zeros_like(y)  # noqa: E731
    hs = [0.02, 0.01, 0.005, 0.0025]
    errs = []
    for h in hs:
        dw = torch.randn(x.shape, generator=g, dtype=torch.float64) * math.sqrt(h)
        y = sde_step(method, zero, torch.zeros(M), x, torch.full((M,), h, dtype=torch.float64), dw, sigma)
        tangent = dw - (dw * x).sum(-1, keepdim=True) * x
        control = 1 - 0.5 * sigma**2 * (tangent * tangent).sum(-1)
        local = float(((y * x).sum(-1) - control).mean()) + (1 - 0.5 * (d - 1) * sigma**2 * h)
        errs.append(local - math.exp(-0.5 * (d - 1) * sigma**2 * h))
    slope = np.polyfit(np.log(hs), np.log(np.abs(errs)), 1)[0]
    assert 1.8 <= slope <= 2.2, (method, errs, slope)


def test_strong_order_half():
    """Strong error E|x_h(T) − x_ref(T)| against a fine solution driven by the same Brownian path (increments
    summed), with the SA drift at β = 1: order ½ for every method (the projected noise is not commutative)."""
    M, n, d, sigma, T, K = 100, 3, 3, 0.7, 0.5, 9
    model = Model(beta=1.0)
    f = lambda t, x: velocity(x, model)  # noqa: E731
    x0 = _uniform(M, n, d, seed=6)
    g = torch.Generator().manual_seed(7)
    dw = torch.randn(2**K, M, n, d, generator=g, dtype=torch.float64) * math.sqrt(T / 2**K)

    def run(method: str, k: int) -> torch.Tensor:
        w = dw.reshape(2**k, 2 ** (K - k), M, n, d).sum(1)
        h = torch.full((M,), T / 2**k, dtype=torch.float64)
        x = x0
        for s in range(2**k):
            x = sde_step(method, f, torch.zeros(M), x, h, w[s], sigma)
        return x

    for method in SDE_METHODS:
        ref = run(method, K)
        ks = [2, 3, 4, 5]
        errs = [float((run(method, k) - ref).norm(dim=-1).mean()) for k in ks]
        order = np.polyfit(np.log([T / 2**k for k in ks]), np.log(errs), 1)[0]
        assert 0.35 <= order <= 0.7, (method, errs, order)


@pytest.mark.parametrize(("method", "ode"), [("euler-maruyama", "euler"), ("geodesic", "lie-euler")])
def test_zero_noise_is_the_deterministic_scheme(method, ode):
    """σ = 0: the Itô–Euler step is projected Euler + retraction and the geodesic step is the Lie–Euler rotation,
    both with the one drift field.velocity."""
    model = Model(beta=2.0)
    x0 = _uniform(3, 6, 3, seed=8)
    ref = simulate(x0, model=model, solver=ode, dt=0.05, t_max=1.0, save_at=[0.0, 0.5, 1.0])
    f = lambda t, x, idx: velocity(x, model)  # noqa: E731
    res = integrate_sde(f, x0, SaveAt(torch.tensor([0.0, 0.5, 1.0])), SDESolver(method, 0.05, 0), 0.0)
    assert torch.allclose(res.positions, ref.positions, atol=1e-13, rtol=0)


def test_zero_noise_heun_is_second_order():
    """σ = 0: the Stratonovich Heun step (predictor retracted) is a second-order scheme for the drift: error against
    a tight dopri5 solution falls as h²."""
    model = Model(beta=2.0)
    x0 = _uniform(2, 6, 3, seed=8)
    ref = simulate(x0, model=model, rtol=1e-12, atol=1e-14, t_max=1.0, save_at=[0.0, 1.0]).final()
    f = lambda t, x, idx: velocity(x, model)  # noqa: E731
    hs = [0.1, 0.05, 0.025, 0.0125]
    errs = [float((integrate_sde(f, x0, SaveAt(torch.tensor([0.0, 1.0])), SDESolver("heun", h, 0), 0.0).positions[-1]
                   - ref).abs().max()) for h in hs]
    order = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert 1.8 <= order <= 2.2, errs


# --------------------------------------------------------------------------------------------------------
# invariants and reproducibility


@pytest.mark.parametrize("method", SDE_METHODS)
def test_stays_on_sphere_and_lands_on_save_times(method):
    x0 = _uniform(4, 16, 3, seed=9)
    traj = simulate(x0, model=Model(beta=4.0, noise=0.5), solver=method, dt=0.03, t_max=2.0,
                    save_at=[0.0, 0.1, 1.0, 2.0], seed=1)
    assert float((traj.positions.norm(dim=-1) - 1).abs().max()) < 1e-12
    assert torch.equal(traj.positions[0], x0)
    # 0.1/0.03 → 4 steps, 0.9/0.03 → 30, 1.0/0.03 → 34: intervals cut into equal steps ≤ dt
    assert traj.steps.tolist() == [68] * 4
    assert traj.metadata["field_evaluations"] > 0


def test_same_seed_same_path_and_seeds_differ():
    x0 = _uniform(2, 8, 3, seed=10)
    model = Model(beta=1.0, noise=0.4)
    run = lambda seed: simulate(x0, model=model, solver="heun", dt=0.05, t_max=1.0, save_at=5, seed=seed)  # noqa
    a, b, c = run(3), run(3), run(4)
    assert torch.equal(a.positions, b.positions)
    assert not torch.allclose(a.final(), c.final(), atol=1e-3)
    assert a.solver.describe() == {"kind": "stochastic", "method": "heun", "dt": 0.05, "seed": 3, "streams": None}


def test_continuation_draws_new_reproducible_increments():
    x0 = _uniform(2, 8, 3, seed=12)
    model = Model(beta=1.0, noise=0.4)
    first = simulate(x0, model=model, solver="geodesic", dt=0.05, t_max=1.0, save_at=3, seed=3)
    c1 = simulate(first, t_max=2.0, save_at=3)
    c2 = simulate(first, t_max=2.0, save_at=3)
    assert torch.equal(c1.positions, c2.positions)
    assert c1.solver.seed == continuation_seed(3, 1.0) != 3
    # restarting from the final state with the original seed replays the first increments: a different path
    replay = simulate(first.final(), model=model, solver="geodesic", dt=0.05, t_max=1.0, save_at=3, seed=3)
    assert not torch.allclose(replay.final(), c1.final(), atol=1e-3)


def test_noise_is_part_of_the_model_spec():
    m = Model(beta=2.0, noise=0.25)
    spec, arrays = m.to_spec()
    assert spec["noise"] == 0.25
    assert Model.from_spec(spec, arrays).noise == 0.25
    assert Model().noise == 0.0
    assert m.describe()["noise"] == 0.25
    s = SDESolver("euler-maruyama", 0.1, 7)
    assert solver_from_spec(s.describe()) == s
    assert solver_from_spec(Solver("rk4", dt=0.1).describe()) == Solver("rk4", dt=0.1)


def test_noisy_run_saves_and_loads(tmp_path):
    from tokensphere.trajectory import Trajectory

    traj = simulate(_uniform(1, 4, 3, seed=1), model=Model(noise=0.3), solver="geodesic", dt=0.1, t_max=0.5,
                    save_at=3, seed=2)
    path = traj.save(tmp_path / "run.zarr")
    assert Trajectory.load(path) == traj


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"solver": "dopri5", "dt": 0.1}, ["dopri5", "euler-maruyama", "heun", "geodesic"]),
        ({"solver": Solver("rk4", dt=0.1)}, ["rk4", "stochastic"]),
        ({"solver": "heun"}, ["dt"]),
        ({"solver": "heun", "dt": 0.1, "rtol": 1e-3}, ["rtol"]),
        ({"solver": "heun", "dt": -0.1}, ["dt"]),
        ({"solver": "heun", "dt": 0.1, "seed": -1}, ["seed"]),
        ({"solver": "heun", "dt": 0.1, "events": [Clustered(1e-3)]}, ["events"]),
        ({"solver": SDESolver("heun", 0.1, 1), "seed": 3}, ["seed"]),
    ],
)
def test_bad_input_with_noise(kwargs, words):
    with pytest.raises(ValueError) as err:
        simulate(_uniform(1, 4, 3, seed=1), model=Model(noise=0.3), t_max=0.5, save_at=3, **kwargs)
    for w in words:
        assert w in str(err.value)


@pytest.mark.parametrize(
    ("make", "word"),
    [
        (lambda: Model(noise=-0.1), "noise"),
        (lambda: Model(noise=float("inf")), "noise"),
        (lambda: Model(noise=0.1, projection=False), "projection"),
        (lambda: SDESolver("rk4", 0.1), "solver"),
        (lambda: SDESolver("heun", 0.0), "dt"),
        (lambda: simulate(_uniform(1, 4, 3, seed=1), beta=1.0, seed=3, t_max=0.5), "seed"),
    ],
)
def test_bad_noise_parameters(make, word):
    with pytest.raises(ValueError, match=word):
        make()


def test_cli_noise_options(tmp_path):
    from typer.testing import CliRunner

    from tokensphere.cli import app

    out = tmp_path / "noisy.zarr"
    args = ["simulate", "--out", str(out), "--n", "6", "--d", "3", "--beta", "1", "--t-max", "0.5",
            "--save-at", "3", "--noise", "0.3", "--noise-seed", "4", "--dt", "0.05"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "geodesic" in res.output and "order parameter" in res.output and out.exists()
    bad = CliRunner().invoke(app, [*args[:-4], "--noise", "0.3", "--solver", "rk4", "--dt", "0.1", "--overwrite"])
    assert bad.exit_code == 2 and "stochastic" in bad.output


# --------------------------------------------------------------------------------------------------------
# the (β, σ) phase diagram


def test_uniform_stability_threshold_closed_forms():
    """σ_c² = 2/d at β = 0 (Kuramoto-type coupling on S^{d−1}) and σ_c² β → 2 as β → ∞ (Laplace at s = 1)."""
    from tokensphere.theory import uniform_stability_threshold

    for d in (2, 3, 5):
        assert float(uniform_stability_threshold(0.0, d)) == pytest.approx(math.sqrt(2 / d), rel=1e-8)
        assert float(uniform_stability_threshold(400.0, d)) ** 2 * 400 == pytest.approx(2.0, rel=0.02)
    s = uniform_stability_threshold([0.0, 1.0, 4.0, 16.0], 3)
    assert bool(np.all(np.diff(s) < 0))


def test_phase_diagram_clustered_below_and_spread_above_threshold():
    """β = 0, d = 3: σ = 0.2 ≪ σ_c = 0.816 keeps one noisy cluster (r ≈ 1 − O(σ²)); σ = 1.6 ≫ σ_c leaves the
    tokens nearly independent (r near its uniform level ≈ 0.16 for n = 32)."""
    from tokensphere.experiments.noise import noise_phase_diagram

    out = noise_phase_diagram(betas=[0.0], sigmas=[0.2, 1.6], starts=2, t_max=10.0, dt=0.05)
    low, high = out["r_mean"][0][0], out["r_mean"][1][0]
    assert low > 0.9
    assert high < 0.4
    # CLT: (1/n) Σ x_i ≈ N(0, I/(3n)), so E r ≈ E|g|/√(3n) with E|g| = √(8/π) for g standard normal in R³
    assert out["r_uniform"] == pytest.approx(math.sqrt(8 / math.pi) / math.sqrt(3 * 32), rel=0.05)


@pytest.mark.slow
def test_noise_report_section():
    from tokensphere.report.noise import noise_section

    section = noise_section(quick=True)
    assert section.figures and all(v.passed for v in section.verdicts)


def test_noise_phase_example(tmp_path):
    import importlib.util
    from pathlib import Path

    import matplotlib.image

    path = Path(__file__).resolve().parent.parent / "examples" / "noise_phase.py"
    spec = importlib.util.spec_from_file_location("noise_phase", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "noise.png"
    data = mod.main(["--out", str(out), "--t-max", "2", "--starts", "1"])
    assert matplotlib.image.imread(out).shape[0] > 100
    assert len(data["r_mean"]) == len(data["sigmas"])


def test_float32_and_layerwise_weights():
    """float32 states stay on the sphere to float32 accuracy; piecewise-constant weights (a Layerwise schedule) are
    stepped interval by interval: with σ = 0 the geodesic step equals the deterministic Lie–Euler run."""
    from tokensphere.model import Layerwise

    x0 = _uniform(2, 6, 3, seed=13)
    traj = simulate(x0, model=Model(beta=1.0, noise=0.5), solver="heun", dt=0.05, t_max=1.0, save_at=3, seed=1,
                    dtype="float32")
    assert traj.positions.dtype == torch.float32
    assert float((traj.positions.norm(dim=-1) - 1).abs().max()) < 1e-6
    g = torch.Generator().manual_seed(0)
    V = torch.randn(3, 3, 3, generator=g, dtype=torch.float64) / 2
    sched = Layerwise(0.33, V=V)  # layers [0, 0.33), [0.33, 0.66), [0.66, ...): a step of 0.11 lands on each jump
    model = Model(beta=1.0, V=V[0], schedule=sched)
    ref = simulate(x0, model=model, solver="lie-euler", dt=0.11, t_max=0.99, save_at=[0.0, 0.99])
    f = lambda t, x, idx: velocity(x, model, t)  # noqa: E731
    bp = torch.tensor(sched.breakpoints(0.99), dtype=torch.float64)
    save = SaveAt(torch.tensor([0.0, 0.99], dtype=torch.float64))
    res = integrate_sde(f, x0, save, SDESolver("geodesic", 0.11, 0), 0.0, breakpoints=bp)
    assert res.steps.tolist() == ref.steps.tolist() == [9, 9]
    assert torch.allclose(res.positions[-1], ref.positions[-1], atol=1e-12)


@pytest.mark.parametrize("d", [2, 3, 5])
def test_uniform_stability_threshold_at_large_beta_against_the_defining_integrals(d):
    """σ_c² = 2 E[e^{βs}(1 − s²)] / ((d − 1) E[e^{βs}]) with s of density ∝ (1 − s²)^{(d−3)/2}: both integrals
    taken after the substitution u = β(1 − s), which resolves the e^{−u} peak that a quadrature in s misses once
    it is narrower than the grid (β ≳ 10^4)."""
    from scipy.integrate import quad

    from tokensphere.theory import uniform_stability_threshold

    for beta in (1e2, 1e4, 1e6):
        def moment(extra):
            f = lambda u: math.exp(-u) * (u / beta * (2 - u / beta)) ** ((d - 3) / 2 + extra)  # noqa: E731
            return quad(f, 0.0, 2 * beta, points=[1.0, 10.0, 50.0], limit=400)[0]

        expected = 2 * moment(1) / ((d - 1) * moment(0))
        assert float(uniform_stability_threshold(beta, d)) ** 2 == pytest.approx(expected, rel=1e-8)


def test_heat_kernel_check_takes_the_samples_it_is_given():
    from tokensphere.experiments.noise import heat_kernel_agreement

    for bad in (0, -100, 10):
        with pytest.raises(ValueError, match="samples must be"):
            heat_kernel_agreement(samples=bad)


def test_a_systems_noise_does_not_depend_on_its_batch():
    """One Brownian stream per system: system b run alone (as stream b) follows the path it follows inside the
    batch, and two systems with the same start but other streams part ways."""
    x0 = _uniform(3, 6, 3, seed=21)
    model = Model(beta=1.0, noise=0.4)
    both = simulate(x0, model=model, solver=SDESolver("heun", dt=0.05, seed=5), t_max=1.0, save_at=3)
    for b in range(3):
        alone = simulate(x0[b:b + 1], model=model, solver=SDESolver("heun", dt=0.05, seed=5, streams=(b,)),
                         t_max=1.0, save_at=3)
        torch.testing.assert_close(alone.positions[:, 0], both.positions[:, b], rtol=0, atol=1e-13)
    twin = torch.cat([x0[:1], x0[:1]])  # same start, streams 0 and 1
    pair = simulate(twin, model=model, solver=SDESolver("heun", dt=0.05, seed=5), t_max=1.0, save_at=3)
    assert not torch.allclose(pair.final()[0], pair.final()[1], atol=1e-3)


def test_one_stream_number_gives_one_path_common_random_numbers():
    """Two systems with the same start, β and stream number follow one path exactly; a third on another stream
    does not."""
    x0 = _uniform(1, 6, 3, seed=2).repeat(3, 1, 1)
    traj = simulate(x0, model=Model(beta=2.0, noise=0.5), solver=SDESolver("geodesic", dt=0.05, seed=1,
                                                                           streams=(7, 7, 8)), t_max=1.0, save_at=2)
    assert torch.equal(traj.final()[0], traj.final()[1])
    assert not torch.allclose(traj.final()[0], traj.final()[2], atol=1e-3)


def test_noise_phase_diagram_value_at_a_beta_does_not_depend_on_the_other_betas():
    from tokensphere.experiments.noise import noise_phase_diagram

    one = noise_phase_diagram(betas=[1.0], sigmas=[0.5], t_max=2.0, starts=2, n=8)
    two = noise_phase_diagram(betas=[0.0, 1.0], sigmas=[0.5], t_max=2.0, starts=2, n=8)
    assert abs(one["r_mean"][0][0] - two["r_mean"][0][1]) <= 1e-12


def test_sde_streams_are_checked_and_stored():
    with pytest.raises(ValueError, match="streams"):
        SDESolver("heun", dt=0.1, streams=(0, -1))
    x0 = _uniform(2, 4, 3, seed=1)
    with pytest.raises(ValueError, match="streams number 3 systems but the batch has 2"):
        simulate(x0, model=Model(beta=1.0, noise=0.3), solver=SDESolver("heun", dt=0.1, streams=(0, 1, 2)),
                 t_max=0.2, save_at=2)
    s = SDESolver("geodesic", dt=0.1, seed=2, streams=(4, 9))
    assert SDESolver.from_spec(s.describe()) == s
    old = {"kind": "stochastic", "method": "heun", "dt": 0.1, "seed": 3}  # stored before streams existed
    assert SDESolver.from_spec(old) == SDESolver("heun", dt=0.1, seed=3)
