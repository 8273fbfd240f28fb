"""Metastability time scales (Problem 1 of the paper): when clusters form, how long each multi-cluster
plateau lives, and how that lifetime grows with β.

From a run saved at log-spaced times (:func:`tokensphere.experiments.metastability.metastability_runs`):

* T₁, the time the first clusters have formed: the first saved time at which the number of δ-clusters is at
  most n/2 (half of the tokens have joined another one);
* the lifetime of every plateau of k ≥ 2 clusters that starts after T₁ and ends before the last saved time
  (finished), and a lower bound for those still alive at the end (censored);
* a least-squares fit of log(median lifetime of the two-cluster plateaus) against β: the metastability
  picture predicts exponential growth, a positive slope.

Plateau boundaries are resolved to the saved times; on a log-spaced grid that is a fixed relative accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..analysis import cluster_count, plateaus
from ..trajectory import Trajectory
from .layout import system_betas, systems_by_beta

__all__ = ["first_cluster_time", "plateau_lifetimes", "saddle_index", "time_scales", "exponential_fit"]


def first_cluster_time(times: torch.Tensor, counts: torch.Tensor, n: int) -> torch.Tensor:
    """T₁ per system: the first saved time with at most n/2 clusters (NaN if never). times: (T,);
    counts: (T, B). Returns (B,) float64."""
    reached = counts <= n / 2
    first = torch.where(reached.any(0), reached.float().argmax(0), torch.full_like(counts[0], -1))
    t = times.to(torch.float64)
    return torch.where(first >= 0, t[first.clamp(min=0)], torch.full_like(t[:1].expand(first.numel()), math.nan))


def plateau_lifetimes(times: torch.Tensor, counts: torch.Tensor, after: torch.Tensor) -> list[dict[str, Any]]:
    """Plateaus of k ≥ 2 clusters starting at or after ``after[b]`` (T₁ of system b): one dict per plateau with
    system, count, start, end, length and ``finished`` (False when still alive at the last saved time, so its
    length is a lower bound). times: (T,); counts: (T, B); after: (B,)."""
    t_end = float(times[-1])
    out = []
    for p in plateaus(times, counts):
        start = float(after[p.system])
        if p.count < 2 or math.isnan(start) or p.t_start < start:
            continue
        out.append({"system": p.system, "count": p.count, "start": p.t_start, "end": p.t_end,
                    "length": p.length, "finished": p.t_end < t_end})
    return out


def saddle_index(x: torch.Tensor, beta: float, delta: float = 1e-3, max_move: float | None = None) -> int | None:
    """The Morse index (number of unstable directions) of the critical point of E_β on the torus next to a
    plateau state of the circle, or None when none is found near it.

    Every token is put on its cluster's centre, Newton's method finds the critical point there
    (:func:`tokensphere.circle.newton_critical_point`), and the positive eigenvalues of its Hessian on 1^⊥
    are counted (Appendix B). It is accepted when Newton converged to a critical point with the same number
    of δ-clusters (and, if ``max_move`` is given, moved no token by more than that many radians: a plateau
    drifts slowly along the saddle's unstable direction, so its state can sit a fair angle from the saddle).
    x: (n, 2) unit vectors (one system, d = 2).
    """
    from ..analysis import cluster_centers, cluster_labels
    from ..circle import angles_to_positions, newton_critical_point, positions_to_angles, torus_hessian_spectrum

    labels = cluster_labels(x, delta)
    stacked = cluster_centers(x, labels).gather(0, labels.unsqueeze(-1).expand_as(x))
    theta = positions_to_angles(stacked).unsqueeze(0)
    crit, converged = newton_critical_point(theta, beta, tol=1e-12, max_iter=200)
    moved = torch.remainder(crit - theta + math.pi, 2 * math.pi) - math.pi
    same = int(cluster_count(angles_to_positions(crit[0]), delta)) == int(cluster_count(x, delta))
    if not (bool(converged[0]) and same and (max_move is None or float(moved.abs().max()) <= max_move)):
        return None
    lam = torus_hessian_spectrum(crit, beta)[0]
    return int((lam > 1e-13 * lam.abs().max()).sum())


def exponential_fit(betas: Sequence[float], values: Sequence[float]) -> dict[str, float]:
    """Least-squares fit log v = a + s·β over the finite positive values: {"slope": s, "intercept": a,
    "points": m}; NaN slope with fewer than two points."""
    pts = [(b, math.log(v)) for b, v in zip(betas, values) if v is not None and math.isfinite(v) and v > 0]
    if len(pts) < 2:
        return {"slope": math.nan, "intercept": math.nan, "points": len(pts)}
    slope, intercept = np.polyfit([p[0] for p in pts], [p[1] for p in pts], 1)
    return {"slope": float(slope), "intercept": float(intercept), "points": len(pts)}


def time_scales(traj: Trajectory, delta: float = 1e-3, *, label_saddles: bool = True) -> dict[str, Any]:
    """T₁, plateau lifetimes per cluster count and the exponential fit, summarised per β (JSON-serialisable).

    traj: a run with positions (T, B, n, d) saved at log-spaced times (several seeded starts per β).
    Returns {"beta": {β: {"t_first": [...], "t_first_median": ..., "lifetimes": {k: [...]},
    "censored": {k: [...]}, "two_cluster_median": ..., "saddle_index": {k: [...]}}}, "fit": exponential_fit
    of the two-cluster medians, "delta": δ, "t_max": last saved time}. On the circle (d = 2), with
    ``label_saddles``, each plateau is labelled by the Morse index of the nearby critical point of E_β
    (:func:`saddle_index`, sampled at the plateau's geometric mid-time; None when not resolved): a plateau of
    k clusters sits next to a saddle with k − 1 unstable directions, and a merge is a saddle-to-saddle jump.
    """
    T, B, n, d = traj.shape
    counts = cluster_count(traj.positions, delta)
    t_first = first_cluster_time(traj.times, counts, n)
    plats = plateau_lifetimes(traj.times, counts, t_first)
    betas = system_betas(traj.model, B)
    if label_saddles and d == 2:
        for p in plats:
            mid = math.sqrt(max(p["start"], 1e-12) * p["end"])  # the plateau's middle on a log-time axis
            k = int(torch.argmin((traj.times - mid).abs()))
            p["saddle_index"] = saddle_index(traj.positions[k, p["system"]], betas[p["system"]], delta)
    per_beta: dict[str, Any] = {}
    medians: list[float] = []
    beta_values: list[float] = []
    for b, systems in sorted(systems_by_beta(betas).items()):
        mine = [p for p in plats if p["system"] in set(systems)]
        done: dict[int, list[float]] = {}
        alive: dict[int, list[float]] = {}
        index: dict[int, list[int | None]] = {}
        for p in mine:
            (done if p["finished"] else alive).setdefault(p["count"], []).append(p["length"])
            if "saddle_index" in p:
                index.setdefault(p["count"], []).append(p["saddle_index"])
        first = [float(t_first[s]) for s in systems]
        finite_first = [v for v in first if math.isfinite(v)]
        two = done.get(2, [])
        median_two = float(np.median(two)) if two else math.nan
        per_beta[f"{b:g}"] = {
            "t_first": first,
            "t_first_median": float(np.median(finite_first)) if finite_first else math.nan,
            "lifetimes": {str(k): v for k, v in sorted(done.items())},
            "censored": {str(k): v for k, v in sorted(alive.items())},
            "two_cluster_median": median_two,
            "saddle_index": {str(k): v for k, v in sorted(index.items())},
        }
        beta_values.append(b)
        medians.append(median_two)
    return {"beta": per_beta, "fit": exponential_fit(beta_values, medians), "delta": delta,
            "t_max": float(traj.times[-1]), "n": n, "d": d}
