"""Events that stop a system early: checked after every accepted step, per system.

An event is any callable ``event(t, x) -> (B,) bool tensor`` (t: (B,) times, x: (B, n, d)). When it returns
True for a system, that system stops; its remaining saved positions are NaN and its event time is recorded.
Detection is at step resolution: the recorded time is the end of the first accepted step where it holds.

Two optional attributes extend the protocol (the driver honours them):

* ``needs_velocity = True``: the event is called as ``event(t, x, v)`` with v the (tangent) velocity at the
  new state, evaluated once per step for all such events (:class:`Stationary`);
* ``start(t0, x0)``: called once with every system's initial state before the first step, e.g. to record a
  baseline; ``systems`` (the global indices of the rows of x) is then passed as ``event(t, x, systems=...)``
  when ``needs_systems = True`` (:class:`tokensphere.analysis.ClusterCountChanged`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..validate import validate_real

__all__ = ["Clustered", "Stationary"]


@dataclass(frozen=True)
class Clustered:
    """All pairs close: ⟨x_i, x_j⟩ > 1 − δ for every i, j (one δ-cluster). δ in (0, 2]."""

    delta: float = 1e-3

    def __post_init__(self) -> None:
        object.__setattr__(self, "delta", validate_real("delta", self.delta, minimum=0.0, maximum=2.0,
                                                        strict_minimum=True))

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        gram = torch.bmm(x, x.transpose(1, 2))
        return gram.flatten(1).amin(1) > 1 - self.delta


@dataclass(frozen=True)
class Stationary:
    """The state is (numerically) stationary: max_i |ẋ_i| < tol, with ẋ the tangent velocity at the new state.

    For long metastable runs: stop a system once it has reached a critical point (consensus, or a saddle it
    would only leave through round-off). Costs one field evaluation per step. tol > 0.
    """

    tol: float = 1e-8
    needs_velocity = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "tol", validate_real("tol", self.tol, minimum=0.0, strict_minimum=True))

    def __call__(self, t: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(v, dim=-1).amax(-1) < self.tol

