"""The batched time loop shared by every method.

Each system b of the batch has its own time t_b, step h_b and next output time; steps are shortened so that
every requested output time is hit exactly (no "first step past the checkpoint"). Adaptive methods accept or
reject per system; systems that finish or meet a terminal event drop out of the computation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..validate import as_tensor
from .solver import Solver
from .steps import cg_step, erk_step, retract
from .tableaux import CROUCH_GROSSMAN, TABLEAUX

__all__ = ["integrate", "IntegrationResult", "IntegrationError"]

# f(t, x, idx): velocity at times t (B_a,) for positions x (B_a, n, d) of the systems idx (None = all).
BatchField = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
SaveHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]


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


def integrate(
    f: BatchField,
    x0: torch.Tensor,
    t_save: torch.Tensor,
    solver: Solver,
    *,
    events: Sequence[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = (),
    store: bool = True,
    on_save: SaveHook | None = None,
    progress: Callable[[float], None] | None = None,
    breakpoints: torch.Tensor | None = None,
    autonomous: bool = True,
    on_sphere: bool = True,
) -> IntegrationResult:
    """Integrate from t = 0 and record the state at every time in ``t_save`` (sorted, ≥ 0).

    x0: (B, n, d) on the sphere. t_save: (T,) float64. on_save(k, systems, x): called with the output index
    (S,), the system indices (S,) and the positions (S, n, d) whenever systems reach an output time.
    breakpoints: times inside (0, t_save[-1]) where steps must also land without saving (discontinuities of
    time-dependent weights, e.g. layer boundaries). autonomous: False when the field depends on t; then the
    first-same-as-last stage is not reused across a stop (the weights may jump there). on_sphere: renormalise
    after every step (False for pure self-attention on R^d, SPEC (9.1)).
    Returns an :class:`IntegrationResult`; raises :class:`IntegrationError` when the integration fails.
    """
    B, n, d = x0.shape
    dev, dtype = x0.device, x0.dtype
    t_out = t_save.to(device=dev, dtype=torch.float64)
    T_out = t_out.numel()
    t_end = float(t_out[-1])
    # the stop grid: output times plus breakpoints; out_index maps a stop to its output slot (−1: none)
    stops, out_index = t_out, torch.arange(T_out, device=dev)
    if breakpoints is not None and breakpoints.numel():
        bp = breakpoints.to(device=dev, dtype=torch.float64).reshape(-1)
        bp = bp[(bp > 0) & (bp < t_end)]
        stops = torch.cat([t_out, bp])
        out_index = torch.cat([out_index, torch.full((bp.numel(),), -1, device=dev)])
        order = torch.argsort(stops, stable=True)
        stops, out_index = stops[order], out_index[order]
    t_save = stops
    T = t_save.numel()
    positions = torch.full((T_out, B, n, d), float("nan"), dtype=dtype, device=dev) if store else None

    evaluations = 0

    def counted(idx):
        def fa(tt, xx):
            nonlocal evaluations
            evaluations += 1
            return f(tt, xx, idx)

        return fa

    def save(k: torch.Tensor, systems: torch.Tensor, x: torch.Tensor) -> None:
        k = out_index[k]
        keep = k >= 0
        if not bool(keep.all()):
            k, systems, x = k[keep], systems[keep], x[keep]
            if k.numel() == 0:
                return
        if positions is not None:
            positions[k, systems] = x
        if on_save is not None:
            on_save(k, systems, x)

    t = torch.zeros(B, dtype=torch.float64, device=dev)
    nxt = torch.zeros(B, dtype=torch.long, device=dev)
    all_sys = torch.arange(B, device=dev)
    at_zero = t_save <= 0
    n_zero = int(at_zero.sum())
    for k in range(n_zero):
        save(torch.full((B,), k, device=dev), all_sys, x0)
    nxt += n_zero
    active = nxt < T
    stopped = torch.zeros(B, dtype=torch.bool, device=dev)
    event_time = torch.full((B,), float("nan"), dtype=torch.float64, device=dev)
    steps = torch.zeros(B, dtype=torch.long, device=dev)
    rejected = torch.zeros(B, dtype=torch.long, device=dev)
    x = x0.clone()

    kind = solver.kind
    tab = TABLEAUX.get(solver.method)
    cg = CROUCH_GROSSMAN.get(solver.method)
    if solver.dt is not None:
        h = as_tensor("dt", solver.dt).to(device=dev, dtype=torch.float64).reshape(-1).expand(B).clone()
        if h.numel() != B:
            raise ValueError(f"dt must be a number or have shape (B,) = ({B},), got {tuple(solver.dt.shape)}")
    else:
        h = None
    k_cache: torch.Tensor | None = None
    if kind == "adaptive" and bool(active.any()):
        h0, k_cache = _initial_step(counted(None), t, x, tab.order, solver.rtol, solver.atol)
        h = h0 if h is None else h
        if solver.dt_max is not None:
            h = h.clamp(max=solver.dt_max)

    iteration = 0
    while bool(active.any()):
        iteration += 1
        everyone = bool(active.all())
        idx = None if everyone else torch.nonzero(active).reshape(-1)
        sel = all_sys if everyone else idx
        xa = x if everyone else x[idx]
        ta = t if everyone else t[idx]
        ha = h if everyone else h[idx]
        target = t_save[nxt[sel]]
        remaining = target - ta
        # land when a full step would reach the stop or leave only a round-off sliver (< 1e-9 of a step) behind
        land = ha * (1 + 1e-9) >= remaining
        hs = torch.where(land, remaining, ha)
        new_t = torch.where(land, target, ta + hs)
        fa = counted(idx)

        if kind == "lie":
            y = cg_step(fa, ta, xa, hs, cg)
            accept = None
        else:
            if not solver.projected_field:
                y = xa + hs.view(-1, 1, 1).to(dtype) * fa(ta, xa)  # authors' scheme: raw field, then normalise
                accept = None
            else:
                kc = None if k_cache is None else (k_cache if everyone else k_cache[idx])
                y, err, k_last = erk_step(fa, ta, xa, hs, tab, k1=kc, t_end=new_t)
                accept = None
                if kind == "adaptive":
                    scale = solver.atol + solver.rtol * torch.maximum(xa.abs(), y.abs())
                    e = (err / scale).pow(2).flatten(1).mean(1).sqrt().to(torch.float64)
                    e = torch.nan_to_num(e, nan=float("inf"))
                    accept = e <= 1.0
                    q = tab.error_order + 1
                    factor = torch.clamp(0.9 * e.clamp(min=1e-10) ** (-1.0 / q), 0.2, 10.0)
                    factor = torch.where(accept, factor, factor.clamp(max=0.9))
                    new_h = hs * factor
                    new_h = torch.where(accept & land, torch.maximum(new_h, ha), new_h)
                    if solver.dt_max is not None:
                        new_h = new_h.clamp(max=solver.dt_max)
                    if everyone:
                        h = new_h
                    else:
                        h[idx] = new_h
                    if tab.fsal:
                        reuse = accept if autonomous else accept & ~land
                        if not autonomous and bool((accept & land).any()):
                            k_last = torch.where(
                                (accept & land).view(-1, 1, 1), fa(new_t, retract(y) if on_sphere else y), k_last
                            )
                            reuse = accept
                        kn = torch.where(reuse.view(-1, 1, 1), k_last, kc if kc is not None else k_last)
                        if everyone:
                            k_cache = kn
                        else:
                            k_cache[idx] = kn
                    tiny = (~accept) & (hs < 1e-13 * torch.clamp(ta.abs(), min=1.0))
                    if bool(tiny.any()):
                        bad = int(sel[tiny][0])
                        raise IntegrationError(
                            f"step size underflow in system {bad} at t = {float(t[bad]):.6g}: the problem is too "
                            "stiff for this tolerance (try a larger rtol/atol or time_scale='exp_beta' for USA)"
                        )

        if on_sphere:
            y = retract(y)
        if not bool(torch.isfinite(y).all()):
            bad_local = torch.nonzero(~torch.isfinite(y).flatten(1).all(1)).reshape(-1)
            if accept is None or bool(accept[bad_local].any()):
                b = int(sel[bad_local[0]])
                raise IntegrationError(
                    f"non-finite state in system {b} at t = {float(t[b]):.6g} (step {float(hs[bad_local[0]]):.3g}): "
                    "the step is too large for this beta; use an adaptive solver or a smaller dt"
                )
        acc = torch.ones_like(land) if accept is None else accept
        if everyone and accept is None:
            x, t = y, new_t
            steps += 1
        else:
            sys_acc = sel[acc]
            x[sys_acc] = y[acc]
            t[sys_acc] = new_t[acc]
            steps[sys_acc] += 1
            rejected[sel[~acc]] += 1

        hit = acc & land
        if bool(hit.any()):
            sys_hit = sel[hit]
            save(nxt[sys_hit], sys_hit, y[hit])
            nxt[sys_hit] += 1
        if events:
            ev = torch.zeros_like(acc)
            ya, tn = y[acc], new_t[acc]
            for event in events:
                ev[acc] |= event(tn, ya).to(torch.bool)
            if bool(ev.any()):
                sys_ev = sel[ev]
                stopped[sys_ev] = True
                event_time[sys_ev] = new_t[ev]
        active = (nxt < T) & ~stopped
        if bool(((steps + rejected) >= solver.max_steps).any() & active.any()):
            raise IntegrationError(
                f"max_steps = {solver.max_steps} reached before t = {t_end:g}; raise max_steps or the step size"
            )
        if progress is not None and (iteration % 16 == 0 or not bool(active.any())):
            tm = t[active] if bool(active.any()) else t
            progress(1.0 if not bool(active.any()) else float(tm.min()) / t_end if t_end > 0 else 1.0)

    return IntegrationResult(positions, steps, rejected, evaluations, event_time)


def _initial_step(fa, t, x, order, rtol, atol):
    """Hairer–Nørsett–Wanner starting step, per system. Returns (h (B,), f(t, x))."""

    def rms(z):
        return z.pow(2).flatten(1).mean(1).sqrt().to(torch.float64)

    f0 = fa(t, x)
    scale = atol + rtol * x.abs()
    d0, d1 = rms(x / scale), rms(f0 / scale)
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1.clamp(min=1e-300))
    x1 = x + h0.view(-1, 1, 1).to(x.dtype) * f0
    f1 = fa(t + h0, x1)
    d2 = rms((f1 - f0) / scale) / h0
    dm = torch.maximum(d1, d2)
    h1 = torch.where(dm <= 1e-15, torch.clamp(h0 * 1e-3, min=1e-6), (0.01 / dm.clamp(min=1e-300)) ** (1.0 / (order + 1)))
    return torch.minimum(100 * h0, h1), f0
