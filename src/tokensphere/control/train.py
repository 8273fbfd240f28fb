"""A plain training loop: Adam on a loss computed by backpropagation through the integrator."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..validate import validate_int, validate_real

__all__ = ["fit"]


def fit(
    controls: nn.Module,
    loss_fn: Callable[[], torch.Tensor],
    steps: int,
    *,
    lr: float = 0.05,
    cosine: bool = True,
    progress: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Minimise ``loss_fn()`` over ``controls.parameters()`` with ``steps`` Adam steps of rate ``lr`` (decayed
    as lr·(1 + cos(πk/steps))/2 at step k when ``cosine``, which damps the late oscillations of a fixed rate).

    loss_fn: builds the model from the controls, integrates (e.g. :func:`~tokensphere.control.rollout`) and
    returns a 0-d tensor. A trainable β is kept ≥ 0 by clipping after each step. progress(step, loss), if
    given, is called after every step. Returns the losses [L(θ_0), …, L(θ_steps)] (steps + 1 values: the last
    one after the last update). Deterministic: no randomness is drawn here.
    """
    steps = validate_int("steps", steps, minimum=0)
    lr = validate_real("lr", lr, minimum=0.0, strict_minimum=True)
    opt = torch.optim.Adam(controls.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1)) if cosine else None
    beta = getattr(controls, "beta", None)
    losses: list[float] = []
    for step in range(steps):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        if isinstance(beta, nn.Parameter):
            with torch.no_grad():
                beta.clamp_(min=0.0)
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step + 1, losses[-1])
    with torch.no_grad():
        losses.append(float(loss_fn()))
    return losses
