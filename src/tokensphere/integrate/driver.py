"""The batched time loop shared by every method.

Each system b of the batch has its own time t_b, step h_b and next stop. The stops are the output times
merged with the breakpoints (jumps of time-dependent weights); steps are shortened to land on them exactly.
Adaptive methods accept or reject per system through the :class:`~.controller.StepController`; systems that
finish or meet a terminal event drop out of the computation. One iteration of the loop is
:func:`_advance`: attempt a step (:func:`_attempt`), control it (:func:`_control`), commit the accepted
systems, record the outputs reached and check the events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..field import tangent_project
from ..validate import as_tensor
from .saveat import SaveAt
from .solver import Solver
from .steps import cg_step, erk_step, retract
from .tableaux import CROUCH_GROSSMAN, TABLEAUX

__all__ = ["integrate", "stop_grid", "IntegrationResult", "IntegrationError"]

# f(t, x, idx): velocity at times t (B_a,) for positions x (B_a, n, d) of the systems idx (None = all).
BatchField = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
Event = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# a step lands on its stop when a full step would leave less than this fraction of a step (round-off slivers)
_LAND_SLACK = 1e-9
# a rejected step below this fraction of max(|t|, 1) means the step size underflowed
_UNDERFLOW = 1e-13
_PROGRESS_EVERY = 16  # iterations between progress reports


class IntegrationError(RuntimeError):
    """The integration cannot continue (non-finite state, step-size underflow, step cap reached)."""


@dataclass
class IntegrationResult:
    """positions: (T, B, n, d) or None; steps, rejected: (B,) counts; event_time: (B,) (NaN if none)."""

    positions: torch.Tensor | None
    steps: torch.Tensor
    rejected: torch.Tensor
    evaluations: int
    event_time: torch.Tensor


def stop_grid(t_out: torch.Tensor, t0: float, breakpoints: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Where steps must land: output times t_out (T,) merged with the breakpoints inside (t0, t_out[−1]).

    Returns (stops (S,) float64 sorted, slot (S,) long): slot[s] is the output index of stop s, −1 for a
    breakpoint that is not an output time.
    """
    slot = torch.arange(t_out.numel(), device=t_out.device)
    if breakpoints is None or breakpoints.numel() == 0:
        return t_out, slot
    bp = breakpoints.to(device=t_out.device, dtype=torch.float64).reshape(-1)
    bp = bp[(bp > t0) & (bp < t_out[-1])]
    stops = torch.cat([t_out, bp])
    slot = torch.cat([slot, torch.full((bp.numel(),), -1, device=t_out.device)])
    order = torch.argsort(stops, stable=True)
    return stops[order], slot[order]


class _Field:
    """The caller's field restricted to a subset of systems, counting evaluations."""

    def __init__(self, f: BatchField) -> None:
        self.f, self.evaluations = f, 0

    def on(self, idx: torch.Tensor | None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        def fa(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            self.evaluations += 1
            return self.f(t, x, idx)

        return fa


class _Recorder:
    """Writes the states reached at stops into the (T, B, n, d) buffer and/or hands them to the hook."""

    def __init__(self, save_at: SaveAt, slot: torch.Tensor, x0: torch.Tensor) -> None:
        T, (B, n, d) = save_at.t.numel(), x0.shape
        self.slot, self.hook = slot, save_at.on_save
        self.positions = (
            torch.full((T, B, n, d), float("nan"), dtype=x0.dtype, device=x0.device) if save_at.store else None
        )

    def __call__(self, stop: torch.Tensor, systems: torch.Tensor, x: torch.Tensor) -> None:
        k = self.slot[stop]
        keep = k >= 0
        if not bool(keep.all()):
            k, systems, x = k[keep], systems[keep], x[keep]
            if k.numel() == 0:
                return
        if self.positions is not None:
            self.positions[k, systems] = x
        if self.hook is not None:
            self.hook(k, systems, x)


@dataclass
class _State:
    """Per-system state, tensors of shape (B,) unless noted, updated in place where systems drop out. k1:
    (B, n, d) f(t, x) carried from the last stage of the previous step (first-same-as-last pairs), or None.
    every: arange(B), reused as the index of "all systems"."""

    every: torch.Tensor
    t: torch.Tensor
    x: torch.Tensor
    h: torch.Tensor | None
    next_stop: torch.Tensor
    steps: torch.Tensor
    rejected: torch.Tensor
    stopped: torch.Tensor
    event_time: torch.Tensor
    k1: torch.Tensor | None = None


@dataclass
class _Trial:
    """One attempted step of the active systems (B_a,): landing flags, end times, proposals, acceptance."""

    idx: torch.Tensor | None  # positions of the active systems in the batch (None: all of them)
    sel: torch.Tensor  # the same as indices (always a tensor)
    t: torch.Tensor
    x: torch.Tensor
    h: torch.Tensor  # the step proposed before shortening
    hs: torch.Tensor  # the step taken
    land: torch.Tensor  # the step ends on the next stop
    new_t: torch.Tensor
    y: torch.Tensor | None = None
    err: torch.Tensor | None = None
    k_last: torch.Tensor | None = None
    accept: torch.Tensor | None = None  # None: every step is accepted (fixed-step and Lie methods)


def integrate(
    f: BatchField,
    x0: torch.Tensor,
    save_at: SaveAt | torch.Tensor,
    solver: Solver,
    *,
    t0: float = 0.0,
    events: Sequence[Event] = (),
    progress: Callable[[float], None] | None = None,
    breakpoints: torch.Tensor | None = None,
    autonomous: bool = True,
    on_sphere: bool = True,
) -> IntegrationResult:
    """Integrate from time t0 and record the state at every output time of ``save_at`` (all ≥ t0).

    f: the batched field f(t (B_a,), x (B_a, n, d), idx) of the systems idx (None: all). x0: (B, n, d).
    save_at: a :class:`SaveAt` or its times (T,). events: callables (t (B_a,), x (B_a, n, d)) -> (B_a,)
    bool that stop a system. breakpoints: times inside (t0, t_end) where steps must also land without
    saving (jumps of time-dependent weights, e.g. layer boundaries). autonomous: False when the field depends
    on t; then the first-same-as-last stage is re-evaluated after a stop (the weights may jump there).
    on_sphere: renormalise after every step (False for pure self-attention on R^d, (9.1)). progress: called
    with the fraction of [t0, t_end] covered by the slowest system.
    Returns an :class:`IntegrationResult`; raises :class:`IntegrationError` when the integration fails.
    """
    save_at = save_at if isinstance(save_at, SaveAt) else SaveAt(save_at)
    dev = x0.device
    t_out = save_at.t.to(device=dev)
    if float(t_out[0]) < t0:
        raise ValueError(f"save_at times must be >= t0 = {t0:g}, got {float(t_out[0]):g}")
    stops, slot = stop_grid(t_out, t0, breakpoints)
    field, record = _Field(f), _Recorder(save_at, slot, x0)
    state = _start(field, x0, t0, stops, solver, record)
    for event in events:
        if hasattr(event, "start"):
            event.start(state.t, x0)
    iteration = 0
    while bool((active := _active(state, stops)).any()):
        _advance(field, state, active, stops, solver, record, events, autonomous, on_sphere)
        iteration += 1
        if progress is not None and iteration % _PROGRESS_EVERY == 0 and bool((live := _active(state, stops)).any()):
            progress(float(state.t[live].min() - t0) / (float(t_out[-1]) - t0))
    if progress is not None:
        progress(1.0)
    return IntegrationResult(record.positions, state.steps, state.rejected, field.evaluations, state.event_time)


def _start(field: _Field, x0: torch.Tensor, t0: float, stops: torch.Tensor, solver: Solver,
           record: _Recorder) -> _State:
    """The state at t0: outputs at times ≤ t0 recorded, first step sizes chosen (and f(t0, x0) for FSAL)."""
    B, dev = x0.shape[0], x0.device
    every = torch.arange(B, device=dev)
    n_start = int((stops <= t0).sum())
    for k in range(n_start):
        record(torch.full((B,), k, device=dev), every, x0)
    zeros = torch.zeros(B, dtype=torch.long, device=dev)
    state = _State(
        every=every,
        t=torch.full((B,), float(t0), dtype=torch.float64, device=dev),
        x=x0.clone(),
        h=_given_steps(solver, B, dev),
        next_stop=zeros + n_start,
        steps=zeros.clone(),
        rejected=zeros.clone(),
        stopped=torch.zeros(B, dtype=torch.bool, device=dev),
        event_time=torch.full((B,), float("nan"), dtype=torch.float64, device=dev),
    )
    if solver.kind == "adaptive" and n_start < stops.numel():
        tab = TABLEAUX[solver.method]
        h0, f0 = solver.controller.initial_step(field.on(None), state.t, state.x, tab.order)
        state.h = solver.controller.cap(h0 if state.h is None else state.h)
        state.k1 = f0 if tab.fsal else None
    return state


def _active(state: _State, stops: torch.Tensor) -> torch.Tensor:
    """(B,) bool: systems with stops left to reach and no terminal event."""
    return (state.next_stop < stops.numel()) & ~state.stopped


def _given_steps(solver: Solver, B: int, dev: torch.device) -> torch.Tensor | None:
    """solver.dt as a (B,) float64 tensor (None when not given)."""
    if solver.dt is None:
        return None
    h = as_tensor("dt", solver.dt).to(device=dev, dtype=torch.float64).reshape(-1)
    if h.numel() not in (1, B):
        raise ValueError(f"dt must be a number or have shape (B,) = ({B},), got {h.numel()} values")
    return h.expand(B).clone()


def _advance(field: _Field, state: _State, active: torch.Tensor, stops: torch.Tensor, solver: Solver,
             record: _Recorder, events: Sequence[Event], autonomous: bool, on_sphere: bool) -> None:
    """One step attempt of every active system: step, control, commit, record, events, step cap."""
    trial = _attempt(field, state, active, stops, solver)
    if solver.kind == "adaptive":
        _control(field, state, trial, solver, autonomous, on_sphere, stops.numel())
    y = retract(trial.y) if on_sphere else trial.y
    _check_finite(y, trial, state)
    acc = torch.ones_like(trial.land) if trial.accept is None else trial.accept
    _commit(state, trial, y, acc)
    hit = acc & trial.land
    if bool(hit.any()):
        systems = trial.sel[hit]
        record(state.next_stop[systems], systems, y[hit])
        state.next_stop[systems] += 1
    if events:
        _fire_events(events, state, trial, y, acc, field, on_sphere)
    capped = _active(state, stops) & (state.steps + state.rejected >= solver.max_steps)
    if bool(capped.any()):
        raise IntegrationError(
            f"max_steps = {solver.max_steps} reached before t = {float(stops[-1]):g}; raise max_steps or the step size"
        )


def _attempt(field: _Field, state: _State, active: torch.Tensor, stops: torch.Tensor, solver: Solver) -> _Trial:
    """Shorten the proposed steps to land on the next stop, and take one step of the solver's method."""
    everyone = bool(active.all())
    idx = None if everyone else torch.nonzero(active).reshape(-1)
    sel = state.every if everyone else idx
    t, x, h = (state.t, state.x, state.h) if everyone else (state.t[idx], state.x[idx], state.h[idx])
    target = stops[state.next_stop[sel]]
    remaining = target - t
    # land when a full step would reach the stop or leave only a round-off sliver behind
    land = h * (1 + _LAND_SLACK) >= remaining
    hs = torch.where(land, remaining, h)
    new_t = torch.where(land, target, t + hs)
    trial = _Trial(idx=idx, sel=sel, t=t, x=x, h=h, hs=hs, land=land, new_t=new_t)
    fa = field.on(idx)
    if solver.kind == "lie":
        trial.y = cg_step(fa, t, x, hs, CROUCH_GROSSMAN[solver.method])
    else:  # fixed or adaptive RK; the authors' raw-field Euler is the same step on the unprojected field
        k1 = None if state.k1 is None else (state.k1 if everyone else state.k1[idx])
        trial.y, trial.err, trial.k_last = erk_step(fa, t, x, hs, TABLEAUX[solver.method], k1=k1, t_end=new_t)
    return trial


def _control(field: _Field, state: _State, trial: _Trial, solver: Solver, autonomous: bool,
             on_sphere: bool, n_stops: int) -> None:
    """Accept or reject each adaptive step, propose the next step size, carry the FSAL stage."""
    ctrl, tab = solver.controller, TABLEAUX[solver.method]
    e = ctrl.error_ratio(trial.err, trial.x, trial.y)
    accept = e <= 1.0
    new_h = ctrl.next_step(trial.hs, e, tab.error_order)
    # a step shortened to land on a stop says nothing about the step size: do not let it shrink the next one
    new_h = ctrl.cap(torch.where(accept & trial.land, torch.maximum(new_h, trial.h), new_h))
    state.h = _put(state.h, trial.idx, new_h)
    trial.accept = accept
    if state.k1 is not None:
        k1 = state.k1 if trial.idx is None else state.k1[trial.idx]
        k_last, reuse = trial.k_last, accept
        # the weights may jump at a stop: the last stage (taken just before it) is not f at the new time.
        # Re-evaluate it for the systems that landed and go on (not at their final stop), and for them only.
        refresh = accept & trial.land & (state.next_stop[trial.sel] + 1 < n_stops)
        if not autonomous and bool(refresh.any()):
            rows = torch.nonzero(refresh).reshape(-1)
            y = retract(trial.y[rows]) if on_sphere else trial.y[rows]
            k_last = k_last.clone()
            k_last[rows] = field.on(trial.sel[rows])(trial.new_t[rows], y)
        state.k1 = _put(state.k1, trial.idx, torch.where(reuse.view(-1, 1, 1), k_last, k1))
    tiny = (~accept) & (trial.hs < _UNDERFLOW * torch.clamp(trial.t.abs(), min=1.0))
    if bool(tiny.any()):
        bad = int(trial.sel[tiny][0])
        raise IntegrationError(
            f"step size underflow in system {bad} at t = {float(state.t[bad]):.6g}: the problem is too stiff "
            "for this tolerance (try a larger rtol/atol or time_scale='exp_beta' for USA)"
        )


def _check_finite(y: torch.Tensor, trial: _Trial, state: _State) -> None:
    """A non-finite state is an error unless its step is rejected anyway (the controller then shrinks it)."""
    if bool(torch.isfinite(y).all()):
        return
    bad = torch.nonzero(~torch.isfinite(y).flatten(1).all(1)).reshape(-1)
    if trial.accept is None or bool(trial.accept[bad].any()):
        b = int(trial.sel[bad[0]])
        raise IntegrationError(
            f"non-finite state in system {b} at t = {float(state.t[b]):.6g} (step {float(trial.hs[bad[0]]):.3g}): "
            "the step is too large for this beta; use an adaptive solver or a smaller dt"
        )


def _commit(state: _State, trial: _Trial, y: torch.Tensor, acc: torch.Tensor) -> None:
    """Move the accepted systems to (new_t, y) and count steps and rejections."""
    if trial.idx is None and trial.accept is None:
        state.x, state.t = y, trial.new_t
        state.steps += 1
        return
    systems = trial.sel[acc]
    state.x[systems] = y[acc]
    state.t[systems] = trial.new_t[acc]
    state.steps[systems] += 1
    state.rejected[trial.sel[~acc]] += 1


def _fire_events(events: Sequence[Event], state: _State, trial: _Trial, y: torch.Tensor, acc: torch.Tensor,
                 field: _Field, on_sphere: bool) -> None:
    """Stop the systems whose accepted new state meets an event; record the end of that step as their time.

    Events with ``needs_velocity`` also receive the velocity at the new state (one evaluation for all of
    them), tangent when the state lives on the sphere; events with ``needs_systems`` receive the systems'
    global indices (see :mod:`.events`)."""
    fired = torch.zeros_like(acc)
    if not bool(acc.any()):
        return
    ya, tn, systems = y[acc], trial.new_t[acc], trial.sel[acc]
    v = None
    if any(getattr(e, "needs_velocity", False) for e in events):
        v = field.on(systems)(tn, ya)
        if on_sphere:
            v = tangent_project(ya, v)
    for event in events:
        if getattr(event, "needs_velocity", False):
            hit = event(tn, ya, v)
        elif getattr(event, "needs_systems", False):
            hit = event(tn, ya, systems=systems)
        else:
            hit = event(tn, ya)
        fired[acc] |= hit.to(torch.bool)
    if bool(fired.any()):
        systems = trial.sel[fired]
        state.stopped[systems] = True
        state.event_time[systems] = trial.new_t[fired]


def _put(buffer: torch.Tensor, idx: torch.Tensor | None, values: torch.Tensor) -> torch.Tensor:
    """buffer with rows idx replaced by values (values itself when idx is None: every row)."""
    if idx is None:
        return values
    buffer[idx] = values
    return buffer
