"""Integrating angle dynamics on the torus T^n: the angle form (7.1) and the Kuramoto models (7.2), (7.5).

There is no second time loop: the angles θ (B, n) travel through the package's driver
:func:`tokensphere.integrate.integrate` as a state of shape (B, n, 1) with ``on_sphere=False`` (angles need
no renormalisation), so every RK method, the per-system step control and exact landing on output times are
those of :func:`tokensphere.simulate`. The angles are the continuous lift (not wrapped to [0, 2π)).
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..integrate.driver import integrate
from ..integrate.saveat import SaveAt
from ..integrate.solver import Solver
from ..runtime import choose_threads, torch_threads
from ..simulate import as_solver, save_times  # the one "Solver or method name + dt/rtol/atol" rule
from ..validate import as_tensor
from .angle import angle_field, angles_to_positions, check_angles, check_beta
from .kuramoto import Coupling, check_kuramoto, kuramoto_field, order_parameter

__all__ = ["AngleTrajectory", "integrate_angles", "simulate_angles", "simulate_kuramoto"]

# f(theta (B_a, n), idx): the angle velocity of the systems idx (None: all), shape (B_a, n)
AngleField = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


@dataclass(eq=False)
class AngleTrajectory:
    """A run on the torus. times: (T,) float64; theta: (T, B, n) (the continuous lift); steps, rejected: (B,)
    accepted and rejected step counts; evaluations: field evaluations; metadata: the model, solver, threads,
    wall time (JSON-serialisable)."""

    times: torch.Tensor
    theta: torch.Tensor
    steps: torch.Tensor
    rejected: torch.Tensor
    evaluations: int
    metadata: dict[str, Any] = field(default_factory=dict)

    def positions(self) -> torch.Tensor:
        """The tokens x_i = (cos θ_i, sin θ_i): (T, B, n, 2)."""
        return angles_to_positions(self.theta)

    def order_parameter(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(r, ψ) at every saved time, each (T, B)."""
        return order_parameter(self.theta)


def integrate_angles(
    f: AngleField,
    theta0: torch.Tensor,
    save_at: SaveAt | torch.Tensor,
    solver: Solver,
    *,
    threads: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> AngleTrajectory:
    """Integrate θ̇ = f(θ) (autonomous) from θ0 (B, n) with the package's driver; record at ``save_at``.

    f(theta (B_a, n), idx) returns (B_a, n) for the systems idx (None: all of them). solver: an RK
    :class:`~tokensphere.integrate.Solver` (fixed or adaptive; the Lie-group methods rotate points of a sphere
    and are refused). threads: torch threads (default :func:`tokensphere.runtime.choose_threads` by n).
    Returns an :class:`AngleTrajectory`. Raises ValueError for a Lie-group solver or an unprojected-field one.
    """
    if solver.kind == "lie":
        raise ValueError(f"solver {solver.method!r} rotates points of a sphere; angles need an RK method")
    if not solver.projected_field:
        raise ValueError("solver: projected_field=False (Euler on the raw field, then renormalisation) has no "
                         "meaning for angles; use Solver('euler', dt=...)")

    def field3(t: torch.Tensor, x: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        return f(x[..., 0], idx).unsqueeze(-1)

    start = _time.perf_counter()
    with torch_threads(choose_threads(theta0.shape[1], threads)) as used:
        res = integrate(field3, theta0.unsqueeze(-1), save_at, solver, on_sphere=False)
    save_at = save_at if isinstance(save_at, SaveAt) else SaveAt(save_at)
    meta = {"solver": solver.describe(), "threads": used, "wall_seconds": _time.perf_counter() - start,
            **(metadata or {})}
    return AngleTrajectory(times=save_at.t, theta=res.positions[..., 0], steps=res.steps, rejected=res.rejected,
                           evaluations=res.evaluations, metadata=meta)


def simulate_angles(
    theta0: Any,
    beta: Any = 1.0,
    *,
    normalization: str = "softmax",
    time_scale: str = "original",
    t_max: float = 10.0,
    save_at: int | Sequence[float] | torch.Tensor = 101,
    solver: Solver | str = "dopri5",
    dt: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    threads: int | None = None,
) -> AngleTrajectory:
    """Integrate the angle form (7.1) of (SA) or (USA) from θ0 and return the saved angles.

    theta0: (B, n) or (n,) angles; with one system and β of shape (B,), the start is shared. beta: a number
    or (B,). normalization: "softmax" (SA) or "uniform" (USA). time_scale: "original", or "exp_beta" for
    USA (times are s = e^β t, as in ``tokensphere.Model(time_scale="exp_beta")``). t_max, save_at: final
    time and output times (a count of equally spaced times in [0, t_max], or the times). solver: a
    :class:`~tokensphere.integrate.Solver` or a method name (then ``dt``, ``rtol``, ``atol`` apply).
    Returns an :class:`AngleTrajectory` with theta (T, B, n): the same trajectories as
    :func:`tokensphere.simulate` of the model with Q = K = V = I at d = 2, in angles.
    Raises ValueError naming the parameter for every invalid input.
    """
    theta = _start(theta0)
    b = check_beta(beta, max(theta.shape[0], _count("beta", beta)), normalization, time_scale, theta.dtype)
    theta = _share(theta, b.numel(), "beta")
    bt = b.to(theta.dtype)
    softmax, original = normalization == "softmax", time_scale == "original"

    def f(th: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        return angle_field(th, bt if idx is None or bt.numel() == 1 else bt[idx], softmax, original)

    meta = {"model": {"beta": b.tolist(), "normalization": normalization, "time_scale": time_scale}}
    solver = as_solver(solver, dt=dt, rtol=rtol, atol=atol)
    return integrate_angles(f, theta, save_times(t_max, save_at), solver, threads=threads, metadata=meta)


def simulate_kuramoto(
    theta0: Any,
    omega: Any = None,
    coupling: Any = 1.0,
    *,
    h: Coupling | None = None,
    t_max: float = 10.0,
    save_at: int | Sequence[float] | torch.Tensor = 101,
    solver: Solver | str = "dopri5",
    dt: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    threads: int | None = None,
) -> AngleTrajectory:
    """Integrate the Kuramoto model (7.2) (or (7.5) with a coupling function h) from θ0.

    theta0: (B, n) or (n,). omega: natural frequencies (n,) or (B, n) (None: 0). coupling: K, a number or
    (B,). Other arguments as in :func:`simulate_angles`. Returns an :class:`AngleTrajectory` (theta (T, B, n)).
    Raises ValueError naming the parameter for every invalid input.
    """
    theta = _start(theta0)
    systems = max(theta.shape[0], _count("coupling", coupling),
                  _count("omega", omega) // theta.shape[1] if omega is not None else 1)
    w, k = check_kuramoto(torch.Size((systems, theta.shape[1])), omega, coupling)
    theta = _share(theta, max(w.shape[0], k.numel()), "omega/coupling")
    w, k = w.to(theta.dtype), k.to(theta.dtype)

    def f(th: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        if idx is None:
            return kuramoto_field(th, w, k, h)
        return kuramoto_field(th, w if w.shape[0] == 1 else w[idx], k if k.numel() == 1 else k[idx], h)

    meta = {"model": {"kuramoto": True, "coupling": k.tolist(), "h": None if h is None else repr(h)}}
    solver = as_solver(solver, dt=dt, rtol=rtol, atol=atol)
    return integrate_angles(f, theta, save_times(t_max, save_at), solver, threads=threads, metadata=meta)


# ------------------------------------------------------------------------------------------------------------


def _count(name: str, value: Any) -> int:
    """The number of entries of a parameter (1 for a number), at least 1."""
    return max(int(as_tensor(name, value).numel()), 1)


def _start(theta0: Any) -> torch.Tensor:
    """θ0 as a (B, n) tensor; a single system (n,) becomes (1, n)."""
    t = as_tensor("theta0", theta0)
    return check_angles("theta0", t.unsqueeze(0) if t.ndim == 1 else t).clone()


def _share(theta: torch.Tensor, systems: int, source: str) -> torch.Tensor:
    """θ0 (B, n), repeated when B = 1 and the model has several systems; ValueError when the sizes differ."""
    B, n = theta.shape
    if B == 1 and systems > 1:
        return theta.expand(systems, n).clone()
    if systems not in (1, B):
        raise ValueError(f"{source} gives {systems} systems but theta0 has B = {B}; they must match or theta0 "
                         "have B = 1")
    return theta
