"""Hardmax attention, the β → ∞ limit of softmax ((9.5)–(9.6) of the paper).

    C_i = { j : s_ij ≥ max_k s_ik − tol }          (9.6), scores s_ij = ⟨Q z_i, K z_j⟩ + b_ij
    A_ij = 1/|C_i| for j ∈ C_i, 0 otherwise        (9.5), the "average" policy

The right-hand side of (9.5) is discontinuous where |C_i| > 1 (a *tie*), and the solutions through a tie are
not unique (Example 9.3): each choice of the weights inside C_i is a Filippov selection. The tie policy picks
one:

- ``"average"`` (default): uniform over C_i, literally (9.5);
- ``"lowest"``: all weight on the lowest index in C_i;
- ``"random"``: all weight on one member of C_i drawn with a seeded random priority per pair (i, j): the same
  seed and the same tie give the same choice (reproducible runs);
- a callable ``rule(candidates, scores) -> weights``: candidates (..., n, n) bool (the sets C_i), scores
  (..., n, n); weights (..., n, n) ≥ 0, zero outside C_i, rows summing to 1 (called only when some row ties).

Every call also returns the tie flags (|C_i| > 1) so that ties can be counted along a run.
Shapes: scores (..., n, n), usually (B, H, n, n); masked entries (−inf) are never selected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["TIE_POLICIES", "HardmaxResult", "hardmax", "hardmax_select", "check_tie_policy"]

TIE_POLICIES = ("average", "lowest", "random")
TieRule = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class HardmaxResult:
    """attention: (..., n, n) row-stochastic weights on the argmax sets. ties: (..., n) bool, True where
    |C_i| > 1 (the flag raised at a tie). candidates: (..., n, n) bool, the sets C_i of (9.6)."""

    attention: torch.Tensor
    ties: torch.Tensor
    candidates: torch.Tensor


def check_tie_policy(ties: object) -> str | TieRule:
    """``ties`` if it is one of TIE_POLICIES or a callable; else ValueError naming ``ties``."""
    if callable(ties) or ties in TIE_POLICIES:
        return ties  # type: ignore[return-value]
    raise ValueError(f"ties must be one of {', '.join(map(repr, TIE_POLICIES))} or a callable "
                     f"rule(candidates, scores) -> weights, got {ties!r}")


def hardmax_select(scores: torch.Tensor, tol: float = 1e-12, ties: str | TieRule = "average",
                   seed: int = 0) -> HardmaxResult:
    """The hardmax weights of (9.5)–(9.6) under a tie policy (see the module docstring).

    scores: (..., n, n) with a finite entry in every row. tol: tie tolerance ≥ 0 (absolute, on the scores).
    ties: the policy. seed: the seed of the "random" policy's priorities. Returns a :class:`HardmaxResult`.
    Raises ValueError on a bad tol or ties, or when a user rule returns invalid weights.
    """
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not float(tol) >= 0.0:
        raise ValueError(f"tie_tol must be a number >= 0, got {tol!r}")
    check_tie_policy(ties)
    if scores.ndim < 2 or scores.shape[-1] != scores.shape[-2]:
        raise ValueError(f"scores must have shape (..., n, n), got {tuple(scores.shape)}")
    s = scores.detach()
    if bool(torch.isnan(s).any()) or bool((s == float("inf")).any()):
        raise ValueError("scores must be finite or -inf (masked pairs), found NaN or +inf")
    if not bool(torch.isfinite(s).any(-1).all()):
        raise ValueError("scores must leave at least one finite entry in every row (a token attends to none)")
    top = s.amax(-1, keepdim=True)
    cand = torch.isfinite(s) & (s >= top - float(tol))
    flags = cand.sum(-1) > 1
    n = s.shape[-1]
    if ties == "average" or not bool(flags.any()):  # without a tie every policy gives the one-hot argmax
        a = cand.to(scores.dtype)
        return HardmaxResult(a / a.sum(-1, keepdim=True), flags, cand)
    if callable(ties):
        a = torch.as_tensor(ties(cand, scores), dtype=scores.dtype, device=scores.device)
        if a.shape != scores.shape:
            raise ValueError(f"ties rule must return weights of shape {tuple(scores.shape)}, got {tuple(a.shape)}")
        bad = (a < 0).any() or (a.masked_fill(cand, 0.0) != 0).any() or \
            ((a.sum(-1) - 1).abs() > 8 * n * torch.finfo(a.dtype).eps).any()
        if bool(bad):
            raise ValueError("ties rule must return weights >= 0, zero outside the argmax sets, rows summing to 1")
        return HardmaxResult(a, flags, cand)
    if ties == "lowest":
        pick = cand.to(torch.int8).argmax(-1)  # argmax returns the first maximal index
    else:
        gen = torch.Generator().manual_seed(int(seed))
        prio = torch.rand((n, n), generator=gen, dtype=torch.float64).to(scores.device)
        pick = torch.where(cand, prio, torch.full_like(prio, -1.0)).argmax(-1)
    a = torch.nn.functional.one_hot(pick, n).to(scores.dtype)
    return HardmaxResult(a, flags, cand)


def hardmax(scores: torch.Tensor, tol: float = 1e-12, ties: str | TieRule = "average", seed: int = 0) -> torch.Tensor:
    """The hardmax attention matrix of :func:`hardmax_select`. scores: (..., n, n). Returns (..., n, n)."""
    return hardmax_select(scores, tol, ties, seed).attention
