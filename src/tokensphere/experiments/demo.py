"""The experiment of ``tokensphere demo``: a small but real clustering run and its statistics.

n = 32 tokens on S² (d = 3), (SA) with V = I, β ∈ {1, 9}, seeded uniform starts shared by both β, adaptive
dopri5 (rtol 1e-8) on t ∈ [0, 30] with 151 saved times. Measured: the normalised energy Ē(t) per system, the
cluster counts over time for the fixed δ of Figure 3 and for the scale-aware δ_β, their final values per β,
and how far Ē strays from monotone. Expected picture: at β = 1 every start collapses to one cluster; at β = 9
the tokens sit in several clusters at t = 30 (metastability, Problem 1); Ē(t) is non-decreasing in every
system ((3.6) and Lemma 3.7).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..analysis import cluster_count, energy_series, scale_aware_delta, step_against_trend
from ..init import Uniform
from ..model import Model
from ..simulate import simulate
from ..trajectory import Trajectory
from ..validate import validate_int
from .layout import beta_batch, group_by_beta, system_betas, systems_by_beta

__all__ = ["DELTA", "DEMO_BETAS", "DemoRun", "N", "D", "RTOL", "ATOL", "SNAPSHOTS", "demo_run", "demo_summary"]

N, D = 32, 3  # n = 32 as in Figure 3; d = 3 so the tokens can be drawn on S²
DEMO_BETAS = (1.0, 9.0)  # the ends of the Figure 3 β range [0.1, 9]: one cluster vs metastable clusters
SNAPSHOTS = (0.0, 3.0, 10.0, 30.0)
RTOL, ATOL = 1e-8, 1e-10
DELTA = 1e-3  # cluster threshold ⟨x_i, x_j⟩ > 1 − δ of Figure 3
# Scale-aware threshold δ_β = 1 − cos(τ*_β/2) (analysis.scale_aware_delta): half the angle τ*_β beyond which a
# pair no longer attracts (Theorem 5.1, Figure 6); an absolute threshold ignores that scale.
SCALED_LABEL = "δ = 1 − cos(τ*_β/2)"


@dataclass(frozen=True)
class DemoRun:
    """The demo's run and what was measured on it.

    energy: (T, B) Ē = 2β e^{−β} E_β. k_fixed, k_scaled: (T, B) cluster counts with δ = DELTA and with the
    scale-aware δ_β. final: {"fixed" | "scaled": {β: [count per start]}} at the last saved time. drift: the
    largest relative step of Ē against its non-decreasing trend, over all systems (0 when monotone).
    """

    traj: Trajectory
    seed: int
    n_seeds: int
    energy: torch.Tensor
    k_fixed: torch.Tensor
    k_scaled: torch.Tensor
    final: dict[str, dict[float, list[int]]]
    drift: float

    @property
    def monotone(self) -> bool:
        """Ē non-decreasing in every system, up to the integrator's relative tolerance."""
        return self.drift <= RTOL


def demo_run(
    *, seed: int = 0, n_seeds: int = 4, t_max: float = 30.0, save_at: int = 151,
    progress: Callable[[float], None] | None = None, metadata: dict[str, Any] | None = None,
) -> DemoRun:
    """Simulate every β of DEMO_BETAS × ``n_seeds`` seeded starts and measure the run (see :class:`DemoRun`).

    progress: the ``progress`` callback of :func:`tokensphere.simulate`. metadata: added to the run's metadata.
    Raises ValueError for an invalid count, time or seed.
    """
    validate_int("n_seeds", n_seeds, minimum=1)
    batch = beta_batch(Uniform(batch=n_seeds, n=N, d=D, seed=seed), DEMO_BETAS)
    meta = {"seed": seed, "init": batch.init, **(metadata or {})}
    traj = simulate(batch.x0, model=Model(beta=batch.beta), solver="dopri5", rtol=RTOL, atol=ATOL, t_max=t_max,
                    save_at=save_at, progress=progress, metadata=meta)
    betas = system_betas(traj.model, traj.shape[1])
    energy = energy_series(traj.positions, traj.model)  # (T, B)
    k_fixed = cluster_count(traj.positions, DELTA)  # (T, B)
    k_scaled = torch.empty_like(k_fixed)
    for b, idx in systems_by_beta(betas).items():
        k_scaled[:, idx] = cluster_count(traj.positions[:, idx], float(scale_aware_delta(b)))
    final = {"fixed": group_by_beta(k_fixed[-1].tolist(), betas), "scaled": group_by_beta(k_scaled[-1].tolist(), betas)}
    drift = float(step_against_trend(energy).max())
    return DemoRun(traj, seed, n_seeds, energy, k_fixed, k_scaled, final, drift)


def demo_summary(run: DemoRun, wall: float, files: dict[str, str]) -> dict[str, Any]:
    """The run's summary.json: settings, seeds, final cluster counts, the energy check, wall time, metadata."""
    traj, seed, n_seeds = run.traj, run.seed, run.n_seeds
    T, B, n, d = traj.shape
    t_end = float(traj.times[-1])
    return {
        "command": "tokensphere demo",
        "settings": {
            "n": n, "d": d, "betas": list(DEMO_BETAS), "starts_per_beta": n_seeds, "t_max": t_end,
            "saved_times": T, "snapshot_times": [t for t in SNAPSHOTS if t <= t_end],
            "model": traj.model.describe(), "solver": traj.solver.describe(),
        },
        "seeds": {
            "seed": seed,
            "systems": [{"system": s, "beta": b, "stream": [seed, s % n_seeds]}
                        for s, b in enumerate(system_betas(traj.model, B))],
            "note": "system (beta_i, k) starts from numpy SeedSequence([seed, k]): the same start for every beta",
        },
        "final_cluster_counts": {
            "time": t_end,
            "delta_fixed": {"delta": DELTA, "by_beta": {f"{b:g}": c for b, c in run.final["fixed"].items()}},
            "delta_scale_aware": {
                "delta": {f"{b:g}": float(scale_aware_delta(b)) for b in run.final["scaled"]},
                "by_beta": {f"{b:g}": c for b, c in run.final["scaled"].items()},
            },
        },
        "energy_normalized": {
            "final_by_system": run.energy[-1].tolist(),
            "largest_relative_step_against_trend": run.drift,
            "tolerance": RTOL,
            "non_decreasing": run.monotone,
        },
        "steps": traj.steps.tolist(),
        "rejected": traj.rejected.tolist(),
        "wall_seconds": {"integration": traj.metadata.get("wall_seconds"), "total": wall},
        "files": files,
        "metadata": traj.metadata,
    }
