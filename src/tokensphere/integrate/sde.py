"""Noisy dynamics on the sphere (Problem 7 of the paper): fixed-step stochastic integrators.

Every token gets an independent Brownian motion W_i in R^d, projected on the tangent space:

    dx_i = F_i(X) dt + σ P⊥_{x_i} ∘ dW_i                                          (Stratonovich)
    dx_i = F_i(X) dt + σ P⊥_{x_i} dW_i − ((d − 1) σ² / 2) x_i dt                   (the same process, Itô)

F_i = P⊥_{x_i}(Σ_j A_ij V x_j) is the drift (:func:`tokensphere.field.velocity`). The Itô correction is
½ Σ_k (Dg_k) g_k for the diffusion fields g_k(x) = σ P⊥_x e_k = σ(e_k − x_k x): (Dg_k)[u] = −σ(u_k x + x_k u),
so Σ_k (Dg_k)[g_k] = −σ²(Σ_k (1 − x_k²) x + x − |x|² x) = −σ²(d − 1) x on |x| = 1. The noise alone has
generator (σ²/2) Δ_{S^{d−1}}; the coordinates are its eigenfunctions (Δ x = −(d − 1) x), hence
E⟨x(t), x(0)⟩ = e^{−(d−1)σ²t/2} when F = 0.

Methods (``SDE_METHODS``), one step from x with increment ΔW ~ N(0, h I) per token:

| method | step | stays on the sphere by | weak / strong order |
|---|---|---|---|
| euler-maruyama | x + h F(x) + σ P⊥_x ΔW − ((d−1)σ²h/2) x (Itô form), then retract | retraction | 1 / ½ |
| heun | Stratonovich Heun: predictor x̃ = retract(x + hF + σP⊥_xΔW), corrector with averaged F, P⊥ | retraction | 1 / ½ |
| geodesic | exp_x(h F(x) + σ P⊥_x ΔW): the great circle through x with that initial velocity | construction | 1 / ½ |

The geodesic and Heun steps need no explicit correction: the curvature of the great circle (resp. the
predictor's projector) produces −((d−1)σ²h/2) x on average. Heun is second order in the drift (σ = 0).
Measured orders: docs/variants.md.

Shapes: positions (B, n, d); ``f(t, x, idx)`` as for :func:`tokensphere.integrate.integrate`. Every system
draws its increments, (n, d) per step in the state's dtype and device, from its own ``torch.Generator``, seeded
by (``seed``, the system's stream number) through NumPy's SeedSequence; system b has stream number b unless the
solver's ``streams`` number the systems otherwise (a sweep numbers them over its whole grid). So a system's path
depends on its seed and stream number only, not on the batch it runs in: the same seed, stream, dtype and
device give the same path, alone or among any other systems.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..field import tangent_project
from ..validate import validate_choice, validate_int, validate_real
from .driver import IntegrationError, IntegrationResult, stop_grid
from .saveat import SaveAt
from .solver import Solver
from .split import SplitSolver
from .steps import retract, rotate

__all__ = [
    "SDE_METHODS", "DEFAULT_SDE_METHOD", "SDESolver", "as_sde_solver", "continuation_seed", "continued_sde_solver",
    "integrate_sde", "record_all", "sde_step", "solver_from_spec",
]

SDE_METHODS = ("euler-maruyama", "heun", "geodesic")
DEFAULT_SDE_METHOD = "geodesic"
_PROGRESS_EVERY = 64  # steps between progress reports

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
BatchField = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


@dataclass(frozen=True)
class SDESolver:
    """How to integrate a noisy model: a method of ``SDE_METHODS``, a fixed step ``dt`` > 0 and the ``seed``
    of the Brownian increments (an integer ≥ 0). streams: None (system b of the batch draws from stream b) or
    one stream number ≥ 0 per system (a tuple of B integers), e.g. the systems' indices in a larger grid, so that
    a system gets the same increments whichever batch it runs in. Systems given one stream number draw the same
    increments: common random numbers, e.g. one start under several β.

    Steps are shortened so that every output time (and every jump of time-dependent weights) is hit exactly:
    each interval between stops is cut into ⌈length/dt⌉ equal steps. Equal fields compare equal. Raises
    ValueError naming the field.
    """

    method: str = DEFAULT_SDE_METHOD
    dt: float = 0.01
    seed: int = 0
    streams: tuple[int, ...] | None = None

    kind = "stochastic"
    projected_field = True

    def __post_init__(self) -> None:
        if not isinstance(self.method, str):
            raise ValueError(f"solver must be one of {', '.join(SDE_METHODS)} for noise > 0, got {self.method!r}")
        validate_choice("solver", self.method, SDE_METHODS)
        object.__setattr__(self, "dt", validate_real("dt", self.dt, minimum=0.0, strict_minimum=True))
        object.__setattr__(self, "seed", validate_int("seed", self.seed, minimum=0, maximum=2**64 - 1))
        if self.streams is not None:
            if isinstance(self.streams, (str, bytes)) or not hasattr(self.streams, "__len__"):
                raise ValueError(f"streams must be None or a sequence of integers >= 0, got {self.streams!r}")
            streams = tuple(validate_int("streams", k, minimum=0, maximum=2**63 - 1) for k in self.streams)
            object.__setattr__(self, "streams", streams)

    @property
    def weak_order(self) -> int:
        """Nominal weak order (measured in tests/test_noise.py)."""
        return 1

    @property
    def strong_order(self) -> float:
        """Nominal strong order: ½ (the projected noise is not commutative; no Lévy areas are sampled)."""
        return 0.5

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable: kind ("stochastic"), method, dt, seed, streams (None or a list). :meth:`from_spec`
        inverts it."""
        return {"kind": self.kind, "method": self.method, "dt": self.dt, "seed": self.seed,
                "streams": None if self.streams is None else list(self.streams)}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> SDESolver:
        """The solver of a :meth:`describe` dict (one stored without ``streams``: None)."""
        streams = spec.get("streams")
        return cls(method=spec["method"], dt=spec["dt"], seed=spec["seed"],
                   streams=None if streams is None else tuple(streams))

    def generators(self, batch: int, device: torch.device | str = "cpu") -> list[torch.Generator]:
        """One generator per system of a batch of ``batch``: system b's seeded by (seed, its stream number)."""
        streams = range(batch) if self.streams is None else self.streams
        if len(streams) != batch:
            raise ValueError(f"the solver's streams number {len(streams)} systems but the batch has {batch}")
        return [torch.Generator(device=device).manual_seed(_stream_seed(self.seed, k)) for k in streams]


def _stream_seed(seed: int, stream: int) -> int:
    """The torch seed of stream ``stream`` of ``seed`` (NumPy SeedSequence: independent streams)."""
    return int(np.random.SeedSequence([int(seed), int(stream)]).generate_state(2, np.uint64)[0] & (2**63 - 1))


def continuation_seed(seed: int, t0: float) -> int:
    """The seed of the increments of a run continued at time t0 from a run seeded ``seed``: a fixed function of
    both (SHA-256), so that a continuation draws new increments, and draws the same ones every time."""
    digest = hashlib.sha256(f"{int(seed)}:{float(t0).hex()}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def sde_step(method: str, f: Field, t: torch.Tensor, x: torch.Tensor, h: torch.Tensor, dw: torch.Tensor,
             sigma: float) -> torch.Tensor:
    """One step of ``method`` from x (B, n, d) at times t (B,) with steps h (B,) and Brownian increments
    dw (B, n, d) (each ~ N(0, h I) in the SDE; any values in a convergence study that sums fine increments).

    f(t, x) is the drift (B, n, d), tangent to the sphere. Returns unit vectors (B, n, d).
    """
    hb = h.view(-1, 1, 1).to(x.dtype)
    if method == "euler-maruyama":
        d = x.shape[-1]
        drift = f(t, x) - (0.5 * (d - 1) * sigma * sigma) * x
        return retract(x + hb * drift + sigma * tangent_project(x, dw))
    if method == "heun":
        f0 = f(t, x)
        noise0 = sigma * tangent_project(x, dw)
        pred = retract(x + hb * f0 + noise0)
        f1 = f(torch.nextafter(t + h, t), pred)  # inside [t, t + h): the step's own piecewise-constant weights
        return retract(x + (0.5 * hb) * (f0 + f1) + 0.5 * (noise0 + sigma * tangent_project(pred, dw)))
    if method == "geodesic":
        v = hb * f(t, x) + sigma * tangent_project(x, dw)
        return rotate(x, x, v, torch.ones_like(h))
    raise ValueError(f"solver must be one of {', '.join(SDE_METHODS)}, got {method!r}")


def integrate_sde(
    f: BatchField,
    x0: torch.Tensor,
    save_at: SaveAt,
    solver: SDESolver,
    sigma: float,
    *,
    t0: float = 0.0,
    breakpoints: torch.Tensor | None = None,
    progress: Callable[[float], None] | None = None,
) -> IntegrationResult:
    """Integrate dx = F dt + σ P⊥_x ∘ dW from x0 (B, n, d) (unit vectors) at t0 over ``save_at``'s times.

    f(t, x, idx): the drift at times t (B,) for positions x (B, n, d) (idx is always None: every system steps).
    sigma: σ ≥ 0. breakpoints: times inside the run that steps must land on (jumps of time-dependent weights).
    progress: called with the fraction of [t0, t_end] done. Returns an
    :class:`~tokensphere.integrate.IntegrationResult` (steps per system; no rejected steps, no events).
    Raises IntegrationError when the state stops being finite.
    """
    sigma = validate_real("noise", sigma, minimum=0.0)
    t0 = validate_real("t0", t0)
    if float(save_at.t[0]) < t0:
        raise ValueError(f"save_at times must be >= t0 = {t0:g}, got {float(save_at.t[0]):g}")
    B = x0.shape[0]
    stops, slot = stop_grid(save_at.t.to(x0.device), t0, breakpoints)
    T = save_at.t.numel()
    positions = torch.full((T, *x0.shape), float("nan"), dtype=x0.dtype, device=x0.device) if save_at.store else None
    gens = solver.generators(B, x0.device)  # one stream per system
    draws = torch.empty(x0.shape, dtype=x0.dtype, device=x0.device)  # filled system by system each step
    rows = draws.unbind(0)  # the systems' views, made once (indexing per step costs as much as the draw)
    evaluations = 0

    def drift(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        nonlocal evaluations
        evaluations += 1
        return f(t, x, None)

    def record(s: int, x: torch.Tensor) -> None:
        k = int(slot[s])
        if k >= 0:
            record_all(positions, save_at, k, x)

    x, t_now, steps = x0, float(t0), 0
    span = max(float(stops[-1]) - t0, 1e-300)
    if not span / solver.dt < 2.0**53:  # beyond any step count a run could take (the ODE path refuses it too)
        raise ValueError(f"dt = {solver.dt:g} is too small for the interval [{t0:g}, {float(stops[-1]):g}]: "
                         f"{span / solver.dt:.3g} steps; give a larger dt")
    for s in range(stops.numel()):
        target = float(stops[s])
        count = math.ceil((target - t_now) / solver.dt * (1 - 1e-12)) if target > t_now else 0
        for k in range(count):
            # the last step lands exactly on the stop; the others are equal fractions of the interval
            t_next = target if k == count - 1 else t_now + (target - t_now) / (count - k)
            h = torch.full((B,), t_next - t_now, dtype=torch.float64, device=x.device)
            t = torch.full((B,), t_now, dtype=torch.float64, device=x.device)
            for row, gen in zip(rows, gens):
                row.normal_(generator=gen)
            dw = draws * math.sqrt(t_next - t_now)
            x = sde_step(solver.method, drift, t, x, h, dw, sigma)
            t_now, steps = t_next, steps + 1
            if progress is not None and steps % _PROGRESS_EVERY == 0:
                progress((t_now - t0) / span)
        if not bool(torch.isfinite(x).all()):
            raise IntegrationError(f"the state stopped being finite before t = {target:g} (step dt = {solver.dt:g})")
        record(s, x)
    if progress is not None:
        progress(1.0)
    counts = torch.full((B,), steps, dtype=torch.long)
    return IntegrationResult(positions=positions, steps=counts, rejected=torch.zeros(B, dtype=torch.long),
                             evaluations=evaluations, event_time=torch.full((B,), float("nan"), dtype=torch.float64))


def record_all(positions: torch.Tensor | None, save_at: SaveAt, k: int, x: torch.Tensor) -> None:
    """Output k of a fixed-step loop in which every system reaches it together (the stochastic steps here, the
    discrete layers of :func:`tokensphere.blocks.integrate_split`): x (B, n, d) into ``positions[k]`` (T, B, n, d)
    when stored, and to ``save_at.on_save`` (k, systems, x) when set."""
    if positions is not None:
        positions[k] = x
    if save_at.on_save is not None:
        B = x.shape[0]
        every = torch.arange(B, device=x.device)
        save_at.on_save(torch.full((B,), k, dtype=torch.long, device=x.device), every, x)


def as_sde_solver(solver: Any, *, dt: Any = None, rtol: float | None = None, atol: float | None = None,
                  seed: int | None = None) -> SDESolver:
    """The stochastic solver of a noisy model: an :class:`SDESolver`, or one built from a method name of
    ``SDE_METHODS`` (None: ``DEFAULT_SDE_METHOD``), ``dt`` (required) and ``seed`` (default 0).

    Raises ValueError for a deterministic method (naming the stochastic ones), a missing dt, or rtol/atol
    (the stochastic methods take a fixed step)."""
    if isinstance(solver, SDESolver):
        if dt is not None or seed is not None:
            raise ValueError("dt and seed go into SDESolver(...) when an SDESolver object is given")
    elif solver is not None and not (isinstance(solver, str) and solver in SDE_METHODS):
        name = getattr(solver, "method", solver)
        raise ValueError(f"solver {name!r} integrates the deterministic flow; a model with noise > 0 needs a "
                         f"stochastic method: one of {', '.join(SDE_METHODS)}")
    if rtol is not None or atol is not None:
        raise ValueError("rtol/atol apply to adaptive ODE methods; with noise > 0 the methods "
                         f"({', '.join(SDE_METHODS)}) take a fixed step dt")
    if isinstance(solver, SDESolver):
        return solver
    if dt is None:
        raise ValueError(f"dt must be given for the stochastic method {solver or DEFAULT_SDE_METHOD!r} (noise > 0 "
                         "integrates with a fixed step; a number > 0)")
    return SDESolver(method=solver or DEFAULT_SDE_METHOD, dt=dt, seed=0 if seed is None else seed)


def continued_sde_solver(saved: Any, solver: Any, *, dt: Any, rtol: float | None, atol: float | None,
                         seed: int | None, t0: float) -> SDESolver:
    """The stochastic solver continuing a run at t0: the saved :class:`SDESolver` (method and dt, unless
    ``solver``/``dt`` override them) with new increments, seeded ``seed`` or :func:`continuation_seed` of the
    saved seed and t0. ``saved`` may be a deterministic solver when the continuation switches noise on."""
    if isinstance(solver, SDESolver):
        return as_sde_solver(solver, dt=dt, rtol=rtol, atol=atol, seed=seed)
    base = saved if isinstance(saved, SDESolver) else None
    if seed is None:
        seed = continuation_seed(0 if base is None else base.seed, t0)
    if solver is None and base is not None:
        solver, dt = base.method, base.dt if dt is None else dt
    out = as_sde_solver(solver, dt=dt, rtol=rtol, atol=atol, seed=seed)
    if base is not None and base.streams is not None:  # the systems keep their stream numbers
        out = SDESolver(out.method, dt=out.dt, seed=out.seed, streams=base.streams)
    return out


def solver_from_spec(spec: Mapping[str, Any]) -> Any:
    """The solver of a stored ``describe()`` dict: an :class:`SDESolver` for kind "stochastic", a
    :class:`~tokensphere.integrate.split.SplitSolver` for kind "split" (discrete layers by splitting), else a
    :class:`~tokensphere.integrate.Solver`."""
    if spec.get("kind") == "stochastic":
        return SDESolver.from_spec(spec)
    if spec.get("kind") == "split":
        return SplitSolver.from_spec(spec)
    return Solver.from_spec(spec)
