"""One step of each method, batched with a per-system step size.

Shapes: positions ``x`` (B, n, d), times ``t`` (B,), steps ``h`` (B,). ``f(t, x)`` returns the velocity (B, n, d).

:func:`erk_step` can work in a :class:`StageBuffers` workspace: the stage inputs, the stage combinations, the
new state and the error estimate are then written into buffers reused from step to step (no (B, n, d)
allocation besides the field's own results), with the same arithmetic in the same order — the results are
bitwise those of the allocating path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..norms import sphere
from ..runtime import run_lanes_by_rows
from .tableaux import CrouchGrossman, Tableau

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = ["erk_step", "cg_step", "rotate", "retract", "StageBuffers"]


def retract(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Map back to the sphere: x / |x| row by row (the normalisation after each layer in the discrete-time view
    of §2 of the paper). x: (..., d). out: where to write the result (may be x itself). Returns (..., d)."""
    if out is None:
        return sphere(x)
    return torch.div(x, torch.linalg.vector_norm(x, dim=-1, keepdim=True), out=out)


class StageBuffers:
    """Reusable (B, n, d) buffers for :func:`erk_step` and the step controller, keyed by name.

    ``get(name, like)`` returns a buffer of the shape, dtype and device of ``like``: the first B rows of a
    buffer kept at the largest batch seen (a contiguous view, so a batch that shrinks reuses the memory).
    ``put(name, tensor)`` hands a tensor over to the workspace (the driver swaps the old state in as the next
    step's output buffer). Buffers are scratch: their contents do not survive the next step.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, like: torch.Tensor) -> torch.Tensor:
        buf = self._buffers.get(name)
        B, rest = like.shape[0], like.shape[1:]
        if (buf is None or buf.shape[1:] != rest or buf.shape[0] < B or buf.dtype != like.dtype
                or buf.device != like.device):
            buf = self._buffers[name] = torch.empty_like(like, memory_format=torch.contiguous_format)
        return buf[:B]

    def put(self, name: str, tensor: torch.Tensor) -> None:
        self._buffers[name] = tensor

    def holds(self, tensor: torch.Tensor) -> bool:
        """True when ``tensor`` shares memory with one of the buffers (a field that returned its input)."""
        ptr = tensor.untyped_storage().data_ptr()
        return any(b.untyped_storage().data_ptr() == ptr for b in self._buffers.values())


def erk_step(
    f: Field,
    t: torch.Tensor,
    x: torch.Tensor,
    h: torch.Tensor,
    tab: Tableau,
    k1: torch.Tensor | None = None,
    t_end: torch.Tensor | None = None,
    work: StageBuffers | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """One explicit Runge–Kutta step. Returns (y₁ unretracted, error estimate or None, last stage).

    k1: f(t, x) when already known (FSAL). t_end: the exact end time of the step (the driver's landing time);
    stages with c = 1 are evaluated at the float just below it, so piecewise-constant weights are those of the
    step's own interval [t, t_end) — steps land exactly on their jumps. work: a :class:`StageBuffers` to
    compute in (then y₁ and the error estimate are its buffers "y" and "err", valid until the next step).
    """
    hb = h.view(-1, 1, 1).to(x.dtype)
    end = t + h if t_end is None else t_end
    just_inside = torch.nextafter(end, t)
    # pairs whose last stage is taken at y₁ itself (a_s = b, b_s = 0: dopri5, bosh3) compute y₁ once
    last_is_y = tab.stages > 1 and tab.a[-1] == tab.b[:-1] and tab.b[-1] == 0.0
    ks = [f(t, x) if k1 is None else k1]
    for i in range(1, tab.stages):
        ti = just_inside if tab.c[i] == 1.0 else t + tab.c[i] * h
        name = "y" if last_is_y and i == tab.stages - 1 else "stage"
        xi = _advanced_by_rows(x, hb, tab.a[i], ks, work, name)
        k = f(ti, xi)
        if work is not None and work.holds(k):
            k = k.clone()  # the field returned (a view of) its input buffer, which the next stage overwrites
        ks.append(k)
    y = xi if last_is_y else _advanced_by_rows(x, hb, tab.b, ks, work, "y")
    err = None
    if tab.e is not None:
        if work is None:
            err = hb * _combine(tab.e, ks)
        else:
            err = work.get("err", x)
            run_lanes_by_rows(x, lambda r: _combine(
                tab.e, [k[r] for k in ks], _Into(err[r]), "err").mul_(hb[r]))
    return y, err, ks[-1]


class _Into:
    """A workspace that hands out one given buffer (the rows of a :class:`StageBuffers` buffer one lane fills)."""

    def __init__(self, buffer: torch.Tensor) -> None:
        self.buffer = buffer

    def get(self, name: str, like: torch.Tensor) -> torch.Tensor:
        return self.buffer


def _advanced_by_rows(x: torch.Tensor, hb: torch.Tensor, coeffs: tuple[float, ...], ks: list[torch.Tensor],
                      work: StageBuffers | None, name: str) -> torch.Tensor:
    """:func:`_advanced`, in the buffer ``name`` of work, with the batch's rows spread over the lanes when the
    arrays are large (:func:`tokensphere.runtime.run_lanes_by_rows`; each row by one thread, the same bits)."""
    if work is None or all(c == 0.0 for c in coeffs):
        return _advanced(x, hb, coeffs, ks, work, name)
    out = work.get(name, x)
    run_lanes_by_rows(x, lambda r: _advanced(x[r], hb[r], coeffs, [k[r] for k in ks],
                                                                 _Into(out[r]), name))
    return out


def _advanced(x: torch.Tensor, hb: torch.Tensor, coeffs: tuple[float, ...], ks: list[torch.Tensor],
              work: StageBuffers | None, name: str) -> torch.Tensor:
    """x + h·Σ_j coeffs_j k_j (x itself when every coefficient is zero), in the buffer ``name`` of work."""
    incr = _combine(coeffs, ks, work, name)
    if incr is None:
        return x
    # one pass (x + h·incr by addcmul: the same kernel, hence the same roundings, with or without the buffer)
    return torch.addcmul(x, incr, hb) if work is None else torch.addcmul(x, incr, hb, out=incr)


def _combine(coeffs: tuple[float, ...], ks: list[torch.Tensor], work: StageBuffers | None = None,
             name: str = "stage") -> torch.Tensor | None:
    """Σ_j coeffs_j k_j, zero coefficients skipped, summed left to right; None when all are zero. Each term
    after the first is one pass, out + c·k (``add`` with ``alpha``: the same kernel in place or not, so the
    buffered and the unbuffered sums agree bit for bit), with no temporary for c·k."""
    out = None
    for c, k in zip(coeffs, ks):
        if c == 0.0:
            continue
        if out is None:
            out = c * k if work is None else torch.mul(k, c, out=work.get(name, k))
        else:
            out = torch.add(out, k, alpha=c) if work is None else out.add_(k, alpha=c)
    return out


def rotate(y: torch.Tensor, p: torch.Tensor, v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """exp(s ξ) y for the rank-2 rotation generator ξ = v pᵀ − p vᵀ (p unit, v ⊥ p), row by row.

    exp(sξ) y = y + (sin sω/ω)(v⟨p,y⟩ − p⟨v,y⟩) − ((1 − cos sω)/ω²)(ω² p⟨p,y⟩ + v⟨v,y⟩),  ω = |v|,
    written with sinc so that ω → 0 is exact. y, p, v: (B, n, d); s: (B,). For y = p it is the geodesic
    cos(sω) p + sin(sω) v/ω. Returns (B, n, d).
    """
    s = s.view(-1, 1, 1).to(y.dtype)
    w = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    sw = s * w
    a = s * torch.sinc(sw / torch.pi)  # sin(sω)/ω
    b = 0.5 * s * s * torch.sinc(sw / (2 * torch.pi)) ** 2  # (1 − cos sω)/ω²
    py = (p * y).sum(-1, keepdim=True)
    vy = (v * y).sum(-1, keepdim=True)
    return y + a * (v * py - p * vy) - b * (w * w * p * py + v * vy)


def cg_step(f: Field, t: torch.Tensor, x: torch.Tensor, h: torch.Tensor, m: CrouchGrossman) -> torch.Tensor:
    """One Crouch–Grossman step: compositions of exact rotations, so |x_i| = 1 is kept by construction."""
    points: list[torch.Tensor] = []
    vels: list[torch.Tensor] = []
    for i in range(len(m.b)):
        y = x
        for j, a in enumerate(m.a[i]):
            if a != 0.0:
                y = rotate(y, points[j], vels[j], a * h)
        points.append(y)
        vels.append(f(t + m.c[i] * h, y))
    y = x
    for j, b in enumerate(m.b):
        if b != 0.0:
            y = rotate(y, points[j], vels[j], b * h)
    return y
