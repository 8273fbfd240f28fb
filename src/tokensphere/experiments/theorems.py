"""The theorem checks: the paper's theorems on small seeded experiments (``tokensphere check``, the report).

Each check simulates with the library, measures a quantity and compares it with the theorem's statement
(an exact solution, an inequality, a probability). It returns a :class:`CheckResult` with the measured value,
the reference and whether it passed; nothing here is tuned to pass: the references are closed forms, the
theorems' bounds, or Monte-Carlo confidence intervals. ("Check" means these theorem checks only; input
validation lives in :mod:`tokensphere.validate`.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..analysis import energy_monotonicity
from ..energy import energy
from ..field import tangent_project, velocity
from ..init import Cap, OrthonormalFrame, Uniform, sample_sphere
from ..model import Model
from ..runtime import choose_threads, torch_threads
from ..simulate import simulate
from ..theory import g_function, gamma_closed_form_beta0, gamma_curve, tau_star, wendel_probability

__all__ = ["CHECK_N", "CheckResult", "CHECKS", "run_checks"]

CHECK_N = 16  # the most tokens per system in any check: sets the thread count (tokensphere.runtime)


@dataclass(frozen=True)
class CheckResult:
    """name: what was checked (with the theorem); measured/reference: numbers as text; passed: bool."""

    name: str
    measured: str
    reference: str
    passed: bool
    detail: str = ""


def _equiangular(normalization: str) -> CheckResult:
    n, d, beta = 6, 12, 2.0
    traj = simulate(OrthonormalFrame(batch=1, n=n, d=d, seed=1), beta, normalization=normalization,
                       t_max=4.0, save_at=21, rtol=1e-11, atol=1e-13)
    g = torch.einsum("tbid,tbjd->tbij", traj.positions, traj.positions)[:, 0]
    off = g[:, ~torch.eye(n, dtype=torch.bool)]
    ref = torch.as_tensor(gamma_curve(beta, traj.times.numpy(), n, normalization=normalization))
    err = float((off - ref[:, None]).abs().max())
    spread = float((off.amax(1) - off.amin(1)).max())
    eq = "(6.9)" if normalization == "softmax" else "(6.10)"
    return CheckResult(
        f"Theorem 6.8: orthonormal start follows the equiangular ODE {eq} ({'SA' if normalization == 'softmax' else 'USA'})",
        f"max |⟨x_i,x_j⟩ − γ_β(t)| = {err:.1e}, spread of Gram entries {spread:.1e}",
        "≤ 1e-8 (integrator tolerance 1e-11)",
        err <= 1e-8 and spread <= 1e-8,
        f"n = {n}, d = {d}, β = {beta}, t ∈ [0, 4]",
    )


def _energy(kind: str) -> CheckResult:
    kw = {"normalization": "uniform"} if kind == "USA" else {"V": "repulsive"} if kind == "repulsive" else {}
    traj = simulate(Uniform(batch=8, n=16, d=3, seed=2), 3.0, t_max=10.0, save_at=101, rtol=1e-10, atol=1e-12, **kw)
    worst = float(energy_monotonicity(traj.positions, traj.model).max())
    word = "non-increasing" if kind == "repulsive" else "non-decreasing"
    return CheckResult(
        f"(3.6), Lemma 3.7: energy E_β {word} along {kind} ({'V = −I' if kind == 'repulsive' else 'V = I'})",
        f"largest relative step against the trend {worst:.1e}",
        "≤ 1e-9 (integrator tolerance 1e-10)",
        worst <= 1e-9,
        "8 seeded systems, n = 16, d = 3, β = 3, t ∈ [0, 10]",
    )


def _cone() -> CheckResult:
    n, d, beta = 10, 3, 1.0
    traj = simulate(Cap(batch=4, n=n, d=d, seed=3, angle=1.3), beta, t_max=30.0, save_at=301,
                       rtol=1e-12, atol=1e-14)
    x = traj.positions
    # any w with ⟨x_i(0), w⟩ > 0 for all i works; the normalised mean of a cap of half-angle < π/2 is one
    w = x[0].sum(1)
    w = w / w.norm(dim=-1, keepdim=True)
    r = torch.einsum("tbnd,bd->tbn", x, w).amin(-1)  # (T, B)
    monotone = float((r[:-1] - r[1:]).max())
    xstar = x[-1].mean(1)
    xstar = xstar / xstar.norm(dim=-1, keepdim=True)
    alpha = torch.einsum("tbnd,bd->tbn", x, xstar).amin(-1)
    gap = 1 - alpha
    # exponential rate of 1 − α(t) once α ≥ 1/2, fitted where the gap is well above round-off, against the
    # bound 1/(2n e^{2β}) of (6.7)
    t = traj.times.numpy()
    rates = []
    for b in range(gap.shape[1]):
        sel = ((alpha[:, b] >= 0.5) & (gap[:, b] > 1e-10) & (gap[:, b] < 1e-2)).numpy()
        if sel.sum() >= 5:
            rates.append(-np.polyfit(t[sel], np.log(gap[sel, b].numpy()), 1)[0])
    bound = 1 / (2 * n * math.exp(2 * beta))
    rate = min(rates) if rates else float("nan")
    return CheckResult(
        "Lemma 6.4: tokens in an open hemisphere: r(t) = min⟨x_i, w⟩ non-decreasing; rate ≥ 1/(2n e^{2β}) (6.7)",
        f"largest decrease of r {max(monotone, 0.0):.1e}; slowest fitted rate {rate:.3g}",
        f"decrease ≤ 1e-10; rate ≥ {bound:.3g}",
        monotone <= 1e-10 and len(rates) == 4 and rate >= bound,
        f"cap of half-angle 1.3 rad, n = {n}, d = {d}, β = {beta}",
    )


def _wendel() -> CheckResult:
    from scipy.optimize import linprog

    n, d, trials = 6, 3, 400
    rng = np.random.default_rng(4)
    hits = 0
    for _ in range(trials):
        g = rng.standard_normal((n, d))
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        res = linprog(np.zeros(d), A_ub=-g, b_ub=-np.ones(n), bounds=[(None, None)] * d, method="highs")
        hits += res.status == 0
    p = wendel_probability(n, d)
    freq = hits / trials
    se = math.sqrt(p * (1 - p) / trials)
    return CheckResult(
        "Theorem 6.7 (Wendel): P(n uniform points lie in a hemisphere) = 2^{−(n−1)} Σ_{k<d} C(n−1, k)",
        f"Monte-Carlo {freq:.3f} ± {se:.3f} ({trials} draws)",
        f"{p:.4f}",
        abs(freq - p) <= 3 * se,
        f"n = {n}, d = {d}; hemisphere test by linear programming",
    )


def _usa_gradient() -> CheckResult:
    x = sample_sphere(3, 7, 4, seed=5).requires_grad_(True)
    model = Model(beta=2.5, normalization="uniform")
    e = energy(x, model).sum()
    (grad,) = torch.autograd.grad(e, x)
    x = x.detach()
    riem = tangent_project(x, grad)
    v = velocity(x, model)
    err = float((v - x.shape[1] * riem).abs().max())
    return CheckResult(
        "(3.11): (USA) is the gradient flow ẋ = n ∇E_β in the product metric",
        f"max |ẋ − n P⊥∇E_β| = {err:.1e}",
        "≤ 1e-12 (round-off)",
        err <= 1e-12,
        "autograd gradient of energy(), projected on the tangent space",
    )


def _beta0() -> CheckResult:
    n = 5
    traj = simulate(OrthonormalFrame(batch=1, n=n, d=n, seed=6), 0.0, t_max=3.0, save_at=31, rtol=1e-11, atol=1e-13)
    g = torch.einsum("td,td->t", traj.positions[:, 0, 0], traj.positions[:, 0, 1])
    ref = torch.as_tensor(gamma_closed_form_beta0(traj.times.numpy(), n))
    err = float((g - ref).abs().max())
    return CheckResult(
        "Theorem 6.8 at β = 0: closed form γ_0(t) = (e^{2t} − 1)/(e^{2t} + n − 1)",
        f"max error {err:.1e}",
        "≤ 1e-9",
        err <= 1e-9,
        f"orthonormal start, n = d = {n}, t ∈ [0, 3]",
    )


def _tau_star() -> CheckResult:
    worst = 0.0
    for beta in (2.0, 6.0, 30.0):
        ts_ = tau_star(beta, 2)
        inside = g_function(np.linspace(0, ts_, 200)[:-1], beta, 2).min()
        outside = g_function(np.linspace(ts_, math.pi, 200)[1:], beta, 2).max()
        worst = max(worst, -inside if inside < 0 else 0.0, outside if outside > 0 else 0.0)
    return CheckResult(
        "Theorem 5.1 / Figure 6: g > 0 on (−τ*_β, τ*_β) and g < 0 beyond",
        f"largest sign violation {worst:.1e}",
        "0",
        worst == 0.0,
        "β ∈ {2, 6, 30}, d = 2",
    )


CHECKS: dict[str, Callable[[], CheckResult]] = {
    "equiangular_sa": lambda: _equiangular("softmax"),
    "equiangular_usa": lambda: _equiangular("uniform"),
    "beta0_closed_form": _beta0,
    "energy_sa": lambda: _energy("SA"),
    "energy_usa": lambda: _energy("USA"),
    "energy_repulsive": lambda: _energy("repulsive"),
    "usa_gradient_flow": _usa_gradient,
    "cone_collapse": _cone,
    "wendel": _wendel,
    "tau_star_sign": _tau_star,
}


def run_checks(names: list[str] | None = None, *, threads: int | None = None) -> list[CheckResult]:
    """Run the named checks (all by default), in order. Each takes at most a few seconds on 2 cores.

    threads: torch threads (default: :func:`tokensphere.runtime.choose_threads` for systems of CHECK_N tokens).
    Raises ValueError naming an unknown check."""
    names = list(CHECKS) if names is None else list(names)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; available: {', '.join(CHECKS)}")
    with torch_threads(choose_threads(CHECK_N, threads)):
        return [CHECKS[n]() for n in names]
