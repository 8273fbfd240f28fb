"""``simulate``: an initial state, a model, a solver, output times and events in; a :class:`Trajectory` out.

Everything else ``simulate`` accepts is a shortcut for one of those objects (``beta`` and model options for a
:class:`Model`, ``dt``/``rtol``/``atol`` for a :class:`Solver`, a count or a list for a :class:`SaveAt`), or
a setting of the computation (dtype, device, chunk_size, threads). Given a saved run (a :class:`Trajectory`
or the path of its store), ``simulate`` continues it: same model, same solver, the clock running on.
"""

from __future__ import annotations

import math
import numbers
import os
import time as _time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch

from .blocks import integrate_split
from .field import plan as kernel_plan
from .field import velocity
from .init import FromArray, normalize
from .integrate.driver import SYNC_MODES, IntegrationResult, check_events, integrate
from .integrate.saveat import SaveAt, SaveHook
from .integrate.sde import SDESolver, as_sde_solver, continued_sde_solver, integrate_sde
from .integrate.solver import METHODS, Solver
from .integrate.split import SplitSolver
from .io import run_metadata
from .model import Model
from .norms import ellipsoid_retract
from .runtime import choose_lanes, choose_threads, lanes, torch_threads
from .trajectory import Trajectory
from .validate import as_tensor, validate_choice, validate_int, validate_real, validate_unit_norm

__all__ = ["simulate", "save_times", "as_solver"]

DTYPES = {"float64": torch.float64, "float32": torch.float32}
DEFAULT_T_MAX = 10.0  # final time of a new run when neither t_max nor SaveAt times say otherwise


def save_times(t_max: float, save_at: int | Sequence[float] | torch.Tensor = 101, *, t0: float = 0.0) -> torch.Tensor:
    """Output times: ``save_at`` equally spaced points in [t0, t_max] (an int ≥ 2), or explicit sorted times
    in [t0, t_max].

    Returns a (T,) float64 tensor. Raises ValueError for t_max ≤ t0 or unsorted / out-of-range times.
    """
    t_max = _check_t_max(t_max, t0)
    count = _save_count(save_at)
    if count is not None:
        return SaveAt.linspace(t0, t_max, validate_int("save_at", count, minimum=2)).t
    return _check_range(SaveAt(save_at), t0, t_max).t


def _save_count(save_at: Any) -> int | None:
    """``save_at`` as a count of output times when it is one: a Python, NumPy or 0-d torch integer (not a bool,
    which would silently mean 0 or 1); None for explicit times."""
    if isinstance(save_at, bool) or (isinstance(save_at, torch.Tensor) and save_at.dtype == torch.bool):
        raise ValueError(f"save_at must be a count of output times (an integer >= 2) or a list of times, got "
                         f"{save_at!r}")
    if isinstance(save_at, numbers.Integral):
        return int(save_at)
    if isinstance(save_at, torch.Tensor) and save_at.ndim == 0 and not save_at.is_floating_point():
        return int(save_at)
    if getattr(save_at, "ndim", None) == 0 and getattr(getattr(save_at, "dtype", None), "kind", None) in ("i", "u"):
        return int(save_at)  # a 0-d NumPy integer array
    return None


def simulate(
    x0: Any,
    beta: Any = None,
    *,
    model: Model | None = None,
    solver: Solver | str | None = None,
    t_max: float | None = None,
    save_at: int | Sequence[float] | torch.Tensor | SaveAt = 101,
    events: Sequence[Callable] = (),
    dt: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    chunk_size: int | None = None,
    threads: int | None = None,
    progress: Callable[[float], None] | None = None,
    metadata: dict | None = None,
    store: bool | None = None,
    on_save: SaveHook | None = None,
    seed: int | None = None,
    sync: str = "auto",
    **model_options: Any,
) -> Trajectory:
    """Integrate the attention dynamics (2.3) from ``x0`` and return the saved :class:`Trajectory`.

    x0: positions (B, n, d) or (n, d) (unit vectors), an initial-condition spec from :mod:`tokensphere.init`,
        or a run to continue: a :class:`Trajectory` or the path of a saved run (see "Continuing" below).
    beta, model_options: a :class:`Model` as keywords (``normalization``, ``Q``, ``K``, ``V``, ``heads``,
        ``mask``, ``causal``, ...); or ``model``, not both. β is a number or a (B,) array.
    solver: a :class:`Solver` or a method name (``dt``, ``rtol``, ``atol`` then apply); default "dopri5". Or a
        :class:`~tokensphere.integrate.split.SplitSolver`: discrete Transformer layers, each one block of (2.8)
        of step h = its ``dt`` composed by Lie–Trotter or Strang splitting, normalised as ``model.norm`` says
        (:func:`tokensphere.blocks.integrate_split`; output times must be layer boundaries t0 + k h, and the
        steps per system are the layers).
    t_max, save_at: final time (default 10) and output times: a count of equally spaced times in [t0, t_max],
        explicit times, or a :class:`SaveAt`; in time_scale "exp_beta" times are in s = e^β t. With a
        fixed-step or Lie solver a count gives times on its step grid t0 + k·dt instead (at most that many,
        plus t_max when it is off the grid: :func:`step_grid_times`), so every step is exactly dt (the
        authors' scheme keeps η = 0.1); explicit times off that grid are kept, with a warning, and the steps
        that reach them are shortened.
    events: a callable ``(t, x) -> (B,) bool`` that stops a system, or a list of them (see :mod:`tokensphere.integrate.events`).
    dtype: float64 (default) or float32. device: "cpu", "cuda", ... (the same code runs on both).
    chunk_size: stream the field over key blocks (O(n) memory) instead of materialising attention.
    threads: the cores the integration may use. Default: torch's intra-op threads by n
        (:func:`tokensphere.runtime.choose_threads`: one below 512 tokens, all cores above), and lanes on
        all cores, one thread each, for the fused kernel's blocks of small systems and the step loop's
        passes over large (B, n, d) arrays (:func:`tokensphere.runtime.run_lanes`; the fused attention back
        end takes that many torch threads for its call); ``threads=k`` sets both to k. The lanes do not change the result (each block and row is computed by one thread with the
        same kernels).
    store, on_save: the fields of :class:`SaveAt` (keep the positions; hook(k, systems, x) at output times).
    sync: when the step loop reads the device — "step" (every iteration), "outputs" (only at settle points;
        bitwise the same run), "auto" ("step" on the CPU, "outputs" elsewhere); see
        :func:`tokensphere.integrate.integrate`.
    When x0 has one system and the model several (e.g. β of shape (B,)), x0 is shared by all of them.
    Noise (``model.noise`` = σ > 0, Problem 7): integrated by :mod:`tokensphere.integrate.sde` with a stochastic
    method (``solver`` one of ``SDE_METHODS`` or an :class:`~tokensphere.integrate.sde.SDESolver`; ``dt``
    required; default method "geodesic") whose Brownian increments are drawn from ``seed`` (default 0; a
    continuation draws new ones from the saved seed and t0). Events are not supported with noise.

    Continuing: from a run ending at t0 with final state x(t0), the saved model (β, matrices and schedule)
    and solver are used unless overridden (``model``, ``beta``, a model option, ``solver``, ``dt``, ``rtol``,
    ``atol``; an override replaces that field only); dtype and device default to the run's. ``t_max`` is
    the absolute final time (> t0) and output times run from t0. The overrides are recorded in
    ``metadata["continuation"]``. A run with systems stopped by an event (NaN final state) is refused.

    Raises ValueError naming the parameter for every invalid input.
    """
    device = _check_device(device)
    validate_choice("sync", sync, SYNC_MODES)
    events = check_events(events)
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be a callable taking the fraction done, or None; got {type(progress).__name__}")
    if model is not None and (beta is not None or model_options):
        raise ValueError("give either model=Model(...) or beta and model options, not both")
    run, source = _as_run(x0)
    t0 = 0.0
    continuation: dict[str, Any] | None = None
    if run is None:
        model = model if model is not None else Model(beta=1.0 if beta is None else beta, **model_options)
        if model.noise > 0 and not isinstance(solver, SplitSolver):
            solver = as_sde_solver(solver, dt=dt, rtol=rtol, atol=atol, seed=seed)
        else:
            solver = as_solver("dopri5" if solver is None else solver, dt=dt, rtol=rtol, atol=atol)
        x, init_meta = _sample(x0, model, _check_dtype(dtype) if dtype is not None else torch.float64, device)
        if model.norm == "rms":  # the RMSNorm dynamics live on the gain's ellipsoid: starts are mapped onto it
            x = ellipsoid_retract(x, model.weights(x.dtype, x.device).norm_gain)
            init_meta = {**init_meta, "mapped_onto": "the RMSNorm ellipsoid of norm_gain (docs/blocks.md)"}
    else:
        t0 = float(run.times[-1])
        model, solver, overrides = _continued_specs(run, model, beta, model_options, solver, dt, rtol, atol, seed)
        x, init_meta = _final_state(run, source, model, dtype, device)
        continuation = {"from": source, "t0": t0, "overrides": overrides}
    plan = _as_save_at(save_at, t_max, t0, store, on_save, continuing=run is not None)
    if solver.kind != "adaptive":  # fixed steps (RK, Lie, stochastic, layers): a count of outputs on their grid
        steps = torch.as_tensor(solver.dt, dtype=torch.float64).reshape(-1)
        if bool((steps == steps[0]).all()):  # one step for all (per-system steps: each lands on the outputs)
            # a SplitSolver refuses explicit times off its layer boundaries itself: no warning for those
            plan = _on_the_step_grid(plan, save_at, t0, float(steps[0]), warn=not isinstance(solver, SplitSolver))
            needed = (float(plan.t[-1]) - t0) / float(steps[0])
            # refused now, not after max_steps of work (a last step shortened to land on t_max counts as one)
            if isinstance(solver, Solver) and math.ceil(needed * (1 - 1e-12)) > solver.max_steps:
                raise ValueError(f"dt = {float(steps[0]):g} needs {needed:.3g} steps to reach t_max = "
                                 f"{float(plan.t[-1]):g}, beyond max_steps = {solver.max_steps}; give a larger dt "
                                 "(or Solver(..., max_steps=...))")
    if seed is not None and model.noise == 0:
        raise ValueError("seed draws the Brownian increments of a model with noise > 0; this model has noise = 0")
    if model.noise > 0 and events:
        raise ValueError("events are not supported with noise > 0 (the stochastic methods take fixed steps)")
    if isinstance(solver, SplitSolver):
        _check_split(events, chunk_size)
    if solver.kind == "lie" and not model.projection:
        raise ValueError(f"solver {solver.method!r} moves tokens on the sphere; projection=False (R^d) needs an RK "
                         "method")
    if chunk_size is not None:
        validate_int("chunk_size", chunk_size, minimum=1)
    x = _match_batch(x, model)

    start = _time.perf_counter()
    # the driver reuses its buffers in place and is not differentiable: gradients through an integration are
    # tokensphere.control's (backpropagation through a fixed-step rollout, or the adjoint)
    with torch_threads(choose_threads(x.shape[1], threads)) as used, lanes(choose_lanes(threads)) as k, \
            torch.no_grad():
        res = _run(x, model, solver, plan, t0=t0, events=events, chunk_size=chunk_size, progress=progress,
                   sync=sync)
    meta = run_metadata(dtype=x.dtype, device=x.device, threads=used, lanes=k, chunk_size=chunk_size)
    meta["kernel"] = kernel_plan(x, model, t0, chunk_size=chunk_size).describe()  # the back end velocity ran
    meta.update({"init": init_meta, "wall_seconds": _time.perf_counter() - start})
    if isinstance(solver, SplitSolver):  # a layer is a block of sub-steps (term updates or exact sub-flows)
        meta.update(layers=int(res.steps.max()) if res.steps.numel() else 0, sub_steps=res.evaluations)
    else:
        meta["field_evaluations"] = res.evaluations
    if continuation is not None:
        meta["continuation"] = continuation
    if metadata:
        meta.update(metadata)
    return Trajectory(
        times=plan.t,
        positions=res.positions,
        model=model,
        solver=solver,
        steps=res.steps.cpu(),
        rejected=res.rejected.cpu(),
        event_time=res.event_time.cpu(),
        metadata=meta,
    )


def _run(x: torch.Tensor, model: Model, solver: Solver, save_at: SaveAt, *, t0: float, events: Sequence[Callable],
         chunk_size: int | None, progress: Callable[[float], None] | None, sync: str = "auto") -> IntegrationResult:
    """The integration proper: x (B, n, d) from t0 under ``model`` with ``solver``, recorded at ``save_at``."""
    m = model.to(x.dtype, x.device)
    velocity(x[:1], m.take(torch.zeros(1, dtype=torch.long)), t0)  # shape checks before any work
    # the authors' scheme steps with the unprojected field; every other method with P⊥F
    project = None if solver.projected_field else False
    timed = m.schedule is not None

    def f(t: torch.Tensor, xx: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        return velocity(xx, m if idx is None else m.take(idx), t if timed else 0.0, project=project,
                        chunk_size=chunk_size)

    # steps land on the jumps of piecewise-constant weights, so no step straddles a discontinuity
    breakpoints = None
    if timed and hasattr(m.schedule, "breakpoints"):
        breakpoints = torch.as_tensor(m.schedule.breakpoints(save_at.t_end), dtype=torch.float64)
    if isinstance(solver, SplitSolver):
        return integrate_split(x, m, save_at, solver, t0=t0, progress=progress)
    if isinstance(solver, SDESolver):
        return integrate_sde(f, x, save_at, solver, model.noise, t0=t0, breakpoints=breakpoints, progress=progress)
    return integrate(f, x, save_at, solver, t0=t0, events=events, progress=progress, breakpoints=breakpoints,
                     autonomous=not timed, on_sphere=model.projection, sync=sync)


# ------------------------------------------------------------------------------------------------------------
# the shortcuts


def as_solver(solver: Solver | SplitSolver | str, *, dt: Any, rtol: float | None,
              atol: float | None) -> Solver | SplitSolver:
    """A :class:`Solver` (or a :class:`SplitSolver`), or one built from a method name and the
    ``dt``/``rtol``/``atol`` shortcuts (which may not accompany a ready solver). Raises ValueError naming the
    offending argument."""
    if isinstance(solver, (Solver, SplitSolver)):
        if dt is not None or rtol is not None or atol is not None:
            what = type(solver).__name__
            raise ValueError(f"dt/rtol/atol go into {what}(...) when a {what} object is given")
        return solver
    if not isinstance(solver, str):
        raise ValueError(f"solver must be a Solver or one of {', '.join(METHODS)}, got {type(solver).__name__}")
    return Solver(solver, dt=dt, rtol=rtol, atol=atol)


def _as_save_at(save_at: Any, t_max: float | None, t0: float, store: bool | None, on_save: SaveHook | None,
                *, continuing: bool) -> SaveAt:
    """The SaveAt of the shortcuts: a count or times in [t0, t_max], or a SaveAt (store/on_save replace its
    fields when given)."""
    if isinstance(save_at, SaveAt):
        if t_max is not None:
            _check_range(save_at, t0, _check_t_max(t_max, t0))
        else:
            _check_range(save_at, t0, save_at.t_end)
        changes = {k: v for k, v in (("store", store), ("on_save", on_save)) if v is not None}
        return replace(save_at, **changes) if changes else save_at
    if t_max is None:
        if continuing:
            raise ValueError(f"t_max must be given to continue a run: the absolute final time, > t0 = {t0:g}")
        t_max = DEFAULT_T_MAX
    return SaveAt(save_times(t_max, save_at, t0=t0), store=True if store is None else store, on_save=on_save)


def step_grid_times(t0: float, t_end: float, dt: float, most: int) -> torch.Tensor:
    """Output times on the grid t0 + k·dt of a fixed-step method: every q-th step, q the fewest steps that keep
    the count at most ``most`` (≥ 2), then t_end itself when it is not on the grid (the last step is shortened
    to land there). (T,) float64."""
    span = (t_end - t0) / dt
    if not span < 2.0**53:  # beyond any step count a run could take (and beyond exact float64 integers)
        raise ValueError(f"dt = {dt:g} is too small for the interval [{t0:g}, {t_end:g}]: {span:.3g} steps; "
                         "give a larger dt")
    steps = math.floor(span * (1 + 1e-12))
    q = max(1, math.ceil(steps / (most - 1)))
    k = torch.arange(0, steps + 1, q, dtype=torch.float64)
    times = t0 + dt * k
    if times.numel() == 0 or abs(float(times[-1]) - t_end) > 1e-9 * max(1.0, abs(t_end)):
        times = torch.cat([times, torch.tensor([t_end], dtype=torch.float64)])
    return times


def _on_the_step_grid(plan: SaveAt, save_at: Any, t0: float, dt: float, warn: bool = True) -> SaveAt:
    """A fixed-step solver takes steps of exactly dt: a count of output times becomes times on its step grid
    (:func:`step_grid_times`; equally spaced times off the grid would shorten every step to land on them and
    so change the scheme, e.g. the authors' η = 0.1). Explicit times off the grid are kept (the driver lands on
    them) with a warning that the steps around them are shortened."""
    ts = plan.t
    count = _save_count(save_at)
    if count is not None:
        return replace(plan, t=step_grid_times(t0, float(ts[-1]), dt, count))
    k = (ts - t0) / dt
    off = (k - k.round()).abs() > 1e-9 * torch.clamp(k.abs(), min=1.0)
    off[-1] = False  # the final time may end a run with a shortened step
    if warn and bool(off.any()):
        warnings.warn(f"save_at: {int(off.sum())} output time(s) (the first {float(ts[off][0]):g}) are not on the "
                      f"step grid t0 + k·dt (dt = {dt:g}); the steps that reach them are shortened, so the "
                      "fixed-step scheme differs there", stacklevel=3)
    return plan


def _check_split(events: Sequence[Callable], chunk_size: int | None) -> None:
    """Refuse what a stack of discrete blocks cannot do, naming the parameter (the model's side:
    :func:`tokensphere.blocks.split_block`)."""
    if events:
        raise ValueError("events are not supported with a SplitSolver (the layers are fixed steps)")
    if chunk_size is not None:
        raise ValueError("chunk_size applies to the continuous field's integration; a SplitSolver evaluates each "
                         "block's terms whole (the kernel still picks a streaming back end when memory needs one)")


def _check_t_max(t_max: float, t0: float) -> float:
    if t0 == 0.0:
        return validate_real("t_max", t_max, minimum=0.0, strict_minimum=True)
    t_max = validate_real("t_max", t_max)
    if t_max <= t0:
        raise ValueError(f"t_max must be > t0 = {t0:g} (the end of the run being continued; t_max is the absolute "
                         f"final time), got {t_max:g}")
    return t_max


def _check_range(save_at: SaveAt, t0: float, t_max: float) -> SaveAt:
    ts = save_at.t
    if bool((ts < t0).any()) or bool((ts > t_max * (1 + 1e-12)).any()):
        raise ValueError(f"save_at times must lie in [t0, t_max] = [{t0:g}, {t_max:g}]")
    return save_at


def _sample(x0: Any, model: Model, dtype: torch.dtype, device: torch.device | None) -> tuple[torch.Tensor, dict]:
    """Positions (B, n, d) of an initial-condition spec or an array, and their description."""
    if hasattr(x0, "sample") and hasattr(x0, "describe"):
        return x0.sample(dtype=dtype, device=device), x0.describe()
    spec = FromArray(x0, unit=model.projection)
    return spec.sample(dtype=dtype, device=device), spec.describe()


def _match_batch(x: torch.Tensor, model: Model) -> torch.Tensor:
    """x (B, n, d), shared by the model's systems when B = 1; ValueError when the batch sizes differ."""
    B, n, d = x.shape
    if n < 1:
        raise ValueError(f"n (number of tokens) must be >= 1, got {n}")
    if d < 2:
        raise ValueError(f"d (dimension) must be >= 2, got {d}")
    if B == 1 and model.batch_size > 1:
        return x.expand(model.batch_size, n, d).clone()
    if model.batch_size not in (1, B):
        raise ValueError(f"beta/model has {model.batch_size} systems but x0 has B = {B}; they must match or x0 "
                         "have B = 1")
    return x


# ------------------------------------------------------------------------------------------------------------
# continuing a run


def _as_run(x0: Any) -> tuple[Trajectory | None, str | None]:
    """(the run, where it came from: its path or "trajectory") when x0 is a run; (None, None) otherwise."""
    if isinstance(x0, (str, os.PathLike)):
        return Trajectory.load(x0), str(x0)
    if isinstance(x0, Trajectory):
        return x0, "trajectory"
    return None, None


def _continued_specs(run: Trajectory, model: Model | None, beta: Any, options: dict[str, Any],
                     solver: Solver | str | None, dt: Any, rtol: float | None,
                     atol: float | None, seed: int | None = None) -> tuple[Model, Any, dict[str, Any]]:
    """The saved model and solver with the caller's overrides applied, and the overrides as JSON."""
    overrides: dict[str, Any] = {}
    if model is not None:
        overrides["model"] = model.describe()
    elif beta is not None or options:
        changes = dict(options, **({} if beta is None else {"beta": beta}))
        overrides.update({k: _describe(v) for k, v in changes.items()})
        if "QK" in changes:  # the score matrices come as QK or as (Q, K): replacing one form drops the other
            changes.setdefault("Q", None)
            changes.setdefault("K", None)
        elif "Q" in changes or "K" in changes:
            changes.setdefault("QK", None)
        model = replace(run.model, **changes)
    else:
        if run.metadata.get("schedule_not_restored"):
            raise ValueError(
                f"x0: the saved run used time-dependent weights ({run.metadata['schedule_not_restored']}) that its "
                "store does not hold; pass model=Model(..., schedule=...) to continue it"
            )
        model = run.model
    if model.noise > 0:
        solver = continued_sde_solver(run.solver, solver, dt=dt, rtol=rtol, atol=atol, seed=seed,
                                      t0=float(run.times[-1]))
        overrides["solver"] = solver.describe()
    elif isinstance(run.solver, SDESolver) and solver is None:
        raise ValueError("the saved run is noisy; continuing it with noise = 0 needs a deterministic solver")
    elif solver is not None:
        solver = as_solver(solver, dt=dt, rtol=rtol, atol=atol)
        overrides["solver"] = solver.describe()
    else:
        saved = run.solver
        given = {k: v for k, v in (("dt", dt), ("rtol", rtol), ("atol", atol)) if v is not None}
        solver = saved
        if given and isinstance(saved, SplitSolver):  # the saved layers with a new step h and/or sub-flow rtol
            if atol is not None:
                raise ValueError("atol does not apply to the saved run's SplitSolver (its exact sub-flows take rtol)")
            solver = replace(saved, **{k: v for k, v in given.items() if k != "atol"})
            overrides.update({k: _describe(v) for k, v in given.items()})
        elif given:
            solver = Solver(saved.method, dt=given.get("dt", saved.dt), controller=saved.controller,
                            projected_field=saved.projected_field, max_steps=saved.max_steps,
                            rtol=rtol, atol=atol)
            overrides.update({k: _describe(v) for k, v in given.items()})
    return model, solver, overrides


def _final_state(run: Trajectory, source: str, model: Model, dtype: torch.dtype | str | None,
                 device: torch.device | None) -> tuple[torch.Tensor, dict[str, Any]]:
    """The run's final positions (B, n, d) as the new start, in its dtype unless ``dtype`` is given."""
    x = run.final()
    stopped = torch.isnan(x).flatten(1).any(1)
    if bool(stopped.any()):
        b = int(torch.nonzero(stopped)[0])
        where = "the trajectory" if source == "trajectory" else f"the saved run {source}"
        raise ValueError(
            f"x0: {where} has {int(stopped.sum())} system(s) stopped early by an event (NaN final state; system "
            f"{b} at t = {float(run.event_time[b]):g}); a run is continued as a whole: pass the final states of "
            "the other systems as x0 instead"
        )
    if model.projection:
        validate_unit_norm("x0", x)  # in the saved run's own precision (a float32 run is unit to float32 accuracy)
    source_eps = torch.finfo(x.dtype).eps
    x = x.to(dtype=_check_dtype(dtype) if dtype is not None else x.dtype, device=device or x.device)
    if model.projection and torch.finfo(x.dtype).eps < source_eps:
        x = normalize(x)  # continued in a finer dtype: put the coarser state back on the sphere to that precision
    t0 = float(run.times[-1])
    meta = {"kind": "trajectory", "time": t0} if source == "trajectory" else {"kind": "saved_run", "path": source,
                                                                            "time": t0}
    return x, meta


def _describe(value: Any) -> Any:
    """A JSON-able description of an override: numbers and strings as is, small arrays as lists."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    try:
        t = as_tensor("value", value)
    except ValueError:
        return repr(value)
    return t.tolist() if t.numel() <= 16 else f"array{tuple(t.shape)}"


# ------------------------------------------------------------------------------------------------------------
# dtype and device


def _check_device(device: torch.device | str | None) -> torch.device | None:
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA device is available; use device='cpu'")
    try:
        torch.empty(1, device=dev)
    except (RuntimeError, AssertionError) as exc:
        raise ValueError(f"device {str(dev)!r} cannot be used: {str(exc).splitlines()[0]}") from None
    return dev


def _check_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, str):
        validate_choice("dtype", dtype, tuple(DTYPES))
        return DTYPES[dtype]
    if dtype not in DTYPES.values():
        raise ValueError(f"dtype must be one of 'float64', 'float32', got {dtype!r}")
    return dtype
