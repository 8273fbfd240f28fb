"""Checks against exact solutions and exact identities of the flow: the equiangular ODEs (6.9)/(6.10), closed
forms at β = 0, the two-particle ODEs, the gradient-flow structures (3.11)/(3.12) and the energy rate identities
along trajectories."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.integrate import solve_ivp

from ...energy import energy, energy_rate, energy_tilde
from ...field import velocity
from ...init import OrthonormalFrame, Uniform, sample_sphere
from ...model import Model
from ...theory import equiangular_rhs, gamma_closed_form_beta0, gamma_curve
from .base import Budget, CheckResult, check_size, gram, run_sim
from .kernel import pair_angles

__all__ = ["check_equiangular", "check_beta0", "check_two_particles", "check_gradient_flows", "check_energy_rates"]


def _project(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """P⊥_x y computed here (the reference does not use the kernel's projection)."""
    return y - (x * y).sum(-1, keepdim=True) * x


def check_equiangular(normalization: str):
    """Theorem 6.8: from an orthonormal frame every ⟨x_i, x_j⟩ equals γ_β(t) of (6.9) (SA) or (6.10) (USA);
    USA is also run in the time scale s = e^β t, where γ(s) = γ_β(s e^{−β}). SA is also run with two heads
    B_h = λ_h I, V_h = μ_h I: each head is μ_h times the SA field at β λ_h, the frame's permutations still commute
    with the flow, and γ̇ = 2⟨ẋ_i, x_k⟩ is the sum over heads: γ̇ = Σ_h μ_h · (6.9)(γ; β λ_h) (heads summed, (2.7))."""

    def check(size: str, budget: Budget) -> CheckResult:
        small = check_size(size)
        n, d, beta, t_max = (5, 8, 2.0, 3.0) if small else (6, 12, 2.0, 4.0)
        x0 = OrthonormalFrame(batch=1, n=n, d=d, seed=1)
        runs = [("original time", run_sim(x0, budget, t_max=t_max, save_at=21, rtol=1e-11, atol=1e-13, beta=beta,
                                          normalization=normalization), 1.0)]
        if normalization == "uniform":
            scale = math.exp(beta)
            runs.append(("s = e^β t", run_sim(x0, budget, t_max=t_max * scale, save_at=21, rtol=1e-11, atol=1e-13,
                                               beta=beta, normalization="uniform", time_scale="exp_beta"), scale))
        err = spread = 0.0
        series = {}
        for label, traj, scale in runs:
            off = pair_angles(traj.positions[:, 0])
            t = traj.times.numpy() / scale
            ref = torch.as_tensor(gamma_curve(beta, t, n, normalization=normalization))
            err = max(err, float((off - ref[:, None]).abs().max()))
            spread = max(spread, float((off.amax(1) - off.amin(1)).max()))
            series[f"γ measured ({label})"] = off.mean(1).tolist()
        series["γ_β(t), reference"] = ref.tolist()
        if normalization == "softmax":  # two heads B_h = λ_h I, V_h = μ_h I: γ̇ = Σ_h μ_h · (6.9) at β λ_h
            lam, mu = (1.0, 0.25), (0.6, 1.5)
            eye = np.eye(d)
            traj = run_sim(x0, budget, t_max=t_max, save_at=21, rtol=1e-11, atol=1e-13, beta=beta, heads=2,
                           QK=np.stack([lam[0] * eye, lam[1] * eye]), V=np.stack([mu[0] * eye, mu[1] * eye]))
            off = pair_angles(traj.positions[:, 0])
            rhs = lambda _, g: sum(m * equiangular_rhs(g, beta * lm, n) for lm, m in zip(lam, mu))  # noqa: E731
            sol = solve_ivp(rhs, (0, t_max), [0.0], method="DOP853", rtol=1e-12, atol=1e-14,
                            t_eval=traj.times.numpy())
            err = max(err, float((off - torch.as_tensor(sol.y[0])[:, None]).abs().max()))
            spread = max(spread, float((off.amax(1) - off.amin(1)).max()))
            series["γ measured (2 heads)"] = off.mean(1).tolist()
            series["Σ_h μ_h (6.9) at βλ_h, reference"] = sol.y[0].tolist()
        eq, short = ("(6.9)", "SA") if normalization == "softmax" else ("(6.10)", "USA")
        tol = 1e-8
        return CheckResult(
            f"Theorem 6.8: orthonormal start follows the equiangular ODE {eq} ({short}"
            + (", both time scales)" if short == "USA" else "; and 2 heads B_h = λ_h I, V_h = μ_h I summed)"),
            f"max |⟨x_i,x_j⟩ − γ_β(t)| = {err:.1e}, spread of Gram entries {spread:.1e}",
            f"≤ {tol:g} (integrator tolerance 1e-11)",
            err <= tol and spread <= tol,
            f"n = {n}, d = {d}, β = {beta}, t ∈ [0, {t_max:g}]; γ_β by SciPy DOP853 at rtol 1e-12",
            plot={"x": (runs[0][1].times).tolist(), "series": series, "xlabel": "t", "ylabel": "⟨x_i, x_j⟩"},
        )

    return check


def check_beta0(size: str, budget: Budget) -> CheckResult:
    """Theorem 4.1 / (4.1) at β = 0 (SA = USA): closed forms. Orthonormal start: γ_0(t) = (e^{2t} − 1)/(e^{2t} + n − 1);
    two tokens from any angle θ(0): tan(θ(t)/2) = tan(θ(0)/2) e^{−t}."""
    small = check_size(size)
    n = 4 if small else 5
    frame = run_sim(OrthonormalFrame(batch=1, n=n, d=n, seed=6), budget, t_max=3.0, save_at=31, rtol=1e-11,
                    atol=1e-13, beta=0.0)
    g = pair_angles(frame.positions[:, 0])
    t = frame.times.numpy()
    ref = torch.as_tensor(gamma_closed_form_beta0(t, n))
    err_frame = float((g - ref[:, None]).abs().max())
    pair = sample_sphere(6, 2, 3, seed=7)
    err_pair = 0.0
    for normalization in ("softmax", "uniform"):
        traj = run_sim(pair, budget, t_max=3.0, save_at=31, rtol=1e-11, atol=1e-13, beta=0.0,
                       normalization=normalization)
        cos = gram(traj.positions)[..., 0, 1].clamp(-1, 1)
        theta = torch.arccos(cos)
        theta_ref = 2 * torch.arctan(torch.tan(theta[0] / 2)[None] * torch.exp(-traj.times)[:, None])
        err_pair = max(err_pair, float((torch.cos(theta_ref) - cos).abs().max()))
    tol = 1e-9
    return CheckResult(
        "Theorem 4.1 / Theorem 6.8 at β = 0: γ_0(t) = (e^{2t} − 1)/(e^{2t} + n − 1); two tokens: "
        "tan(θ/2) = tan(θ(0)/2) e^{−t}",
        f"max error {max(err_frame, err_pair):.1e} (frame {err_frame:.1e}, pairs {err_pair:.1e})",
        f"≤ {tol:g}",
        err_frame <= tol and err_pair <= tol,
        f"orthonormal start n = d = {n}; 6 random pairs on S², SA and USA, t ∈ [0, 3]",
        plot={"x": t.tolist(), "series": {"γ measured": g.mean(1).tolist(), "γ_0(t) closed form": ref.tolist()},
              "xlabel": "t", "ylabel": "⟨x_i, x_j⟩"},
    )


def _pair_rhs(normalization: str, beta: float):
    """θ̇ for two tokens at angle θ (two points are equiangular): (SA) −2e^{β cos θ} sin θ/(e^β + e^{β cos θ}),
    (USA) −e^{β cos θ} sin θ."""
    if normalization == "softmax":
        return lambda _, th: -2 * np.sin(th) / (np.exp(beta * (1 - np.cos(th))) + 1)
    return lambda _, th: -np.exp(beta * np.cos(th)) * np.sin(th)


def check_two_particles(size: str, budget: Budget) -> CheckResult:
    """Two tokens, β > 0, SA and USA, general d: the angle follows the scalar ODE of Theorem 6.8's proof with
    n = 2, solved by SciPy (DOP853, rtol 1e-12), whatever the starting angle."""
    small = check_size(size)
    betas = (0.7, 3.0)
    t_max, d = 4.0, 5
    x0 = sample_sphere(2 if small else 3, 2, d, seed=8)
    err, series = 0.0, {}
    times = None
    for normalization in ("softmax", "uniform"):
        for beta in betas:
            traj = run_sim(x0, budget, t_max=t_max, save_at=41, rtol=1e-11, atol=1e-13, beta=beta,
                           normalization=normalization)
            times = traj.times.numpy()
            theta = torch.arccos(gram(traj.positions)[..., 0, 1].clamp(-1, 1))  # (T, B)
            for b in range(theta.shape[1]):
                sol = solve_ivp(_pair_rhs(normalization, beta), (0, t_max), [float(theta[0, b])], method="DOP853",
                                rtol=1e-12, atol=1e-14, t_eval=times)
                err = max(err, float(np.abs(np.cos(sol.y[0]) - np.cos(theta[:, b].numpy())).max()))
            series[f"{'SA' if normalization == 'softmax' else 'USA'}, β = {beta:g}"] = theta[:, 0].tolist()
    tol = 1e-8
    return CheckResult(
        "Two tokens (Theorem 6.8, n = 2): θ̇ = −2e^{β cos θ} sin θ/(e^β + e^{β cos θ}) (SA), −e^{β cos θ} sin θ (USA)",
        f"max |cos θ(t) − cos θ_ODE(t)| = {err:.1e}",
        f"≤ {tol:g} (integrator tolerance 1e-11)",
        err <= tol,
        f"{x0.shape[0]} random pairs on S^{d - 1}, β ∈ {set(betas)}, t ∈ [0, {t_max:g}]",
        plot={"x": times.tolist(), "series": series, "xlabel": "t", "ylabel": "angle θ(t) of the first pair"},
    )


def check_gradient_flows(size: str, budget: Budget) -> CheckResult:
    """(3.11): (USA) is ẋ = n ∇E_β in the product metric; with a symmetric B = QᵀK and V = B it is the gradient of
    (1/(2βn²)) ΣΣ e^{β⟨x_i, B x_j⟩}. (3.12): (SA) with V = QᵀK symmetric is the gradient flow of Ẽ_β in the
    Z-weighted metric: Z_{β,i} ẋ_i = P⊥_{x_i} ∇_{x_i} Ẽ_β, Z_{β,i} = Σ_j e^{β⟨V x_i, x_j⟩}. Gradients by autograd
    of the energies (energy.py), compared with the kernel at random points."""
    small = check_size(size)
    B_, n, d = (2, 6, 4) if small else (3, 8, 5)
    rng = np.random.default_rng(9)
    a = rng.standard_normal((d, d)) / math.sqrt(d)
    sym = torch.as_tensor(a + a.T) / 2
    beta = 1.8
    x = sample_sphere(B_, n, d, seed=9)
    rows = []
    budget.tick()
    for label, model in (("USA, Q = K = V = I", Model(beta=beta, normalization="uniform")),
                         ("USA, V = QᵀK symmetric", Model(beta=beta, normalization="uniform", QK=sym, V=sym))):
        xr = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(xr, model).sum(), xr)
        ref = n * _project(x, grad)
        v = velocity(x, model)
        rows.append((f"(3.11) {label}", float((v - ref).abs().max()) / float(ref.abs().max())))
    for label, model, vmat in (("SA, Q = K = V = I", Model(beta=beta), torch.eye(d, dtype=torch.float64)),
                               ("SA, V = QᵀK symmetric", Model(beta=beta, QK=sym, V=sym), sym)):
        xr = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy_tilde(xr, model).sum(), xr)
        z = torch.exp(beta * (x @ vmat @ x.transpose(1, 2))).sum(-1, keepdim=True)  # Z_{β,i} of (3.12)
        ref = _project(x, grad) / z
        v = velocity(x, model)
        rows.append((f"(3.12) {label}", float((v - ref).abs().max()) / float(ref.abs().max())))
    worst = max(e for _, e in rows)
    tol = 1e-11
    return CheckResult(
        "(3.11), (3.12): USA = n ∇E_β (product metric); SA with V = QᵀK symmetric = ∇Ẽ_β in the Z-weighted metric",
        "; ".join(f"{lab}: {e:.1e}" for lab, e in rows),
        f"relative difference ≤ {tol:g} (round-off)",
        worst <= tol,
        f"{B_} random configurations, n = {n}, d = {d}, β = {beta}; autograd gradients of energy()/energy_tilde()",
        plot={"kind": "bars", "x": [lab for lab, _ in rows], "series": {"relative difference": [e for _, e in rows]},
              "xlabel": "identity", "ylabel": "|ẋ − gradient| / |gradient|", "logy": True,
              "refs": {"tolerance": tol}},
    )


def check_energy_rates(size: str, budget: Budget) -> CheckResult:
    """Rate identities along trajectories: dE_β/dt = (1/n²) Σ_i Z_{β,i}|ẋ_i|² (SA), (1/n) Σ_i |ẋ_i|² (USA), with the
    opposite sign for V = −I, dĒ/ds = 2β (1/n) Σ|dx_i/ds|² (USA in s = e^β t), dẼ_β/dt = Σ_i Z_{β,i}|ẋ_i|² (SA,
    V = QᵀK symmetric). At every saved point the rate (energy_rate) equals the derivative of the energy along the
    simulated velocity, DE(X)[Ẋ] by autograd: a quantitative test of the field, not only of the sign of dE/dt."""
    small = check_size(size)
    n, d, t_max = (8, 3, 4.0) if small else (12, 3, 6.0)
    rng = np.random.default_rng(10)
    a = rng.standard_normal((d, d)) / math.sqrt(d)
    sym = a + a.T
    cases = [("SA", {}, "A", energy), ("USA", {"normalization": "uniform"}, "A", energy),
             ("SA, V = −I", {"V": "repulsive"}, "A", energy),
             ("USA, s = e^β t", {"normalization": "uniform", "time_scale": "exp_beta"}, "A", None),
             ("SA, V = QᵀK symmetric", {"QK": sym, "V": sym}, "tilde", energy_tilde)]
    beta = 2.0
    x0 = Uniform(batch=3, n=n, d=d, seed=10)
    worst, monotone, series = 0.0, 0.0, {}
    from ...energy import energy_normalized

    for label, kw, which, fn in cases:
        model = Model(beta=beta, **kw)
        traj = run_sim(x0, budget, t_max=t_max, save_at=25, model=model)
        T, B, _, _ = traj.positions.shape
        x = traj.positions.reshape(T * B, n, d)
        m = model if model.batch_size == 1 else model.take(torch.arange(B).repeat(T))
        f = fn or energy_normalized
        xr = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(f(xr, m).sum(), xr)
        v = velocity(x, m)
        along = (grad * v).sum((-1, -2))  # DE(X)[Ẋ]
        rate = energy_rate(x, m, which=which)
        # relative to the largest rate of the run: near consensus ẋ is round-off and so is the rate
        scale = rate.reshape(T, B).abs().amax(0).clamp_min(1e-300)
        rel = float(((along - rate).reshape(T, B).abs() / scale).max())
        worst = max(worst, rel)
        sign = -1.0 if label.endswith("V = −I") else 1.0
        e = f(x, m).reshape(T, B)
        monotone = max(monotone, float((sign * (e[:-1] - e[1:]) / e[:-1].abs()).max()))
        series[label] = (rate.reshape(T, B)[:, 0].abs() / rate.reshape(T, B)[0, 0].abs()).tolist()
    tol, tol_mono = 1e-10, 1e-9
    return CheckResult(
        "(3.6), Lemma 3.7, (3.11), (3.12): energy rate identities along trajectories (SA, USA, V = −I, s = e^β t, "
        "V = QᵀK)",
        f"max |DE[ẋ] − rate| / max_t |rate| = {worst:.1e}; largest step against the trend {max(monotone, 0):.1e}",
        f"≤ {tol:g} (round-off); trend ≤ {tol_mono:g}",
        worst <= tol and monotone <= tol_mono,
        f"3 random starts, n = {n}, d = {d}, β = {beta}, 25 saved times in [0, {t_max:g}]",
        plot={"x": torch.linspace(0, t_max, 25).tolist(), "series": series, "xlabel": "t (s for s = e^β t)",
              "ylabel": "|dE/dt| / |dE/dt|(0)", "logy": True},
    )
