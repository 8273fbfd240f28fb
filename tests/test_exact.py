"""Exact solutions (Theorems 4.1 and 6.8, the equiangular ODEs (6.9), (6.10)), energy monotonicity (the gradient-flow
structure of §3 of the paper) and cone collapse (Lemma 6.4).

Every method of METHODS is run against closed forms and against reduced ODEs solved with SciPy DOP853 at
rtol 1e-12 (tests/problems.py); nothing is compared with numbers taken from this implementation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import problems as P
import tokensphere as ts
from tokensphere import METHODS, Model, Solver, simulate

ORDER = {"euler": 1, "midpoint": 2, "heun": 2, "rk3": 3, "rk4": 4, "lie-euler": 1, "cg3": 3}
# fixed steps per order; the global error at t ≤ 3 is then ≲ C·dt^p with C ≤ 4 for the β used below
DT = {1: 2.0**-10, 2: 2.0**-7, 3: 2.0**-6, 4: 2.0**-5}
ADAPTIVE_RTOL = 1e-10
ADAPTIVE_TOL = 1e-8


def solver_and_tol(method: str) -> tuple[Solver, float]:
    """The method at a small step (fixed) or a tight tolerance (adaptive), and the error it must reach."""
    if method in ORDER:
        p = ORDER[method]
        return Solver(method, dt=DT[p]), 4 * DT[p] ** p
    return Solver(method, rtol=ADAPTIVE_RTOL, atol=ADAPTIVE_RTOL * 1e-2), ADAPTIVE_TOL


def gram(x: torch.Tensor) -> np.ndarray:
    a = x.detach().cpu().numpy()
    return a @ np.swapaxes(a, -1, -2)


def geodesic(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """2 arcsin(|a − b|/2): accurate for near-coincident and near-antipodal points alike."""
    return 2 * np.arcsin(np.clip(np.linalg.norm(a - b, axis=-1) / 2, 0, 1))


# ---------------------------------------------------------------------------------------------------------
# β = 0 from an orthonormal frame: γ0(t) = (e^{2t} − 1)/(e^{2t} + n − 1); n = 2 is tanh t


@pytest.mark.parametrize("n,d", [(2, 3), (4, 5)])
@pytest.mark.parametrize("method", METHODS)
def test_beta0_orthonormal_closed_form(method, n, d):
    solver, tol = solver_and_tol(method)
    t_max = 3.0
    tr = simulate(ts.OrthonormalFrame(batch=1, n=n, d=d, seed=3), 0.0, solver=solver, t_max=t_max, save_at=31)
    t = tr.times.numpy()
    off = P.offdiagonal(gram(tr.positions[:, 0]))  # (T, n(n−1))
    exact = np.tanh(t) if n == 2 else P.gamma_beta0(t, n)
    assert np.abs(off - exact[:, None]).max() < tol
    assert exact[-1] > 0.95  # the horizon covers the collapse, not only the initial slope


# ---------------------------------------------------------------------------------------------------------
# two particles, any start: SA γ̇ = 2e^{βγ}(1−γ²)/(e^β + e^{βγ}), USA γ̇ = e^{βγ}(1−γ²);
# β = 0: tan(θ(t)/2) = tan(θ(0)/2) e^{−t}

TWO_STARTS = (-0.95, 0.2, 0.7, -0.3)  # γ(0) per system
TWO_BETAS = (0.0, 1.0, 2.0, 0.5)


@pytest.mark.parametrize("normalization", P.NORMALIZATIONS)
@pytest.mark.parametrize("method", METHODS)
def test_two_particles_any_start(method, normalization):
    solver, tol = solver_and_tol(method)
    rng = np.random.default_rng(0)
    x0 = np.stack([P.two_particle_start(g0, 3, rng) for g0 in TWO_STARTS])
    betas = torch.tensor(TWO_BETAS, dtype=torch.float64)
    tr = simulate(torch.from_numpy(x0), betas, normalization=normalization, solver=solver, t_max=3.0, save_at=31)
    t = tr.times.numpy()
    X = tr.positions.numpy()
    gamma = (X[:, :, 0] * X[:, :, 1]).sum(-1)  # (T, B)
    for b, (g0, beta) in enumerate(zip(TWO_STARTS, TWO_BETAS)):
        ref = P.two_particle_gamma(t, g0, beta, normalization)
        assert np.abs(gamma[:, b] - ref).max() < tol, (b, beta)
    # β = 0 system: the closed form in the angle (computed stably)
    theta = geodesic(X[:, 0, 0], X[:, 0, 1])
    assert np.abs(theta - P.theta_two_beta0(t, math.acos(TWO_STARTS[0]))).max() < tol


@pytest.mark.parametrize("normalization", P.NORMALIZATIONS)
def test_two_particle_reference_is_not_trivially_satisfied(normalization):
    """Guard for the test above: SA and USA give visibly different γ(t) at β = 2 (so the ODE is discriminating)."""
    t = np.linspace(0, 3, 31)
    other = "uniform" if normalization == "softmax" else "softmax"
    a = P.two_particle_gamma(t, 0.2, 2.0, normalization)
    b = P.two_particle_gamma(t, 0.2, 2.0, other)
    assert np.abs(a - b).max() > 1e-2


@pytest.mark.parametrize("beta", [0.0, 1.0, 4.0])
@pytest.mark.parametrize("normalization", P.NORMALIZATIONS)
def test_antipodal_pair_is_stationary(normalization, beta):
    rng = np.random.default_rng(1)
    x = P.unit(rng.standard_normal(4))
    x0 = torch.from_numpy(np.stack([x, -x]))[None]
    tr = simulate(x0, beta, normalization=normalization, solver=Solver("dopri5", rtol=1e-10, atol=1e-12),
                  t_max=5.0, save_at=6)
    assert float((tr.positions - x0).abs().max()) < 1e-12


# ---------------------------------------------------------------------------------------------------------
# equiangular starts: (6.9) SA and (6.10) USA


def _equiangular_check(normalization, n, d, betas, gamma0, t_max, solver, tol):
    spec = (ts.OrthonormalFrame(batch=1, n=n, d=d, seed=1) if gamma0 == 0.0
            else ts.Equiangular(batch=1, n=n, d=d, seed=1, gamma0=gamma0))
    tr = simulate(spec, torch.tensor(betas, dtype=torch.float64), normalization=normalization, solver=solver,
                  t_max=t_max, save_at=41)
    t = tr.times.numpy()
    off = P.offdiagonal(gram(tr.positions))  # (T, B, n(n−1))
    spread = off.max(-1) - off.min(-1)
    assert spread.max() < 1e-12  # all pairwise angles stay equal, to round-off
    for b, beta in enumerate(betas):
        ref = P.equiangular_gamma(t, n, beta, normalization, gamma0)
        assert np.abs(off[:, b].mean(-1) - ref).max() < tol, (beta, n)
    return off


@pytest.mark.parametrize(
    "normalization,n,d,t_max",
    [("softmax", 3, 3, 8.0), ("softmax", 6, 9, 8.0), ("uniform", 3, 4, 2.0), ("uniform", 6, 6, 2.0)],
)
def test_equiangular_orthonormal_start(normalization, n, d, t_max):
    off = _equiangular_check(normalization, n, d, (0.5, 2.0, 5.0), 0.0, t_max,
                             Solver("dopri5", rtol=1e-10, atol=1e-12), 1e-8)
    # the three β give different curves (so agreement with each ODE is discriminating)
    assert np.abs(off[:, 0].mean(-1) - off[:, 2].mean(-1)).max() > 1e-2


@pytest.mark.parametrize("gamma0", [0.4, -0.2])
@pytest.mark.parametrize("normalization", P.NORMALIZATIONS)
def test_equiangular_start_gamma0_nonzero(normalization, gamma0):
    t_max = 8.0 if normalization == "softmax" else 2.0
    _equiangular_check(normalization, 5, 6, (0.5, 2.0, 5.0), gamma0, t_max,
                       Solver("dopri5", rtol=1e-10, atol=1e-12), 1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("normalization", P.NORMALIZATIONS)
@pytest.mark.parametrize("method", METHODS)
def test_equiangular_every_method(method, normalization):
    solver, tol = solver_and_tol(method)
    for gamma0 in (0.0, 0.3):
        _equiangular_check(normalization, 4, 6, (0.5, 1.0, 2.0), gamma0, 2.0, solver, tol)


@pytest.mark.slow
@pytest.mark.parametrize("normalization", P.NORMALIZATIONS)
def test_equiangular_many_n_and_beta(normalization):
    t_max = 8.0 if normalization == "softmax" else 1.5
    for n, d in ((2, 2), (8, 8), (16, 20)):
        _equiangular_check(normalization, n, d, (0.1, 0.5, 2.0, 5.0, 9.0 if normalization == "softmax" else 6.0),
                           0.0, t_max, Solver("dopri5", rtol=1e-11, atol=1e-13), 1e-9)


@pytest.mark.parametrize("beta", [1.0, 3.0])
@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("normalization", P.NORMALIZATIONS)
def test_regular_simplex_is_stationary(normalization, n, beta):
    x0 = ts.Equiangular(batch=1, n=n, d=n, seed=2, gamma0=-1 / (n - 1)).sample()
    g0 = P.offdiagonal(gram(x0))
    assert np.abs(g0 + 1 / (n - 1)).max() < 1e-14  # it is the simplex
    tr = simulate(x0, beta, normalization=normalization, solver=Solver("dopri5", rtol=1e-10, atol=1e-12),
                  t_max=5.0, save_at=11)
    assert float((tr.positions - x0).abs().max()) < 1e-9
    # a nearby equiangular start moves visibly (the check above can fail)
    near = ts.Equiangular(batch=1, n=n, d=n, seed=2, gamma0=-1 / (n - 1) + 0.05).sample()
    tr2 = simulate(near, beta, normalization=normalization, solver=Solver("dopri5", rtol=1e-10, atol=1e-12),
                   t_max=5.0, save_at=2)
    assert float((tr2.final() - near).abs().max()) > 1e-2


# ---------------------------------------------------------------------------------------------------------
# energy monotonicity: E_β is non-decreasing along (SA) and (USA), non-increasing for V = −I (§3)


@pytest.mark.parametrize(
    "normalization,V,beta",
    [("softmax", "identity", 1.0), ("softmax", "identity", 4.0), ("uniform", "identity", 1.0),
     ("uniform", "identity", 3.0), ("softmax", "repulsive", 1.0), ("uniform", "repulsive", 2.0)],
)
def test_energy_is_monotone(normalization, V, beta):
    x0 = ts.sample_sphere(3, 10, 3, seed=21)
    model = Model(beta=beta, normalization=normalization, V=V)
    tr = simulate(x0, model=model, solver=Solver("dopri5", rtol=1e-11, atol=1e-13), t_max=6.0, save_at=121)
    T, B = tr.shape[:2]
    e = ts.energy(tr.positions.reshape(T * B, 10, 3), Model(beta=beta)).reshape(T, B).numpy()
    sign = 1.0 if V == "identity" else -1.0
    steps = sign * np.diff(e, axis=0)  # ≥ 0 along the exact flow
    assert steps.min() >= -1e-12 * np.abs(e).max()
    # and the energy really changes (the check is not vacuous)
    assert (sign * (e[-1] - e[0]) > 1e-3 * np.abs(e[0])).all()


# ---------------------------------------------------------------------------------------------------------
# Lemma 6.4: a start in a cap of angle < π/2 collapses, and r(t) = min_i ⟨x_i(t), w⟩ is non-decreasing


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("normalization", P.NORMALIZATIONS)
def test_cap_start_collapses_with_monotone_r(normalization, d):
    rng = np.random.default_rng(7 + d)
    max_angle = 1.45  # < π/2
    starts = [P.cap_start(12, d, max_angle, rng) for _ in range(2)]
    x0 = torch.from_numpy(np.stack([s[0] for s in starts]))
    w = np.stack([s[1] for s in starts])  # (B, d)
    betas = (0.5, 2.0)
    t_max = 40.0 if normalization == "softmax" else 20.0
    tr = simulate(x0, torch.tensor(betas, dtype=torch.float64), normalization=normalization,
                  solver=Solver("dopri5", rtol=1e-10, atol=1e-12), t_max=t_max, save_at=201)
    X = tr.positions.numpy()  # (T, B, n, d)
    r = np.einsum("tbnd,bd->tbn", X, w).min(-1)  # (T, B)
    assert np.allclose(r[0], math.cos(max_angle))
    assert np.diff(r, axis=0).min() >= -1e-10  # non-decreasing up to the integrator's error
    assert (r[-1] > r[0] + 0.1).all()
    # one cluster: all pairwise geodesic distances tiny at the end
    last = X[-1]
    dist = geodesic(last[:, :, None, :], last[:, None, :, :])
    assert dist.max() < 1e-3
