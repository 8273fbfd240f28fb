"""The circle d = 2 in angles: the angle form (7.1) of (SA) and (USA) with its own kernel, the Kuramoto models
(7.2) and (7.5), and the energy landscape of E_β on the torus T^n (Hessian of Appendix B, Theorem 5.1).

* :mod:`.angle` — θ ↔ x conversions and the angle-form kernel :func:`angle_velocity`;
* :mod:`.kuramoto` — :func:`kuramoto_velocity`, :func:`order_parameter`;
* :mod:`.flow` — :func:`simulate_angles`, :func:`simulate_kuramoto` (through the package's integrator);
* :mod:`.hessian` — :func:`torus_energy`, :func:`torus_gradient`, :func:`torus_hessian`,
  :func:`torus_hessian_spectrum`, :func:`classify_critical_point`;
* :mod:`.critical` — :func:`find_critical_points`, :func:`newton_critical_point`.
"""

from .angle import angle_velocity, angles_to_positions, positions_to_angles
from .critical import CriticalPoints, find_critical_points, newton_critical_point
from .flow import AngleTrajectory, integrate_angles, simulate_angles, simulate_kuramoto
from .hessian import (
    CRITICAL_KINDS,
    classify_critical_point,
    torus_energy,
    torus_gradient,
    torus_hessian,
    torus_hessian_spectrum,
)
from .kuramoto import kuramoto_velocity, order_parameter

__all__ = [
    "AngleTrajectory", "CRITICAL_KINDS", "CriticalPoints", "angle_velocity", "angles_to_positions",
    "classify_critical_point", "find_critical_points", "integrate_angles", "kuramoto_velocity",
    "newton_critical_point", "order_parameter", "positions_to_angles", "simulate_angles", "simulate_kuramoto",
    "torus_energy", "torus_gradient", "torus_hessian", "torus_hessian_spectrum",
]
