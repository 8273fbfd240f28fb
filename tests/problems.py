"""Reference problems with exact or tight-tolerance reference solutions (Theorem 6.8 of the paper, the
authors' phase-diagrams.py step), reusable by tests.

Everything here is written independently of ``tokensphere``'s numerics: closed forms, scalar ODEs and a NumPy
implementation of the n-particle field solved with SciPy's DOP853 at rtol = 1e-12, atol = 1e-14. Nothing in
this module calls the library, so a test that compares the library with it compares against independent truth.

Conventions: positions are NumPy arrays (n, d) or (B, n, d), float64; times are 1-D arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

RTOL = 1e-12  # reference tolerances (DOP853), far below every tolerance asserted in the tests
ATOL = 1e-14

NORMALIZATIONS = ("softmax", "uniform")


# ---------------------------------------------------------------------------------------------------------
# closed forms


def gamma_beta0(t: np.ndarray, n: int) -> np.ndarray:
    """β = 0 (SA = USA), orthonormal start: γ0(t) = (e^{2t} − 1)/(e^{2t} + n − 1) ((6.10) at β = 0); n = 2: tanh t.

    Written with expm1 so that small t keeps full relative accuracy.
    """
    e = np.expm1(2 * np.asarray(t, dtype=float))
    return e / (e + n)


def theta_two_beta0(t: np.ndarray, theta0: float) -> np.ndarray:
    """β = 0, two particles at angle θ(0): tan(θ(t)/2) = tan(θ(0)/2) e^{−t} (Theorem 6.8 with n = 2, β = 0)."""
    return 2 * np.arctan(math.tan(theta0 / 2) * np.exp(-np.asarray(t, dtype=float)))


# ---------------------------------------------------------------------------------------------------------
# scalar reduced ODEs (Theorem 6.8 of the paper) and their DOP853 solutions


def two_particle_rhs(normalization: str, beta: float):
    """γ̇ for two particles, γ = ⟨x_1, x_2⟩.

    SA:  γ̇ = 2 e^{βγ}(1 − γ²)/(e^β + e^{βγ}) = 2(1 − γ²)/(e^{β(1−γ)} + 1)   (overflow-free form)
    USA: γ̇ = e^{βγ}(1 − γ²)
    """
    if normalization == "softmax":
        return lambda t, g: 2 * (1 - g * g) / (np.exp(beta * (1 - g)) + 1)
    if normalization == "uniform":
        return lambda t, g: np.exp(beta * g) * (1 - g * g)
    raise ValueError(normalization)


def equiangular_rhs(normalization: str, beta: float, n: int):
    """γ̇ for n equiangular particles ((6.9), (6.10) of the paper).

    SA (6.9), overflow-free form:  γ̇ = 2(1 − γ)((n−1)γ + 1)/(e^{β(1−γ)} + n − 1)
    USA (6.10):                   γ̇ = (2/n) e^{βγ}(1 − γ)((n−1)γ + 1)
    """
    if normalization == "softmax":
        return lambda t, g: 2 * (1 - g) * ((n - 1) * g + 1) / (np.exp(beta * (1 - g)) + n - 1)
    if normalization == "uniform":
        return lambda t, g: (2 / n) * np.exp(beta * g) * (1 - g) * ((n - 1) * g + 1)
    raise ValueError(normalization)


def solve_scalar(rhs, y0: float, t: np.ndarray) -> np.ndarray:
    """Solve a scalar ODE with DOP853 (rtol 1e-12, atol 1e-14) and return y at the times t (sorted, ≥ 0)."""
    t = np.asarray(t, dtype=float)
    sol = solve_ivp(rhs, (0.0, float(t[-1])), [y0], method="DOP853", rtol=RTOL, atol=ATOL, t_eval=t)
    assert sol.success, sol.message
    return sol.y[0]


def two_particle_gamma(t: np.ndarray, gamma0: float, beta: float, normalization: str) -> np.ndarray:
    """Reference γ(t) = ⟨x_1(t), x_2(t)⟩ for two particles started at ⟨x_1, x_2⟩ = γ0."""
    return solve_scalar(two_particle_rhs(normalization, beta), gamma0, t)


def equiangular_gamma(t: np.ndarray, n: int, beta: float, normalization: str, gamma0: float = 0.0) -> np.ndarray:
    """Reference γ_β(t) for n equiangular particles started at γ(0) = γ0 ((6.9) for SA, (6.10) for USA)."""
    return solve_scalar(equiangular_rhs(normalization, beta, n), gamma0, t)


# ---------------------------------------------------------------------------------------------------------
# the n-particle field in NumPy, and its DOP853 solution


def np_velocity(x: np.ndarray, beta: float, normalization: str, V: np.ndarray | None = None) -> np.ndarray:
    """ẋ_i = P⊥_{x_i}(Σ_j A_ij V x_j), A = softmax_j(β⟨x_i,x_j⟩) (SA) or e^{β⟨x_i,x_j⟩}/n (USA).

    x: (n, d). Returns (n, d).
    """
    s = beta * (x @ x.T)
    if normalization == "softmax":
        a = np.exp(s - s.max(axis=1, keepdims=True))
        a /= a.sum(axis=1, keepdims=True)
    elif normalization == "uniform":
        a = np.exp(s) / x.shape[0]
    else:
        raise ValueError(normalization)
    vx = x if V is None else x @ V.T
    f = a @ vx
    return f - (f * x).sum(axis=1, keepdims=True) * x


def reference_trajectory(
    x0: np.ndarray, beta: float, normalization: str, t: np.ndarray, V: np.ndarray | None = None
) -> np.ndarray:
    """Positions (T, n, d) of the n-particle flow from x0 (n, d), solved in R^{nd} with DOP853 (rtol 1e-12).

    The exact flow of the projected field stays on the sphere, so no renormalisation is needed.
    """
    x0 = np.asarray(x0, dtype=float)
    n, d = x0.shape
    t = np.asarray(t, dtype=float)

    def rhs(_, y):
        return np_velocity(y.reshape(n, d), beta, normalization, V).reshape(-1)

    sol = solve_ivp(rhs, (0.0, float(t[-1])), x0.reshape(-1), method="DOP853", rtol=RTOL, atol=ATOL, t_eval=t)
    assert sol.success, sol.message
    return sol.y.T.reshape(len(t), n, d)


# ---------------------------------------------------------------------------------------------------------
# the authors' batched step (their phase-diagrams.py script), re-implemented here


def authors_step(M: np.ndarray, beta: np.ndarray, eta: np.ndarray, normalization: str) -> np.ndarray:
    """One step of ``phase-diagrams.py`` in row convention: S = β M Mᵀ; A = softmax(S) (SA) or exp(S)/n (USA,
    no max subtraction); M ← normalise(M + η A M). M: (B, n, d); beta, eta: (B,). Returns (B, n, d)."""
    beta = np.asarray(beta, dtype=float).reshape(-1, 1, 1)
    eta = np.asarray(eta, dtype=float).reshape(-1, 1, 1)
    S = beta * (M @ M.transpose(0, 2, 1))
    if normalization == "softmax":
        A = np.exp(S - S.max(axis=-1, keepdims=True))
        A /= A.sum(axis=-1, keepdims=True)
    else:
        A = np.exp(S) / M.shape[1]
    Y = M + eta * (A @ M)
    return Y / np.linalg.norm(Y, axis=-1, keepdims=True)


# ---------------------------------------------------------------------------------------------------------
# initial configurations built here (so the test knows their geometry exactly)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def two_particle_start(gamma0: float, d: int, rng: np.random.Generator) -> np.ndarray:
    """Two unit vectors in R^d with ⟨x_1, x_2⟩ = γ0, randomly rotated. Returns (2, d)."""
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    e1, e2 = q[:, 0], q[:, 1]
    theta = math.acos(gamma0)
    return np.stack([e1, math.cos(theta) * e1 + math.sin(theta) * e2])


def cap_start(n: int, d: int, max_angle: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n points at angles in (0, max_angle] from a random centre w, so ⟨x_i, w⟩ ≥ cos(max_angle) with equality
    for x_0. Returns (x (n, d), w (d,))."""
    w = unit(rng.standard_normal(d))
    u = rng.standard_normal((n, d))
    u -= (u @ w)[:, None] * w
    u = unit(u)
    ang = max_angle * rng.uniform(0.2, 1.0, size=n)
    ang[0] = max_angle  # one point on the rim, so r(0) = cos(max_angle) exactly
    return np.cos(ang)[:, None] * w + np.sin(ang)[:, None] * u, w


def offdiagonal(gram: np.ndarray) -> np.ndarray:
    """Off-diagonal entries of (..., n, n) Gram matrices, as (..., n(n−1))."""
    n = gram.shape[-1]
    mask = ~np.eye(n, dtype=bool)
    return gram[..., mask]


@dataclass(frozen=True)
class Convergence:
    """Step sizes and max errors of a refinement study; ``slope`` is the least-squares log-log slope."""

    dts: tuple[float, ...]
    errors: tuple[float, ...]

    @property
    def slope(self) -> float:
        return float(np.polyfit(np.log(self.dts), np.log(self.errors), 1)[0])
