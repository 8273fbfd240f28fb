"""Sinkhorn (doubly stochastic) attention, Remark 3.5 of the paper (Sinkformers).

The kernel matrix K_ij = e^{s_ij} (scores s_ij = β⟨Q x_i, K x_j⟩ + b_ij) is scaled as A = diag(e^f) K diag(e^g)
until every row and every column of A sums to 1. Sinkhorn's iterations alternate the two normalisations:

    start      f_i = −log Σ_j e^{s_ij}                      (one row normalisation: softmax)
    iterate    g_j = −log Σ_i e^{s_ij + f_i}                 (columns)
               f_i = −log Σ_j e^{s_ij + g_j}                 (rows)

until max_j |Σ_i A_ij − 1| ≤ tol (read every CHECK_EVERY iterations) or ``iters`` iterations. Everything stays in the log domain (log-sum-exp), so
β up to 10^4 neither overflows nor underflows; every iteration ends with a row normalisation, so rows sum to 1
to round-off and the recorded error is the column error. With ``iters = 0`` the result is softmax.

Masked entries (s_ij = −inf) stay exactly 0. A doubly stochastic scaling exists only when the pattern of
finite entries has total support (Sinkhorn–Knopp); a causal (triangular) pattern has none and the iterations
drift towards the identity instead: the recorded error says so.

Shapes: scores are (..., n, n), usually (B, H, n, n); the result has the same shape.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

__all__ = ["SinkhornResult", "sinkhorn", "sinkhorn_log", "CHECK_EVERY"]

CHECK_EVERY = 8  # iterations between two reads of the column error


@dataclass(frozen=True)
class SinkhornResult:
    """The outcome of :func:`sinkhorn_log`.

    log_attention: (..., n, n) log A (−inf where masked). iterations: the column/row iterations done.
    error: max over matrices and columns of |Σ_i A_ij − 1| after the last row normalisation. tol: the target.
    """

    log_attention: torch.Tensor
    iterations: int
    error: float
    tol: float

    @property
    def converged(self) -> bool:
        """True when the column error reached the tolerance."""
        return self.error <= self.tol


TOL_FLOOR_EPS = 64  # the tolerance is raised to this many machine epsilons of the scores' dtype


def _check(iters: int, tol: float) -> tuple[int, float]:
    """(iters, tol) validated: an integer ≥ 0 (NumPy integers too) and a real number in [0, 1]."""
    if isinstance(iters, bool) or not isinstance(iters, numbers.Integral) or iters < 0:
        raise ValueError(f"sinkhorn_iters must be an integer >= 0, got {iters!r}")
    if not (isinstance(tol, numbers.Real) and not isinstance(tol, bool) and 0.0 <= float(tol) <= 1.0):
        raise ValueError(f"sinkhorn_tol must be a number in [0, 1], got {tol!r}")
    return int(iters), float(tol)


def sinkhorn_log(scores: torch.Tensor, iters: int = 100, tol: float = 1e-9) -> SinkhornResult:
    """Sinkhorn scaling of e^{scores} in the log domain (see the module docstring).

    scores: (..., n, n) real, −inf for masked pairs (every row and column must keep a finite entry).
    iters: at most this many column + row iterations (≥ 0; 0 gives softmax). tol: stop once the largest
    column-sum error is ≤ tol, a tol below TOL_FLOOR_EPS machine epsilons of the scores' dtype being raised to
    that (column sums of float32 scores carry errors of ~1e-7, so the default 1e-9 would never be reached; in
    float64 the floor is 1.4e-14). Returns a :class:`SinkhornResult` (its ``tol``: the one used); differentiable
    in ``scores``.
    Raises ValueError on a bad ``iters``/``tol``, a NaN or +inf score, or a row or column without a finite
    entry.
    """
    iters, tol = _check(iters, tol)
    if scores.ndim < 2 or scores.shape[-1] != scores.shape[-2]:
        raise ValueError(f"scores must have shape (..., n, n), got {tuple(scores.shape)}")
    if bool(torch.isnan(scores).any()) or bool((scores == float("inf")).any()):
        raise ValueError("scores must be finite or -inf (masked pairs), found NaN or +inf")
    finite = torch.isfinite(scores)
    if bool((~finite.any(-1)).any()) or bool((~finite.any(-2)).any()):
        raise ValueError("scores must keep a finite entry in every row and every column (a fully masked column "
                         "cannot be scaled to sum 1)")
    if scores.is_floating_point():
        tol = max(tol, TOL_FLOOR_EPS * torch.finfo(scores.dtype).eps)
    f = -torch.logsumexp(scores, dim=-1, keepdim=True)  # (..., n, 1): the row normalisation
    g = torch.zeros_like(f).transpose(-1, -2)
    done = 0
    err = _column_error(scores + f)
    while done < iters and err > tol:
        # the column error is read every CHECK_EVERY iterations (each read is a log-sum-exp and a sync)
        for _ in range(min(CHECK_EVERY, iters - done)):
            g = -torch.logsumexp(scores + f, dim=-2, keepdim=True)  # (..., 1, n): columns
            f = -torch.logsumexp(scores + g, dim=-1, keepdim=True)  # rows (the last normalisation)
            done += 1
        err = _column_error(scores + f + g)
    return SinkhornResult(scores + f + g, done, err, float(tol))


def _column_error(log_a: torch.Tensor) -> float:
    """max_j |Σ_i A_ij − 1| over all matrices (A = exp(log_a)), from the log column sums."""
    with torch.no_grad():
        return float(torch.expm1(torch.logsumexp(log_a, dim=-2)).abs().max()) if log_a.numel() else 0.0


def sinkhorn(scores: torch.Tensor, iters: int = 100, tol: float = 1e-9) -> torch.Tensor:
    """The doubly stochastic attention matrix A = exp(:func:`sinkhorn_log` (scores).log_attention).

    scores: (..., n, n). Returns (..., n, n): rows sum to 1 to round-off, columns to within ``tol`` once
    converged, masked entries exactly 0.
    """
    return sinkhorn_log(scores, iters, tol).log_attention.exp()
