"""The solver specification: *how* to integrate, separate from the model (*what*) and from what is saved.

A :class:`Solver` is a frozen record: a method name from :data:`METHODS`, a step ``dt`` (a number, or a (B,)
array of per-system steps) for fixed-step methods, a :class:`~.controller.StepController` (tolerances and
step-size bounds) for adaptive ones, whether the projected field is integrated, and a step cap.

| method | kind | order | stays on the sphere by |
|---|---|---|---|
| euler, midpoint, heun, rk3, rk4 | explicit RK on the projected field P⊥F | 1, 2, 2, 3, 4 | renormalising after each step |
| bosh3, dopri5 | adaptive embedded pairs 3(2), 5(4), per-system step control | 3, 5 | renormalising after each step |
| lie-euler, cg3 | Lie-group (Crouch–Grossman) with exact rotations | 1, 3 | construction (rotations) |

``euler`` with ``projected_field=False`` is the authors' scheme for Figures 3 and 5 of the paper: Euler on
the unprojected field of (2.3), then renormalisation. :func:`anchor_solver` builds their exact settings,
including their USA step rule. Measured orders and costs: docs/numerics.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from ..model import Model
from ..validate import as_tensor, validate_choice, validate_int, validate_real
from .controller import StepController
from .tableaux import CROUCH_GROSSMAN, TABLEAUX

__all__ = ["Solver", "METHODS", "anchor_solver", "anchor_usa_step"]

FIXED = ("euler", "midpoint", "heun", "rk3", "rk4")
ADAPTIVE = ("bosh3", "dopri5")
LIE = tuple(CROUCH_GROSSMAN)
METHODS = FIXED + ADAPTIVE + LIE
_CONTROLLER_FIELDS = tuple(f.name for f in fields(StepController))


@dataclass(frozen=True, eq=False, init=False)
class Solver:
    """How to integrate.

    Parameters
    ----------
    method : one of METHODS, default "dopri5"
    dt : number or array of shape (B,), optional
        Step of fixed-step and Lie methods (required for them); initial step of adaptive ones (None: chosen
        by the controller).
    controller : StepController, optional
        Tolerances and step-size bounds of adaptive methods (default ``StepController()``: rtol 1e-7,
        atol 1e-9).
    projected_field : bool
        Integrate P⊥F (True, consistent at every order) or the raw F followed by renormalisation (False;
        first order, Euler only: the authors' scheme).
    max_steps : int
        Per-system cap on accepted + rejected steps.
    rtol, atol, dt_max : shortcuts that replace those fields of ``controller``.

    Equal solvers compare equal (``==`` on :meth:`describe`). Raises ValueError naming the field.
    """

    method: str
    dt: Any
    controller: StepController
    projected_field: bool
    max_steps: int

    def __init__(
        self,
        method: str = "dopri5",
        dt: Any = None,
        *,
        controller: StepController | None = None,
        projected_field: bool = True,
        max_steps: int = 10_000_000,
        rtol: float | None = None,
        atol: float | None = None,
        dt_max: float | None = None,
    ) -> None:
        if not isinstance(method, str):
            raise ValueError(f"solver must be one of {', '.join(METHODS)}, got {type(method).__name__}")
        validate_choice("solver", method, METHODS)
        if controller is None:
            controller = StepController()
        elif not isinstance(controller, StepController):
            raise ValueError(f"controller must be a StepController, got {type(controller).__name__}")
        shortcuts = {k: v for k, v in (("rtol", rtol), ("atol", atol), ("dt_max", dt_max)) if v is not None}
        if method not in ADAPTIVE and (shortcuts or controller != StepController()):
            given = ", ".join(shortcuts) or "controller"
            raise ValueError(f"{given}: the step controller (rtol, atol, dt_max) applies to the adaptive methods "
                             f"{', '.join(ADAPTIVE)}; {method!r} takes the fixed step dt")
        if shortcuts:
            controller = replace(controller, **shortcuts)
        if method not in ADAPTIVE and dt is None:
            raise ValueError(f"dt must be given for the fixed-step method {method!r} (a number > 0)")
        if dt is not None:
            if isinstance(dt, bool) or getattr(dt, "dtype", None) in (torch.bool, bool) or str(
                    getattr(dt, "dtype", "")) == "bool":
                raise ValueError(f"dt must be a finite number > 0 or a 1-D array of them, got {dt!r}")
            steps = as_tensor("dt", dt)
            if (steps.ndim > 1 or steps.numel() == 0 or not bool(torch.isfinite(steps).all())
                    or not bool((steps > 0).all())):
                raise ValueError(f"dt must be a finite number > 0 or a 1-D array of them, got {dt!r}")
        if not isinstance(projected_field, bool):
            raise ValueError(f"projected_field must be True or False, got {projected_field!r}")
        if not projected_field and method != "euler":
            raise ValueError(
                "projected_field=False is only consistent with method='euler' (RK on the unprojected field "
                "followed by renormalisation is first order)"
            )
        for name, value in (("method", method), ("dt", dt), ("controller", controller),
                            ("projected_field", projected_field),
                            ("max_steps", validate_int("max_steps", max_steps, minimum=1))):
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------------------------------------------
    @property
    def rtol(self) -> float:
        return self.controller.rtol

    @property
    def atol(self) -> float:
        return self.controller.atol

    @property
    def dt_max(self) -> float | None:
        return self.controller.dt_max

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
        """JSON-serialisable, flat: method, dt (a number, a list or None), projected_field, max_steps and the
        controller's fields. :meth:`from_spec` inverts it."""
        dt = self.dt
        if dt is not None and not isinstance(dt, (int, float)):
            dt = as_tensor("dt", dt).tolist()
        return {"method": self.method, "dt": dt, "projected_field": self.projected_field,
                "max_steps": self.max_steps, **self.controller.describe()}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Solver:
        """The solver of a :meth:`describe` dict (also the flat rtol/atol/dt_max form of older stored runs)."""
        kw = dict(spec)
        ctrl = StepController(**{k: kw.pop(k) for k in _CONTROLLER_FIELDS if k in kw})
        if kw.get("method", "dopri5") not in ADAPTIVE:
            ctrl = None  # unused by fixed steps (older stored runs may hold any values)
        if isinstance(kw.get("dt"), list):
            kw["dt"] = torch.tensor(kw["dt"], dtype=torch.float64)
        return cls(controller=ctrl, **kw)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Solver):
            return NotImplemented
        return self.describe() == other.describe()

    def __hash__(self) -> int:
        return hash(json.dumps(self.describe(), sort_keys=True))


def anchor_usa_step(beta: torch.Tensor | float, step: float = 0.1) -> torch.Tensor:
    """The authors' USA step rule η = step / max(√β e^{β−1/2}, 1). beta: number or (B,). Returns (B,)."""
    b = as_tensor("beta", beta).reshape(-1)
    speed = torch.sqrt(b) * torch.exp(b - 0.5)
    return step / torch.clamp(speed, min=1.0)


def anchor_solver(model: Model, step: float = 0.1, raw_step: bool = False) -> Solver:
    """The authors' scheme (their code for Figures 3 and 5): Euler on the unprojected field, renormalise after
    every step.

    SA uses ``step`` as is; USA uses :func:`anchor_usa_step` per system unless ``raw_step``. Raises
    ValueError for step ≤ 0 or a USA model in the time scale "exp_beta" (the rule is for original time).
    """
    validate_real("step", step, minimum=0.0, strict_minimum=True)
    if model.normalization == "uniform" and not raw_step:
        if model.time_scale != "original":
            raise ValueError("the anchor USA step rule is defined in original time (time_scale='original')")
        dt = anchor_usa_step(model.beta_tensor(), step)
        dt = float(dt[0]) if dt.numel() == 1 else dt
    else:
        dt = step
    return Solver(method="euler", dt=dt, projected_field=False)
