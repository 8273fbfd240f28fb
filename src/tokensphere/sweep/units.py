"""One work unit of a sweep: its model, solver and seeded starts, simulated once, reduced to statistics.

System numbering: the grid point with flat (row-major) index p and seed s is the system g = p·S + s (S seeds).
Its initial positions come from the stream (seed, g) of :mod:`tokensphere.init`, its random matrices from the
ensemble's keys for (p, g) (:meth:`~tokensphere.ensembles.Ensemble.keys`, with p in the place of the β index, so
``share = "per_beta"`` means one draw per grid point). Nothing depends on how points are grouped into units,
so serial, resumed and distributed runs of the same configuration give the same numbers bit for bit.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ..ensembles import Ensemble, RedrawSchedule
from ..init import INITIALS, make_initial
from ..integrate.driver import IntegrationError
from ..integrate.sde import SDE_METHODS, SDESolver
from ..integrate.solver import ADAPTIVE, Solver, anchor_solver
from ..model import Model
from ..simulate import simulate
from .config import SweepConfig
from .statistics import STATISTICS, summarize

__all__ = ["Unit", "unit_model", "unit_solver", "unit_initial", "compute_unit", "check_units"]

Unit = tuple[tuple[int, int], ...]  # per swept axis a range (start, stop)
NOISE_TAG = 104729  # separates the Brownian streams from the start and matrix streams
MODEL_KEYS = ("normalization", "heads", "head_reduction", "causal", "uniform_count", "projection", "time_scale",
              "V", "noise")


def _systems(config: SweepConfig, unit: Unit) -> tuple[np.ndarray, np.ndarray]:
    """(grid point p of each system, global system index g): two (K·S,) int arrays, point-major."""
    S = config.seeds
    points = np.repeat(config.unit_points(unit), S)
    return points, points * S + np.tile(np.arange(S), len(points) // S)


def _ensemble(params: dict[str, Any]) -> Ensemble:
    return Ensemble(score=params["score"], value=params["value"], share=params["share"],
                    redraw=params.get("redraw"))


def unit_model(config: SweepConfig, unit: Unit, *, draw: bool = True) -> Model:
    """The :class:`~tokensphere.Model` of a unit: β per system (B = K·S,), the unit's options, and the matrices
    drawn from the ensemble (per head when heads > 1; QK = I per head for the identity score). ``draw=False``
    leaves the matrices out (identity), to check the other options cheaply."""
    params, betas = config.unit_params(unit)
    points, systems = _systems(config, unit)
    S, d, heads = config.seeds, params["d"], params["heads"]
    kw: dict[str, Any] = {k: params[k] for k in MODEL_KEYS}
    kw["beta"] = torch.tensor(np.repeat(betas, S), dtype=torch.float64)
    ens = _ensemble(params)
    wseed = params.get("weights_seed", config.seed)
    if draw and not ens.is_identity:
        if ens.redraw is not None:
            if heads > 1:
                raise ValueError("weights.redraw supports heads = 1 only")
            kw["schedule"] = RedrawSchedule(ens, d, wseed, points.tolist(), systems.tolist())
        else:
            keys = ens.keys(wseed, d, points.tolist(), systems.tolist())
            per_head = [ens.draw(d, keys if heads == 1 else [(*key, h) for key in keys]) for h in range(heads)]
            qk, v = per_head[0]
            if heads > 1:
                qk = None if qk is None else torch.stack([p[0] for p in per_head], 1)
                v = None if v is None else torch.stack([p[1] for p in per_head], 1)
            if qk is not None:
                kw["QK"] = qk
            if v is not None:
                kw["V"] = v
    if heads > 1 and "QK" not in kw:
        kw["QK"] = torch.eye(d, dtype=torch.float64).expand(heads, d, d)
    return Model(**kw)


def unit_solver(config: SweepConfig, unit: Unit, model: Model) -> Solver | SDESolver:
    """The unit's solver: the authors' scheme (``anchor = true``), ``Solver(method, dt, rtol, atol)``, or with
    noise > 0 ``SDESolver(method, dt, seed, streams)``. System g of the grid draws its Brownian increments from
    the stream (noise seed, g), whatever unit it runs in: resumed, distributed and regrouped runs agree."""
    params, _ = config.unit_params(unit)
    if params["anchor"]:
        return anchor_solver(model)
    if params["noise"] > 0:
        if params["method"] not in SDE_METHODS:
            raise ValueError(f"solver.method must be one of {', '.join(SDE_METHODS)} when model.noise > 0, got "
                             f"{params['method']!r}")
        seed = int(np.random.SeedSequence([config.seed, NOISE_TAG]).generate_state(1)[0])
        streams = tuple(int(g) for g in _systems(config, unit)[1])  # the global system indices g = p·S + s
        return SDESolver(params["method"], dt=params["dt"], seed=seed, streams=streams)  # dt: required (config)
    if params["method"] not in ADAPTIVE:  # the tolerances steer a step controller, which fixed steps do not have
        return Solver(params["method"], dt=params.get("dt"))
    return Solver(params["method"], dt=params.get("dt"), rtol=params["rtol"], atol=params["atol"])


def unit_initial(config: SweepConfig, unit: Unit) -> torch.Tensor:
    """The unit's initial positions (K·S, n, d), float64: system g = p·S + s from the stream (seed, g)."""
    params, _ = config.unit_params(unit)
    extra = {k: params[k] for k in ("angle", "gamma0") if k in params}
    parts = [
        make_initial(params["kind"], batch=config.seeds, n=params["n"], d=params["d"], seed=config.seed,
                     first_system=int(p) * config.seeds, **extra).sample()
        for p in config.unit_points(unit)
    ]
    return torch.cat(parts)


def _make_initial_checked(config: SweepConfig, unit: Unit) -> None:
    params, _ = config.unit_params(unit)
    takes = set(inspect.signature(INITIALS[params["kind"]]).parameters)
    if ("angle" in params and "angle" not in takes) or ("gamma0" in params and "gamma0" not in takes):
        raise ValueError(f"init.angle applies to kind = 'cap' (and to 'hemisphere', at π/2 only) and init.gamma0 "
                         f"to kind = 'equiangular', got kind = {params['kind']!r}")
    make_initial(params["kind"], batch=1, n=params["n"], d=params["d"], seed=config.seed,
                 **{k: params[k] for k in ("angle", "gamma0") if k in params})


def describe_unit(config: SweepConfig, unit: Unit) -> str:
    """The unit's swept values, e.g. "n = 32, beta = [1.0, 2.0]", for messages."""
    parts = []
    for (name, values), (a, b) in zip(config.axes, unit):
        vals = list(values[a:b])
        parts.append(f"{name} = {vals[0]!r}" if len(vals) == 1 and name != "beta" else f"{name} = {vals!r}")
    return ", ".join(parts) or "of the only grid point"


def check_units(config: SweepConfig) -> None:
    """Before any work, build for every combination of the non-β axes (with all its β values) the initial
    condition, the model and the solver, hand them to simulate up to its first output (:func:`_dry_run`), and
    evaluate each statistic once: a value or combination that a layer below refuses (β < 0, n < 2, an energy
    with heads > 1, a Lie method with projection = False, …) fails here with that layer's message. Matrices are
    not drawn (the ensemble's options are checked by :class:`~tokensphere.ensembles.Ensemble`)."""
    names = config.axis_names
    seen = set()
    for unit in config.units():
        if "beta" in names:
            i = names.index("beta")
            unit = (*unit[:i], (0, len(config.axes[i][1])), *unit[i + 1:])
        if unit in seen:
            continue
        seen.add(unit)
        _make_initial_checked(config, unit)
        params, _ = config.unit_params(unit)
        ens = _ensemble(params)
        if ens.redraw is not None and not ens.is_identity and params["heads"] > 1:
            raise ValueError("weights.redraw supports heads = 1 only")
        plain = replace(config, seeds=1)
        model = unit_model(plain, unit, draw=False)
        unit_solver(plain, unit, model)
        x = make_initial("uniform", batch=1, n=params["n"], d=params["d"], seed=0).sample()
        one = model.take(torch.zeros(1, dtype=torch.long))
        solver = unit_solver(plain, unit, one)
        if isinstance(solver, SDESolver):  # the dry run's one system: one stream
            solver = replace(solver, streams=solver.streams[:1])
        _dry_run(config, x, one, solver)
        for name in config.statistics:
            STATISTICS[name].compute(x, one, config.delta)


class _Resolved(Exception):
    """Raised by :func:`_dry_run`'s output hook: simulate got as far as its first output."""


def _dry_run(config: SweepConfig, x: torch.Tensor, model: Model, solver: Solver | SDESolver) -> None:
    """Hand one system to :func:`~tokensphere.simulate` as a unit would, and stop it at its first output (t = 0),
    before any step: simulate resolves the solver against the model with its own checks (a deterministic
    solver with noise, a Lie method with projection = False, …), so every combination it refuses, now or in a
    later version, fails here, before the store exists, and not inside a unit."""
    def stop(k: torch.Tensor, systems: torch.Tensor, x: torch.Tensor) -> None:
        raise _Resolved

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="save_at: .* not on the step grid")
            simulate(x, model=model, solver=solver, t_max=config.t_max,
                     save_at=torch.linspace(0.0, config.t_max, config.n_times, dtype=torch.float64), store=False,
                     on_save=stop, threads=1)
    except _Resolved:
        pass


def compute_unit(config: SweepConfig, unit: Unit, progress: Callable[[float], None] | None = None,
                 ) -> dict[str, np.ndarray]:
    """Simulate one unit and return its variables (names after ``config.names``): per-seed values (K, S, T)
    and summaries (K, T) or (K, Q, T), K the unit's grid points in β order. One torch thread: parallelism
    comes from running units side by side."""
    model = unit_model(config, unit)
    solver = unit_solver(config, unit, model)
    x0 = unit_initial(config, unit)
    T, B, S = config.n_times, x0.shape[0], config.seeds
    times = torch.as_tensor(config.times)
    raw = {name: np.full((T, B), np.nan) for name in config.statistics}
    needs_model = any(STATISTICS[name].needs_model for name in config.statistics)

    def on_save(k: torch.Tensor, systems: torch.Tensor, x: torch.Tensor) -> None:
        kk, ss = k.cpu().numpy(), systems.cpu().numpy()
        sub = None
        if needs_model:
            sub = model.take(systems)
            sub = sub if sub.schedule is None else sub.at(times[k])
        for name in config.statistics:
            raw[name][kk, ss] = STATISTICS[name].compute(x, sub, config.delta).double().cpu().numpy()

    try:
        with warnings.catch_warnings():  # the stored times are the config's linspace, on a step grid or not
            warnings.filterwarnings("ignore", message="save_at: .* not on the step grid")
            simulate(x0, model=model, solver=solver, t_max=config.t_max,
                     save_at=torch.linspace(0.0, config.t_max, config.n_times, dtype=torch.float64), store=False,
                     on_save=on_save, progress=progress, threads=1)
    except IntegrationError as exc:  # say which grid points: the driver numbers the systems within the unit
        raise IntegrationError(f"{exc} (in the unit {describe_unit(config, unit)}; its systems are numbered "
                               f"β-major, system b = β index b // {S}, seed b % {S})") from exc
    rename = dict(config.names)
    summaries = dict(config.summaries)
    out: dict[str, np.ndarray] = {}
    for name in config.statistics:
        per_seed = raw[name].reshape(T, B // S, S).transpose(1, 2, 0)  # (K, S, T)
        if config.per_seed:
            out[rename.get(name, name)] = per_seed
        for summary in summaries.get(name, ()):
            key = f"{name}_{summary}"
            out[rename.get(key, key)] = summarize(summary, per_seed)
    return out
