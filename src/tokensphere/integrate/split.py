"""The solver spec of discrete Transformer layers: the blocks of (2.8) composed by operator splitting.

A :class:`SplitSolver` says *how* a run is advanced when every step is one Transformer block of step h
(= ``dt``): the attention sub-step then the feed-forward sub-step (``splitting="lie-trotter"``), or half
attention, feed-forward, half attention (``"strang"``); each sub-step the literal layer update
(``substeps="euler"``) or the exact flow of its term (``"exact"``, dopri5 at ``rtol``). The normalisation of the
block is the model's (``Model.norm``: "post", "pre", "rms", "ngpt"): one source of truth, not a solver field.

This module holds the spec only (data, describe/from_spec); the sub-steps are :func:`tokensphere.blocks.block_step`
and the stepping loop :func:`tokensphere.blocks.integrate_split` (docs/blocks.md). A run of L layers on
[t0, t0 + L h] takes L steps; output times must be layer boundaries t0 + k h.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..validate import validate_choice, validate_real

__all__ = ["SPLITTINGS", "SUBSTEPS", "DEFAULT_SPLIT_RTOL", "SplitSolver"]

SPLITTINGS = ("lie-trotter", "strang")
SUBSTEPS = ("euler", "exact")
DEFAULT_SPLIT_RTOL = 1e-12  # tolerance of the exact sub-flows: far below the splitting errors measured


@dataclass(frozen=True)
class SplitSolver:
    """Discrete layers by splitting (2.8): ``splitting`` ("lie-trotter" or "strang"), ``substeps`` ("euler":
    the literal layer; "exact": each term's exact sub-flow by dopri5 at ``rtol``), the layer step ``dt`` = h > 0
    and ``rtol`` (exact sub-steps only; None there means ``DEFAULT_SPLIT_RTOL``; must be None for "euler"; in a
    narrower dtype it is raised to 10 machine epsilons, 1.2e-6 in float32, which a dopri5 step can still resolve).

    Equal fields compare equal. Raises ValueError naming the field.
    """

    splitting: str = "lie-trotter"
    substeps: str = "euler"
    dt: float = 0.1
    rtol: float | None = None

    kind = "split"
    projected_field = True  # the block's own normalisation keeps the state on its manifold

    def __post_init__(self) -> None:
        validate_choice("splitting", self.splitting, SPLITTINGS)
        validate_choice("substeps", self.substeps, SUBSTEPS)
        object.__setattr__(self, "dt", validate_real("dt", self.dt, minimum=0.0, strict_minimum=True))
        if self.substeps == "euler":
            if self.rtol is not None:
                raise ValueError("rtol applies to substeps='exact' (the sub-flows' dopri5 tolerance); the euler "
                                 "sub-steps are the literal layer updates and take none")
        else:
            rtol = DEFAULT_SPLIT_RTOL if self.rtol is None else self.rtol
            object.__setattr__(self, "rtol", validate_real("rtol", rtol, minimum=0.0, maximum=1.0,
                                                           strict_minimum=True))

    @property
    def method(self) -> str:
        """The splitting's name ("lie-trotter" or "strang"), as solver methods are named in summaries."""
        return self.splitting

    @property
    def order(self) -> int:
        """Nominal global order in h: 2 for Strang with exact sub-flows, else 1 (Euler sub-steps are first
        order whatever the splitting). Measured in tests/test_split_cli.py and docs/blocks.md."""
        return 2 if self.splitting == "strang" and self.substeps == "exact" else 1

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable: kind ("split"), splitting, substeps, dt, rtol. :meth:`from_spec` inverts it."""
        return {"kind": self.kind, "splitting": self.splitting, "substeps": self.substeps, "dt": self.dt,
                "rtol": self.rtol}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> SplitSolver:
        """The solver of a :meth:`describe` dict."""
        return cls(splitting=spec["splitting"], substeps=spec["substeps"], dt=spec["dt"], rtol=spec.get("rtol"))
