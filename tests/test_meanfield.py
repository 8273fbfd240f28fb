"""The mean-field PDE on the circle: the field against the particle system (7.1), conservation, positivity,
the energy identity (3.6)/Lemma 3.7, measured orders, the Bessel growth rates of the uniform state,
Wasserstein convergence of particles to the PDE (Remark 3.3) and the BBGKY equation (8.1)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from tokensphere.energy import energy
from tokensphere.field import velocity
from tokensphere.meanfield import (
    TrigonometricDensity,
    bbgky_residual,
    cell_centres,
    circle_wasserstein,
    energy_dissipation,
    fourier_coefficients,
    growth_rate,
    mean_field_energy,
    mean_field_velocity,
    most_unstable_mode,
    pair_difference_density,
    solve_continuity,
)
from tokensphere.model import Model
from tokensphere.simulate import simulate

NORMS = ("softmax", "uniform")
RHO0 = TrigonometricDensity(cos=(0.5, 0.3), sin=(0.1,))


def _angles_to_points(theta: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.stack([np.cos(theta), np.sin(theta)], axis=-1))


def _angles(x: torch.Tensor) -> np.ndarray:
    x = x.numpy()
    return np.arctan2(x[..., 1], x[..., 0])


# --- the field is the particle system at the empirical measure ---------------------------------------------

@pytest.mark.parametrize("normalization", NORMS)
@pytest.mark.parametrize("beta", [0.0, 1.0, 7.0])
def test_field_at_empirical_measure_is_the_particle_velocity(normalization, beta):
    # particles on grid points: the midpoint-rule convolution is then the exact sum over particles
    n_cells, n = 128, 37
    idx = np.random.default_rng(3).integers(0, n_cells, n)
    theta = cell_centres(n_cells)[idx]
    rho = np.bincount(idx, minlength=n_cells) / (n * 2 * np.pi / n_cells)
    mf = mean_field_velocity(rho, beta, normalization)[idx]
    model = Model(beta=beta, normalization=normalization)
    v = velocity(_angles_to_points(theta)[None], model)[0].numpy()
    angular = -np.sin(theta) * v[:, 0] + np.cos(theta) * v[:, 1]
    assert np.abs(mf - angular).max() < 1e-12 * max(1.0, np.abs(angular).max())
    if beta > 0:  # (3.5) at the empirical measure is the particle energy (7.4)
        e_particles = float(energy(_angles_to_points(theta)[None], model)[0])
        assert mean_field_energy(rho, beta) == pytest.approx(e_particles, rel=1e-13)


def test_field_against_quadrature_of_the_integral():
    from scipy.integrate import quad

    beta, n_cells = 3.0, 256
    rho = RHO0.cell_averages(n_cells)
    faces = cell_centres(n_cells) + np.pi / n_cells
    got = {norm: mean_field_velocity(rho, beta, norm, at="faces") for norm in NORMS}
    for j in (0, 50, 131, 200):
        th = faces[j]
        num = quad(lambda p: np.exp(beta * np.cos(th - p)) * np.sin(p - th) * RHO0.pdf(p), 0, 2 * np.pi,
                   epsabs=1e-13)[0]
        z = quad(lambda p: np.exp(beta * np.cos(th - p)) * RHO0.pdf(p), 0, 2 * np.pi, epsabs=1e-13)[0]
        # cell averages differ from point values by O(h²): (h²/24) ρ'' ≈ 1e-4 relative for this grid
        assert got["uniform"][j] == pytest.approx(num, abs=3e-4)
        assert got["softmax"][j] == pytest.approx(num / z, abs=3e-4)


# --- conservation, positivity, stationarity --------------------------------------------------------------

@pytest.mark.parametrize("normalization", NORMS)
@pytest.mark.parametrize("scheme", ["muscl", "upwind"])
def test_mass_conserved_and_positive_through_clustering(normalization, scheme):
    beta = np.array([1.0, 6.0]) if normalization == "softmax" else np.array([1.0, 3.0])
    rho0 = RHO0.cell_averages(128)
    t_max = 6.0 if normalization == "softmax" else 2.0
    sol = solve_continuity(rho0, beta, np.linspace(0, t_max, 7), normalization=normalization, scheme=scheme)
    assert np.abs(sol.mass - 1).max() < 1e-12
    assert sol.rho.min() >= 0.0
    assert (sol.rho[-1].max(axis=-1) > 3 * rho0.max()).all()  # it did concentrate: not a still state


@pytest.mark.parametrize("normalization", NORMS)
def test_uniform_density_is_stationary(normalization):
    rho0 = np.full(64, 1 / (2 * np.pi))
    sol = solve_continuity(rho0, [0.5, 4.0], [0.0, 1.0, 3.0], normalization=normalization)
    assert np.abs(sol.rho - rho0).max() < 1e-13
    assert np.abs(mean_field_velocity(rho0, 4.0, normalization)).max() < 1e-13


def test_stop_when_unresolved():
    # USA at β = 3 concentrates within t = 2 to a few of 64 cells: the run stops at the first unresolved save
    t = np.linspace(0, 2.0, 21)
    sol = solve_continuity(RHO0.cell_averages(64), 3.0, t, normalization="uniform", stop_when_unresolved=True)
    assert 2 < len(sol.t) < len(t)
    assert sol.resolved[:-1].all() and not sol.resolved[-1]
    full = solve_continuity(RHO0.cell_averages(64), 3.0, t, normalization="uniform")
    assert np.array_equal(full.rho[: len(sol.t)], sol.rho)


def test_trigonometric_density_cell_averages_and_samples():
    from scipy.integrate import quad

    n_cells = 16
    avg = RHO0.cell_averages(n_cells)
    h = 2 * np.pi / n_cells
    for j in (0, 5, 11):
        exact = quad(RHO0.pdf, j * h - h / 2, j * h + h / 2, epsabs=1e-14)[0] / h
        assert avg[j] == pytest.approx(exact, rel=1e-12)
    assert avg.sum() * h == pytest.approx(1.0, abs=1e-14)
    theta = RHO0.sample(20000, 2, seed=4)
    assert np.array_equal(theta[0], RHO0.sample(20000, 1, seed=4)[0])  # per-system streams
    # E[cos θ] = a_1/2, E[cos 2θ] = a_2/2, E[sin θ] = b_1/2; each sample mean has s.e. ≤ 1/√(2·20000) = 0.005
    for f, mean in ((np.cos, 0.25), (lambda x: np.cos(2 * x), 0.15), (np.sin, 0.05)):
        assert np.abs(f(theta).mean(axis=1) - mean).max() < 0.025


def test_large_beta_softmax_is_finite_and_local():
    # e^{β} overflows float64 at β ≈ 710; the scaled kernels keep SA finite. For large β, Laplace's method on
    # Z[ρ] = ∫ e^{β cos u} ρ(θ − u) du gives 𝒳 = (1/β) ∂_θ log Z = (1/β) ρ'/ρ + O(β⁻²): relative error O(1/β).
    beta, n_cells = 2000.0, 1024
    rho0 = RHO0.cell_averages(n_cells)
    v = mean_field_velocity(rho0, beta, "softmax", at="faces")
    faces = cell_centres(n_cells) + np.pi / n_cells
    step = 1e-6
    log_derivative = (np.log(RHO0.pdf(faces + step)) - np.log(RHO0.pdf(faces - step))) / (2 * step)
    assert np.abs(v - log_derivative / beta).max() < 5e-3 * np.abs(log_derivative / beta).max()
    sol = solve_continuity(rho0, beta, [0.0, 0.2])
    assert np.isfinite(sol.rho).all() and sol.rho.min() >= 0 and abs(sol.mass[-1] - 1) < 1e-12


# --- energy (3.5) and its dissipation (3.6) / Lemma 3.7 ----------------------------------------------------

@pytest.mark.parametrize("normalization,beta,t_max", [("softmax", 2.0, 1.0), ("uniform", 1.0, 0.5)])
def test_energy_rate_matches_dissipation(normalization, beta, t_max):
    mismatch = []
    for n_cells in (128, 256):
        t = np.linspace(0, t_max, 41)
        sol = solve_continuity(RHO0.cell_averages(n_cells), beta, t, normalization=normalization)
        e = mean_field_energy(sol.rho, beta)
        rate = (e[2:] - e[:-2]) / (t[2:] - t[:-2])
        dissipation = energy_dissipation(sol.rho[1:-1], beta, normalization)
        assert (np.diff(e) > 0).all()
        # central differences in time err by O(Δt²) ≈ 1e-5 relative here; the rest is the grid's O(h²)
        mismatch.append(np.abs(rate / dissipation - 1).max())
    print(f"energy rate vs dissipation, max relative mismatch at N = 128, 256: {mismatch}")
    assert mismatch[1] < 2e-3
    assert mismatch[1] < mismatch[0] / 2.5  # the mismatch is the scheme's O(h²): halving h divides it by ≈ 4


@pytest.mark.parametrize("normalization", NORMS)
def test_energy_never_decreases_through_cluster_formation(normalization):
    t_max = 12.0 if normalization == "softmax" else 3.0
    sol = solve_continuity(RHO0.cell_averages(128), 4.0, np.linspace(0, t_max, 121), normalization=normalization)
    e = mean_field_energy(sol.rho, 4.0)
    assert (np.diff(e) >= -1e-13 * e[1:]).all()
    assert e[-1] > 1.5 * e[0]


# --- measured order in the grid size -------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _reference(normalization: str, beta: float, t: float) -> np.ndarray:
    return solve_continuity(RHO0.cell_averages(3375), beta, [t], normalization=normalization).rho[-1]


def _restrict(fine: np.ndarray, n_cells: int) -> np.ndarray:
    """Average an odd multiple of the coarse grid onto it (cell j is centred at θ_j = 2πj/N in both)."""
    m = fine.shape[-1] // n_cells
    assert m % 2 == 1 and m * n_cells == fine.shape[-1]
    return np.roll(fine, m // 2, axis=-1).reshape(*fine.shape[:-1], n_cells, m).mean(axis=-1)


@pytest.mark.parametrize("normalization,beta", [("softmax", 2.0), ("uniform", 1.0)])
@pytest.mark.parametrize("scheme,order", [("muscl", 2.0), ("upwind", 1.0)])
def test_measured_order_in_the_grid(normalization, beta, scheme, order):
    t = [0.5]
    sizes = (75, 225, 675)  # odd ratios to the reference's 3375 cells: coarse cells are unions of fine cells
    ref = _reference(normalization, beta, t[0])
    errors = []
    for n in sizes:
        rho = solve_continuity(RHO0.cell_averages(n), beta, t, normalization=normalization, scheme=scheme).rho[-1]
        errors.append(np.abs(rho - _restrict(ref, n)).sum() * 2 * np.pi / n)
    slope = np.polyfit(np.log(2 * np.pi / np.array(sizes)), np.log(errors), 1)[0]
    print(f"{normalization} {scheme}: L1 errors {errors}, measured order {slope:.3f}")
    assert abs(slope - order) < 0.2, (errors, slope)


# --- linear stability of the uniform state ------------------------------------------------------------------

def test_growth_rate_closed_forms():
    from scipy.special import iv

    k, beta = np.arange(1, 8), 2.7
    assert np.allclose(growth_rate(k, beta, "uniform"), k**2 * iv(k, beta) / beta, rtol=1e-13)
    assert np.allclose(growth_rate(k, beta, "softmax"), k**2 * iv(k, beta) / (beta * iv(0, beta)), rtol=1e-13)
    # β = 0: the Kuramoto rate ½ for K = 1 (7.2), and no growth for k ≥ 2
    assert np.allclose(growth_rate(k, 0.0, "uniform"), np.r_[0.5, np.zeros(6)], atol=1e-15)
    assert np.isfinite(growth_rate(k, 5000.0, "softmax")).all()
    # k* ≈ √(2β) for large β (I_k(β) ≈ e^{β−k²/(2β)}/√(2πβ))
    betas = np.array([50.0, 200.0, 800.0])
    assert np.all(np.abs(most_unstable_mode(betas) - np.sqrt(2 * betas)) <= 1)


@pytest.mark.parametrize("normalization", NORMS)
@pytest.mark.parametrize("k,beta", [(1, 1.0), (2, 3.0), (3, 5.0), (5, 12.0)])
def test_pde_growth_of_a_small_mode_matches_bessel_rate(normalization, k, beta):
    eps = 1e-6
    rho0 = TrigonometricDensity(cos=[0.0] * (k - 1) + [eps]).cell_averages(256)
    rate = float(growth_rate(k, beta, normalization))
    t = np.linspace(0, 2 / rate, 5)  # amplitude × e²: still linear
    sol = solve_continuity(rho0, beta, t, normalization=normalization)
    measured = np.polyfit(t, np.log(np.abs(fourier_coefficients(sol.rho)[:, k])), 1)[0]
    assert measured == pytest.approx(rate, rel=0.01)


# --- particles against the PDE (Remark 3.3) ---------------------------------------------------------------

def test_circle_wasserstein_of_equispaced_points():
    # n points at the centres of n equal arcs against the uniform law: W_1 = 2π/(4n), W_2 = 2π/(n√12)
    n_cells, subcells = 64, 16
    rho = np.full((1, n_cells), 1 / (2 * np.pi))
    for n in (8, 50):
        theta = (2 * np.pi * (np.arange(n) + 0.5) / n)[None]
        bound = np.pi / (n_cells * subcells)  # the sub-cell discretisation moves mass by at most this
        assert circle_wasserstein(theta, rho, 1, subcells=subcells)[0] == pytest.approx(2 * np.pi / (4 * n), abs=bound)
        assert circle_wasserstein(theta, rho, 2, subcells=subcells)[0] == pytest.approx(
            2 * np.pi / (n * np.sqrt(12)), abs=bound)


def test_particles_converge_to_the_pde_at_rate_n_to_minus_half():
    # E W_1(µ_n(0), µ(0)) ≍ n^{−1/2} for i.i.d. samples of a density bounded below on the circle, and
    # W_1(µ_n(t), µ(t)) ≤ e^{Ct} W_1(µ_n(0), µ(0)) (Remark 3.3): the slope of log E W_1(t) in log n is −½.
    # With 32 seeds W_1 has a coefficient of variation ≈ 0.4, so each mean carries ≈ 7% error and the fitted
    # slope over n = 16 … 256 a standard error ≈ 0.04: [−0.7, −0.3] is ±5 standard errors.
    beta, t_max, n_cells, seeds = 1.0, 2.0, 512, 32
    density = TrigonometricDensity(cos=(0.5, 0.3))
    pde = solve_continuity(density.cell_averages(n_cells), beta, [t_max]).rho[-1]
    sizes = np.array([16, 32, 64, 128, 256])
    means = []
    for n in sizes:
        theta0 = density.sample(int(n), seeds, seed=int(n))
        x = simulate(_angles_to_points(theta0), beta, t_max=t_max, save_at=[t_max]).positions[-1]
        means.append(circle_wasserstein(_angles(x), np.broadcast_to(pde, (seeds, n_cells))).mean())
    slope = np.polyfit(np.log(sizes), np.log(means), 1)[0]
    print(f"mean W1 at t = {t_max} for n = {sizes.tolist()}: {means}; slope {slope:.3f}")
    assert -0.7 < slope < -0.3, (means, slope)


# --- the BBGKY equation (8.1) ------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _usa_ensemble(beta: float, n: int, systems: int, t_max: float, n_times: int) -> tuple[np.ndarray, np.ndarray]:
    theta0 = np.random.default_rng([81, n, systems]).uniform(0, 2 * np.pi, (systems, n))
    t = np.linspace(0, t_max, n_times)
    x = simulate(_angles_to_points(theta0), beta, normalization="uniform", t_max=t_max, save_at=t).positions
    return t, _angles(x)


def test_bbgky_residual_is_monte_carlo_noise_shrinking_like_inverse_sqrt_systems():
    # (8.1) holds in law, so the weak-form residual r (K bins) is a mean of M i.i.d. zero-mean per-system
    # vectors with covariance Σ: E[rᵀ Σ⁺ r] = rank(Σ)/M. One direction carries ≈ 75% of the variance here, so
    # plain RMS over bins is a χ² with ≈ 2 degrees of freedom; whitened by Σ⁺ (Σ estimated from all 2048
    # systems) it pools rank ≈ 30 per group. Over sub-ensembles of M = 32 (64 groups), 128 (16), 512 (4):
    # M·mean(rᵀΣ⁺r)/rank ≈ 1 (relative spread ≤ 0.13, band [0.6, 1.6]), and the whitened norm falls like
    # M^{−1/2} (fitted slope standard error ≈ 0.05; band [−0.65, −0.35]). A systematic error μ would add
    # μᵀΣ⁺μ at every M and flatten the slope.
    beta, n, total, k = 1.0, 8, 2048, 32
    t, theta = _usa_ensemble(beta, n, total, 3.0, 31)
    whole = bbgky_residual(t, theta, beta, k)
    per_system = whole.per_system
    evals, evecs = np.linalg.eigh(np.cov(per_system.T))
    keep = evals > 1e-10 * evals.max()
    rank = int(keep.sum())
    whiten = evecs[:, keep] / np.sqrt(evals[keep])          # rᵀΣ⁺r = |rᵀ whiten|²

    def whitened_norm2(r):
        return np.sum((r @ whiten) ** 2, axis=-1)

    sizes, norms = (32, 128, 512), []
    for m in sizes:
        residual = per_system.reshape(total // m, m, k).mean(axis=1)
        q = whitened_norm2(residual).mean()
        assert 0.6 < m * q / rank < 1.6, (m, m * q / rank)
        norms.append(np.sqrt(q))
    slope = np.polyfit(np.log(sizes), np.log(norms), 1)[0]
    print(f"BBGKY whitened residual norm for M = {sizes}: {norms} (rank {rank}); slope {slope:.3f}")
    assert -0.65 < slope < -0.35, (norms, slope)
    # the test has power: the coefficient n − 1 instead of n − 2 in front of g leaves a systematic residual
    wrong = (whole.change + whole.pair_term + whole.triple_term * (n - 1) / (n - 2)).mean(axis=0)
    assert total * whitened_norm2(wrong) / rank > 100
    # and ψ did move: the density of x near 0 grew (clustering, ψ → δ_0)
    assert whole.psi[-1, 0] > 5 * whole.psi[0, 0]
    assert np.allclose(whole.psi.sum(axis=1) * 2 * np.pi / k, 1.0)


def test_pair_difference_density_of_a_known_configuration():
    # three particles at 0, 2π/3, 4π/3: every difference is ±2π/3, i.e. bins K/3 and 2K/3
    theta = np.array([[[0.0, 2 * np.pi / 3, 4 * np.pi / 3]]])
    psi = pair_difference_density(theta, 12)[0]
    expected = np.zeros(12)
    expected[[4, 8]] = 0.5 * 12 / (2 * np.pi)
    assert np.allclose(psi, expected)


# --- bad input ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call,word", [
    (lambda: solve_continuity(np.ones(3), 1.0, [1.0]), "rho0"),
    (lambda: solve_continuity(-np.ones(8), 1.0, [1.0]), "rho0"),
    (lambda: solve_continuity(np.ones(8), -1.0, [1.0]), "beta"),
    (lambda: solve_continuity(np.ones(8), 800.0, [1.0], normalization="uniform"), "beta"),
    (lambda: solve_continuity(np.ones(8), 1.0, [1.0, 0.5]), "t"),
    (lambda: solve_continuity(np.ones(8), 1.0, [1.0], scheme="weno"), "scheme"),
    (lambda: solve_continuity(np.ones(8), 1.0, [1.0], cfl=0.7), "cfl"),
    (lambda: solve_continuity(np.ones(8), 1.0, [1.0], normalization="sinkhorn"), "normalization"),
    (lambda: mean_field_velocity(np.ones(8), 1.0, at="edges"), "at"),
    (lambda: mean_field_energy(np.ones(8), 0.0), "beta"),
    (lambda: growth_rate(1.5, 1.0), "k"),
    (lambda: TrigonometricDensity(cos=(0.8, 0.3)), "cos"),
    (lambda: RHO0.sample(0, seed=1), "n"),
    (lambda: circle_wasserstein(np.zeros((2, 5)), np.ones((3, 8))), "theta"),
    (lambda: circle_wasserstein(np.zeros((1, 5)), np.ones((1, 8)), p=0.5), "p"),
    (lambda: bbgky_residual(np.arange(3.0), np.zeros((3, 4, 2)), 1.0), "theta"),
    (lambda: bbgky_residual(np.arange(2.0), np.zeros((3, 4, 5)), 1.0), "t"),
    (lambda: bbgky_residual(np.arange(3.0), np.zeros((3, 4, 5)), -1.0), "beta"),
])
def test_bad_input(call, word):
    with pytest.raises(ValueError, match=word):
        call()


def test_usa_step_scales_with_the_mass():
    """The USA field is linear in ρ: a density of mass 4 moves 4 times as fast, so the CFL step must shrink
    with it to keep ρ ≥ 0 (it did not: ρ went negative)."""
    dens = TrigonometricDensity(cos=(0.3,), sin=())
    rho = dens.cell_averages(64)
    for mass in (1.0, 4.0):
        sol = solve_continuity(mass * rho, 8.0, [0.0, 0.5], normalization="uniform", scheme="upwind")
        assert float(sol.rho.min()) >= 0.0
    with pytest.raises(ValueError, match="at least one output time"):
        solve_continuity(rho, 1.0, [])


def test_meanfield_inputs_are_validated():
    with pytest.raises(ValueError, match="positive mass"):
        circle_wasserstein(np.zeros(4), np.zeros(16))
    with pytest.raises(ValueError, match="n >= 2"):
        pair_difference_density(np.zeros(5), 8)
    with pytest.raises(ValueError, match="seed"):
        TrigonometricDensity(cos=(0.1,), sin=()).sample(4, seed=-1)


def test_one_density_against_several_betas():
    """β of shape (3,) against one density (N,): a batch over β, each row the scalar-β result."""
    rho = TrigonometricDensity(cos=(0.3,), sin=(0.1,)).cell_averages(32)
    betas = np.array([0.5, 1.0, 4.0])
    for fn in (mean_field_velocity, energy_dissipation):
        batch = fn(rho, betas)
        for k, b in enumerate(betas):
            np.testing.assert_allclose(batch[k], fn(rho, b), rtol=1e-14)
    np.testing.assert_allclose(mean_field_energy(rho, betas), [mean_field_energy(rho, b) for b in betas], rtol=1e-14)
    with pytest.raises(ValueError, match="does not broadcast"):
        mean_field_velocity(np.stack([rho, rho]), betas)
