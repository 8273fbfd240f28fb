"""The discrete Transformer block of (2.8): its sub-steps, their composition by splitting, and the stepping loop
that runs a :class:`~tokensphere.integrate.split.SplitSolver` inside :func:`tokensphere.simulate`.

The sub-steps of each normalisation variant (post, pre, RMSNorm, nGPT), the two splittings and the two kinds of
sub-step are tabulated in :mod:`tokensphere.layers`, which re-exports everything here; this module sits below
:mod:`tokensphere.simulate` (it imports the field and the integrators, never ``simulate``) so that ``simulate``
can run a stack of blocks as a solver and store it with the run. Shapes: positions (B, n, d).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from .feedforward import feedforward_term
from .field import tangent_project, velocity, weights_at
from .integrate import SaveAt, Solver, integrate
from .integrate.driver import IntegrationError, IntegrationResult
from .integrate.sde import record_all
from .integrate.split import DEFAULT_SPLIT_RTOL, SPLITTINGS, SUBSTEPS, SplitSolver
from .model import Model
from .norms import check_gain, ellipsoid_project, ellipsoid_retract, sphere
from .schedule import Layerwise
from .validate import validate_choice, validate_real

__all__ = ["NORMS", "SPLITTINGS", "SUBSTEPS", "Block", "block_field", "block_update", "sub_flow", "block_step",
           "terms_model", "split_block", "layer_counts", "integrate_split"]

_TOL = 1e-9  # relative slack of "an output time is a whole number of layers from t0" (float times, e.g. linspace)

NORMS = ("post", "pre", "rms", "ngpt")
PARTS = ("attention", "feedforward", "both")


@dataclass(frozen=True, eq=False)
class Block:
    """How a Transformer block is built (the table of :mod:`tokensphere.layers`).

    norm: one of NORMS. splitting: "lie-trotter" or "strang". substeps: "euler" (one update per term, the
    literal layer) or "exact" (each term's exact sub-flow by dopri5 at ``rtol``). gain: (d,) RMSNorm gain g > 0
    ("rms" only; None: ones). eps: RMSNorm's ε ≥ 0 in the discrete update (the continuous form and the exact
    sub-flows use ε = 0). Raises ValueError naming the field.
    """

    norm: str = "post"
    splitting: str = "lie-trotter"
    substeps: str = "euler"
    gain: Any = None
    eps: float = 0.0
    rtol: float = 1e-12

    def __post_init__(self) -> None:
        validate_choice("norm", self.norm, NORMS)
        validate_choice("splitting", self.splitting, SPLITTINGS)
        validate_choice("substeps", self.substeps, SUBSTEPS)
        validate_real("eps", self.eps, minimum=0.0)
        validate_real("rtol", self.rtol, minimum=0.0, strict_minimum=True)
        if self.gain is not None and self.norm != "rms":
            raise ValueError(f"gain applies to norm='rms' only, got norm={self.norm!r}")
        if self.gain is not None:
            g = torch.as_tensor(self.gain, dtype=torch.float64)
            if g.ndim != 1:
                raise ValueError(f"gain must be a 1-D tensor (d,) of RMSNorm gains, got shape {tuple(g.shape)}")
            check_gain(g, g.numel(), g)
            object.__setattr__(self, "gain", g)

    @property
    def on_sphere(self) -> bool:
        """True when the state lives on the unit sphere ("post", "ngpt")."""
        return self.norm in ("post", "ngpt")


def _attention_only(model: Model) -> Model:
    """The model without its feed-forward layer, constant or in the schedule's stacks w, a, b."""
    if model.feedforward is None:
        return model
    schedule = model.schedule
    if isinstance(schedule, Layerwise):
        schedule = schedule.without_feedforward()
    return replace(model, feedforward=None, schedule=schedule)


def _raw(x: torch.Tensor, model: Model, part: str, t: float | torch.Tensor) -> torch.Tensor:
    """G_A, G_F or their sum at X (unprojected). x: (B, n, d). Returns (B, n, d)."""
    if model.norm != "post":  # the field would normalise the terms itself: the sub-steps must read them raw
        raise ValueError(f"norm: the block sub-steps read the raw terms of a norm='post' model, got "
                         f"norm={model.norm!r} (block_step and block_stack accept it: see terms_model)")
    if part == "attention":
        return velocity(x, _attention_only(model), t, project=False)
    ff = feedforward_term(x, weights_at(model, x, t))
    if part == "feedforward":
        return torch.zeros_like(x) if ff is None else ff
    return velocity(x, model, t, project=False)


def _gain(block: Block, x: torch.Tensor) -> torch.Tensor:
    return check_gain(None if block.gain is None else block.gain.to(x.dtype), x.shape[-1], x)


def block_field(x: torch.Tensor, model: Model, block: Block, part: str = "both",
                t: float | torch.Tensor = 0.0) -> torch.Tensor:
    """The continuous form of ``block.norm`` for the term ``part`` ("attention", "feedforward", "both") at the
    state x (B, n, d) (see the module docstring's table). Returns (B, n, d)."""
    validate_choice("part", part, PARTS)
    if part == "both" and block.norm == "ngpt":  # each term is normalised on its own: the sum of the two forms
        f = block_field(x, model, block, "attention", t)
        return f if model.feedforward is None else f + block_field(x, model, block, "feedforward", t)
    if part == "feedforward" and model.feedforward is None:
        return torch.zeros_like(x)
    if block.norm == "pre":
        return _raw(sphere(x), model, part, t)
    g = _raw(x, model, part, t)
    if block.norm == "post":
        return tangent_project(x, g)
    if block.norm == "rms":
        return ellipsoid_project(x, g, _gain(block, x))
    return tangent_project(x, sphere(g))  # ngpt


def block_update(x: torch.Tensor, model: Model, block: Block, part: str, h: float,
                 t: float | torch.Tensor = 0.0) -> torch.Tensor:
    """One discrete sub-step S_h of the term ``part`` (the literal layer; module docstring's table).
    x: (B, n, d). Returns (B, n, d)."""
    validate_choice("part", part, PARTS)
    if part == "feedforward" and model.feedforward is None:
        return x  # no feed-forward layer: its sub-step is the identity (as its field is 0)
    if block.norm == "pre":
        return x + h * _raw(sphere(x), model, part, t)
    g = _raw(x, model, part, t)
    if block.norm == "post":
        return sphere(x + h * g)
    if block.norm == "rms":
        return ellipsoid_retract(x + h * g, _gain(block, x), block.eps)
    return sphere(x + h * (sphere(g) - x))  # ngpt, step α = h


_RTOL_FLOOR_EPS = 10  # the exact sub-flows' rtol is at least this many machine epsilons of the state's dtype


def sub_flow(x: torch.Tensor, model: Model, block: Block, part: str, h: float, t: float = 0.0) -> torch.Tensor:
    """The exact flow of the continuous form of ``part`` over [t, t + h] (dopri5 at ``block.rtol``, at least
    10 machine epsilons of x's dtype (1.2e-6 in float32); atol rtol/100; renormalised onto the sphere after every
    step for "post"/"ngpt"). x: (B, n, d). Returns (B, n, d).
    """
    validate_choice("part", part, PARTS)
    m = model.to(x.dtype, x.device)

    def f(tt: torch.Tensor, xx: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        return block_field(xx, m if idx is None else m.take(idx), block, part, tt if m.schedule is not None else t)

    # a tolerance below the dtype's resolution cannot be met: the controller would shrink the step until x + h·k
    # rounds to x (float32 under the default 1e-12: ~300 steps per sub-flow, and a larger error)
    rtol = max(block.rtol, _RTOL_FLOOR_EPS * torch.finfo(x.dtype).eps)
    solver = Solver("dopri5", rtol=rtol, atol=rtol * 1e-2)
    res = integrate(f, x, SaveAt(torch.tensor([t + h], dtype=torch.float64)), solver, t0=t,
                    autonomous=m.schedule is None, on_sphere=block.on_sphere)
    return res.positions[-1]


def block_step(x: torch.Tensor, model: Model, h: float, block: Block | None = None, t: float = 0.0) -> torch.Tensor:
    """One Transformer block of step h: the two terms of (2.8) composed by ``block.splitting`` (without a
    feed-forward layer, the attention sub-step alone). A model with ``norm`` other than "post" sets the block's
    normalisation (``block.norm`` must then agree; see :func:`terms_model`). x: (B, n, d). Returns (B, n, d)."""
    block = block or Block(norm=model.norm)
    validate_real("h", h, minimum=0.0, strict_minimum=True)
    if model.norm != "post":
        model, block = terms_model(model, block)
    sub = block_update if block.substeps == "euler" else sub_flow
    if model.feedforward is None:
        return sub(x, model, block, "attention", h, t)
    if block.splitting == "lie-trotter":
        return sub(sub(x, model, block, "attention", h, t), model, block, "feedforward", h, t)
    y = sub(x, model, block, "attention", h / 2, t)
    y = sub(y, model, block, "feedforward", h, t)
    return sub(y, model, block, "attention", h / 2, t + h / 2)



def terms_model(model: Model, block: Block) -> tuple[Model, Block]:
    """(the model whose field gives the raw terms G_A, G_F, the block) for a model with ``norm`` set.

    The sub-steps apply the normalisation themselves: they read the unnormalised terms, so the model they are
    given must have ``norm="post"`` (the raw field with ``project=False``). A model whose ``norm`` is "pre",
    "rms" or "ngpt" is the source of the block's normalisation (and of the RMSNorm gain ``norm_gain`` when the
    block has none); ``block.norm`` must then be the same. Raises ValueError naming ``norm`` otherwise."""
    if model.norm == "post":
        return model, block
    if block.norm != model.norm:
        raise ValueError(f"norm: the block's normalisation {block.norm!r} differs from the model's "
                         f"norm={model.norm!r}; give one of them (Block(norm=...) with a norm='post' model, or "
                         "the model's norm)")
    if block.gain is None and model.norm_gain is not None:
        block = replace(block, gain=model.norm_gain)
    return replace(model, norm="post", norm_gain=None), block


def split_block(model: Model, solver: SplitSolver) -> tuple[Model, Block]:
    """The :class:`Block` of a :class:`~tokensphere.integrate.split.SplitSolver` for ``model``: the norm (and
    RMSNorm gain) are the model's, the splitting, sub-steps and tolerance the solver's; with the model of the
    raw terms (:func:`terms_model`). Raises ValueError for a model the blocks cannot run."""
    if model.norm in ("post", "ngpt") and not model.projection:
        raise ValueError(f"projection: the {model.norm}-norm blocks renormalise the tokens onto the sphere; "
                         "projection=False (tokens in R^d) has no discrete block here (use norm='pre' or 'rms')")
    if model.noise > 0:
        raise ValueError("noise: a splitting solver steps the deterministic blocks of (2.8); noise > 0 needs a "
                         "stochastic method")
    block = Block(norm=model.norm, splitting=solver.splitting, substeps=solver.substeps,
                  rtol=DEFAULT_SPLIT_RTOL if solver.rtol is None else solver.rtol)
    return terms_model(model, block)


def layer_counts(times: torch.Tensor, t0: float, h: float) -> list[int]:
    """The number of layers k_s from t0 to each output time t_s = t0 + k_s h (times (T,), sorted).

    Raises ValueError naming ``t_max`` (the last time) or ``save_at`` (an inner one) when a time is not a layer
    boundary, to a relative slack of 1e-9 of a layer."""
    counts = []
    ts = times.detach().to("cpu", torch.float64).tolist()
    for i in [len(ts) - 1, *range(len(ts) - 1)]:  # the final time first: it fixes the number of layers
        t = ts[i]
        m = (t - t0) / h
        k = round(m)
        if abs(m - k) > _TOL * max(1.0, abs(m)):
            if i == len(ts) - 1:
                raise ValueError(f"t_max must be t0 + L·dt for a whole number L of layers with a splitting solver "
                                 f"(t0 = {t0:g}, dt = {h:g}): (t_max − t0)/dt = {m:.6g}")
            raise ValueError(f"save_at times must be layer boundaries t0 + k·dt with a splitting solver (t0 = "
                             f"{t0:g}, dt = {h:g}): t = {t:g} is {m:.6g} layers from t0; give save times whose "
                             "spacing is a whole number of layers")
        counts.append(k)
    return counts[1:] + counts[:1]


def integrate_split(
    x0: torch.Tensor,
    model: Model,
    save_at: SaveAt,
    solver: SplitSolver,
    *,
    t0: float = 0.0,
    progress: Callable[[float], None] | None = None,
) -> IntegrationResult:
    """A stack of Transformer blocks from x0 (B, n, d) at t0: layer k (k = 0, 1, …) is one
    :func:`block_step` of step h = ``solver.dt`` at time t0 + k h, the block built by :func:`split_block`
    (the model's normalisation, the solver's splitting and sub-steps). Positions are recorded at
    ``save_at``'s times, which must be layer boundaries (:func:`layer_counts`).

    Weights of a time-dependent model are read at each sub-step's start time (a layerwise schedule with one
    layer per block: step h = its layer length). progress: called with the fraction of the layers done.
    Returns an :class:`~tokensphere.integrate.IntegrationResult` whose ``steps`` is the number of layers per
    system and ``evaluations`` the number of sub-steps (term updates or sub-flows). Raises IntegrationError
    when the state stops being finite.
    """
    h = solver.dt
    counts = layer_counts(save_at.t, t0, h)
    terms, block = split_block(model, solver)
    B = x0.shape[0]
    T = save_at.t.numel()
    positions = torch.full((T, *x0.shape), float("nan"), dtype=x0.dtype, device=x0.device) if save_at.store else None
    per_layer = 1 if model.feedforward is None else 2 if block.splitting == "lie-trotter" else 3
    total = max(counts[-1], 1)
    x, k = x0, 0
    for s, target in enumerate(counts):
        while k < target:
            x = block_step(x, terms, h, block, t=t0 + k * h)
            k += 1
            if progress is not None:
                progress(k / total)
        if not bool(torch.isfinite(x).all()):
            raise IntegrationError(f"the state stopped being finite before layer {target} (t = {t0 + target * h:g})")
        record_all(positions, save_at, s, x)
    if progress is not None:
        progress(1.0)
    return IntegrationResult(positions=positions, steps=torch.full((B,), k, dtype=torch.long),
                             rejected=torch.zeros(B, dtype=torch.long), evaluations=per_layer * k,
                             event_time=torch.full((B,), float("nan"), dtype=torch.float64))
