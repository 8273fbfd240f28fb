"""Transformer blocks in discrete time and their continuous forms: normalisation variants and splittings (2.8).

A block of layer step h acts on the tokens X = (x_1, …, x_n) with the attention term and the feed-forward
term of (2.8) applied one after the other (operator splitting). Writing G_A(X)_i = Σ_j A_ij(X) V x_j (the
unprojected attention field, :func:`tokensphere.field.velocity` with ``project=False``) and G_F(X)_i =
w σ(a x_i + b) (:func:`tokensphere.feedforward.feedforward_term`), one sub-step S_h of a term G is, for each
normalisation variant ``norm`` (N from :mod:`tokensphere.norms`):

| norm | discrete sub-step S_h | continuous form (h → 0) | state space |
|---|---|---|---|
| "post" (the paper's) | x ← N(x + h G(x)), N(x) = x/abs(x) | ẋ = P⊥_x G(x) (2.8) | S^{d−1} |
| "pre" | y ← y + h G(N(Y)) | ẏ = G(N(Y)); clusters read on N(y_i) | R^d |
| "rms" | y ← R_g(y + h G(y)), R_g(z) = RMSNorm(z ⊘ g) | ẏ = P_y G(y), P_y v = v − (⟨y ⊘ g², v⟩/d) y | E_g = {Σ_k (y_k/g_k)² = d} |
| "ngpt" | x ← N(x + h (N(G(x)) − x)) (step α = h) | ẋ = P⊥_x (G(x)/abs(G(x))) | S^{d−1} |

(the continuous form of a whole block is the sum of its two terms' forms; for "ngpt" each term is normalised on
its own, ẋ = P⊥_x(Ĝ_A + Ĝ_F) with Ĝ = G/abs(G), as the sub-steps normalise them separately)

A block composes the sub-steps of the two terms:

- Lie–Trotter (``splitting="lie-trotter"``): S^F_h ∘ S^A_h, i.e. y = N(x + h G_A(x)), x⁺ = N(y + h G_F(y)) —
  first order in h;
- Strang (``splitting="strang"``): S^A_{h/2} ∘ S^F_h ∘ S^A_{h/2} — second order when the sub-steps are the exact
  sub-flows.

``substeps="euler"`` uses the one-step updates of the table (the literal Transformer layer); ``substeps="exact"``
replaces each by the exact flow of its term's continuous form over the sub-step, computed by dopri5 at
tolerance ``rtol`` (so that what is measured is the splitting error, not the sub-step error). With Euler
sub-steps every variant is first order whatever the splitting (the sub-step error is O(h²) per step).

:func:`block_flow` integrates the continuous form of the whole block (both terms) through the package's driver;
for ``norm="post"`` it is exactly :func:`tokensphere.simulate` on (2.8). The same continuous forms are
``Model(norm=...)`` options of the one field (:func:`tokensphere.field.velocity`), equal to :func:`block_field`
with ``part="both"``; the per-term forms here are what the splittings need. Shapes: positions (B, n, d).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from .feedforward import feedforward_term
from .field import tangent_project, velocity, weights_at
from .integrate import SaveAt, Solver, anchor_solver, integrate
from .model import Model
from .norms import check_gain, ellipsoid_project, ellipsoid_retract, sphere
from .simulate import simulate
from .validate import validate_choice, validate_int, validate_real

__all__ = ["NORMS", "SPLITTINGS", "SUBSTEPS", "Block", "block_field", "block_update", "sub_flow", "block_step",
           "block_stack", "block_flow", "directions", "layer_stack"]

NORMS = ("post", "pre", "rms", "ngpt")
SPLITTINGS = ("lie-trotter", "strang")
SUBSTEPS = ("euler", "exact")
PARTS = ("attention", "feedforward", "both")


@dataclass(frozen=True, eq=False)
class Block:
    """How a Transformer block is built (see the module docstring).

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
            check_gain(g, g.numel() if g.ndim == 1 else -1, g)
            object.__setattr__(self, "gain", g)

    @property
    def on_sphere(self) -> bool:
        """True when the state lives on the unit sphere ("post", "ngpt")."""
        return self.norm in ("post", "ngpt")


def _attention_only(model: Model) -> Model:
    return model if model.feedforward is None else replace(model, feedforward=None)


def _raw(x: torch.Tensor, model: Model, part: str, t: float | torch.Tensor) -> torch.Tensor:
    """G_A, G_F or their sum at X (unprojected). x: (B, n, d). Returns (B, n, d)."""
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
    if block.norm == "pre":
        return x + h * _raw(sphere(x), model, part, t)
    g = _raw(x, model, part, t)
    if block.norm == "post":
        return sphere(x + h * g)
    if block.norm == "rms":
        return ellipsoid_retract(x + h * g, _gain(block, x), block.eps)
    return sphere(x + h * (sphere(g) - x))  # ngpt, step α = h


def sub_flow(x: torch.Tensor, model: Model, block: Block, part: str, h: float, t: float = 0.0) -> torch.Tensor:
    """The exact flow of the continuous form of ``part`` over [t, t + h] (dopri5 at ``block.rtol``, atol
    rtol/100; renormalised onto the sphere after every step for "post"/"ngpt"). x: (B, n, d). Returns (B, n, d).
    """
    validate_choice("part", part, PARTS)
    m = model.to(x.dtype, x.device)

    def f(tt: torch.Tensor, xx: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        return block_field(xx, m if idx is None else m.take(idx), block, part, tt if m.schedule is not None else t)

    solver = Solver("dopri5", rtol=block.rtol, atol=block.rtol * 1e-2)
    res = integrate(f, x, SaveAt(torch.tensor([t + h], dtype=torch.float64)), solver, t0=t,
                    autonomous=m.schedule is None, on_sphere=block.on_sphere)
    return res.positions[-1]


def block_step(x: torch.Tensor, model: Model, h: float, block: Block | None = None, t: float = 0.0) -> torch.Tensor:
    """One Transformer block of step h: the two terms of (2.8) composed by ``block.splitting`` (without a
    feed-forward layer, the attention sub-step alone). x: (B, n, d). Returns (B, n, d)."""
    block = block or Block()
    validate_real("h", h, minimum=0.0, strict_minimum=True)
    sub = block_update if block.substeps == "euler" else sub_flow
    if model.feedforward is None:
        return sub(x, model, block, "attention", h, t)
    if block.splitting == "lie-trotter":
        return sub(sub(x, model, block, "attention", h, t), model, block, "feedforward", h, t)
    y = sub(x, model, block, "attention", h / 2, t)
    y = sub(y, model, block, "feedforward", h, t)
    return sub(y, model, block, "attention", h / 2, t + h / 2)


def block_stack(x0: torch.Tensor, model: Model, depth: int, t_max: float, block: Block | None = None, *,
                keep: bool = False) -> torch.Tensor:
    """``depth`` blocks of step h = t_max/depth from x0 (B, n, d). Returns the output (B, n, d), or with
    ``keep`` every layer's state (depth + 1, B, n, d)."""
    validate_int("depth", depth, minimum=1)
    validate_real("t_max", t_max, minimum=0.0, strict_minimum=True)
    h = t_max / depth
    x = x0
    states = [x0]
    for k in range(depth):
        x = block_step(x, model, h, block, t=k * h)
        if keep:
            states.append(x)
    return torch.stack(states) if keep else x


def block_flow(x0: torch.Tensor, model: Model, t_max: float, block: Block | None = None, *,
               save_at: int | torch.Tensor = 2, rtol: float = 1e-12) -> torch.Tensor:
    """The continuous form of the whole block (both terms) from x0 (B, n, d) on [0, t_max], by dopri5 at rtol.

    "post" is :func:`tokensphere.simulate` on (2.8) itself. save_at: a count of equally spaced times or the
    times (T,). Returns the positions (T, B, n, d)."""
    block = block or Block()
    validate_real("t_max", t_max, minimum=0.0, strict_minimum=True)
    times = (torch.linspace(0.0, float(t_max), int(save_at), dtype=torch.float64)
             if isinstance(save_at, int) else torch.as_tensor(save_at, dtype=torch.float64))
    solver = Solver("dopri5", rtol=rtol, atol=rtol * 1e-2)
    if block.norm == "post":
        return simulate(x0, model=model, solver=solver, t_max=t_max, save_at=times).positions
    m = model.to(x0.dtype, x0.device)

    def f(tt: torch.Tensor, xx: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        return block_field(xx, m if idx is None else m.take(idx), block, "both", tt if m.schedule is not None else 0.0)

    return integrate(f, x0, SaveAt(times), solver, autonomous=m.schedule is None, on_sphere=block.on_sphere).positions


def directions(y: torch.Tensor) -> torch.Tensor:
    """N(y_i) = y_i/|y_i|: where the clusters of a pre-norm (or RMSNorm) stream are read. y: (..., d)."""
    return sphere(y)


def layer_stack(x0: torch.Tensor, model: Model, depth: int, t_max: float) -> torch.Tensor:
    """The output of ``depth`` normalised self-attention layers of step h = t_max/depth applied to x0.

    x0: (B, n, d) unit vectors. model: the attention (β, Q, K, V, schedule: with a ``Layerwise`` schedule of
    ``depth`` layers on [0, t_max], step k uses layer k's weights). The post-norm block without feed-forward,
    run by the authors' scheme (Euler on the raw field, renormalised) through :func:`tokensphere.simulate`.
    Returns (B, n, d).
    """
    validate_int("depth", depth, minimum=1)
    validate_real("t_max", t_max, minimum=0.0, strict_minimum=True)
    run = simulate(x0, model=model, solver=anchor_solver(model, step=t_max / depth, raw_step=True),
                   t_max=t_max, save_at=[0.0, t_max])
    return run.positions[-1]
