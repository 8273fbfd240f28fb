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

The sub-steps and the block (:class:`Block`, :func:`block_field`, :func:`block_update`, :func:`sub_flow`,
:func:`block_step`) live in :mod:`tokensphere.blocks`, below :mod:`tokensphere.simulate`, and are re-exported
here: a stack of blocks is also a solver, :class:`SplitSolver` (splitting, substeps, layer step ``dt``, rtol), that
``simulate(x0, model=..., t_max=..., solver=SplitSolver(...))`` runs, stores with the run and continues, with the
block's normalisation taken from ``model.norm`` (:func:`terms_model`); ``tokensphere simulate --splitting``
reaches it from the command line (docs/blocks.md).
"""

from __future__ import annotations

import torch

from .blocks import (
    NORMS,
    SPLITTINGS,
    SUBSTEPS,
    Block,
    block_field,
    block_step,
    block_update,
    integrate_split,
    split_block,
    sub_flow,
    terms_model,
)
from .integrate import SaveAt, Solver, anchor_solver, integrate
from .integrate.split import SplitSolver
from .model import Model
from .norms import sphere
from .simulate import simulate
from .validate import validate_int, validate_real

__all__ = ["NORMS", "SPLITTINGS", "SUBSTEPS", "Block", "SplitSolver", "block_field", "block_update", "sub_flow",
           "block_step", "block_stack", "block_flow", "directions", "layer_stack", "terms_model", "split_block",
           "integrate_split"]

def block_stack(x0: torch.Tensor, model: Model, depth: int, t_max: float, block: Block | None = None, *,
                keep: bool = False) -> torch.Tensor:
    """``depth`` blocks of step h = t_max/depth from x0 (B, n, d). Returns the output (B, n, d), or with
    ``keep`` every layer's state (depth + 1, B, n, d). ``simulate(x0, model=model, t_max=t_max,
    solver=SplitSolver(splitting, substeps, dt=h))`` runs the same stack (the block's norm then the model's)
    and stores it with the run."""
    depth = validate_int("depth", depth, minimum=1)
    validate_real("t_max", t_max, minimum=0.0, strict_minimum=True)
    h = t_max / depth
    model, block = terms_model(model, block or Block(norm=model.norm))  # a model with norm set gives the block's norm
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
    model, block = terms_model(model, block or Block(norm=model.norm))
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
    depth = validate_int("depth", depth, minimum=1)
    validate_real("t_max", t_max, minimum=0.0, strict_minimum=True)
    run = simulate(x0, model=model, solver=anchor_solver(model, step=t_max / depth, raw_step=True),
                   t_max=t_max, save_at=[0.0, t_max])
    return run.positions[-1]
