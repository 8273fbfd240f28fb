"""The circle d = 2 in angles (tokensphere.circle): the angle form (7.1) against the vector field, angle runs
against vector runs, Kuramoto (7.2)/(7.5) against the independent package ``kuramoto``, and the Hessian of E_β
on the torus (Appendix B) against autograd, finite differences and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from kuramoto import Kuramoto
from scipy.integrate import odeint

import tokensphere as ts
from tokensphere.circle import (
    angle_velocity,
    angles_to_positions,
    classify_critical_point,
    find_critical_points,
    kuramoto_velocity,
    newton_critical_point,
    order_parameter,
    positions_to_angles,
    simulate_angles,
    simulate_kuramoto,
    torus_energy,
    torus_gradient,
    torus_hessian,
    torus_hessian_spectrum,
)
from tokensphere.theory import g_function, large_beta_threshold_d2, tau_star

F64 = torch.float64


def _angles(B: int, n: int, seed: int) -> torch.Tensor:
    return 2 * math.pi * torch.rand((B, n), generator=torch.Generator().manual_seed(seed), dtype=F64)


def _circ(d: torch.Tensor) -> torch.Tensor:
    """Differences of angles mapped to (−π, π]."""
    return torch.pi - torch.remainder(torch.pi - d, 2 * torch.pi)


def _vector_form(theta: torch.Tensor, model: ts.Model) -> torch.Tensor:
    """⟨ẋ_i, (−sin θ_i, cos θ_i)⟩ for the package's vector field at x_i = (cos θ_i, sin θ_i)."""
    perp = torch.stack((-torch.sin(theta), torch.cos(theta)), -1)
    return (ts.velocity(angles_to_positions(theta), model) * perp).sum(-1)


# ------------------------------------------------------------------------------------------------------------
# the angle form (7.1)

CASES = [("softmax", "original", b) for b in (0.0, 0.5, 4.0, 30.0, 300.0, 1e3, 1e4)]
CASES += [("uniform", "original", b) for b in (0.0, 0.5, 4.0, 30.0, 300.0)]
CASES += [("uniform", "exp_beta", b) for b in (0.0, 0.5, 4.0, 30.0, 300.0, 1e3, 1e4)]


@pytest.mark.parametrize("normalization,time_scale,beta", CASES)
def test_angle_form_equals_vector_field(normalization, time_scale, beta):
    theta = _angles(3, 9, seed=int(beta) % 7)
    theta[0, 1] = theta[0, 0] + 1e-9  # a nearly coincident pair
    model = ts.Model(beta=beta, normalization=normalization, time_scale=time_scale)
    ref = _vector_form(theta, model)
    got = angle_velocity(theta, beta, normalization, time_scale)
    assert got.shape == (3, 9) and got.dtype == F64
    assert float((got - ref).abs().max()) <= 1e-13 * max(1.0, float(ref.abs().max()))


def test_angle_form_per_system_beta():
    theta = _angles(4, 7, seed=1)
    beta = torch.tensor([0.0, 1.0, 9.0, 2e3], dtype=F64)
    ref = _vector_form(theta, ts.Model(beta=beta))
    assert float((angle_velocity(theta, beta) - ref).abs().max()) <= 1e-13


def test_angle_form_at_beta_zero_is_kuramoto_with_unit_coupling():
    theta = _angles(3, 11, seed=2)
    kur = kuramoto_velocity(theta, None, 1.0)
    for normalization in ("softmax", "uniform"):
        assert float((angle_velocity(theta, 0.0, normalization) - kur).abs().max()) <= 1e-15
    # the vector form at β = 0 is the same field
    assert float((_vector_form(theta, ts.Model(beta=0.0)) - kur).abs().max()) <= 1e-15
    # and the runs with the same fixed-step method agree to round-off
    run_sa = simulate_angles(theta, 0.0, t_max=3.0, save_at=4, solver="rk4", dt=0.01)
    run_k = simulate_kuramoto(theta, None, 1.0, t_max=3.0, save_at=4, solver="rk4", dt=0.01)
    assert float((run_sa.theta - run_k.theta).abs().max()) <= 1e-13


def test_usa_conserves_the_mean_angle():
    """Pair forces of (USA) are antisymmetric: Σ_i θ̇_i = 0 (not so for SA, whose rows are normalised apart)."""
    theta = _angles(3, 10, seed=15)
    for beta in (0.0, 2.0, 50.0):
        usa = angle_velocity(theta, beta, "uniform")
        assert float(usa.sum(-1).abs().max()) <= 1e-14 * max(1.0, float(usa.abs().max()))
    assert float(angle_velocity(theta, 2.0).sum(-1).abs().min()) > 1e-3


def test_usa_is_n_times_the_gradient_of_the_energy():
    theta = _angles(2, 6, seed=3)
    for beta in (0.0, 2.0):
        usa = angle_velocity(theta, beta, "uniform")
        assert float((usa - 6 * torus_gradient(theta, beta)).abs().max()) <= 1e-14 * max(1.0, math.exp(beta))


def test_angle_form_on_stationary_states():
    """Consensus and the antipodal pair are stationary (every β); the regular polygon too (by symmetry)."""
    poly = (2 * math.pi * torch.arange(7, dtype=F64) / 7).unsqueeze(0)
    for beta in (0.0, 3.0, 1e4):
        for theta in (torch.full((1, 5), 0.3, dtype=F64), torch.tensor([[0.2, 0.2 + math.pi]], dtype=F64), poly):
            assert float(angle_velocity(theta, beta).abs().max()) <= 1e-15


@pytest.mark.parametrize("normalization,time_scale,beta,t_max", [
    ("softmax", "original", 1.0, 5.0),
    ("softmax", "original", 4.0, 10.0),
    ("uniform", "original", 1.0, 3.0),
    ("uniform", "exp_beta", 20.0, 5.0),
])
def test_angle_runs_match_vector_runs(normalization, time_scale, beta, t_max):
    """Both integrated by adaptive dopri5 at rtol 1e-10: the runs agree to the integrators' accuracy."""
    theta0 = _angles(3, 12, seed=4)
    tol = dict(rtol=1e-10, atol=1e-12)
    ang = simulate_angles(theta0, beta, normalization=normalization, time_scale=time_scale, t_max=t_max,
                          save_at=6, **tol)
    vec = ts.simulate(angles_to_positions(theta0), beta, normalization=normalization, time_scale=time_scale,
                      t_max=t_max, save_at=6, **tol)
    assert ang.theta.shape == (6, 3, 12)
    assert torch.equal(ang.times, vec.times)
    moved = float(_circ(ang.theta[-1] - theta0).abs().max())
    assert moved > 0.1  # the runs go somewhere
    assert float(_circ(ang.theta - positions_to_angles(vec.positions)).abs().max()) <= 1e-7
    assert float((ang.positions() - vec.positions).abs().max()) <= 1e-7


def test_angle_runs_per_system_beta_and_fixed_step():
    theta0 = _angles(1, 8, seed=5)
    beta = torch.tensor([1.0, 5.0], dtype=F64)
    both = simulate_angles(theta0, beta, t_max=2.0, save_at=3, solver="rk4", dt=0.01)
    for k in range(2):
        one = simulate_angles(theta0, float(beta[k]), t_max=2.0, save_at=3, solver="rk4", dt=0.01)
        assert float((both.theta[:, k] - one.theta[:, 0]).abs().max()) <= 1e-14
    assert both.steps.tolist() == [200, 200]


# ------------------------------------------------------------------------------------------------------------
# Kuramoto (7.2), (7.5) against the package `kuramoto` (complete graph)


def _reference(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 2 * np.pi, n), rng.normal(size=n)


def test_kuramoto_field_matches_the_package():
    """The package's coupling is K / (number of nonzero entries in a column of the adjacency matrix): with the
    all-ones matrix (self-loops included, sin 0 = 0) that is K/n, the normalisation of (7.2)."""
    n, K = 12, 1.7
    theta, omega = _reference(n, 0)
    pkg = Kuramoto(coupling=K, natfreqs=omega)
    ref = pkg.derivative(theta, 0.0, np.ones((n, n)), K / n)
    got = kuramoto_velocity(torch.tensor(theta).unsqueeze(0), torch.tensor(omega), K)[0].numpy()
    assert np.abs(got - ref).max() <= 1e-14
    # the O(n) order-parameter form equals the pairwise sum (7.5) with h = sin
    pair = kuramoto_velocity(torch.tensor(theta).unsqueeze(0), torch.tensor(omega), K, h=torch.sin)[0].numpy()
    assert np.abs(got - pair).max() <= 1e-14


def test_kuramoto_trajectories_match_the_package_run():
    """``Kuramoto.run`` integrates with scipy's odeint at its default tolerances (rtol = atol = 1.49e-8, not
    settable through the package) on t = linspace(0, T, int(T/dt)). Ours at rtol 1e-12. The agreement is
    bounded by odeint's global error: 1e-5 allows ~700 times its local tolerance over 400 output times."""
    n, K, T, dt = 10, 2.0, 10.0, 0.025
    theta, omega = _reference(n, 1)
    act = Kuramoto(coupling=K, dt=dt, T=T, natfreqs=omega).run(adj_mat=np.ones((n, n)), angles_vec=theta)
    times = np.linspace(0, T, int(T / dt))
    ours = simulate_kuramoto(torch.tensor(theta), torch.tensor(omega), K, t_max=T, save_at=torch.tensor(times),
                             rtol=1e-12, atol=1e-12)
    assert act.shape == (n, times.size)
    assert np.abs(ours.theta[:, 0, :].numpy().T - act).max() <= 1e-5


def test_kuramoto_trajectories_match_the_package_field_at_tight_tolerance():
    """The package's own right-hand side integrated by odeint at rtol = atol = 1e-13: agreement ~1e-10."""
    n, K, T = 9, 0.8, 8.0
    theta, omega = _reference(n, 2)
    pkg = Kuramoto(coupling=K, natfreqs=omega)
    times = np.linspace(0, T, 17)
    ref = odeint(pkg.derivative, theta, times, args=(np.ones((n, n)), K / n), rtol=1e-13, atol=1e-13)
    ours = simulate_kuramoto(torch.tensor(theta), torch.tensor(omega), K, t_max=T, save_at=torch.tensor(times),
                             rtol=1e-12, atol=1e-13)
    assert np.abs(ours.theta[:, 0, :].numpy() - ref).max() <= 1e-9


def test_generalised_kuramoto_with_the_attention_coupling_is_usa():
    """(7.5) with h(u) = e^{β cos u} sin u, ω = 0, K = 1 is (USA) (7.1)."""
    theta = _angles(2, 8, seed=6)
    beta = 3.0
    got = kuramoto_velocity(theta, None, 1.0, h=lambda u: torch.exp(beta * torch.cos(u)) * torch.sin(u))
    ref = angle_velocity(theta, beta, "uniform")
    assert float((got - ref).abs().max()) <= 1e-13 * math.exp(beta)


def test_identical_oscillators_synchronise_from_a_half_circle():
    """ω = 0, K > 0, all phases in an open half-circle: r(t) is non-decreasing (θ̇ = n∇F with F = K r²/2,
    (7.3)) and tends to 1 (Lemma 6.4)."""
    theta0 = (math.pi - 0.2) * torch.rand((4, 10), generator=torch.Generator().manual_seed(7), dtype=F64)
    run = simulate_kuramoto(theta0, None, torch.tensor([0.5, 1.0, 1.5, 2.0], dtype=F64), t_max=40.0, save_at=81,
                            rtol=1e-10, atol=1e-12)
    r, _ = run.order_parameter()
    assert r.shape == (81, 4)
    assert bool((r[1:] >= r[:-1] - 1e-12).all())
    assert float(r[0].max()) < 0.9 and float(1 - r[-1].min()) < 1e-10


def test_kuramoto_natural_frequencies_and_per_system_coupling():
    """Uncoupled oscillators rotate at their own frequencies: θ(t) = θ0 + ω t."""
    theta0 = _angles(1, 5, seed=8)
    omega = torch.tensor([0.0, 1.0, -2.0, 0.5, 3.0], dtype=F64)
    run = simulate_kuramoto(theta0, omega, 0.0, t_max=2.0, save_at=3, rtol=1e-12, atol=1e-12)
    assert float((run.theta[-1, 0] - (theta0[0] + 2.0 * omega)).abs().max()) <= 1e-10


def test_order_parameter():
    poly = 2 * math.pi * torch.arange(6, dtype=F64) / 6
    r, _ = order_parameter(poly)
    assert float(r) <= 1e-15
    r, psi = order_parameter(torch.full((2, 3, 4), 0.7, dtype=F64))
    assert r.shape == (2, 3) and float((r - 1).abs().max()) <= 1e-15 and float((psi - 0.7).abs().max()) <= 1e-15


# ------------------------------------------------------------------------------------------------------------
# E_β on the torus: gradient and Hessian (Appendix B)


@pytest.mark.parametrize("beta", [0.0, 0.5, 3.0, 20.0])
def test_gradient_and_hessian_match_autograd(beta):
    theta = _angles(1, 6, seed=9)[0]
    grad = torch.autograd.functional.jacobian(lambda t: torus_energy(t, beta), theta)
    hess = torch.autograd.functional.hessian(lambda t: torus_energy(t, beta), theta)
    scale = math.exp(beta) * (1 + beta)
    assert float((torus_gradient(theta, beta) - grad).abs().max()) <= 1e-14 * scale
    assert float((torus_hessian(theta, beta) - hess).abs().max()) <= 1e-14 * scale * (1 + beta)


@given(st.integers(1, 3), st.integers(1, 7), st.floats(0.0, 60.0), st.integers(0, 2**31 - 1))
def test_torus_landscape_properties(B, n, beta, seed):
    """For any shape, β and angles: the Hessian is symmetric with H·1 = 0 (rotation mode), the gradient sums
    to 0, (USA) is n∇E_β, and everything is finite in the scaled form."""
    theta = _angles(B, n, seed)
    hess = torus_hessian(theta, beta, scaled=True)
    grad = torus_gradient(theta, beta, scaled=True)
    assert hess.shape == (B, n, n) and grad.shape == (B, n)
    assert bool(torch.isfinite(hess).all()) and bool(torch.isfinite(grad).all())
    assert torch.equal(hess, hess.transpose(-1, -2))
    assert float(hess.sum(-1).abs().max()) <= 1e-15 * n * (1 + beta)
    assert float(grad.sum(-1).abs().max()) <= 1e-16 * n
    usa = angle_velocity(theta, beta, "uniform", "exp_beta")
    assert float((usa - n * grad).abs().max()) <= 1e-15 * n


def test_hessian_matches_finite_differences_of_the_gradient():
    theta = _angles(1, 5, seed=10)[0]
    beta, h = 2.0, 1e-5
    fd = torch.stack([(torus_gradient(theta + h * e, beta) - torus_gradient(theta - h * e, beta)) / (2 * h)
                      for e in torch.eye(5, dtype=F64)], dim=1)
    hess = torus_hessian(theta, beta)
    # central differences: error ~ h² |∂³E| ≲ h² e^β (1 + β)³
    assert float((hess - fd).abs().max()) <= 10 * h * h * math.exp(beta) * (1 + beta) ** 3
    assert float((hess - hess.T).abs().max()) == 0.0
    assert float(hess.sum(-1).abs().max()) <= 1e-15 * math.exp(beta) * (1 + beta)


def test_energy_gradient_hessian_batched_and_scaled():
    theta = _angles(3, 5, seed=11)
    beta = torch.tensor([0.5, 5.0, 40.0], dtype=F64)
    for fn in (torus_energy, torus_gradient, torus_hessian):
        full, scaled = fn(theta, beta), fn(theta, beta, scaled=True)
        for b in range(3):
            one = fn(theta[b], float(beta[b]))
            assert float((full[b] - one).abs().max()) <= 1e-15 * float(one.abs().max())
            assert float((scaled[b] * math.exp(beta[b]) - one).abs().max()) <= 1e-13 * float(one.abs().max())
    # e^{−β}E_β at consensus is 1/(2β) (E_β = e^β/(2β), Remark 3.8); finite at β = 10^4
    assert float(torus_energy(torch.zeros(4, dtype=F64), 1e4, scaled=True)) == pytest.approx(1 / 2e4, rel=1e-15)
    # the β = 0 finite part equals the package's energy
    assert float(torus_energy(theta[0], 0.0)) == pytest.approx(
        float(ts.energy(angles_to_positions(theta[:1]), 0.0)), rel=1e-14)


def test_energy_matches_the_vector_energy():
    theta = _angles(2, 7, seed=12)
    for beta in (0.3, 6.0):
        ref = ts.energy(angles_to_positions(theta), beta)
        assert float((torus_energy(theta, beta) - ref).abs().max()) <= 1e-14 * float(ref.abs().max())


# ------------------------------------------------------------------------------------------------------------
# critical points


@pytest.mark.parametrize("beta", [0.0, 1.0, 10.0, 1e3])
def test_consensus_is_a_maximum_with_eigenvalues_minus_one_over_n(beta):
    """H = (e^β/n²)(11ᵀ − n I) at consensus: on 1^⊥ every eigenvalue of e^{−β}H is −1/n."""
    theta = torch.full((6,), 1.3, dtype=F64)
    assert classify_critical_point(theta, beta) == "maximum"
    assert float((torus_hessian_spectrum(theta, beta) + 1 / 6).abs().max()) <= 1e-15


@pytest.mark.parametrize("n1,n2", [(3, 2), (4, 1)])
@pytest.mark.parametrize("beta", [0.0, 1.0, 5.0])
def test_two_antipodal_clusters_are_strict_saddles(beta, n1, n2):
    """n1 points at 0, n2 at π: e^{−β}H has eigenvalue e^{−2β}/n (the clusters rotating apart), and
    (−n1 + n2 e^{−2β})/n² (n1 − 1 times), (−n2 + n1 e^{−2β})/n² (n2 − 1 times). (4, 1) at β = 0 is the
    stationary configuration of Theorem 4.1 that is not generic."""
    n = n1 + n2
    theta = torch.tensor([0.0] * n1 + [math.pi] * n2, dtype=F64)
    q = math.exp(-2 * beta)
    expected = sorted([q / n] + [(-n1 + n2 * q) / n**2] * (n1 - 1) + [(-n2 + n1 * q) / n**2] * (n2 - 1))
    assert torus_hessian_spectrum(theta, beta).tolist() == pytest.approx(expected, abs=1e-15)
    assert classify_critical_point(theta, beta) == "strict saddle"


def test_classification_tolerance_resolves_far_clusters():
    """At β = 15 the positive eigenvalue e^{−2β}/n ≈ 2e−14 is 1.6e−13 of the largest: zero at the default tol
    (1e−10), resolved with tol = 1e−14."""
    theta = torch.tensor([0.0, 0.0, 0.0, math.pi, math.pi], dtype=F64)
    assert classify_critical_point(theta, 15.0) == "degenerate"
    assert classify_critical_point(theta, 15.0, tol=1e-14) == "strict saddle"


@pytest.mark.parametrize("n", [5, 6, 8])
@pytest.mark.parametrize("beta", [0.0, 0.7, 2.0, 6.0, 50.0])
def test_regular_polygon_spectrum_in_closed_form(n, beta):
    """The Hessian at the regular n-gon is circulant: λ_p = (1/n²) Σ_{m=1}^{n−1} g(2πm/n)(cos(2πpm/n) − 1),
    p = 1, …, n − 1 (p = 0 is the rotation); g from tokensphere.theory (Figure 6). The classification follows
    the signs of the λ_p: all positive ("minimum") once the spacing 2π/n exceeds τ*_β (g < 0 beyond it)."""
    poly = 2 * math.pi * torch.arange(n, dtype=F64) / n
    m = np.arange(1, n)
    g = g_function(2 * np.pi * m / n, beta) * math.exp(-beta)
    lam = np.sort([(g * (np.cos(2 * np.pi * p * m / n) - 1)).sum() / n**2 for p in range(1, n)])
    got = torus_hessian_spectrum(poly, beta).numpy()
    assert np.abs(got - lam).max() <= 1e-15 * max(1.0, beta)
    kind = classify_critical_point(poly, beta)
    top = np.abs(lam).max()
    if (lam > 1e-10 * top).all():
        assert kind == "minimum"
    elif (lam > 1e-10 * top).any():
        assert kind == "strict saddle"
    if beta > 0 and 2 * math.pi / n > tau_star(beta):
        assert kind == "minimum"


def test_not_critical_is_reported():
    assert classify_critical_point(_angles(1, 5, seed=13)[0], 1.0) == "not critical"
    assert classify_critical_point(_angles(3, 5, seed=13), 1.0) == ["not critical"] * 3


def test_newton_converges_to_the_polygon_and_to_consensus():
    n = 6
    poly = 2 * math.pi * torch.arange(n, dtype=F64) / n
    gen = torch.Generator().manual_seed(14)
    starts = torch.stack([poly + 1e-3 * torch.randn(n, generator=gen, dtype=F64),
                          0.5 + 1e-2 * torch.randn(n, generator=gen, dtype=F64)])
    theta, ok = newton_critical_point(starts, 3.0)
    assert ok.tolist() == [True, True]
    assert float(_circ(torch.diff(theta[0]) - 2 * math.pi / n).abs().max()) <= 1e-12
    assert float(_circ(theta[1] - theta[1, 0]).abs().max()) <= 1e-12


def test_critical_points_below_beta_one_are_consensus_or_strict_saddles():
    """Theorem 4.3 on the circle (β ≤ 1): every critical point other than consensus has a positive Hessian
    eigenvalue. Newton from seeded starts reaches several kinds; only consensus is a maximum."""
    found = find_critical_points(5, 0.8, starts=48, seed=0)
    assert found.converged >= 24 and len(found.kind) >= 3
    assert int(found.count.sum()) == found.converged
    for theta, kind in zip(found.theta, found.kind):
        spread = float(_circ(theta - theta[0]).abs().max())
        if kind == "maximum":
            assert spread <= 1e-8
        else:
            assert kind in ("strict saddle", "minimum") and spread > 0.1
    assert float(torus_gradient(found.theta, 0.8, scaled=True).abs().max()) <= 1e-12


def test_above_the_large_beta_threshold_only_consensus_is_a_maximum():
    """Theorem 5.1 on the circle with (n − 1)τ*_β < π: Newton and ascent-then-Newton from seeded starts find
    consensus as the one maximum; every other critical point has a positive Hessian eigenvalue."""
    n = 4
    beta = 1.05 * large_beta_threshold_d2(n) + 1.0
    assert (n - 1) * tau_star(beta) < math.pi
    found = find_critical_points(n, beta, starts=16, seed=2, method="both")
    assert found.starts == 32 and found.converged >= 16
    assert found.kind.count("maximum") == 1 and len(found.kind) >= 3
    for theta, kind, lam in zip(found.theta, found.kind, found.spectrum):
        if kind == "maximum":
            assert float(_circ(theta - theta[0]).abs().max()) <= 1e-8
        else:
            assert float(lam.max()) > 0


def test_ascent_search_finds_consensus_at_small_beta():
    found = find_critical_points(4, 0.5, starts=8, seed=1, method="ascent", s_max=40.0)
    assert found.kind == ["maximum"] and found.count.tolist() == [8]


# ------------------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("call,word", [
    (lambda: angle_velocity(torch.zeros(3), 1.0), "theta"),
    (lambda: angle_velocity(torch.zeros(2, 3), -1.0), "beta"),
    (lambda: angle_velocity(torch.zeros(2, 3), [1.0, 2.0, 3.0]), "beta"),
    (lambda: angle_velocity(torch.zeros(2, 3), 1.0, "hardmax"), "normalization"),
    (lambda: angle_velocity(torch.zeros(2, 3), 1.0, "softmax", "exp_beta"), "time_scale"),
    (lambda: angle_velocity(torch.zeros(2, 3), 800.0, "uniform"), "beta"),
    (lambda: angle_velocity(torch.full((2, 3), float("nan")), 1.0), "theta"),
    (lambda: kuramoto_velocity(torch.zeros(2, 3), torch.zeros(4)), "omega"),
    (lambda: kuramoto_velocity(torch.zeros(2, 3), None, [1.0, 2.0, 3.0]), "coupling"),
    (lambda: simulate_angles(torch.zeros(2, 3), [1.0, 2.0, 3.0]), "beta"),
    (lambda: simulate_angles(torch.zeros(2, 3), 1.0, solver="cg3", dt=0.1), "solver"),
    (lambda: simulate_angles(torch.zeros(2, 3), 1.0, t_max=-1.0), "t_max"),
    (lambda: simulate_kuramoto(torch.zeros(2, 3), torch.zeros(3, 3)), "omega"),
    (lambda: torus_hessian(torch.zeros(2, 3), -0.5), "beta"),
    (lambda: torus_energy(torch.zeros(2, 3), torch.ones(3)), "beta"),
    (lambda: classify_critical_point(torch.zeros(3), 1.0, tol=0.0), "tol"),
    (lambda: classify_critical_point(torch.zeros(2, 2, 3), 1.0), "theta"),
    (lambda: positions_to_angles(torch.zeros(2, 3, 3)), "x"),
    (lambda: find_critical_points(1, 1.0), "n"),
    (lambda: find_critical_points(3, 1.0, method="bisection"), "method"),
])
def test_bad_input_names_the_parameter(call, word):
    with pytest.raises(ValueError, match=word):
        call()


def test_angle_form_refuses_usa_beta_its_dtype_cannot_hold():
    """As the vector field does: e^β overflows float32 above β ≈ 88 in USA original time."""
    theta = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float32)
    with pytest.raises(ValueError, match="beta must be <= 79"):
        angle_velocity(theta, 100.0, "uniform")
    assert bool(torch.isfinite(angle_velocity(theta, 79.0, "uniform")).all())
    with pytest.raises(ValueError, match="beta must be <= 79"):
        simulate_angles(theta, 100.0, normalization="uniform", t_max=0.1)
