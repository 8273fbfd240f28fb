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
from ..layers import layer_stack  # re-exported: it lived here first
from ..model import Model
from ..simulate import simulate
from ..validate import validate_int, validate_real

__all__ = ["LayerConvergence", "layer_convergence", "layer_stack", "SplittingOrders", "splitting_model",
           "splitting_orders"]


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


# ------------------------------------------------------------------------------------------------------------
# splitting orders of Transformer blocks (2.8)


@dataclass(frozen=True)
class SplittingOrders:
    """Local errors of one block of step h against the continuous flow of (2.8) over [0, h], per scheme.

    steps: the h values; errors: scheme → max over tokens of |block(x0) − Φ_h(x0)| per h; orders: scheme → the
    global order p read off the local errors of the two smallest steps (slope of log error against log h,
    minus 1: a scheme of order p has local errors O(h^{p+1})); global_steps, global_errors: the literal Lie–Trotter stack
    of L = T/h blocks against the flow at T (first order expected); global_order: its fitted slope.
    Schemes: "lie-trotter" (the literal layer: Euler sub-steps, each followed by N), "lie-trotter, exact
    sub-flows" (the splitting error alone), "strang, exact sub-flows".
    """

    steps: tuple[float, ...]
    errors: dict[str, tuple[float, ...]]
    orders: dict[str, float]
    t_max: float
    global_steps: tuple[float, ...]
    global_errors: tuple[float, ...]
    global_order: float


def splitting_model(d: int = 3, p: int = 6, *, beta: float = 2.0, seed: int = 0) -> Model:
    """A seeded full-Transformer model (2.8): Q = K = V = I attention and a tanh feed-forward layer
    w σ(a x + b) with w (d, p) of scale 0.5/√p·√d, a (p, d) Gaussian, b (p,) of scale 0.3."""
    from ..feedforward import FeedForward

    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, p, generator=g, dtype=torch.float64) * 0.5
    a = torch.randn(p, d, generator=g, dtype=torch.float64)
    b = torch.randn(p, generator=g, dtype=torch.float64) * 0.3
    return Model(beta=beta, feedforward=FeedForward(w, a, b, activation="tanh"))


def splitting_orders(
    steps: Sequence[float] = (0.2, 0.1, 0.05, 0.025),
    *,
    n: int = 8,
    d: int = 3,
    batch: int = 2,
    seed: int = 0,
    depths: Sequence[int] = (10, 20, 40, 80),
    t_max: float = 2.0,
    model: Model | None = None,
    norm: str = "post",
    gain: torch.Tensor | None = None,
) -> SplittingOrders:
    """Measure the splitting orders of Transformer blocks (2.8) with the normalisation ``norm`` (a
    :data:`tokensphere.layers.NORMS` value; ``gain`` for "rms", whose starts are mapped onto the ellipsoid) on
    seeded uniform starts.

    The reference Φ_h is the continuous form of the block (for "post": (2.8) by ``simulate``; dopri5 at rtol
    1e-12); the exact
    sub-flows are dopri5 at rtol 1e-13, far below the splitting errors measured. Returns a
    :class:`SplittingOrders`.
    """
    from ..layers import Block, block_flow, block_stack, block_step
    from ..norms import ellipsoid_retract

    steps = tuple(validate_real("steps", h, minimum=0.0, strict_minimum=True) for h in steps)
    if len(steps) < 2 or len(set(steps)) != len(steps):
        raise ValueError(f"steps must hold at least two step sizes > 0, all distinct (an order is a slope), got "
                         f"{steps}")
    depths = tuple(validate_int("depths", L, minimum=1) for L in depths)
    if len(set(depths)) < 2:
        raise ValueError(f"depths must hold at least two distinct depths (an order is a slope), got {depths}")
    model = model if model is not None else splitting_model(d, seed=seed)
    x0 = sample_sphere(batch, n, d, seed=seed)
    if norm == "rms":
        x0 = ellipsoid_retract(x0, gain)
    base = Block(norm=norm, gain=gain)
    schemes = {
        "lie-trotter": base,
        "lie-trotter, exact sub-flows": Block(norm=norm, gain=gain, substeps="exact", rtol=1e-13),
        "strang, exact sub-flows": Block(norm=norm, gain=gain, splitting="strang", substeps="exact", rtol=1e-13),
    }
    refs = [block_flow(x0, model, h, base)[-1] for h in steps]
    errors, orders = {}, {}
    for name, blk in schemes.items():
        e = [float((block_step(x0, model, h, blk) - r).norm(dim=-1).max()) for h, r in zip(steps, refs)]
        errors[name] = tuple(e)
        orders[name] = float(np.log(e[-2] / e[-1]) / np.log(steps[-2] / steps[-1])) - 1.0  # the finest pair
    ref_t = block_flow(x0, model, t_max, base)[-1]
    g_err = [float((block_stack(x0, model, L, t_max, base) - ref_t).norm(dim=-1).max()) for L in depths]
    g_steps = [t_max / L for L in depths]
    g_order = float(np.polyfit(np.log(g_steps), np.log(g_err), 1)[0])
    return SplittingOrders(tuple(float(h) for h in steps), errors, orders, float(t_max), tuple(g_steps),
                           tuple(g_err), g_order)
