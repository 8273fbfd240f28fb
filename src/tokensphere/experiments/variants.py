"""Seeded experiments on the attention variants: Sinkhorn attention against SA and USA (Remark 3.5), the three
admissible hardmax branches of Example 9.3, and the β → ∞ limit of the rescaled dynamics (9.4) → (9.5).

Positions are (B, n, d); runs go through :func:`tokensphere.simulate` with the model's options
(``normalization="sinkhorn" | "hardmax"``, ``centered=True``, ``projection=False``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..analysis import cluster_count, pair_fraction
from ..field import scores, weights_at
from ..hardmax import hardmax_select
from ..init import sample_sphere
from ..integrate import Solver
from ..model import Model
from ..simulate import simulate
from ..validate import validate_int, validate_real

__all__ = [
    "NormalizationClustering", "normalization_clustering",
    "Example93", "EXAMPLE_9_3_START", "example_9_3", "example_9_3_branches", "highest_other_index",
    "HardmaxLimit", "hardmax_limit", "HARDMAX_LIMIT_START",
    "tie_events",
]

# ------------------------------------------------------------------------------------------------------------
# ties along a run


def tie_events(positions: torch.Tensor, model: Model, times: torch.Tensor | None = None) -> torch.Tensor:
    """The number of tokens i whose argmax set C_i (9.6) has more than one member (the tie flag), per saved time.

    positions: (T, B, n, d) or (B, n, d). model: a hardmax model (its ``tie_tol``; any model: the sets are
    taken on ⟨Q x_i, K x_j⟩). times: (T,) for time-dependent weights. Returns (T,) or () int64, summed over
    systems and heads. Raises ValueError for a bad shape.
    """
    x = positions if positions.ndim == 4 else positions.unsqueeze(0)
    if x.ndim != 4:
        raise ValueError(f"positions must have shape (T, B, n, d) or (B, n, d), got {tuple(positions.shape)}")
    counts = []
    for k in range(x.shape[0]):
        t = 0.0 if times is None else float(times[k])
        s = scores(x[k], model, t)
        if model.normalization != "hardmax":  # scores carry β: divide it out for the argmax sets
            s = s / weights_at(model, x[k], t).beta.clamp_min(1e-300).view(-1, 1, 1, 1)
        counts.append(int(hardmax_select(s, model.tie_tol).ties.sum()))
    out = torch.tensor(counts, dtype=torch.int64)
    return out if positions.ndim == 4 else out[0]


# ------------------------------------------------------------------------------------------------------------
# Sinkhorn against SA and USA


@dataclass(frozen=True)
class NormalizationClustering:
    """Cluster count and pair fraction over time for several normalisations run from the same seeded starts.

    times: (T,). clusters, pairs: name → (T, B) arrays (cluster count at threshold delta; fraction of pairs
    with ⟨x_i, x_j⟩ > 1 − delta). sinkhorn_error: the largest column-sum error of the Sinkhorn attention over
    the saved states (rows sum to 1 by construction).
    """

    names: tuple[str, ...]
    times: np.ndarray
    clusters: dict[str, np.ndarray]
    pairs: dict[str, np.ndarray]
    beta: float
    n: int
    d: int
    delta: float
    sinkhorn_error: float


def normalization_clustering(
    names: Sequence[str] = ("softmax", "uniform", "sinkhorn"),
    *,
    n: int = 24,
    d: int = 3,
    batch: int = 4,
    beta: float = 4.0,
    t_max: float = 30.0,
    save: int = 61,
    delta: float = 1e-3,
    seed: int = 0,
    sinkhorn_iters: int = 200,
    sinkhorn_tol: float = 1e-9,
) -> NormalizationClustering:
    """Run SA, USA and Sinkhorn attention (Q = K = V = I, on the sphere) from the same ``batch`` uniform starts
    (seeded) and measure clustering along time. Returns a :class:`NormalizationClustering`."""
    from ..sinkhorn import sinkhorn_log  # the arithmetic, for the recorded marginal error

    validate_real("beta", beta, minimum=0.0)
    x0 = sample_sphere(batch, n, d, seed=seed)
    clusters, pairs, times = {}, {}, None
    err = 0.0
    for name in names:
        opts = {"sinkhorn_iters": sinkhorn_iters, "sinkhorn_tol": sinkhorn_tol} if name == "sinkhorn" else {}
        model = Model(beta=beta, normalization=name, **opts)
        run = simulate(x0, model=model, solver=Solver("dopri5", rtol=1e-7, atol=1e-9), t_max=t_max, save_at=save)
        x = run.positions
        times = run.times.numpy()
        clusters[name] = cluster_count(x, delta).numpy()
        pairs[name] = pair_fraction(x, delta).numpy()
        if name == "sinkhorn":
            for k in range(0, x.shape[0], max(1, x.shape[0] // 6)):
                err = max(err, sinkhorn_log(scores(x[k], model), sinkhorn_iters, sinkhorn_tol).error)
    return NormalizationClustering(tuple(names), times, clusters, pairs, float(beta), n, d, float(delta), err)


# ------------------------------------------------------------------------------------------------------------
# Example 9.3: three admissible continuations


EXAMPLE_9_3_START = ((1.0, 1.0), (-1.0, 1.0), (0.0, 0.0))


def highest_other_index(candidates: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """A user tie rule: all weight on the highest index of C_i other than i itself (i when C_i = {i}).

    candidates: (..., n, n) bool; s: (..., n, n) scores (unused). Returns (..., n, n) one-hot rows."""
    n = candidates.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=candidates.device)
    others = candidates & ~eye
    use = torch.where(others.any(-1, keepdim=True), others, candidates)
    idx = torch.arange(n, device=candidates.device)
    pick = torch.where(use, idx, torch.full_like(idx, -1)).argmax(-1)
    return torch.nn.functional.one_hot(pick, n).to(s.dtype)


@dataclass(frozen=True)
class Example93:
    """One hardmax run of Example 9.3 (d = 2, n = 3, Q = K = V = I, (9.5)) under a tie policy.

    branch: "z1", "z2", "midpoint" (the target z_3 moves to, read off the run) or "rest" (z_3 picked itself at
    the tie and stays at the origin, a fourth Filippov solution: 0 lies in the convex hull of the nearby
    velocities); times (T,); z3: (T, 2) the run; exact: (T, 2) the closed form z_3(t) = c + (z_3(0) − c) e^{−t}
    of that branch (c = z_1, z_2, their midpoint, or z_3(0)); error: max_t |z3 − exact|; still: max displacement of z_1 and z_2 (they never move); ties: the
    tie events per saved time (:func:`tie_events`); dt: the Euler step.
    """

    policy: str
    branch: str
    times: np.ndarray
    z3: np.ndarray
    exact: np.ndarray
    error: float
    still: float
    ties: np.ndarray
    dt: float


def example_9_3(ties: str | Callable = "average", *, dt: float = 1e-3, t_max: float = 3.0, tie_seed: int = 0,
                save: int = 31) -> Example93:
    """Run Example 9.3 of the paper with hardmax attention (9.5)–(9.6), z ∈ R² (projection=False, centered
    value term), fixed-step Euler of step ``dt`` (a Filippov selection), under the tie policy ``ties``.

    Returns an :class:`Example93` with the branch followed and its error against the branch's closed form."""
    validate_real("dt", dt, minimum=0.0, strict_minimum=True)
    z0 = torch.tensor([EXAMPLE_9_3_START], dtype=torch.float64)
    model = Model(normalization="hardmax", projection=False, centered=True, ties=ties, tie_seed=tie_seed)
    run = simulate(z0, model=model, solver=Solver("euler", dt=dt), t_max=t_max, save_at=save)
    x = run.positions[:, 0]
    t = run.times.numpy()
    z3 = x[:, 2].numpy()
    z1, z2 = np.array(EXAMPLE_9_3_START[0]), np.array(EXAMPLE_9_3_START[1])
    targets = {"z1": z1, "z2": z2, "midpoint": (z1 + z2) / 2, "rest": np.array(EXAMPLE_9_3_START[2])}
    move = z3[-1] - z3[0]  # the branch is the direction z_3 left in (or "rest" when it did not move)
    branch = "rest" if float(np.linalg.norm(move)) == 0.0 else max(
        ("z1", "z2", "midpoint"), key=lambda k: float(move @ (targets[k] - z3[0]) / np.linalg.norm(targets[k] - z3[0])))
    c = targets[branch]
    exact = c + np.outer(np.exp(-t), np.array(EXAMPLE_9_3_START[2]) - c)
    still = float((x[:, :2] - x[:1, :2]).norm(dim=-1).max())
    name = ties if isinstance(ties, str) else getattr(ties, "__name__", "user rule")
    return Example93(name, branch, t, z3, exact, float(np.abs(z3 - exact).max()), still,
                     tie_events(run.positions, model).numpy(), float(dt))


def example_9_3_branches(dt: float = 1e-3, t_max: float = 3.0) -> list[Example93]:
    """The three branches of Example 9.3: "average" (→ midpoint), "lowest" (→ z_1), and the user rule
    :func:`highest_other_index` (→ z_2)."""
    return [example_9_3(p, dt=dt, t_max=t_max) for p in ("average", "lowest", highest_other_index)]


# ------------------------------------------------------------------------------------------------------------
# β → ∞: (9.4) converges to (9.5) uniformly on [0, T]

# z_1 leads z_2 (C_2 = {1}), z_1 and z_3 attend to themselves; no tie on [0, ∞) (the gap of z_2's row is
# ⟨z_2, z_1 − z_2⟩ = 2e^{−t} − 1.25 e^{−2t} > 0)
HARDMAX_LIMIT_START = ((2.0, 0.0), (1.0, 0.5), (-1.0, 1.0))


@dataclass(frozen=True)
class HardmaxLimit:
    """Distance between the β-dynamics (9.4) and the hardmax dynamics (9.5) on [0, T] from HARDMAX_LIMIT_START.

    betas; distances: max over t ∈ [0, T] (saved grid) and tokens of |z^β_i(t) − z^∞_i(t)|; hardmax_error:
    the hardmax run (Euler, step dt) against its closed form (z_2(t) = z_1 + (z_2(0) − z_1) e^{−t}, z_1, z_3
    fixed); rate, prefactor: the least-squares fit log distance ≈ log prefactor − rate·β; gap: the smallest
    score gap min_t min_i (max_j s_ij − second largest) of the hardmax solution on [0, T], the rate the
    theory predicts (the softmax weights off the argmax are ≈ e^{−β·gap}).
    """

    betas: tuple[float, ...]
    distances: tuple[float, ...]
    t_max: float
    rate: float
    prefactor: float
    gap: float
    hardmax_error: float


def _limit_closed_form(t: np.ndarray) -> np.ndarray:
    z = np.array(HARDMAX_LIMIT_START)
    out = np.broadcast_to(z, (t.size, 3, 2)).copy()
    out[:, 1] = z[0] + np.outer(np.exp(-t), z[1] - z[0])
    return out


def hardmax_limit(betas: Sequence[float] = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0), *, t_max: float = 2.0,
                  save: int = 201, rtol: float = 1e-12, dt: float = 1e-3) -> HardmaxLimit:
    """Measure sup_{t ≤ T} |z^β(t) − z^∞(t)| for the rescaled dynamics (9.4) (softmax, centered, on R²,
    Q = K = V = I) against the closed-form hardmax solution, for each β; fit the exponential rate in β.

    Returns a :class:`HardmaxLimit`; the hardmax run itself (Euler through simulate) is checked against the
    same closed form."""
    betas = tuple(float(validate_real("betas", b, minimum=0.0, strict_minimum=True)) for b in betas)
    if len(betas) < 2:
        raise ValueError(f"betas must hold at least two values, got {betas}")
    validate_int("save", save, minimum=2)
    z0 = torch.tensor([HARDMAX_LIMIT_START], dtype=torch.float64)
    times = np.linspace(0.0, t_max, save)
    exact = _limit_closed_form(times)
    model = Model(beta=torch.tensor(betas, dtype=torch.float64), projection=False, centered=True)
    run = simulate(z0, model=model, solver=Solver("dopri5", rtol=rtol, atol=rtol * 1e-2), t_max=t_max,
                   save_at=torch.tensor(times))
    x = run.positions.numpy()  # (T, B, 3, 2)
    dist = np.linalg.norm(x - exact[:, None], axis=-1).max(axis=(0, 2))
    hard = simulate(z0, model=Model(normalization="hardmax", projection=False, centered=True),
                    solver=Solver("euler", dt=dt), t_max=t_max, save_at=torch.tensor(times))
    hard_err = float(np.abs(hard.positions[:, 0].numpy() - exact).max())
    s = np.einsum("tid,tjd->tij", exact, exact)
    top2 = np.sort(s, axis=-1)[..., -2:]
    gap = float((top2[..., 1] - top2[..., 0]).min())
    slope, icpt = np.polyfit(np.array(betas), np.log(dist), 1)
    return HardmaxLimit(betas, tuple(float(v) for v in dist), float(t_max), float(-slope), float(math.exp(icpt)),
                        gap, hard_err)
