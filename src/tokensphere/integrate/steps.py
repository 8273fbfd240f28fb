"""One step of each method, batched with a per-system step size.

Shapes: positions ``x`` (B, n, d), times ``t`` (B,), steps ``h`` (B,). ``f(t, x)`` returns the velocity (B, n, d).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .tableaux import CrouchGrossman, Tableau

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = ["erk_step", "cg_step", "rotate", "retract"]


def retract(x: torch.Tensor) -> torch.Tensor:
    """Map back to the sphere: x / |x| row by row (the normalisation after each layer in the discrete-time view
    of §2 of the paper)."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)


def erk_step(
    f: Field,
    t: torch.Tensor,
    x: torch.Tensor,
    h: torch.Tensor,
    tab: Tableau,
    k1: torch.Tensor | None = None,
    t_end: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """One explicit Runge–Kutta step. Returns (y₁ unretracted, error estimate or None, last stage).

    k1: f(t, x) when already known (FSAL). t_end: the exact end time of the step (the driver's landing time);
    stages with c = 1 are evaluated at the float just below it, so piecewise-constant weights are those of the
    step's own interval [t, t_end) — steps land exactly on their jumps.
    """
    hb = h.view(-1, 1, 1).to(x.dtype)
    end = t + h if t_end is None else t_end
    just_inside = torch.nextafter(end, t)
    ks = [f(t, x) if k1 is None else k1]
    for i in range(1, tab.stages):
        incr = _combine(tab.a[i], ks)
        ti = just_inside if tab.c[i] == 1.0 else t + tab.c[i] * h
        ks.append(f(ti, x if incr is None else x + hb * incr))
    y = x + hb * _combine(tab.b, ks)
    err = None if tab.e is None else hb * _combine(tab.e, ks)
    return y, err, ks[-1]


def _combine(coeffs: tuple[float, ...], ks: list[torch.Tensor]) -> torch.Tensor | None:
    out = None
    for c, k in zip(coeffs, ks):
        if c == 0.0:
            continue
        out = c * k if out is None else out + c * k
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
