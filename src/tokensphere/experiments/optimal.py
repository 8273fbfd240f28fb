"""Repulsive dynamics and optimal configurations (V = −I, §9 of the paper): the seeded experiment.

Two routes to the minimisers of E_β over n-point sets:

* the dynamics: the V = −I flow (:class:`tokensphere.Model` with ``V="repulsive"``, run by
  :func:`tokensphere.simulate`) stopped on arrival, i.e. when the field is below a tolerance
  (:class:`tokensphere.integrate.events.Stationary`: max_i |ẋ_i| < tol), with the arrival time recorded;
* the optimiser: batched Riemannian L-BFGS from random restarts and basin hopping (:mod:`tokensphere.optimal`).

What both find is recognised (:func:`tokensphere.optimal.describe`) and compared with the known universally
optimal configurations and their exact energies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ..energy import log_energy
from ..field import velocity
from ..init import sample_sphere
from ..integrate.events import Stationary
from ..integrate.solver import Solver
from ..model import Model
from ..optimal.designs import Structure, describe
from ..optimal.known import KNOWN, Known, cross_polytope, known_for, simplex
from ..optimal.search import SearchResult, search
from ..simulate import simulate
from ..validate import validate_int, validate_real

__all__ = ["FlowArrival", "KnownRow", "OptimalExperiment", "flow_arrival", "known_table", "run_optimal"]

ARRIVAL_TOL = 1e-8  # max_i |ẋ_i| at arrival: far below any plateau of the field, above its round-off floor
ARRIVAL_DT_MAX = 5.0  # largest step: the arrival time is detected at step resolution, and near the minimum the
#                       adaptive steps would otherwise grow to ~100 time units


class _LastState:
    """An event that never fires and keeps each system's latest accepted state (the state at which
    :class:`Stationary` stops it, since both see the same step)."""

    needs_systems = True

    def __init__(self, x0: torch.Tensor) -> None:
        self.x = x0.clone()

    def __call__(self, t: torch.Tensor, x: torch.Tensor, systems: torch.Tensor) -> torch.Tensor:
        self.x[systems] = x
        return torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)


@dataclass
class FlowArrival:
    """The V = −I flow from B seeded random starts, stopped on arrival.

    times: (T,) saved times; field_norm: (T, B) max_i |ẋ_i| at the saved times (NaN after arrival); log_gap:
    (T, B) log E_β − log E_β(known) (NaN after arrival, or without a known configuration); arrival_time: (B,)
    (NaN: not arrived by t_max); final: (B, n, d) states at arrival (or at t_max); structures: what each
    final state is; tol, beta, n, d, seed, seconds.
    """

    times: torch.Tensor
    field_norm: torch.Tensor
    log_gap: torch.Tensor
    arrival_time: torch.Tensor
    final: torch.Tensor
    structures: list[Structure]
    tol: float
    beta: float
    n: int
    d: int
    seed: int
    seconds: float


def flow_arrival(n: int = 12, d: int = 3, beta: float = 1.0, *, starts: int = 4, seed: int = 0,
                 tol: float = ARRIVAL_TOL, t_max: float = 20000.0, saves: int = 201,
                 normalization: str = "softmax", dt_max: float = ARRIVAL_DT_MAX) -> FlowArrival:
    """Run the repulsive flow ẋ_i = −P⊥_{x_i}(Σ_j A_ij x_j) from ``starts`` uniform seeded starts until the field
    falls below ``tol`` (arrival) or t_max; save ``saves`` equally spaced states for the convergence curves. The
    solver is dopri5 (rtol 1e-9, atol 1e-11) with steps of at most ``dt_max``: the arrival time is the end of the
    first step at which the field is below tol, so it is resolved to within dt_max.

    Returns a :class:`FlowArrival`. Raises ValueError naming the parameter on bad input.
    """
    n = validate_int("n", n, minimum=2)  # an arrival at a configuration needs pairs of points
    d = validate_int("d", d, minimum=2)
    starts = validate_int("starts", starts, minimum=1)
    tol = validate_real("tol", tol, minimum=0.0, strict_minimum=True)
    model = Model(beta=beta, V="repulsive", normalization=normalization)
    x0 = sample_sphere(starts, n, d, seed=seed)
    last = _LastState(x0)
    clock = time.perf_counter()
    solver = Solver("dopri5", rtol=1e-9, atol=1e-11, dt_max=validate_real("dt_max", dt_max, minimum=0.0,
                                                                           strict_minimum=True))
    run = simulate(x0, model=model, solver=solver, t_max=t_max, save_at=saves, events=[Stationary(tol), last])
    seconds = time.perf_counter() - clock
    pos = run.positions  # (T, B, n, d), NaN after arrival
    T = pos.shape[0]
    flat = pos.reshape(T * starts, n, d)
    alive = ~flat[:, 0, 0].isnan()
    norm = torch.full((T * starts,), float("nan"), dtype=pos.dtype)
    gap = torch.full((T * starts,), float("nan"), dtype=pos.dtype)
    if bool(alive.any()):
        v = velocity(flat[alive], model.take(torch.arange(starts).repeat(T)[alive]))
        norm[alive] = torch.linalg.vector_norm(v, dim=-1).amax(-1)
        known = known_for(n, d)
        if known is not None:
            gap[alive] = log_energy(flat[alive], float(beta)) - known.log_energy(beta)
    return FlowArrival(times=run.times, field_norm=norm.reshape(T, starts), log_gap=gap.reshape(T, starts),
                       arrival_time=run.event_time, final=last.x, structures=[describe(x, beta) for x in last.x],
                       tol=tol, beta=float(beta), n=n, d=d, seed=seed, seconds=seconds)


@dataclass(frozen=True)
class KnownRow:
    """One known configuration against the optimiser: exact log E_β (closed form), found log E_β (best of a
    random-start search), design strength of the known coordinates and of the found configuration, sharpness,
    whether the found one matches, search seconds."""

    name: str
    n: int
    d: int
    exact: float
    found: float
    strength_known: int
    strength_found: int
    sharp: bool
    matches: bool
    seconds: float


def known_table(beta: float = 5.0, *, seed: int = 0, restarts: int = 16,
                configurations: tuple[Known, ...] | None = None) -> list[KnownRow]:
    """For each known configuration (default: simplex and cross-polytope in d = 3, 4, the icosahedron): its exact
    energy, and the best energy a seeded random-start search (``restarts`` starts) finds for the same (n, d)."""
    rows = []
    for k in configurations or (simplex(3), simplex(4), cross_polytope(3), cross_polytope(4), KNOWN[0]):
        res = search(k.n, k.d, beta, restarts=restarts, batch=restarts, seed=seed)
        s = describe(res.x, beta)
        rows.append(KnownRow(k.name, k.n, k.d, k.log_energy(beta), res.log_energy, describe(k.points(), beta).strength,
                             s.strength, s.sharp, s.matches, res.seconds))
    return rows


@dataclass
class OptimalExperiment:
    """The report's experiment: the icosahedron reached by the flow (with arrival times) and by the optimiser,
    and the table of known configurations."""

    flow: FlowArrival
    optimiser: SearchResult
    optimiser_structure: Structure
    table: list[KnownRow] = field(default_factory=list)
    seconds: float = 0.0


def run_optimal(seed: int = 0, *, quick: bool = False) -> OptimalExperiment:
    """The seeded experiment: n = 12, d = 3. The flow (β = 1, SA, V = −I) from 4 random starts (2 when quick)
    with arrival at max_i |ẋ_i| < 1e-8, the optimiser at β = 1 from 16 random starts, and the known-configuration
    table at β = 5 (icosahedron and one simplex and cross-polytope when quick)."""
    clock = time.perf_counter()
    flow = flow_arrival(12, 3, 1.0, starts=2 if quick else 4, seed=seed)
    res = search(12, 3, 1.0, restarts=16, batch=16, seed=seed)
    configs = (simplex(3), cross_polytope(3), KNOWN[0]) if quick else None
    table = known_table(5.0, seed=seed, restarts=8 if quick else 16, configurations=configs)
    return OptimalExperiment(flow, res, describe(res.x, 1.0), table, time.perf_counter() - clock)
