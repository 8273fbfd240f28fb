"""Critical points of E_β on the torus T^n from many seeded starts, for the checks of Theorems 4.3 and 5.1.

Two searches, both ending with Newton's method on ∇E_β = 0 in 1^⊥ (the rotation mode removed):

* ``"newton"``: Newton from uniform random starts, with backtracking on |∇E_β|² (the Newton direction
  descends it wherever the Hessian is invertible). It reaches saddles as well as maxima.
* ``"ascent"``: first the (USA) flow (7.1), the gradient ascent θ̇ = n∇E_β, integrated in s = e^β t up to
  ``s_max`` (where large-β runs stall near multi-cluster saddles, Problem 1), then Newton from there.
* ``"both"``: the two from the same starts, pooled. Newton from uniform starts seldom lands on consensus
  (its basin for Newton is small); the ascent reaches the maxima.

Converged points are identified up to rotation and relabelling, and classified by
:func:`~.hessian.classify_critical_point`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..validate import validate_choice, validate_int, validate_real
from .flow import simulate_angles
from .hessian import (
    classify_critical_point,
    rotation_complement,
    torus_energy,
    torus_gradient,
    torus_hessian,
    torus_hessian_spectrum,
)

__all__ = ["CriticalPoints", "find_critical_points", "newton_critical_point"]

_BACKTRACK = 12  # step halvings tried by the line search (down to 2^−11 of the Newton step)


@dataclass(eq=False)
class CriticalPoints:
    """Distinct critical points found. theta: (K, n), rotated so that the order parameter's phase is 0 (when
    r > 0) and sorted in (−π, π]; kind: K classifications; spectrum: (K, n − 1) eigenvalues of e^{−β}·Hessian
    on 1^⊥; energy: (K,) e^{−β} E_β (the finite part at β = 0); count: (K,) searches that reached each;
    starts, converged: the numbers of searches and of converged ones."""

    theta: torch.Tensor
    kind: list[str]
    spectrum: torch.Tensor
    energy: torch.Tensor
    count: torch.Tensor
    starts: int
    converged: int


def newton_critical_point(theta: torch.Tensor, beta: float, *, tol: float = 1e-12,
                          max_iter: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Newton's method for ∇E_β = 0 from every row of theta (B, n), with backtracking on |∇E_β|².

    Steps solve H δ = −∇E_β on 1^⊥ (pseudo-inverse there, so degenerate points do not blow up). Converged:
    max_k |e^{−β} n ∂_k E_β| ≤ tol (the scaled gradient is at most 1 in this unit). Returns (theta (B, n),
    converged (B,) bool).
    """
    beta = validate_real("beta", beta, minimum=0.0)
    tol = validate_real("tol", tol, minimum=0.0, strict_minimum=True)
    max_iter = validate_int("max_iter", max_iter, minimum=1)
    th = torch.as_tensor(theta, dtype=torch.float64).clone()
    n = th.shape[-1]
    u = rotation_complement(n, th.dtype, th.device)

    def residual(x: torch.Tensor) -> torch.Tensor:
        return n * torus_gradient(x, beta, scaled=True)

    for _ in range(max_iter):
        g = residual(th)
        done = g.abs().amax(-1) <= tol
        if bool(done.all()):
            break
        lam, vec = torch.linalg.eigh(u.T @ (n * torus_hessian(th, beta, scaled=True)) @ u)
        keep = lam.abs() > 1e-13 * lam.abs().amax(-1, keepdim=True)
        inv = torch.where(keep, 1.0 / torch.where(keep, lam, torch.ones_like(lam)), torch.zeros_like(lam))
        y = vec @ (inv.unsqueeze(-1) * (vec.transpose(-1, -2) @ (g @ u).unsqueeze(-1)))
        step = -(u @ y).squeeze(-1)
        merit = (g * g).sum(-1)
        alpha = torch.where(done, torch.zeros_like(merit), torch.ones_like(merit))
        accepted = done.clone()
        for _k in range(_BACKTRACK):
            trial = th + alpha.unsqueeze(-1) * step
            better = (residual(trial) ** 2).sum(-1) < merit
            newly = better & ~accepted
            accepted |= newly
            if bool(accepted.all()):
                break
            alpha = torch.where(accepted, alpha, alpha / 2)
        th = th + torch.where(accepted, alpha, torch.zeros_like(alpha)).unsqueeze(-1) * step
    return th, residual(th).abs().amax(-1) <= tol


def find_critical_points(
    n: int,
    beta: float,
    starts: int = 64,
    *,
    seed: int = 0,
    method: str = "newton",
    s_max: float = 50.0,
    tol: float = 1e-12,
    max_iter: int = 100,
    class_tol: float = 1e-10,
    same_tol: float = 1e-6,
) -> CriticalPoints:
    """Critical points of E_β on T^n reached from ``starts`` uniform random starts (generator seeded by ``seed``).

    method: "newton" (Newton from the starts), "ascent" (the (USA) flow (7.1) to s = e^β t = s_max, then
    Newton) or "both" (each from every start: 2·starts searches). tol, max_iter: Newton's (see
    :func:`newton_critical_point`). class_tol: the eigenvalue tolerance of
    :func:`~.hessian.classify_critical_point`. same_tol: two points are the same when a rotation and a
    relabelling bring them within this distance (max over the points; reflections θ ↦ −θ are not identified).
    Returns :class:`CriticalPoints`. Raises ValueError naming the parameter for invalid input.
    """
    n = validate_int("n", n, minimum=2)
    beta = validate_real("beta", beta, minimum=0.0)
    starts = validate_int("starts", starts, minimum=1)
    validate_choice("method", method, ("newton", "ascent", "both"))
    same_tol = validate_real("same_tol", same_tol, minimum=0.0, strict_minimum=True)
    gen = torch.Generator().manual_seed(validate_int("seed", seed, minimum=0))
    theta = 2 * torch.pi * torch.rand((starts, n), generator=gen, dtype=torch.float64)
    if method != "newton":
        s_max = validate_real("s_max", s_max, minimum=0.0, strict_minimum=True)
        run = simulate_angles(theta, beta, normalization="uniform", time_scale="exp_beta", t_max=s_max,
                              save_at=[0.0, s_max], rtol=1e-10, atol=1e-12)
        theta = run.theta[-1] if method == "ascent" else torch.cat([theta, run.theta[-1]])
    theta, ok = newton_critical_point(theta, beta, tol=tol, max_iter=max_iter)
    reps: list[torch.Tensor] = []
    counts: list[int] = []
    for th in theta[ok]:
        c = _canonical(th)
        for k, r in enumerate(reps):
            if _distance(c, r) <= same_tol:
                counts[k] += 1
                break
        else:
            reps.append(c)
            counts.append(1)
    pts = torch.stack(reps) if reps else torch.empty((0, n), dtype=torch.float64)
    kinds = classify_critical_point(pts, beta, tol=class_tol) if reps else []
    return CriticalPoints(theta=pts, kind=kinds, spectrum=torus_hessian_spectrum(pts, beta),
                          energy=torus_energy(pts, beta, scaled=True), count=torch.tensor(counts, dtype=torch.long),
                          starts=theta.shape[0], converged=int(ok.sum()))


def _canonical(theta: torch.Tensor) -> torch.Tensor:
    """θ (n,) rotated so that ψ = 0 (when r > 0), wrapped to (−π, π] and sorted."""
    c, s = torch.cos(theta).mean(), torch.sin(theta).mean()
    psi = torch.atan2(s, c) if float(torch.hypot(c, s)) > 1e-8 else theta[0]
    return torch.sort(_wrap(theta - psi)).values


def _distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """min over rotations c and relabellings of max_i |a_i − b_σ(i) − c| (on the circle), for sorted a, b (n,).

    Sorted circular sequences match up to a cyclic shift k; for each k the best rotation is the midrange of
    the circular differences, leaving half their spread."""
    best = float("inf")
    for k in range(a.numel()):
        d = _wrap(a - torch.roll(b, k))
        e = _wrap(d - d[0])
        best = min(best, float(e.max() - e.min()) / 2)
    return best


def _wrap(x: torch.Tensor) -> torch.Tensor:
    """x mapped to (−π, π]."""
    return torch.pi - torch.remainder(torch.pi - x, 2 * torch.pi)
