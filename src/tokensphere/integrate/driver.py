"""The batched time loop shared by every method.

Each system b of the batch has its own time t_b, step h_b and next stop. The stops are the output times
merged with the breakpoints (jumps of time-dependent weights); steps are shortened to land on them exactly.
Adaptive methods accept or reject per system through the :class:`~.controller.StepController`; systems that
finish or meet a terminal event leave the computation: the loop works on a compact *working set* of the
active systems (:class:`_Working`), rebuilt only when a system leaves, so the field is never evaluated on a
finished or stopped system and nothing is gathered or scattered per step. One iteration is :func:`_advance`:
attempt a step, control it, read the step's few flags to the host **once**, commit, record the outputs
reached, check the events, drop the systems that left.

Host–device synchronisation (what a CUDA run waits for): one read of a small flag vector per iteration (were
outputs reached, did a step fail or underflow, are systems near the step cap, was any step rejected);
``nonzero`` gathers only when outputs are reached, when systems leave and — with events — to read whether an
event fired (one more read per iteration when events are given); the progress callback reads the slowest
time every 16 iterations. See docs/numerics.md, "Step loop".

``sync="outputs"`` (the default off the CPU) removes that read: each iteration is decided on the device — a
system that lands on a stop, fails or reaches the step cap is *parked* (it keeps its state while the others
step; its attempts are discarded) — and the host reads only at settle points, chosen so that the parked
systems' idle attempts stay near a tenth of the work: there it records the parked systems' outputs, raises the
errors, drops the systems that finished and unparks the rest. The steps, states and counts are bitwise those
of ``sync="step"``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import platform
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..field import tangent_project
from ..runtime import run_lanes_by_rows
from ..validate import as_tensor, validate_choice, validate_real
from .saveat import SaveAt
from .solver import Solver
from .steps import StageBuffers, cg_step, erk_step, retract
from .tableaux import CROUCH_GROSSMAN, TABLEAUX

__all__ = ["integrate", "stop_grid", "reuse_freed_memory", "IntegrationResult", "IntegrationError"]

# f(t, x, idx): velocity at times t (B_a,) for positions x (B_a, n, d) of the systems idx (None = all).
BatchField = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
Event = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# a step lands on its stop when a full step would leave less than this fraction of a step (round-off slivers)
_LAND_SLACK = 1e-9
# a rejected step below this fraction of max(|t|, 1) means the step size underflowed
_UNDERFLOW = 1e-13
_PROGRESS_EVERY = 16  # iterations between progress reports
SYNC_MODES = ("auto", "step", "outputs")
# sync="outputs": the host settles when the parked systems' predicted idle attempts would exceed this share of
# the attempts made, and at least every _MAX_AHEAD iterations (the prediction assumes steady steps)
_IDLE_SHARE = 0.1
_MAX_AHEAD = 256
# glibc returns every freed block above its mmap threshold (at most 32 MiB by default) to the system and
# page-faults it in again, zero-filled, at the next allocation: for a batch whose (B, n, d) tensors are tens of
# MiB that costs more system time than the arithmetic (measured: BENCHMARKS.md, "Whole steps"). The driver
# raises both thresholds once per process, so freed blocks up to this size are reused from the heap.
_HEAP_REUSE_BYTES = 256 << 20  # above the (B, n, d) stage buffers of large batches, below large-n key blocks
_heap_reuse_set = False


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


def check_events(events: Any) -> tuple:
    """The ``events`` argument as a tuple of callables ``(t, x) -> (B,) bool``; a single event is accepted
    on its own. Raises ValueError naming what is not callable."""
    if events is None:
        return ()
    if callable(events):
        return (events,)
    if isinstance(events, (str, bytes)) or not isinstance(events, Iterable):
        raise ValueError(f"events must be a list of callables (t, x) -> (B,) bool, got {type(events).__name__}")
    events = tuple(events)
    for e in events:
        if not callable(e):
            raise ValueError(f"events must be callables (t, x) -> (B,) bool, got an item of type {type(e).__name__}")
    return events


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
    bp = bp[~torch.isin(bp, t_out)]  # one stop per time: a breakpoint that is an output time is already a stop
    stops = torch.cat([t_out, bp])
    slot = torch.cat([slot, torch.full((bp.numel(),), -1, device=t_out.device)])
    order = torch.argsort(stops, stable=True)
    return stops[order], slot[order]


def reuse_freed_memory() -> bool:
    """Let glibc serve blocks up to 256 MiB from the heap, and keep up to 512 MiB freed there, instead of
    mapping and unmapping each (once per process). Larger blocks (the key blocks of an n ≫ 10⁴ system) are
    still mapped and returned on free, so a large-n evaluation's peak memory is not raised.

    Without it every (B, n, d) temporary above 32 MiB is mapped, zero-filled page by page and unmapped again
    at each use: system time that grows with the batch. Returns True when the setting is in force (Linux with
    glibc; elsewhere nothing is changed). Set the environment variable ``TOKENSPHERE_SYSTEM_MALLOC=1`` to
    leave the allocator alone.
    """
    global _heap_reuse_set
    if _heap_reuse_set:
        return True
    if os.environ.get("TOKENSPHERE_SYSTEM_MALLOC") == "1" or platform.system() != "Linux":
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt parameters (malloc.h)
        ok = libc.mallopt(m_mmap_threshold, _HEAP_REUSE_BYTES) == 1
        ok = ok and libc.mallopt(m_trim_threshold, 2 * _HEAP_REUSE_BYTES) == 1
    except (OSError, AttributeError):
        return False
    _heap_reuse_set = ok
    return ok


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
        self.breakpoints = bool((slot < 0).any())
        self.positions = (
            torch.full((T, B, n, d), float("nan"), dtype=x0.dtype, device=x0.device) if save_at.store else None
        )

    def __call__(self, stop: torch.Tensor, systems: torch.Tensor, x: torch.Tensor) -> None:
        k = self.slot[stop]
        if self.breakpoints:  # stops that are breakpoints only are not recorded
            keep = torch.nonzero(k >= 0).reshape(-1)
            if keep.numel() < k.numel():
                k, systems, x = k[keep], systems[keep], x[keep]
                if k.numel() == 0:
                    return
        if self.positions is not None:
            self.positions[k, systems] = x
        if self.hook is not None:
            self.hook(k, systems, x)


class _Working:
    """The active systems, compact: their rows of every per-system quantity, in increasing system order.

    systems: (B_a,) global indices; idx: the same, or None while every system of the batch is active (the
    field then runs on the whole model, no restriction). t, h: (B_a,) float64; x: (B_a, n, d); k1: (B_a, n,
    d) f(t, x) carried over from the last stage of the previous step (FSAL pairs) or None; next_stop, steps,
    rejected: (B_a,) long. The buffers of the step live in ``work``.
    """

    def __init__(self, systems: torch.Tensor, everyone: bool, t: torch.Tensor, x: torch.Tensor,
                 h: torch.Tensor | None, next_stop: torch.Tensor) -> None:
        self.systems, self.idx = systems, None if everyone else systems
        self.t, self.x, self.h, self.next_stop = t, x, h, next_stop
        self.k1: torch.Tensor | None = None
        self.steps = torch.zeros_like(next_stop)
        self.rejected = torch.zeros_like(next_stop)
        self.work = StageBuffers()
        # sync="outputs": parked rows and why (0 landed on its stop, _FAIL_* failed), the failed step's size
        self.parked = torch.zeros_like(next_stop, dtype=torch.bool)
        self.why = torch.zeros_like(next_stop)
        self.fail_h = torch.zeros_like(t)
        self.idle = torch.zeros((), dtype=torch.long, device=t.device)  # parked rows' attempts since the settle

    @property
    def size(self) -> int:
        return self.systems.numel()

    def keep(self, rows: torch.Tensor) -> None:
        """Restrict to the rows ``rows`` (B_k,) of the working set (systems leaving the computation)."""
        self.systems = self.systems[rows]
        self.idx = self.systems
        self.t, self.x, self.next_stop = self.t[rows], self.x[rows], self.next_stop[rows]
        self.steps, self.rejected = self.steps[rows], self.rejected[rows]
        self.h = None if self.h is None else self.h[rows]
        self.k1 = None if self.k1 is None else self.k1[rows]
        self.parked, self.why, self.fail_h = self.parked[rows], self.why[rows], self.fail_h[rows]


@dataclass
class _Totals:
    """Per-system results over the whole batch (B,): steps, rejections, event times."""

    steps: torch.Tensor
    rejected: torch.Tensor
    event_time: torch.Tensor

    def leave(self, ws: _Working, rows: torch.Tensor) -> None:
        """Write the counts of the working-set rows ``rows`` (systems that leave) into the totals."""
        sys_ = ws.systems[rows]
        self.steps[sys_] = ws.steps[rows]
        self.rejected[sys_] = ws.rejected[rows]


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
    sync: str = "auto",
) -> IntegrationResult:
    """Integrate from time t0 and record the state at every output time of ``save_at`` (all ≥ t0).

    f: the batched field f(t (B_a,), x (B_a, n, d), idx) of the systems idx (None: all). x0: (B, n, d).
    save_at: a :class:`SaveAt` or its times (T,). events: callables (t (B_a,), x (B_a, n, d)) -> (B_a,)
    bool that stop a system (x is the driver's buffer: read it, do not keep it). breakpoints: times inside
    (t0, t_end) where steps must also land without saving (jumps of time-dependent weights, e.g. layer
    boundaries). autonomous: False when the field depends on t; then the first-same-as-last stage is
    re-evaluated after a stop (the weights may jump there). on_sphere: renormalise after every step (False
    for pure self-attention on R^d, (9.1)). progress: called with the fraction of [t0, t_end] covered by the
    slowest system. sync: when the host reads the loop's state — "step" (one small read per
    iteration), "outputs" (only at settle points: systems that land or fail are parked on the device until
    then; the same steps and states, bitwise), "auto" ("step" on the CPU, where a read costs nothing and a
    parked system's attempts would; "outputs" on other devices, unless events are given).
    Returns an :class:`IntegrationResult`; raises :class:`IntegrationError` when the integration fails.
    """
    save_at = save_at if isinstance(save_at, SaveAt) else SaveAt(save_at)
    t0 = validate_real("t0", t0)
    events = check_events(events)
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be a callable taking the fraction done, or None; got {type(progress).__name__}")
    dev = x0.device
    if not bool(torch.isfinite(x0).all()):  # one read at the start: a NaN state would only fail steps later
        bad = torch.nonzero(~torch.isfinite(x0).flatten(1).all(1)).reshape(-1)
        raise ValueError(f"x0 must hold finite values; system(s) {bad[:5].tolist()} hold NaN or inf")
    deferred = _deferred(sync, dev, events)
    t_out = save_at.t.to(device=dev)
    if float(t_out[0]) < t0:
        raise ValueError(f"save_at times must be >= t0 = {t0:g}, got {float(t_out[0]):g}")
    reuse_freed_memory()
    stops, slot = stop_grid(t_out, t0, breakpoints)
    field, record = _Field(f), _Recorder(save_at, slot, x0)
    ws, totals = _start(field, x0, t0, stops, solver, record)
    for event in events:
        if hasattr(event, "start"):
            event.start(torch.full((x0.shape[0],), float(t0), dtype=torch.float64, device=dev), x0)
    iteration = 0
    span = float(t_out[-1]) - t0
    limit, attempts, ahead = 4, 0, 0  # sync="outputs": the longest run-ahead, adapted to the idle share measured
    while ws.size:
        if deferred:
            if ahead <= 0:  # the host's read: settle the parked systems, plan the next run-ahead
                idle, predicted, t_min = _settle(field, ws, totals, stops, solver, record, autonomous)
                if attempts:
                    limit = min(2 * limit, _MAX_AHEAD) if idle <= _IDLE_SHARE * attempts else max(1, limit // 2)
                attempts, ahead = 0, min(limit, predicted)
                if progress is not None:
                    progress((t_min - t0) / span)
                if not ws.size:
                    break
            attempts += ws.size
            _advance_parked(field, ws, stops, solver, on_sphere)
            ahead -= 1
            continue
        _advance(field, ws, totals, stops, solver, record, events, autonomous, on_sphere)
        iteration += 1
        if progress is not None and iteration % _PROGRESS_EVERY == 0 and ws.size:
            progress(float(ws.t.min() - t0) / span)
    if progress is not None:
        progress(1.0)
    return IntegrationResult(record.positions, totals.steps, totals.rejected, field.evaluations, totals.event_time)


def _start(field: _Field, x0: torch.Tensor, t0: float, stops: torch.Tensor, solver: Solver,
           record: _Recorder) -> tuple[_Working, _Totals]:
    """The working set at t0: outputs at times ≤ t0 recorded, first step sizes chosen (and f(t0, x0) for
    FSAL)."""
    B, dev = x0.shape[0], x0.device
    every = torch.arange(B, device=dev)
    n_start = int((stops <= t0).sum())
    for k in range(n_start):
        record(torch.full((B,), k, device=dev), every, x0)
    zeros = torch.zeros(B, dtype=torch.long, device=dev)
    totals = _Totals(zeros.clone(), zeros.clone(),
                     torch.full((B,), float("nan"), dtype=torch.float64, device=dev))
    t = torch.full((B,), float(t0), dtype=torch.float64, device=dev)
    ws = _Working(every, True, t, x0.clone(), _given_steps(solver, B, dev), zeros + n_start)
    if n_start >= stops.numel():
        ws.keep(every[:0])
        return ws, totals
    if solver.kind == "adaptive":
        tab = TABLEAUX[solver.method]
        h0, f0 = solver.controller.initial_step(field.on(None), ws.t, ws.x, tab.order)
        ws.h = solver.controller.cap(h0 if ws.h is None else ws.h)
        ws.k1 = f0 if tab.fsal else None
    return ws, totals


def _given_steps(solver: Solver, B: int, dev: torch.device) -> torch.Tensor | None:
    """solver.dt as a (B,) float64 tensor (None when not given)."""
    if solver.dt is None:
        return None
    h = as_tensor("dt", solver.dt).to(device=dev, dtype=torch.float64).reshape(-1)
    if h.numel() not in (1, B):
        raise ValueError(f"dt must be a number or have shape (B,) = ({B},), got {h.numel()} values")
    return h.expand(B).clone()


# the flags read to the host once per iteration
_HIT, _ALL_HIT, _DONE, _TINY, _NONFINITE, _NEAR_CAP, _REJECTED = range(7)


def _advance(field: _Field, ws: _Working, totals: _Totals, stops: torch.Tensor, solver: Solver,
             record: _Recorder, events: Sequence[Event], autonomous: bool, on_sphere: bool) -> None:
    """One step attempt of every active system: step, control, flags, commit, record, events, leavers."""
    n_stops = stops.numel()
    land, hs, new_t, y, accept, tiny, k_last = _attempt(field, ws, stops, solver, autonomous, on_sphere)
    bad = _maybe_nonfinite(y)
    acc = accept if accept is not None else torch.ones_like(land)
    hit = acc & land
    flags = torch.stack([
        hit.any(),
        hit.all(),
        (hit & (ws.next_stop + 1 >= n_stops)).any(),
        torch.zeros((), dtype=torch.bool, device=y.device) if tiny is None else tiny.any(),
        (bad & acc).any() if accept is not None else bad.any(),
        (ws.steps + ws.rejected + 1 >= solver.max_steps).any(),
        (~acc).any(),
    ]).tolist()  # the one host read of an ordinary iteration
    if flags[_TINY]:
        _underflow(ws, tiny, hs)
    if flags[_NONFINITE]:
        _nonfinite(ws, bad & acc & ~torch.isfinite(y).flatten(1).all(1), hs)  # the exact test, on this rare path
    if ws.k1 is not None:  # FSAL: the last stage of an accepted step is the next step's first
        ws.k1 = k_last if not flags[_REJECTED] else torch.where(acc.view(-1, 1, 1), k_last, ws.k1)
    _commit(ws, y, new_t, acc, all_accepted=not flags[_REJECTED])
    leaving = None
    if flags[_HIT]:
        if flags[_ALL_HIT]:  # outputs saved in step (the usual case): no gather of the rows
            record(ws.next_stop, ws.systems, ws.x if record.hook is None else ws.x.clone())
        else:
            rows = torch.nonzero(hit).reshape(-1)
            record(ws.next_stop[rows], ws.systems[rows], ws.x[rows])
        ws.next_stop += hit
        if flags[_DONE]:
            leaving = hit & (ws.next_stop >= n_stops)
    if events:
        fired = _fire_events(events, ws, totals, new_t, acc, not flags[_REJECTED], field, on_sphere)
        if fired is not None:
            leaving = fired if leaving is None else leaving | fired
    if leaving is not None:
        _drop(ws, totals, leaving)
    if flags[_NEAR_CAP] and ws.size and bool((ws.steps + ws.rejected >= solver.max_steps).any()):
        raise IntegrationError(
            f"max_steps = {solver.max_steps} reached before t = {float(stops[-1]):g}; raise max_steps or the step size"
        )


def _attempt(field: _Field, ws: _Working, stops: torch.Tensor, solver: Solver, autonomous: bool,
             on_sphere: bool) -> tuple[torch.Tensor, ...]:
    """Attempt one step of every working-set row towards its next stop, with the method's step (and, for
    adaptive methods, the controller's verdict and next step size in ``ws.h``); the new state retracted onto
    the sphere when ``on_sphere``. Returns (land, hs, new_t, y, accept, tiny, k_last): whether the step lands
    on the stop, the step taken and the time reached (B_a,), the new state (B_a, n, d), the verdict and
    underflow flags (None for fixed steps) and the last stage (FSAL, or None)."""
    target = stops[ws.next_stop]
    remaining = target - ws.t
    # land when a full step would reach the stop or leave only a round-off sliver behind
    land = ws.h * (1 + _LAND_SLACK) >= remaining
    hs = torch.where(land, remaining, ws.h)
    new_t = torch.where(land, target, ws.t + hs)
    fa = field.on(ws.idx)
    accept = tiny = k_last = None
    if solver.kind == "lie":
        y = cg_step(fa, ws.t, ws.x, hs, CROUCH_GROSSMAN[solver.method])
    else:  # fixed or adaptive RK; the authors' raw-field Euler is the same step on the unprojected field
        y, err, k_last = erk_step(fa, ws.t, ws.x, hs, TABLEAUX[solver.method], k1=ws.k1, t_end=new_t,
                                  work=ws.work)
        if solver.kind == "adaptive":
            accept, tiny, k_last = _control(field, ws, solver, y, err, k_last, hs, land, new_t, autonomous,
                                            on_sphere, stops.numel())
    if on_sphere:
        if ws.work.holds(y):  # in place, the rows spread over the lanes when the batch is large
            run_lanes_by_rows(y, lambda r: retract(y[r], out=y[r]))
        else:
            y = retract(y)
    return land, hs, new_t, y, accept, tiny, k_last


def _control(field: _Field, ws: _Working, solver: Solver, y: torch.Tensor, err: torch.Tensor,
             k_last: torch.Tensor, hs: torch.Tensor, land: torch.Tensor, new_t: torch.Tensor, autonomous: bool,
             on_sphere: bool, n_stops: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Accept or reject each adaptive step and propose the next step size. Returns (accept (B_a,) bool, tiny
    (B_a,) bool: rejected steps that underflowed, the last stage to carry over (FSAL)). autonomous=True skips
    the FSAL refresh at stops (``_settle`` does it for parked systems)."""
    ctrl, tab = solver.controller, TABLEAUX[solver.method]
    e = ctrl.error_ratio(err, ws.x, y, scratch=(ws.work.get("stage", y), ws.work.get("combine", y)))
    accept = e <= 1.0
    new_h = ctrl.next_step(hs, e, tab.error_order)
    # a step shortened to land on a stop says nothing about the step size: do not let it shrink the next one
    new_h = ctrl.cap(torch.where(accept & land, torch.maximum(new_h, ws.h), new_h))
    if ws.k1 is not None:
        # the weights may jump at a stop: the last stage (taken just before it) is not f at the new time.
        # Re-evaluate it for the systems that landed and go on (not at their final stop), and for them only.
        if not autonomous:
            refresh = accept & land & (ws.next_stop + 1 < n_stops)
            if bool(refresh.any()):
                rows = torch.nonzero(refresh).reshape(-1)
                yr = retract(y[rows]) if on_sphere else y[rows]
                k_last = k_last.clone()
                k_last[rows] = field.on(ws.systems[rows])(new_t[rows], yr)
    tiny = (~accept) & ~(hs >= _UNDERFLOW * torch.clamp(ws.t.abs(), min=1.0))  # a NaN step size fails too
    ws.h = new_h
    return accept, tiny, k_last


_FAIL_TINY, _FAIL_NONFINITE, _FAIL_CAP = 1, 2, 3  # why a system was parked (0: it landed on its stop)


def _deferred(sync: str, dev: torch.device, events: Sequence[Event]) -> bool:
    """Whether the loop runs ahead with parked systems (sync="outputs") or reads every iteration ("step")."""
    validate_choice("sync", sync, SYNC_MODES)
    if sync == "outputs" and events:
        raise ValueError('sync="outputs" cannot run with events (an event is read every iteration); use sync="step"')
    return sync == "outputs" or (sync == "auto" and dev.type != "cpu" and not events)


def _advance_parked(field: _Field, ws: _Working, stops: torch.Tensor, solver: Solver, on_sphere: bool) -> None:
    """One step attempt of every active system with no host read (sync="outputs"). Parked systems are
    stepped with the others (one batched call) but their attempt is discarded: state, time, step size, FSAL
    stage and counts stay. A system that lands on its stop, fails (non-finite state, step underflow) or
    reaches the step cap is parked, with the reason, until :func:`_settle`."""
    free = ~ws.parked
    ws.idle += ws.parked.sum()
    h_before = ws.h
    # autonomous=True: no FSAL refresh (and no read) here; _settle refreshes the parked systems
    land, hs, new_t, y, accept, tiny, k_last = _attempt(field, ws, stops, solver, True, on_sphere)
    ws.h = torch.where(free, ws.h, h_before)  # a parked system's discarded attempt proposes nothing
    acc = free if accept is None else accept & free
    bad = acc & ~torch.isfinite(y).flatten(1).all(1)
    acc = acc & ~bad
    why = torch.where(bad, _FAIL_NONFINITE, 0)
    if tiny is not None:
        tiny = tiny & free
        why = torch.where(tiny, _FAIL_TINY, why)
        bad = bad | tiny
    if ws.k1 is not None:
        ws.k1 = torch.where(acc.view(-1, 1, 1), k_last, ws.k1)
    _commit(ws, y, new_t, acc, all_accepted=False, attempted=free)
    finished = acc & land & (ws.next_stop + 1 >= stops.numel())  # leaves at the settle: not over the cap
    capped = free & ~bad & ~finished & (ws.steps + ws.rejected >= solver.max_steps)
    why = torch.where(capped, _FAIL_CAP, why)
    failed = bad | capped
    ws.why = torch.where(failed, why, ws.why)
    ws.fail_h = torch.where(failed, hs, ws.fail_h)
    ws.parked |= (acc & land) | failed


def _settle(field: _Field, ws: _Working, totals: _Totals, stops: torch.Tensor, solver: Solver, record: _Recorder,
            autonomous: bool) -> tuple[int, int, float]:
    """The host's read of sync="outputs" (one small vector; ``nonzero`` gathers only when some systems, not
    all, are parked, when systems leave, and for the FSAL refresh of time-dependent weights): raise the first
    failure, record the outputs of the systems parked on their stop, refresh their FSAL stage, drop those that
    reached their last stop and unpark the others.

    Returns (the parked rows' idle attempts since the last settle, the iterations to run before the next
    settle by :func:`_ahead`, the slowest system's time)."""
    n_stops = stops.numel()
    nxt = ws.next_stop + ws.parked  # each system's stop after this settle
    leaving = nxt >= n_stops
    read = torch.stack([v.to(torch.float64) for v in (ws.idle, ws.parked.sum(), (ws.why > 0).any(), leaving.any(),
                                                      _ahead(ws, stops, nxt, ~leaving), ws.t.min())]).tolist()
    idle, n_parked, ahead, t_min = int(read[0]), int(read[1]), int(read[4]), read[5]
    failed, n_leaving = read[2] > 0, read[3] > 0
    ws.idle.zero_()
    if failed:
        row = int(torch.nonzero(ws.why)[0])
        code = int(ws.why[row])
        if code == _FAIL_CAP:
            raise IntegrationError(f"max_steps = {solver.max_steps} reached before t = {float(stops[-1]):g}; raise "
                                   "max_steps or the step size")
        mask = torch.zeros_like(ws.parked)
        mask[row] = True
        (_underflow if code == _FAIL_TINY else _nonfinite)(ws, mask, ws.fail_h)
    if n_parked == 0:
        return idle, ahead, t_min
    if n_parked == ws.size:
        record(ws.next_stop, ws.systems, ws.x if record.hook is None else ws.x.clone())
    else:
        rows = torch.nonzero(ws.parked).reshape(-1)
        record(ws.next_stop[rows], ws.systems[rows], ws.x[rows])
    ws.next_stop = nxt
    if ws.k1 is not None and not autonomous:  # the weights may jump at a stop: f at the new time (as _control)
        refresh = torch.nonzero(ws.parked & ~leaving).reshape(-1)
        if refresh.numel():
            ws.k1[refresh] = field.on(ws.systems[refresh])(ws.t[refresh], ws.x[refresh])
    ws.parked.zero_()
    if n_leaving:
        _drop(ws, totals, leaving)
    return idle, ahead, t_min


def _ahead(ws: _Working, stops: torch.Tensor, nxt: torch.Tensor, going: torch.Tensor) -> torch.Tensor:
    """The run-ahead of sync="outputs", on the device: with m_b the iterations system b (of the rows
    ``going`` on after the settle) needs to reach its next stop ``nxt`` at its present step, the largest m among
    the m_b at which the systems landed before it would idle for at most ``_IDLE_SHARE`` of the attempts,
    Σ_{m_b ≤ m} (m − m_b) ≤ share · m · B; at least 1, at most ``_MAX_AHEAD``. A 0-dim float64 tensor."""
    target = stops[nxt.clamp(max=stops.numel() - 1)]
    m = torch.ceil((target - ws.t) / ws.h).clamp(min=1, max=_MAX_AHEAD)
    m = torch.where(going, m, torch.full_like(m, float("inf")))
    m, _ = torch.sort(m)
    count = torch.arange(1, m.numel() + 1, dtype=m.dtype, device=m.device)
    idle = m * count - torch.cumsum(torch.nan_to_num(m, posinf=0.0), 0)
    ok = torch.isfinite(m) & (idle <= _IDLE_SHARE * m * going.sum())
    if m.numel() == 0:
        return torch.ones((), dtype=m.dtype, device=m.device)
    return torch.where(ok, m, torch.ones_like(m)).amax()


def _underflow(ws: _Working, tiny: torch.Tensor, hs: torch.Tensor) -> None:
    row = int(torch.nonzero(tiny)[0])
    if not math.isfinite(float(hs[row])):
        raise IntegrationError(
            f"the step size is not finite ({float(hs[row])}) in system {int(ws.systems[row])} at t = "
            f"{float(ws.t[row]):.6g}: the field is not finite there (a NaN or infinite weight or state?)")
    raise IntegrationError(
        f"step size underflow in system {int(ws.systems[row])} at t = {float(ws.t[row]):.6g}: the problem is too "
        "stiff for this tolerance (try a larger rtol/atol or time_scale='exp_beta' for USA)"
    )


def _maybe_nonfinite(y: torch.Tensor) -> torch.Tensor:
    """(B,) True where a system's state y (B, ...) may hold an infinite or NaN entry: where the sum of its entries
    is not finite. A superset of the exact test (it also flags sums that overflow, entries ≳ 10³⁰⁸/(n·d)),
    at one reading pass and no (B, n, d) temporary, against four passes and two temporaries for
    ``~isfinite(y).all()``; the rare flagged rows are then tested exactly."""
    return ~torch.isfinite(y.flatten(1).sum(1))


def _nonfinite(ws: _Working, bad: torch.Tensor, hs: torch.Tensor) -> None:
    """A non-finite state is an error unless its step is rejected anyway (the controller then shrinks it).
    bad: the exact test; nothing happens when no row holds (a flagged sum of finite entries that overflowed)."""
    rows = torch.nonzero(bad)
    if rows.numel() == 0:
        return
    row = int(rows[0])
    raise IntegrationError(
        f"non-finite state in system {int(ws.systems[row])} at t = {float(ws.t[row]):.6g} (step "
        f"{float(hs[row]):.3g}): the step is too large for this beta; use an adaptive solver or a smaller dt"
    )


def _commit(ws: _Working, y: torch.Tensor, new_t: torch.Tensor, acc: torch.Tensor, all_accepted: bool,
            attempted: torch.Tensor | None = None) -> None:
    """Move the accepted systems to (new_t, y) and count steps and rejections (of the ``attempted`` rows, default
    all). When every step is accepted the new state's buffer becomes the state and the old state's buffer the
    next step's output."""
    if all_accepted:
        old = ws.x
        ws.x, ws.t = y, new_t
        if ws.work.holds(y):
            ws.work.put("y", old)
        ws.steps += 1
        return
    torch.where(acc.view(-1, 1, 1), y, ws.x, out=ws.x)
    ws.t = torch.where(acc, new_t, ws.t)
    ws.steps += acc
    ws.rejected += ~acc if attempted is None else attempted & ~acc


def _fire_events(events: Sequence[Event], ws: _Working, totals: _Totals, new_t: torch.Tensor, acc: torch.Tensor,
                 all_accepted: bool, field: _Field, on_sphere: bool) -> torch.Tensor | None:
    """Which working-set rows meet an event at their accepted new state ((B_a,) bool, or None: none did);
    their event time is the end of that step.

    Events with ``needs_velocity`` also receive the velocity at the new state (one evaluation for all of
    them), tangent when the state lives on the sphere; events with ``needs_systems`` receive the systems'
    global indices (see :mod:`.events`)."""
    if all_accepted:
        rows = None
        xa, tn, systems = ws.x, ws.t, ws.systems
    else:
        rows = torch.nonzero(acc).reshape(-1)
        if rows.numel() == 0:
            return None
        xa, tn, systems = ws.x[rows], new_t[rows], ws.systems[rows]
    v = None
    if any(getattr(e, "needs_velocity", False) for e in events):
        v = field.on(systems)(tn, xa)
        if on_sphere:
            v = tangent_project(xa, v)
    hit = torch.zeros(xa.shape[0], dtype=torch.bool, device=xa.device)
    for event in events:
        if getattr(event, "needs_velocity", False):
            out = event(tn, xa, v)
        elif getattr(event, "needs_systems", False):
            out = event(tn, xa, systems=systems)
        else:
            out = event(tn, xa)
        if not isinstance(out, torch.Tensor) or out.shape != hit.shape:
            raise ValueError(f"events: {getattr(event, '__name__', type(event).__name__)} must return a (B,) bool "
                             f"tensor, one flag per system (B = {hit.shape[0]} here), got "
                             f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
        hit |= out.to(torch.bool)
    if not bool(hit.any()):  # the events' host read
        return None
    if rows is None:
        fired = hit
    else:
        fired = torch.zeros_like(acc)
        fired[rows] = hit
    where = torch.nonzero(fired).reshape(-1)
    totals.event_time[ws.systems[where]] = new_t[where]
    return fired


def _drop(ws: _Working, totals: _Totals, leaving: torch.Tensor) -> None:
    """Systems that reached their last stop or met an event leave the working set (their counts are kept)."""
    gone = torch.nonzero(leaving).reshape(-1)
    if gone.numel() == 0:
        return
    totals.leave(ws, gone)
    ws.keep(torch.nonzero(~leaving).reshape(-1))
