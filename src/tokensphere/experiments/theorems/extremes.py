"""Proposition 3.4: the uniform measure minimises E_β, Dirac masses maximise it."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import ive

from ...energy import energy
from ...init import Uniform
from ...model import Model
from .base import Budget, CheckResult, check_size, gram, run_sim

__all__ = ["check_energy_extremes"]


def check_energy_extremes(size: str, budget: Budget) -> CheckResult:
    """Proposition 3.4, E_β[µ] = (1/(2β)) ∬ e^{β⟨x,y⟩} dµ dµ (3.5):

    * S¹: the regular n-gon has E_β = (1/(2β))(I_0(β) + 2 Σ_{m≥1} I_{mn}(β)) > E_β[σ_2] = I_0(β)/(2β) (Bessel
      expansion; the minimum is approached, not reached, by n atoms);
    * S²: for n i.i.d. uniform points, E[E_β(µ_n)] = e^β/(2βn) + (1 − 1/n) sinh(β)/(2β²), with
      E_β[σ_3] = sinh(β)/(2β²) (Monte-Carlo mean within 3 standard errors);
    * along SA trajectories E_β[σ_3] < E_β(X(t)) ≤ e^β/(2β) (the Dirac value), and at the end
      0 ≤ e^β/(2β) − E_β ≤ (e^β/(2n²)) Σ_ij (1 − ⟨x_i, x_j⟩) (from e^{βs} ≥ e^β(1 − β(1 − s))).
    """
    small = check_size(size)
    beta = 3.0
    rows = []
    # S¹: the n-gon, closed form (Bessel functions scaled by e^{−β} to avoid overflow)
    gon_err = 0.0
    for n in (3, 5, 8):
        a = torch.arange(n, dtype=torch.float64) * 2 * math.pi / n
        x = torch.stack([torch.cos(a), torch.sin(a)], -1)[None]
        e = float(energy(x, beta)[0])
        m = np.arange(1, 60)
        closed = math.exp(beta) * (ive(0, beta) + 2 * ive(m * n, beta).sum()) / (2 * beta)
        gon_err = max(gon_err, abs(e - closed) / closed)
        rows.append(e > math.exp(beta) * ive(0, beta) / (2 * beta))
    # S²: Monte-Carlo mean of E_β(µ_n) for i.i.d. uniform points
    n, draws = 16, (400 if small else 2000)
    e = energy(Uniform(batch=draws, n=n, d=3, seed=60).sample(), beta).numpy()
    sigma3 = math.sinh(beta) / (2 * beta**2)
    expected = math.exp(beta) / (2 * beta * n) + (1 - 1 / n) * sigma3
    z = abs(e.mean() - expected) / (e.std(ddof=1) / math.sqrt(draws))
    # dynamics: E between E[σ] and the Dirac value, reaching it
    budget.tick()
    traj = run_sim(Uniform(batch=4, n=n, d=3, seed=61), budget, t_max=20.0, save_at=41, beta=beta)
    T, B = traj.positions.shape[:2]
    et = energy(traj.positions.reshape(T * B, n, 3), Model(beta=beta)).reshape(T, B)
    top = math.exp(beta) / (2 * beta)
    end = traj.positions[-1]
    gap_bound = math.exp(beta) / (2 * n * n) * (1 - gram(end)).sum((-1, -2))
    gap = top - et[-1]
    inside = bool((et > sigma3).all() and (et <= top * (1 + 1e-14)).all())
    ends = bool((gap >= -top * 1e-14).all() and (gap <= gap_bound * (1 + 1e-9) + top * 1e-14).all())
    ok = gon_err <= 1e-12 and all(rows) and z <= 3 and inside and ends
    return CheckResult(
        "Proposition 3.4: σ_d minimises E_β (closed forms on S¹, S²); Diracs maximise it (e^β/(2β))",
        f"n-gon vs Bessel closed form {gon_err:.1e}, all > I_0(β)/(2β): {all(rows)}; S² Monte-Carlo mean "
        f"{e.mean():.5f} vs {expected:.5f} ({z:.1f} SE); trajectories in (E[σ_3], e^β/(2β)]: {inside}; "
        f"final gap to e^β/(2β) within its bound: {ends}",
        "≤ 1e-12; ≤ 3 SE; true; true",
        ok,
        f"β = {beta}; n-gons n ∈ {{3, 5, 8}}; {draws} draws of n = {n} points on S²; 4 SA runs to t = 20",
        plot={"x": traj.times.tolist(), "series": {f"run {b}": et[:, b].tolist() for b in range(B)},
              "xlabel": "t", "ylabel": "E_β(X(t))", "refs": {"E_β[σ_3] = sinh β/(2β²)": sigma3,
                                                          "Dirac e^β/(2β)": top}},
    )
