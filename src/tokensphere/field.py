"""THE attention velocity field. Every model variant, integrator, energy and analysis calls this module.

    ẋ_i = P⊥_{x_i} ( Σ_h Σ_j A^h_ij V_h x_j )                                                  (2.3), (2.7)
    A^h_ij = exp(β⟨Q_h x_i, K_h x_j⟩ + b_ij) / Z_{β,i,h}   (softmax, SA)
    A^h_ij = exp(β⟨Q_h x_i, K_h x_j⟩ + b_ij − c) / n       (uniform, USA; c = β when time_scale="exp_beta")

Shapes: positions ``x`` are ``(B, n, d)``; attention and scores are ``(B, H, n, n)``. The softmax subtracts
the row maximum (torch's fused softmax and the streaming path both do), so no β overflows it. Two back ends
give the same numbers: a dense one that materialises the (B, H, n, n) scores, and a streaming one
(``chunk_size=c``) that runs an online softmax over key blocks of size c and needs O(B·H·n·c) memory.
"""

from __future__ import annotations

import math

import torch

from .feedforward import add_feedforward
from .model import Model
from .weights import Weights

__all__ = ["velocity", "attention", "scores", "tangent_project", "log_normalizer", "weights_at"]


def tangent_project(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """P⊥_x y = y − ⟨x, y⟩ x, row by row (the projection of (2.3)). x, y: (..., d). Returns (..., d)."""
    return y - (x * y).sum(-1, keepdim=True) * x


def velocity(
    x: torch.Tensor,
    model: Model,
    t: float | torch.Tensor = 0.0,
    *,
    project: bool | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Velocity ẋ of every token ((2.3), with heads (2.7)), for a batch of systems.

    x: (B, n, d) positions (unit vectors when ``model.projection``). model: a :class:`Model` whose per-system
    parameters have batch size 1 or B. t: time, a float or a (B,) tensor of per-system times (only read by
    time-dependent weights). project: override ``model.projection`` (the authors' Euler step uses the
    unprojected field). chunk_size: if given, stream over key blocks of this size (memory O(B·H·n·chunk_size)).
    Returns (B, n, d) in the dtype of x; tangent to each x_i when projected. Raises ValueError on shape
    mismatches.
    """
    w = weights_at(model, x, t)
    if project is None:
        project = w.projection
    if chunk_size is None and w.toy:
        f = _toy_dense(x, w)
    elif chunk_size is None:
        f = _general_dense(x, w)
    else:
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size}")
        f = _streaming(x, w, int(chunk_size))
    if w.sign != 1.0:
        f = f * w.sign
    f = add_feedforward(f, x, w)  # + w σ(a x_i + b), the feed-forward term of (2.8)
    return tangent_project(x, f) if project else f


def weights_at(model: Model, x: torch.Tensor, t: float | torch.Tensor = 0.0) -> Weights:
    """The model's canonical weights in the dtype/device of x, frozen at time(s) t, checked against x's shape.

    x: (B, n, d). t: a number or a (B,) tensor of per-system times. Raises ValueError on mismatches.
    """
    _check_x(x)
    w = model.weights(x.dtype, x.device)
    if model.schedule is not None:
        tt = t if isinstance(t, torch.Tensor) else torch.tensor(float(t), dtype=torch.float64)
        w = w.with_matrices(model.schedule.matrices(tt, w.heads, x.dtype, x.device))
    _check_shapes(w, x)
    return w


def scores(x: torch.Tensor, model: Model, t: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Attention logits β⟨Q_h x_i, K_h x_j⟩ + b_ij (with −inf where masked). x: (B, n, d). Returns (B, H, n, n)."""
    return _scores(x, weights_at(model, x, t))


def attention(x: torch.Tensor, model: Model, t: float | torch.Tensor = 0.0) -> torch.Tensor:
    """The self-attention matrices A^h (2.5). x: (B, n, d). Returns (B, H, n, n).

    Softmax rows sum to 1. For USA, A_ij = e^{β s_ij − c}/n (c = β in time_scale "exp_beta", else 0).
    """
    w = weights_at(model, x, t)
    return _attention(_scores(x, w), w, x)


def log_normalizer(x: torch.Tensor, model: Model, t: float | torch.Tensor = 0.0) -> torch.Tensor:
    """log Z_{β,i,h} = logsumexp_j (β⟨Q_h x_i, K_h x_j⟩ + b_ij) (2.4). x: (B, n, d). Returns (B, H, n)."""
    return torch.logsumexp(scores(x, model, t), dim=-1)


# ---------------------------------------------------------------------------------------------------------
# back ends


def _toy_dense(x: torch.Tensor, w: Weights) -> torch.Tensor:
    """Q = K = V = I, one head, no mask: two batched matmuls and a softmax (the hot path)."""
    # scale the queries (O(B·n·d)) rather than the scores (O(B·n²))
    logits = torch.bmm(x * w.beta.view(-1, 1, 1), x.transpose(1, 2))
    if w.normalization == "softmax":
        return torch.bmm(torch.softmax(logits, dim=-1), x)
    a = torch.exp(logits - _usa_shift(w, x).view(-1, 1, 1))
    return torch.bmm(a, x) / x.shape[1]


def _scores(x: torch.Tensor, w: Weights) -> torch.Tensor:
    q, k = _queries_keys(x, w)
    logits = torch.matmul(q * w.beta.view(-1, 1, 1, 1), k.transpose(-1, -2))
    bias = _bias(w, x.shape[1], x)
    return logits if bias is None else logits + bias


def _attention(logits: torch.Tensor, w: Weights, x: torch.Tensor) -> torch.Tensor:
    if w.normalization == "softmax":
        return torch.softmax(logits, dim=-1)
    return torch.exp(logits - _usa_shift(w, x)) / _usa_count(w, logits)


def _reduce_heads(f: torch.Tensor, w: Weights) -> torch.Tensor:
    """(B, H, n, d) → (B, n, d): heads summed (2.7), or averaged with head_reduction="mean"."""
    f = f.sum(1)
    return f / w.heads if w.head_reduction == "mean" else f


def _general_dense(x: torch.Tensor, w: Weights) -> torch.Tensor:
    a = _attention(_scores(x, w), w, x)
    return _reduce_heads(torch.matmul(a, _values(x, w)), w)


def _streaming(x: torch.Tensor, w: Weights, c: int) -> torch.Tensor:
    """Online softmax over key blocks: running max, normaliser and weighted sum (memory O(B·H·n·c))."""
    n = x.shape[1]
    q, k = _queries_keys(x, w)
    v = _values(x, w)
    q = q * w.beta.view(-1, 1, 1, 1)
    softmax = w.normalization == "softmax"
    shift = None if softmax else _usa_shift(w, x)
    acc = None
    run_max = run_sum = count = None
    for j0 in range(0, n, c):
        j1 = min(j0 + c, n)
        logits = torch.matmul(q, k[..., j0:j1, :].transpose(-1, -2))
        bias = _bias(w, n, x, cols=slice(j0, j1))
        if bias is not None:
            logits = logits + bias
        vb = v[..., j0:j1, :]
        if softmax:
            blk_max = logits.amax(-1, keepdim=True)
            new_max = blk_max if run_max is None else torch.maximum(run_max, blk_max)
            # rows whose keys so far are all masked have max −inf; use 0 there to avoid inf − inf
            safe = torch.where(torch.isfinite(new_max), new_max, torch.zeros_like(new_max))
            e = torch.exp(logits - safe)
            if acc is None:
                acc, run_sum = torch.matmul(e, vb), e.sum(-1, keepdim=True)
            else:
                old = torch.exp(torch.where(torch.isfinite(run_max), run_max, safe) - safe)
                acc = acc * old + torch.matmul(e, vb)
                run_sum = run_sum * old + e.sum(-1, keepdim=True)
            run_max = new_max
        else:
            term = torch.matmul(torch.exp(logits - shift), vb)
            acc = term if acc is None else acc + term
            if w.uniform_count == "attended" and bias is not None:
                cnt = torch.isfinite(bias).to(x.dtype).sum(-1, keepdim=True)
                count = cnt if count is None else count + cnt
    f = acc / run_sum if softmax else acc / (count if count is not None else n)
    return _reduce_heads(f, w)


# ---------------------------------------------------------------------------------------------------------
# pieces shared by the back ends


def _check_x(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of shape (B, n, d), got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {x.dtype}")


def _check_shapes(w: Weights, x: torch.Tensor) -> None:
    B, n, d = x.shape
    if w.batch not in (1, B):
        raise ValueError(f"model has per-system parameters for B = {w.batch} systems but x has B = {B}")
    for name, t_ in (("Q", w.q), ("K", w.k), ("QK", w.qk), ("V", w.v)):
        if t_ is not None and t_.shape[-1] != d:
            raise ValueError(f"{name} must have last dimension d = {d}, got shape {tuple(t_.shape[-2:])}")
    if w.qk is not None and w.qk.shape[-2] != d:
        raise ValueError(f"QK must have shape (d, d) with d = {d}, got {tuple(w.qk.shape[-2:])}")
    if w.mask is not None and w.mask.shape[-1] != n:
        raise ValueError(f"mask must have shape (n, n) with n = {n}, got {tuple(w.mask.shape[-2:])}")


def _queries_keys(x: torch.Tensor, w: Weights) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows q_i, k_j with q_i·k_j = ⟨Q x_i, K x_j⟩: shapes (B, H, n, r)."""
    xh = x.unsqueeze(1)
    if w.q is not None:
        return torch.matmul(xh, w.q.transpose(-1, -2)), torch.matmul(xh, w.k.transpose(-1, -2))
    if w.qk is not None:
        return torch.matmul(xh, w.qk), xh.expand(-1, w.heads, -1, -1)  # x_iᵀ (QᵀK) x_j
    return xh, xh


def _values(x: torch.Tensor, w: Weights) -> torch.Tensor:
    """V_h x_j as rows: (B, H, n, d)."""
    xh = x.unsqueeze(1)
    return xh if w.v is None else torch.matmul(xh, w.v.transpose(-1, -2))


def _bias(w: Weights, n: int, x: torch.Tensor, cols: slice | None = None) -> torch.Tensor | None:
    """Additive score bias (mask and causal −inf) of shape (·, ·, n, n) or its column block."""
    bias = w.mask
    if bias is not None and cols is not None:
        bias = bias[..., cols]
    if w.causal:
        j = torch.arange(n, device=x.device)
        if cols is not None:
            j = j[cols]
        i = torch.arange(n, device=x.device).unsqueeze(1)
        causal = torch.zeros((n, j.numel()), dtype=x.dtype, device=x.device)
        causal = causal.masked_fill(j.unsqueeze(0) > i, -math.inf)
        bias = causal if bias is None else bias + causal
    return bias


def _usa_shift(w: Weights, x: torch.Tensor) -> torch.Tensor:
    """c in e^{β s − c}: β for time_scale "exp_beta" (so exponents stay ≤ 0 when scores ≤ 1), else 0."""
    if w.time_scale == "exp_beta":
        return w.beta.view(-1, 1, 1, 1)
    return torch.zeros((1, 1, 1, 1), dtype=x.dtype, device=x.device)


def _usa_count(w: Weights, logits: torch.Tensor) -> torch.Tensor | int:
    if w.uniform_count == "attended":
        return torch.isfinite(logits).to(logits.dtype).sum(-1, keepdim=True)
    return logits.shape[-1]
