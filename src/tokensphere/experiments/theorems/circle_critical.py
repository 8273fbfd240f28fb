"""Theorem 5.1 on the circle: τ*_β, the peak of the pair force, and the critical points of E_β classified by
their Hessian (7.4), (B.2)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ...circle import classify_critical_point, find_critical_points
from ...field import velocity
from ...integrate import Clustered
from ...model import Model
from ...theory import g_function, large_beta_threshold_d2, tau_star
from .base import Budget, CheckResult, check_size, run_sim

__all__ = ["check_tau_star", "check_critical_points"]


def check_tau_star(size: str, budget: Budget) -> CheckResult:
    """Theorem 5.1, Figure 6: g = d/dθ(sin θ e^{β cos θ}) is > 0 on (0, τ*_β) and < 0 on (τ*_β, π], so the speed of
    two tokens under (USA), |ẋ| = e^{β cos θ} sin θ (the library's field at d = 2), peaks at θ = τ*_β (d = 2)."""
    small = check_size(size)
    betas = (2.0, 6.0, 30.0) if small else (2.0, 6.0, 30.0, 100.0)
    worst_sign, worst_peak, series = 0.0, 0.0, {}
    grid = np.linspace(1e-3, math.pi - 1e-3, 4001)
    for beta in betas:
        budget.tick()
        ts_ = tau_star(beta, 2)
        inside = g_function(np.linspace(0, ts_, 200)[:-1], beta, 2).min()
        outside = g_function(np.linspace(ts_, math.pi, 200)[1:], beta, 2).max()
        worst_sign = max(worst_sign, -inside if inside < 0 else 0.0, outside if outside > 0 else 0.0)
        x = torch.zeros(len(grid), 2, 2, dtype=torch.float64)
        x[:, 0, 0] = 1.0
        x[:, 1, 0], x[:, 1, 1] = torch.as_tensor(np.cos(grid)), torch.as_tensor(np.sin(grid))
        speed = velocity(x, Model(beta=beta, normalization="uniform", time_scale="exp_beta"))[:, 1].norm(dim=-1)
        k = int(speed.argmax())
        worst_peak = max(worst_peak, abs(grid[k] - ts_) / (grid[1] - grid[0]))
        series[f"β = {beta:g}"] = (speed / speed.max()).tolist()[::20]
    return CheckResult(
        "Theorem 5.1 / Figure 6: g > 0 on (0, τ*_β), < 0 beyond; the pair speed of the field peaks at τ*_β",
        f"largest sign violation {worst_sign:.1e}; |argmax speed − τ*_β| = {worst_peak:.2f} grid steps",
        "0; ≤ 1 grid step (π/4000)",
        worst_sign == 0.0 and worst_peak <= 1.0,
        f"β ∈ {set(betas)}, d = 2; speed from velocity() (USA, s = e^β t) on 4001 angles",
        plot={"x": grid[::20].tolist(), "series": series, "xlabel": "angle θ between the two tokens",
              "ylabel": "pair speed / its maximum"},
    )


def check_critical_points(size: str, budget: Budget) -> CheckResult:
    """Theorem 5.1 (d = 2) with the sharpened condition (n − 1)τ*_β < π: critical points of E_β found by Newton
    from many random starts are classified by the Hessian on 1^⊥ (the rotation mode removed); none but
    consensus is a local maximum. At every non-consensus critical point the library's (USA) field vanishes
    (θ̇ = n∇E_β), and perturbed by 1e-4 the dynamics leave it and end in one cluster (strict saddles)."""
    small = check_size(size)
    n, starts = (4, 60) if small else (5, 150)
    beta = 1.05 * large_beta_threshold_d2(n) + 1.0
    budget.tick()
    cp = find_critical_points(n, beta, starts=starts, seed=50, method="both")
    budget.tick()
    spread = torch.remainder(cp.theta - cp.theta[:, :1] + math.pi, 2 * math.pi) - math.pi
    is_consensus = spread.abs().amax(-1) < 1e-6
    found = [(th.numpy(), "consensus" if c else ("saddle" if k in ("strict saddle", "minimum") else k), int(m))
             for th, k, c, m in zip(cp.theta, cp.kind, is_consensus.tolist(), cp.count.tolist())]
    maxima_off = sum(m for _, k, m in found if k in ("maximum", "degenerate"))
    saddles = [th for th, k, _ in found if k == "saddle"][:4]
    consensus = sum(m for _, k, m in found if k == "consensus")
    n_saddles = sum(m for _, k, m in found if k == "saddle")
    vel = 0.0
    left = 0
    if saddles:
        x = torch.as_tensor(np.stack([np.stack([np.cos(th), np.sin(th)], -1) for th in saddles]))
        vel = float(velocity(x, Model(beta=beta, normalization="uniform", time_scale="exp_beta")).abs().max())
        g = torch.Generator().manual_seed(51)
        noise = torch.randn(len(saddles), n, generator=g, dtype=torch.float64)
        th_p = torch.as_tensor(np.stack(saddles)) + 1e-4 * noise
        xp = torch.stack([torch.cos(th_p), torch.sin(th_p)], -1)
        traj = run_sim(xp, budget, t_max=1e4, save_at=2, rtol=1e-9, atol=1e-11, beta=beta,
                       normalization="uniform", time_scale="exp_beta", events=[Clustered(1e-3)])
        left = int(torch.isfinite(traj.event_time).sum())
    # consensus itself: a maximum (Hessian negative definite on 1^⊥)
    consensus_max = classify_critical_point(torch.zeros(n, dtype=torch.float64), beta) == "maximum"
    source = "tokensphere.circle (Appendix B Hessian, Newton and ascent starts)"
    ok = maxima_off == 0 and consensus_max and len(saddles) > 0 and vel <= 1e-12 and left == len(saddles)
    return CheckResult(
        "Theorem 5.1 (d = 2, (n − 1)τ*_β < π): the only local maxima of E_β are consensus; other critical points "
        "are strict saddles that the flow leaves",
        f"consensus a maximum: {consensus_max}; {sum(m for *_, m in found)} converged limits (with repeats) from {cp.starts} starts: "
        f"{consensus} consensus, {maxima_off} other maxima, "
        f"{n_saddles} saddles; |ẋ| at saddles {vel:.1e}; {left}/{len(saddles)} "
        "perturbed saddles reach one cluster",
        "consensus a maximum; 0 other maxima; |ẋ| ≤ 1e-12; all leave",
        ok,
        f"n = {n}, β = {beta:.4g} (threshold {large_beta_threshold_d2(n):.4g}); Hessian on 1^⊥, Newton from "
        f"{cp.starts} starts; critical points from {source}",
        plot={"kind": "bars", "x": ["consensus", "other maxima", "saddles"],
              "series": {"critical points": [consensus, maxima_off, n_saddles]},
              "xlabel": "kind (Hessian on 1^⊥)", "ylabel": "count"},
    )
