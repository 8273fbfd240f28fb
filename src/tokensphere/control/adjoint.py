"""Gradients by the adjoint method: the adjoint ODE integrated backward with vector–Jacobian products.

For ẋ = F(t, x; θ) on [0, T] and a loss L(x(T)) (F the projected field of :func:`tokensphere.field.velocity`;
the exact flow stays on the sphere, so the ambient adjoint gives exact parameter gradients; of dL/dx(0) only
the part tangent to the sphere at x(0) is meaningful):

    λ(T) = ∂L/∂x(T),   λ̇ = −(∂F/∂x)ᵀ λ,   dL/dθ = ∫_0^T (∂F/∂θ)ᵀ λ dt,   dL/dx(0) = λ(0).

The forward pass runs without a graph and keeps the states x_k on the step grid (memory O(N·B·n·d), no
graph); the backward pass integrates (λ, g) in reversed time with the same explicit RK tableau, evaluating
x(t) between grid points by cubic Hermite interpolation from (x_k, F_k, x_{k+1}, F_{k+1}) followed by the
retraction, and every (∂F/∂x)ᵀλ, (∂F/∂θ)ᵀλ is one ``torch.autograd.grad`` call. The result is the gradient of
the continuous problem up to the discretisation error O(h^p) (p = min(method order, 4)); backpropagation
through :func:`~tokensphere.control.rollout` is the exact gradient of the discrete scheme. Both tend to the
same limit as h → 0, so they agree to the discretisation error (measured in tests/test_control.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..field import velocity
from ..integrate.steps import retract
from ..model import Model
from .rollout import explicit_tableau, rollout, step_grid

__all__ = ["adjoint_gradients"]


def _hermite(x0, f0, x1, f1, h: torch.Tensor, s: float) -> torch.Tensor:
    """Cubic Hermite interpolant at t_k + s·h through (x_k, F_k) and (x_{k+1}, F_{k+1}), retracted."""
    if s == 0.0:
        return x0
    if s == 1.0:
        return x1
    h00 = 2 * s**3 - 3 * s**2 + 1
    h10 = s**3 - 2 * s**2 + s
    h01 = -2 * s**3 + 3 * s**2
    h11 = s**3 - s**2
    return retract(h00 * x0 + h10 * h * f0 + h01 * x1 + h11 * h * f1)


def adjoint_gradients(
    x0: torch.Tensor,
    model_fn: Callable[[], Model],
    params: Sequence[torch.Tensor],
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    t_max: float,
    steps: int,
    *,
    method: str = "rk4",
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """dL/dθ and dL/dx(0) for L = loss_fn(x(T)) by the adjoint method (see the module docstring).

    x0: (B, n, d) unit vectors. model_fn: builds the model from the current parameters (called once per
    vector–Jacobian product, so each product has a fresh graph; a :class:`~tokensphere.control.Controls`'s
    ``model``). params: the tensors θ (requiring grad) to differentiate. loss_fn: (B, n, d) → scalar.
    t_max, steps, method: as :func:`~tokensphere.control.rollout` (the same step grid forward and backward).
    Returns (loss value, [dL/dθ for θ in params] (zeros where θ does not enter), dL/dx(0) of shape (B, n, d)).
    """
    tab = explicit_tableau(method)
    with torch.no_grad():
        model = model_fn()
        breaks = [] if model.schedule is None else model.schedule.breakpoints(float(t_max))
        grid = step_grid(t_max, steps, breaks)
        xs = rollout(x0.detach(), model, t_max, steps, method=method, path=True)
    B = x0.shape[0]
    xT = xs[-1].clone().requires_grad_(True)
    with torch.enable_grad():
        loss = loss_fn(xT)
        if not (isinstance(loss, torch.Tensor) and loss.numel() == 1):
            raise ValueError(f"loss_fn must return a scalar tensor, got {type(loss).__name__} "
                             f"{tuple(getattr(loss, 'shape', ()))}")
        (lam,) = torch.autograd.grad(loss.reshape(()), xT)
    params = list(params)
    grads = [torch.zeros_like(p) for p in params]

    def vjp(t: torch.Tensor, x: torch.Tensor, lam_: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        with torch.enable_grad():
            xv = x.detach().requires_grad_(True)
            f = velocity(xv, model_fn(), t.expand(B))
            out = torch.autograd.grad(f, [xv, *params], grad_outputs=lam_, allow_unused=True)
        gp = [torch.zeros_like(p) if g is None else g for p, g in zip(params, out[1:])]
        return out[0], gp

    def node_field(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return velocity(x, model, t.expand(B))

    for k in range(len(grid) - 2, -1, -1):
        t0, t1 = grid[k], grid[k + 1]
        h = t1 - t0
        left_of_t1 = torch.nextafter(t1, t0)  # weights of [t_k, t_{k+1}) at the step's right end
        x0k, x1k = xs[k], xs[k + 1]
        f0, f1 = node_field(t0, x0k), node_field(left_of_t1, x1k)
        k_lam: list[torch.Tensor] = []
        k_g: list[list[torch.Tensor]] = []
        for i in range(tab.stages):
            # reversed time s = t_{k+1} − t: stage i sits at t = t_{k+1} − c_i h
            c = tab.c[i]
            t_stage = left_of_t1 if c == 0.0 else t1 - c * h
            x_stage = _hermite(x0k, f0, x1k, f1, h, 1.0 - c)
            lam_stage = lam
            for a, kl in zip(tab.a[i], k_lam):
                if a != 0.0:
                    lam_stage = lam_stage + h * a * kl
            gx, gp = vjp(t_stage, x_stage, lam_stage)
            k_lam.append(gx)  # dλ/ds = +(∂F/∂x)ᵀ λ in reversed time
            k_g.append(gp)
        for b, kl, kg in zip(tab.b, k_lam, k_g):
            if b != 0.0:
                lam = lam + h * b * kl
                grads = [g + h * b * gi for g, gi in zip(grads, kg)]
    return loss.detach(), grads, lam
