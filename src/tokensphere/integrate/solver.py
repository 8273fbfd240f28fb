"""The solver specification: *how* to integrate (separate from the model, SPEC §2.17 and §8.6).

A :class:`Solver` is a frozen record: a method name from :data:`METHODS`, a step ``dt`` (a number, or a (B,)
array of per-system steps) for fixed-step methods, and ``rtol``/``atol`` for adaptive ones.

| method | kind | order | stays on the sphere by |
|---|---|---|---|
| euler, midpoint, heun, rk3, rk4 | explicit RK on the projected field P⊥F | 1, 2, 2, 3, 4 | renormalising after each step |
| bosh3, dopri5 | adaptive embedded pairs 3(2), 5(4), per-system step control | 3, 5 | renormalising after each step |
| lie-euler, cg3 | Lie-group (Crouch–Grossman) with exact rotations | 1, 3 | construction (rotations) |

``euler`` with ``projected_field=False`` is the authors' scheme: Euler on the unprojected field, then
renormalisation (SPEC §7). :func:`anchor_solver` builds their exact settings, including the USA step rule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..validate import as_tensor, check_choice, check_int, check_real
from ..model import Model
from .tableaux import CROUCH_GROSSMAN, TABLEAUX

__all__ = ["Solver", "METHODS", "anchor_solver", "anchor_usa_step"]

FIXED = ("euler", "midpoint", "heun", "rk3", "rk4")
ADAPTIVE = ("bosh3", "dopri5")
LIE = tuple(CROUCH_GROSSMAN)
METHODS = FIXED + ADAPTIVE + LIE


@dataclass(frozen=True, eq=False)
class Solver:
    """How to integrate.

    method: one of METHODS (default "dopri5"). dt: step for fixed-step and Lie methods (number or (B,) array);
    initial step for adaptive ones (None = automatic). rtol, atol: adaptive tolerances (per-system RMS norm).
    projected_field: integrate P⊥F (True, consistent at every order) or the raw F followed by
    renormalisation (False; first order, Euler only: the authors' scheme). max_steps: per-system cap on
    accepted + rejected steps. dt_max: largest adaptive step (None = unlimited).
    """

    method: str = "dopri5"
    dt: Any = None
    rtol: float = 1e-7
    atol: float = 1e-9
    projected_field: bool = True
    max_steps: int = 10_000_000
    dt_max: float | None = None

    def __post_init__(self) -> None:
        check_choice("solver", self.method, METHODS)
        check_real("rtol", self.rtol, minimum=0.0, strict_minimum=True)
        check_real("atol", self.atol, minimum=0.0, strict_minimum=True)
        check_int("max_steps", self.max_steps, minimum=1)
        if self.dt_max is not None:
            check_real("dt_max", self.dt_max, minimum=0.0, strict_minimum=True)
        if self.method not in ADAPTIVE and self.dt is None:
            raise ValueError(f"dt must be given for the fixed-step method {self.method!r} (a number > 0)")
        if self.dt is not None:
            dt = as_tensor("dt", self.dt)
            if dt.ndim > 1 or not bool(torch.isfinite(dt).all()) or not bool((dt > 0).all()):
                raise ValueError(f"dt must be a finite number > 0 or a 1-D array of them, got {self.dt!r}")
        if not self.projected_field and self.method != "euler":
            raise ValueError(
                "projected_field=False is only consistent with method='euler' (RK on the unprojected field "
                "followed by renormalisation is first order, SPEC §8.6)"
            )

    @property
    def kind(self) -> str:
        """'fixed', 'adaptive' or 'lie'."""
        return "fixed" if self.method in FIXED else "adaptive" if self.method in ADAPTIVE else "lie"

    @property
    def order(self) -> int:
        """Nominal order of accuracy (the order of the propagated solution for embedded pairs)."""
        if self.method in TABLEAUX:
            return 1 if not self.projected_field else TABLEAUX[self.method].order
        return CROUCH_GROSSMAN[self.method].order

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable summary for run metadata."""
        out = asdict(self)
        if self.dt is not None and not isinstance(self.dt, (int, float)):
            out["dt"] = as_tensor("dt", self.dt).tolist()
        return out


def anchor_usa_step(beta: torch.Tensor | float, step: float = 0.1) -> torch.Tensor:
    """The authors' USA step rule η = step / max(√β e^{β−1/2}, 1) (SPEC §7). beta: number or (B,). Returns (B,)."""
    b = as_tensor("beta", beta).reshape(-1)
    speed = torch.sqrt(b) * torch.exp(b - 0.5)
    return step / torch.clamp(speed, min=1.0)


def anchor_solver(model: Model, step: float = 0.1, raw_step: bool = False) -> Solver:
    """The authors' scheme (SPEC §7): Euler on the unprojected field, renormalise after every step.

    SA uses ``step`` as is; USA uses :func:`anchor_usa_step` per system unless ``raw_step``.
    """
    check_real("step", step, minimum=0.0, strict_minimum=True)
    if model.normalization == "uniform" and not raw_step:
        if model.time_scale != "original":
            raise ValueError("the anchor USA step rule is defined in original time (time_scale='original')")
        dt = anchor_usa_step(model.beta_tensor(), step)
        dt = float(dt[0]) if dt.numel() == 1 else dt
    else:
        dt = step
    return Solver(method="euler", dt=dt, projected_field=False)

