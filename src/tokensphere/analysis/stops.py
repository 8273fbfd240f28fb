"""Stop conditions built on cluster statistics, for the integrator's event protocol
(:mod:`tokensphere.integrate.events`): a system stops when its cluster structure changes."""

from __future__ import annotations

import torch

from ..validate import validate_real
from .clusters import cluster_count

__all__ = ["ClusterCountChanged"]


class ClusterCountChanged:
    """The number of δ-clusters (:func:`tokensphere.analysis.cluster_count`) differs from its value at the
    start of the run: stops each system at the end of its current plateau (e.g. at the first merge).

    δ in (0, 2]. The baseline is recorded by ``start`` from the initial state of every system.
    """

    needs_systems = True

    def __init__(self, delta: float = 1e-3) -> None:
        self.delta = validate_real("delta", delta, minimum=0.0, maximum=2.0, strict_minimum=True)
        self.baseline: torch.Tensor | None = None

    def start(self, t0: torch.Tensor, x0: torch.Tensor) -> None:
        self.baseline = cluster_count(x0, self.delta)

    def __call__(self, t: torch.Tensor, x: torch.Tensor, systems: torch.Tensor) -> torch.Tensor:
        if self.baseline is None:
            raise ValueError("ClusterCountChanged needs start(t0, x0) before the first step (the driver calls it)")
        return cluster_count(x, self.delta) != self.baseline.to(x.device)[systems]

    def __repr__(self) -> str:
        return f"ClusterCountChanged(delta={self.delta})"
