"""Discrete layers against the continuous flow: a stack of L normalised self-attention layers is L steps of
size h = T/L of the post-normalised Euler scheme

    x_i^{k+1} = (x_i^k + h F_i(X^k)) / |x_i^k + h F_i(X^k)|,    F_i(X) = Σ_j A_ij(X) V x_j      ((2.1)–(2.3))

(one attention layer with layer normalisation is one such step; h = 1 is the literal ResNet). As h → 0 with
T = L h fixed, the layers converge to the solution of (2.3) at time T. :func:`layer_convergence` measures the
distance max_i |x_i^L − x_i(T)| for a list of depths and fits its order in h (first order expected: the scheme
is Euler's, and renormalisation agrees with the tangent projection to O(h²) per step).

The layers are the package's own ``anchor_solver`` (Euler on the raw field, renormalised) with step h; the
reference is dopri5 at tight tolerance. Positions are (B, n, d).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..init import sample_sphere
from ..integrate import Solver
from ..layers import layer_stack
from ..model import Model
from ..simulate import simulate
from ..validate import validate_int

__all__ = ["LayerConvergence", "layer_convergence", "layer_stack"]


@dataclass(frozen=True)
class LayerConvergence:
    """Distances between L discrete layers and the flow at T = L h.

    depths: the numbers of layers L; steps: h = T/L; distances: max over systems and tokens of |x^L − x(T)|;
    order: the least-squares slope of log(distance) against log(h).
    """

    t_max: float
    depths: tuple[int, ...]
    steps: tuple[float, ...]
    distances: tuple[float, ...]
    order: float


def layer_convergence(
    depths: Sequence[int] = (8, 16, 32, 64, 128),
    *,
    n: int = 16,
    d: int = 3,
    batch: int = 4,
    beta: float = 1.0,
    t_max: float = 4.0,
    model: Model | None = None,
    seed: int = 0,
    rtol: float = 1e-12,
) -> LayerConvergence:
    """Measure how fast L layers of step h = t_max/L approach the continuous flow (2.3) at time t_max.

    depths: the layer counts L (≥ 2 distinct values). n, d, batch, seed: the uniform starts (B = batch
    systems of n tokens on S^{d−1}). model: the dynamics (default ``Model(beta=beta)``). rtol: tolerance of the
    dopri5 reference. Returns a :class:`LayerConvergence` (distance per depth and the fitted order in h).
    """
    depths = tuple(sorted({validate_int("depths", L, minimum=1) for L in depths}))
    if len(depths) < 2:
        raise ValueError(f"depths must hold at least two distinct layer counts, got {depths}")
    model = model if model is not None else Model(beta=beta)
    x0 = sample_sphere(batch, n, d, seed=seed)
    ref = simulate(x0, model=model, solver=Solver("dopri5", rtol=rtol, atol=rtol * 1e-2),
                   t_max=t_max, save_at=[0.0, t_max]).positions[-1]
    dist = [float((layer_stack(x0, model, L, t_max) - ref).norm(dim=-1).max()) for L in depths]
    steps = [t_max / L for L in depths]
    order = float(np.polyfit(np.log(steps), np.log(dist), 1)[0])
    return LayerConvergence(t_max, depths, tuple(steps), tuple(dist), order)
