"""Integrators: *how* to integrate, in small frozen objects, and the batched driver.

:class:`Solver` (a method, its step or a :class:`StepController`), :class:`SaveAt` (what to record),
events (:class:`Clustered`); tableaux (data), one step of each method, and the time loop (:func:`integrate`).
"""

from .controller import StepController
from .driver import IntegrationError, IntegrationResult, integrate
from .events import Clustered, Stationary
from .saveat import SaveAt
from .sde import SDE_METHODS, SDESolver
from .solver import METHODS, Solver, anchor_solver, anchor_usa_step
from .split import SplitSolver

__all__ = [
    "Clustered",
    "Stationary",
    "IntegrationError",
    "IntegrationResult",
    "METHODS",
    "SaveAt",
    "SDE_METHODS",
    "SDESolver",
    "Solver",
    "SplitSolver",
    "StepController",
    "anchor_solver",
    "anchor_usa_step",
    "integrate",
]
