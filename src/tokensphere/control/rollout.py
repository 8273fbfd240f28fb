"""Differentiable fixed-step integration: the flow map x(0) ↦ x(T) as a torch computation.

    x_{k+1} = retract( x_k + h Σ_j b_j k_j ),   k_i = F(t_k + c_i h, x_k + h Σ_{l<i} a_il k_l),   h = T/N

with F = :func:`tokensphere.field.velocity` (the projected field, so the renormalisation keeps the method's
order) and the package's one explicit Runge–Kutta step (:func:`tokensphere.integrate.steps.erk_step`) and one
retraction. Every operation is a differentiable tensor operation, so ``loss(rollout(...)).backward()`` is
backpropagation through the integrator: the exact gradient of the discrete scheme. Piecewise-constant
weights need their jumps on the step grid (checked); the stage at the step's end reads the weights of the
step's own interval (``erk_step``'s ``t_end``).
"""

from __future__ import annotations

import math

import torch

from ..field import velocity
from ..integrate.steps import erk_step, retract
from ..integrate.tableaux import TABLEAUX, Tableau
from ..model import Model
from ..validate import validate_choice, validate_int, validate_real

__all__ = ["rollout", "step_grid", "explicit_tableau"]

EXPLICIT = ("euler", "midpoint", "heun", "rk3", "rk4")  # fixed-step methods (no embedded pair needed)


def explicit_tableau(method: str) -> Tableau:
    """The Butcher tableau of a fixed-step explicit method (one of EXPLICIT). Raises ValueError otherwise."""
    return TABLEAUX[validate_choice("method", method, EXPLICIT)]


def step_grid(t_max: float, steps: int, breakpoints: list[float] = ()) -> torch.Tensor:
    """Times t_k = k·T/N, k = 0 … N, float64 (N + 1,). Raises ValueError unless every breakpoint (a jump of
    piecewise-constant weights) lies on the grid, i.e. N is a multiple of the number of layers."""
    t_max = validate_real("t_max", t_max, minimum=0.0, strict_minimum=True)
    steps = validate_int("steps", steps, minimum=1)
    h = t_max / steps
    for b in breakpoints:
        k = round(b / h)
        if not math.isclose(k * h, b, rel_tol=1e-12, abs_tol=1e-12 * t_max):
            raise ValueError(f"steps must put a grid point on every layer boundary (got {steps} steps over "
                             f"[0, {t_max:g}] and a boundary at {b:g}); use a multiple of the number of layers")
    grid = torch.arange(steps + 1, dtype=torch.float64) * h
    for b in breakpoints:  # land exactly on the jump (the float k·h may differ from the layer's k·τ by an ulp)
        grid[round(b / h)] = b
    grid[-1] = t_max
    return grid


def rollout(
    x0: torch.Tensor,
    model: Model,
    t_max: float,
    steps: int,
    *,
    method: str = "rk4",
    path: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Integrate ẋ = velocity(x, model, t) from x0 over [0, T] in N equal steps of an explicit RK method,
    renormalising after each step, differentiably (autograd records every operation).

    x0: (B, n, d) unit vectors. model: any :class:`~tokensphere.Model` (its tensors may require grad).
    t_max: T > 0. steps: N ≥ 1 (a multiple of the layer count for piecewise weights). method: one of
    "euler", "midpoint", "heun", "rk3", "rk4". path: also return the states at every grid time.
    Returns x(T), (B, n, d) — or the path (N + 1, B, n, d) when ``path``. Raises ValueError on bad input.
    """
    tab = explicit_tableau(method)
    if not (isinstance(x0, torch.Tensor) and x0.is_floating_point() and x0.ndim == 3):
        raise ValueError(f"x0 must be a floating-point tensor of shape (B, n, d), got "
                         f"{type(x0).__name__} {tuple(getattr(x0, 'shape', ()))}")
    if not bool(torch.isfinite(x0.detach()).all()):
        raise ValueError("x0 must hold finite coordinates, got NaN or inf")
    breaks = [] if model.schedule is None else model.schedule.breakpoints(float(t_max))
    grid = step_grid(t_max, steps, breaks)
    B = x0.shape[0]

    def field(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return velocity(x, model, t, chunk_size=chunk_size)

    x = x0
    out = [x0] if path else None
    for k in range(len(grid) - 1):
        t0 = grid[k].expand(B)
        t1 = grid[k + 1].expand(B)
        y, _, _ = erk_step(field, t0, x, t1 - t0, tab, t_end=t1)
        x = retract(y)
        if path:
            out.append(x)
    return torch.stack(out) if path else x
