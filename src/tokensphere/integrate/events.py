"""Events that stop a system early: checked after every accepted step, per system.

An event is any callable ``event(t, x) -> (B,) bool tensor`` (t: (B,) times, x: (B, n, d)). When it returns
True for a system, that system stops; its remaining saved positions are NaN and its event time is recorded.
Detection is at step resolution: the recorded time is the end of the first accepted step where it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..validate import validate_real

__all__ = ["Clustered"]


@dataclass(frozen=True)
class Clustered:
    """All pairs close: ⟨x_i, x_j⟩ > 1 − δ for every i, j (one δ-cluster). δ in (0, 2]."""

    delta: float = 1e-3

    def __post_init__(self) -> None:
        validate_real("delta", self.delta, minimum=0.0, maximum=2.0, strict_minimum=True)

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        gram = torch.bmm(x, x.transpose(1, 2))
        return gram.flatten(1).amin(1) > 1 - self.delta
