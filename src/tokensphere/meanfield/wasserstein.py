"""Wasserstein distances on the circle between particles and a density from the PDE solver (Remark 3.3).

Remark 3.3 (Dobrushin): W_1(µ_n(t), µ(t)) ≤ e^{O(1)t} W_1(µ_n(0), µ(0)); for i.i.d. initial particles on
the circle W_1(µ_n(0), µ(0)) ~ n^{−1/2}. Distances are those of POT on S¹ ≅ [0, 1): the level-median formula
``ot.lp.solver_circle.wasserstein1_circle`` for p = 1, ``ot.binary_search_circle`` for p > 1 (which returns
W_p^p); they are returned in radians (arc length).

The density, held as cell averages, is replaced by K equal sub-cells per cell carried by their midpoints:
every bit of mass moves by at most h/(2K), so W_p changes by at most h/(2K) (``subcells`` sets K).
"""

from __future__ import annotations

import numpy as np
import ot
from ot.lp.solver_circle import wasserstein1_circle

from ..validate import validate_int, validate_real
from .kernel import check_density

__all__ = ["circle_wasserstein"]


def circle_wasserstein(theta, rho, p: float = 1, *, subcells: int = 16, eps: float = 1e-10) -> np.ndarray:
    """W_p (radians) between the empirical measures (1/n) Σ_i δ_{θ_i} and the densities ρ on the circle.

    theta: (..., n) angles (any real values, taken mod 2π). rho: (..., N) cell averages on the grid θ_j =
    2πj/N (normalised here to unit mass); the batch shapes (...) must match. p ≥ 1. subcells: K ≥ 1 (the
    discretisation error is at most π/(NK)). eps: POT's stopping tolerance for p > 1 (on [0, 1) scale).
    Returns (...) float64. Raises ValueError for mismatched shapes or bad parameters.
    """
    th = np.asarray(theta, dtype=np.float64)
    rho = check_density("rho", rho)
    if th.ndim == 0 or th.shape[:-1] != rho.shape[:-1] or not np.isfinite(th).all():
        raise ValueError(f"theta must be finite angles (..., n) with the batch shape of rho {rho.shape[:-1]}, "
                         f"got shape {th.shape}")
    p = validate_real("p", p, minimum=1.0)
    k = validate_int("subcells", subcells, minimum=1)
    eps = validate_real("eps", eps, minimum=0.0, strict_minimum=True)
    if bool((rho.sum(axis=-1) <= 0).any()):
        raise ValueError("rho must have positive mass (a density that is 0 everywhere has no distribution)")
    batch = rho.shape[:-1]
    n, n_cells = th.shape[-1], rho.shape[-1]
    # sub-cell midpoints on [0, 1): cell j covers [(j − ½)/N, (j + ½)/N)
    offsets = (np.arange(k) + 0.5) / k - 0.5
    v = ((np.arange(n_cells)[:, None] + offsets[None, :]).reshape(-1) / n_cells) % 1.0
    w = np.repeat(rho.reshape(-1, n_cells), k, axis=-1)
    w = w / w.sum(axis=-1, keepdims=True)
    u = (th.reshape(-1, n) / (2 * np.pi)) % 1.0
    m = v.size
    v_b = np.broadcast_to(v[:, None], (m, u.shape[0])).copy()
    if p == 1:
        cost = wasserstein1_circle(u.T, v_b, v_weights=w.T.copy())
        return (2 * np.pi * np.asarray(cost)).reshape(batch)
    cost = ot.binary_search_circle(u.T, v_b, v_weights=w.T.copy(), p=p, eps=eps)
    return (2 * np.pi * np.asarray(cost).reshape(-1) ** (1 / p)).reshape(batch)
