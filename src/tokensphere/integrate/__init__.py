"""Integrators: solver specs, tableaux (data), steps, the batched driver and events."""

from .driver import IntegrationError, IntegrationResult, integrate
from .events import Clustered
from .solver import METHODS, Solver, anchor_solver, anchor_usa_step

__all__ = [
    "Clustered",
    "IntegrationError",
    "IntegrationResult",
    "METHODS",
    "Solver",
    "anchor_solver",
    "anchor_usa_step",
    "integrate",
]
