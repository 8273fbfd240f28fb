"""Riemannian L-BFGS for the interaction energy on the product of spheres (S^{d−1})^n, batched over restarts.

The energy is E_β(X) = (1/(2βn²)) Σ_i Σ_j e^{β⟨x_i,x_j⟩} (normalisation A, (3.5) of the paper; the energy the
repulsive dynamics V = −I decrease, §9). Its n diagonal terms add the constant e^β/(2βn), which dominates for large β
(at β = 30 the off-diagonal terms of the tetrahedron are e^{−40} of it, below the float64 resolution of log E_β), so
the objective minimised is the logarithm of the interaction part
    F_β(X) = E_β(X) − e^β/(2βn) = (1/(2βn²)) Σ_{i≠j} e^{β⟨x_i,x_j⟩},
which has the same minimisers, is finite in log form for any β (log-sum-exp), and is scale-free: differences of
log F_β are relative gaps of the part of the energy that depends on X. The Euclidean gradient is the closed form
    ∂ log F_β / ∂x_i = 2β Σ_j q_ij x_j,   q_ij = e^{β⟨x_i,x_j⟩} / Σ_{k≠l} e^{β⟨x_k,x_l⟩} (i ≠ j),  q_ii = 0
(checked against autograd in the tests), and the Riemannian gradient is its tangent projection P⊥_{x_i}. The
same formulas with the diagonal kept give log E_β (:func:`log_energy_gradient`, :func:`riemannian_gradient`).

The method (Absil–Mahony–Sepulchre, "Optimization Algorithms on Matrix Manifolds", §4 and §8; Huang–Gallivan–
Absil 2015 for Riemannian L-BFGS): retraction x ↦ x/|x| row by row (:func:`tokensphere.integrate.steps.retract`),
vector transport by tangent projection at the new point, the two-loop recursion with the usual initial scaling
⟨s, y⟩/⟨y, y⟩, and an Armijo backtracking line search. Every restart is a row of a (B, n, d) tensor; the loop
works on the rows still running (converged rows leave the batch).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..energy import log_energy
from ..field import tangent_project
from ..integrate.steps import retract
from ..model import Model
from ..validate import validate_int, validate_real

__all__ = ["LBFGSResult", "interaction_gradient", "lbfgs", "log_energy_from_interaction", "log_energy_gradient",
           "log_interaction_energy", "log_interaction_gradient", "riemannian_gradient"]

ARMIJO_C1 = 1e-4  # sufficient-decrease constant (Nocedal–Wright, §3.1)
MAX_BACKTRACK = 30  # step halvings before a row gives up on a search direction
MAX_STEP = 0.3  # largest move of one point per iteration (radians, roughly): keeps the retraction well inside
#                  its injectivity radius when the quasi-Newton step is wild (early iterations)


def log_energy_gradient(x: torch.Tensor, beta: float) -> torch.Tensor:
    """Euclidean gradient of log E_β at X: 2β Σ_j p_ij x_j with p = softmax over all n² pairs of β⟨x_i, x_j⟩.

    x: (B, n, d). Returns (B, n, d). Max-stabilised: no overflow for any β.
    """
    s = beta * torch.bmm(x, x.transpose(1, 2))
    p = torch.softmax(s.flatten(1), dim=1).view_as(s)
    return 2 * beta * torch.bmm(p, x)


def riemannian_gradient(x: torch.Tensor, beta: float) -> torch.Tensor:
    """Riemannian gradient of log E_β on (S^{d−1})^n (product metric): P⊥_{x_i} ∂_i log E_β. x: (B, n, d) → (B, n, d).

    grad log E_β = grad E_β / E_β; along the V = −I (USA) flow, Ẋ = −n grad E_β ((3.11) of the paper).
    """
    return tangent_project(x, log_energy_gradient(x, beta))


def _interaction_scores(x: torch.Tensor, beta: float) -> torch.Tensor:
    """β⟨x_i, x_j⟩ with −∞ on the diagonal (the self terms left out). x: (B, n, d) → (B, n, n)."""
    s = beta * torch.bmm(x, x.transpose(1, 2))
    s.diagonal(dim1=1, dim2=2).fill_(-math.inf)
    return s


def log_interaction_energy(x: torch.Tensor, beta: float) -> torch.Tensor:
    """log F_β(X), F_β = (1/(2βn²)) Σ_{i≠j} e^{β⟨x_i,x_j⟩} = E_β(X) − e^β/(2βn): the part of E_β that depends on X.

    x: (B, n, d) unit vectors, n ≥ 2; beta > 0. Returns (B,). Log-sum-exp: finite for any β.
    """
    n = x.shape[1]
    return torch.logsumexp(_interaction_scores(x, beta).flatten(1), dim=1) - math.log(2 * beta * n * n)


def log_energy_from_interaction(log_f: torch.Tensor | float, beta: float, n: int) -> torch.Tensor:
    """log E_β = log(e^β/(2βn) + F_β) from log F_β, without forming either (finite for any β). Returns a tensor."""
    log_f = torch.as_tensor(log_f, dtype=torch.float64)
    return torch.logaddexp(torch.full_like(log_f, beta - math.log(2 * beta * n)), log_f)


def log_interaction_gradient(x: torch.Tensor, beta: float) -> torch.Tensor:
    """Euclidean gradient of log F_β at X: 2β Σ_j q_ij x_j, q = softmax over the n(n − 1) pairs i ≠ j of
    β⟨x_i, x_j⟩ (q_ii = 0). x: (B, n, d). Returns (B, n, d). Max-stabilised: no overflow for any β."""
    s = _interaction_scores(x, beta)
    q = torch.softmax(s.flatten(1), dim=1).view_as(s)
    return 2 * beta * torch.bmm(q, x)


def interaction_gradient(x: torch.Tensor, beta: float) -> torch.Tensor:
    """Riemannian gradient of log F_β on (S^{d−1})^n: P⊥_{x_i} ∂_i log F_β. x: (B, n, d) → (B, n, d).
    It is (E_β/F_β) times :func:`riemannian_gradient`: the same direction, without the e^β/(2βn) dilution."""
    return tangent_project(x, log_interaction_gradient(x, beta))


@dataclass
class LBFGSResult:
    """Local minimisation of a batch of configurations.

    x: (B, n, d) final points; log_energy: (B,) log E_β(x); grad_norm: (B,) Frobenius norm of the Riemannian
    gradient of the objective log F_β at x; iterations: (B,) iterations used; converged: (B,) bool
    (grad_norm < gtol; False for a row stopped by the deadline); log_interaction: (B,) log F_β(x), the objective
    (F_β = E_β − e^β/(2βn)).
    """

    x: torch.Tensor
    log_energy: torch.Tensor
    grad_norm: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    log_interaction: torch.Tensor


def lbfgs(
    x0: torch.Tensor,
    beta: float,
    *,
    memory: int = 10,
    gtol: float = 1e-9,
    max_iter: int = 5000,
    antipodal: bool = False,
    deadline: float | None = None,
) -> LBFGSResult:
    """Minimise E_β from each of the B starts in x0 by Riemannian L-BFGS on (S^{d−1})^n; the objective is log F_β,
    F_β = E_β − e^β/(2βn) (same minimisers, resolved at any β; see the module docstring).

    x0: (B, n, d) unit vectors, n ≥ 2 (float64 or float32; the result has the same dtype). beta > 0. memory ≥ 1:
    pairs (s, y) kept. gtol > 0: a row stops when the Frobenius norm of the Riemannian gradient of log F_β falls
    below gtol. max_iter ≥ 1. antipodal: x0 holds m = n/2 points y and the configuration is X = (y, −y)
    (B, 2m, d): the search runs over antipodal sets only, on (S^{d−1})^m, with gradient ∂_{y_i} = ∂_{x_i} −
    ∂_{x_{i+m}}; the result's x is the full X. deadline: a :func:`time.perf_counter` value; the rows still running
    then stop where they are (converged False). It is checked before every iteration, so it is overrun by at most
    one iteration (one gradient and at most MAX_BACKTRACK energies of the batch). Returns an :class:`LBFGSResult`.
    Raises ValueError naming the parameter on bad input.
    """
    beta = validate_real("beta", beta, minimum=0.0, strict_minimum=True)
    memory = validate_int("memory", memory, minimum=1)
    gtol = validate_real("gtol", gtol, minimum=0.0, strict_minimum=True)
    max_iter = validate_int("max_iter", max_iter, minimum=1)
    if x0.ndim != 3:
        raise ValueError(f"x0 must have shape (B, n, d), got {tuple(x0.shape)}")
    if x0.shape[1] * (2 if antipodal else 1) < 2:
        raise ValueError(f"x0 must hold at least 2 points (the energy is over pairs), got shape {tuple(x0.shape)}")
    if x0.dtype not in (torch.float64, torch.float32):
        raise ValueError(f"x0 must be a float64 or float32 tensor, got {x0.dtype}")
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("x0 must hold finite coordinates, found NaN or inf")
    if bool((torch.linalg.vector_norm(x0, dim=-1) == 0).any()):
        raise ValueError("x0 must hold nonzero points (each is projected onto the sphere), found a zero row")
    if deadline is not None:
        deadline = validate_real("deadline", deadline)
    value, gradient = _objective(beta, antipodal)
    x_all = retract(x0.clone())
    B = x_all.shape[0]
    f_all = value(x_all)
    g_all = gradient(x_all)
    iters = torch.zeros(B, dtype=torch.long)
    # the gradient in the half variable y is ∂_{x_i} − ∂_{x_{i+m}} = 2 ∂_{x_i}: its norm is √2 times that of the
    # full X = (y, −y) the result reports (and gtol refers to)
    norm = (lambda v: _norm(v) / math.sqrt(2.0)) if antipodal else _norm
    gnorm_all = norm(g_all)
    active = torch.nonzero(gnorm_all >= gtol).flatten()

    x, f, g = x_all[active], f_all[active], g_all[active]
    S = x.new_zeros((memory,) + x.shape)  # (m, b, n, d) history of steps
    Y = x.new_zeros((memory,) + x.shape)
    rho = x.new_zeros(memory, x.shape[0])  # 1/⟨s, y⟩, 0 for empty or rejected pairs
    head = 0
    for _ in range(max_iter):
        if active.numel() == 0 or (deadline is not None and time.perf_counter() >= deadline):
            break
        S = tangent_project(x.unsqueeze(0), S)  # vector transport to T_x by projection
        Y = tangent_project(x.unsqueeze(0), Y)
        p = -_two_loop(g, S, Y, rho, head)
        slope = _dot(g, p)
        bad = slope >= 0  # not a descent direction (stale memory): restart along −g
        if bool(bad.any()):
            p[bad] = -g[bad]
            slope[bad] = -_dot(g[bad], g[bad])
            rho[:, bad] = 0
        # cap the largest single-point move
        cap = (MAX_STEP / torch.linalg.vector_norm(p, dim=-1).amax(-1).clamp_min(1e-300)).clamp(max=1.0)
        alpha = cap.clone()
        x_new, f_new, failed = _armijo(x, f, p, slope, alpha, value)
        g_new = gradient(x_new)
        s = tangent_project(x_new, x_new - x)
        y = g_new - tangent_project(x_new, g)
        sy = _dot(s, y)
        ok = sy > 1e-12 * _dot(y, y).sqrt() * _dot(s, s).sqrt()
        S[head], Y[head] = s, y
        rho[head] = torch.where(ok, 1.0 / torch.where(ok, sy, torch.ones_like(sy)), torch.zeros_like(sy))
        head = (head + 1) % memory
        x, f, g = x_new, f_new, g_new
        iters[active] += 1
        gn = norm(g)
        done = (gn < gtol) | failed  # a failed line search: no decrease left at round-off level
        if bool(done.any()):
            idx = active[done]
            x_all[idx], f_all[idx], g_all[idx], gnorm_all[idx] = x[done], f[done], g[done], gn[done]
            keep = ~done
            active = active[keep]
            x, f, g = x[keep], f[keep], g[keep]
            S, Y, rho = S[:, keep], Y[:, keep], rho[:, keep]
    if active.numel():
        x_all[active], f_all[active], gnorm_all[active] = x, f, norm(g)
    if antipodal:
        x_all = torch.cat([x_all, -x_all], dim=1)
    return LBFGSResult(x=x_all, log_energy=log_energy(x_all, Model(beta=beta)), grad_norm=gnorm_all,
                       iterations=iters, converged=gnorm_all < gtol, log_interaction=f_all)


def _objective(beta: float, antipodal: bool):
    """(value, Riemannian gradient) of log F_β as functions of the optimisation variable: X itself, or the half
    Y of an antipodal X = (Y, −Y)."""
    if not antipodal:
        return (lambda x: log_interaction_energy(x, beta)), (lambda x: interaction_gradient(x, beta))

    def full(y: torch.Tensor) -> torch.Tensor:
        return torch.cat([y, -y], dim=1)

    def grad(y: torch.Tensor) -> torch.Tensor:
        g = log_interaction_gradient(full(y), beta)
        m = y.shape[1]
        return tangent_project(y, g[:, :m] - g[:, m:])

    return (lambda y: log_interaction_energy(full(y), beta)), grad


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Product-metric inner product per row: (b, n, d) × (b, n, d) → (b,)."""
    return (a * b).flatten(1).sum(1)


def _norm(g: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(g.flatten(1), dim=1)


def _two_loop(g: torch.Tensor, S: torch.Tensor, Y: torch.Tensor, rho: torch.Tensor, head: int) -> torch.Tensor:
    """H·g by the L-BFGS two-loop recursion (Nocedal–Wright Alg. 7.4), newest pair first; rows with no valid pair
    get H = I. g: (b, n, d); S, Y: (m, b, n, d); rho: (m, b). Returns (b, n, d)."""
    m = S.shape[0]
    order = [(head - 1 - k) % m for k in range(m)]  # newest → oldest
    q = g.clone()
    a = []
    for k in order:
        ak = rho[k] * _dot(S[k], q)
        q = q - ak.view(-1, 1, 1) * Y[k]
        a.append(ak)
    newest = order[0]
    yy = _dot(Y[newest], Y[newest])
    gamma = torch.where((rho[newest] > 0) & (yy > 0), 1.0 / (rho[newest] * yy.clamp_min(1e-300)), torch.ones_like(yy))
    r = gamma.view(-1, 1, 1) * q
    for k, ak in zip(reversed(order), reversed(a)):
        bk = rho[k] * _dot(Y[k], r)
        r = r + (ak - bk).view(-1, 1, 1) * S[k]
    return r


def _armijo(x: torch.Tensor, f: torch.Tensor, p: torch.Tensor, slope: torch.Tensor, alpha: torch.Tensor,
            value) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backtracking along the retraction R_x(αp) until f(R_x(αp)) ≤ f(x) + c₁ α ⟨g, p⟩, row by row.

    Returns (x_new, f_new, failed): rows that find no such α in MAX_BACKTRACK halvings stay at x (failed True)."""
    x_new = x.clone()
    f_new = f.clone()
    todo = torch.ones_like(f, dtype=torch.bool)
    for _ in range(MAX_BACKTRACK):
        idx = torch.nonzero(todo).flatten()
        if idx.numel() == 0:
            break
        trial = retract(x[idx] + alpha[idx].view(-1, 1, 1) * p[idx])
        ft = value(trial)
        ok = ft <= f[idx] + ARMIJO_C1 * alpha[idx] * slope[idx]
        acc = idx[ok]
        x_new[acc], f_new[acc] = trial[ok], ft[ok]
        todo[acc] = False
        alpha[idx[~ok]] *= 0.5
    return x_new, f_new, todo
