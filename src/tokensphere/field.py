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

from .model import Model

__all__ = ["velocity", "attention", "scores", "tangent_project", "log_normalizer"]


def tangent_project(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """P⊥_x y = y − ⟨x, y⟩ x, row by row (SPEC §2.1). x, y: (..., d). Returns (..., d)."""
    return y - (x * y).sum(-1, keepdim=True) * x


def velocity(
    x: torch.Tensor,
    model: Model,
    t: float | torch.Tensor = 0.0,
    *,
    project: bool | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Velocity ẋ of every token (SPEC (2.3)/(2.7)), for a batch of systems.

    x: (B, n, d) positions (unit vectors when ``model.projection``). model: a :class:`Model` whose per-system
    parameters have batch size 1 or B. t: time, a float or a (B,) tensor (only read by time-dependent
    weights). project: override ``model.projection`` (the authors' Euler step uses the unprojected field).
    chunk_size: if given, stream over key blocks of this size (memory O(B·H·n·chunk_size)).
    Returns (B, n, d) in the dtype of x; tangent to each x_i when projected. Raises ValueError on shape
    mismatches.
    """
    _check_x(x)
    vectorized = getattr(model.schedule, "vectorized", False)
    if model.schedule is not None and isinstance(t, torch.Tensor) and t.numel() > 1 and not vectorized:
        return _by_time_groups(x, model, t, project=project, chunk_size=chunk_size)
    m = _resolve(model, x, t)
    if project is None:
        project = m.projection
    if chunk_size is None and m.is_sa_toy:
        f = _toy_dense(x, m)
    elif chunk_size is None:
        f = _general_dense(x, m)
    else:
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size}")
        f = _streaming(x, m, int(chunk_size))
    if m.sign != 1.0:
        f = f * m.sign
    return tangent_project(x, f) if project else f


def scores(x: torch.Tensor, model: Model, t: float = 0.0) -> torch.Tensor:
    """Attention logits β⟨Q_h x_i, K_h x_j⟩ + b_ij (with −inf where masked). x: (B, n, d). Returns (B, H, n, n)."""
    _check_x(x)
    m = _resolve(model, x, t)
    q, k = _queries_keys(x, m)
    logits = torch.matmul(q * _beta4(m, x), k.transpose(-1, -2))
    bias = _bias(m, x.shape[1], x)
    return logits if bias is None else logits + bias


def attention(x: torch.Tensor, model: Model, t: float = 0.0) -> torch.Tensor:
    """The self-attention matrices A^h (2.5). x: (B, n, d). Returns (B, H, n, n).

    Softmax rows sum to 1. For USA, A_ij = e^{β s_ij − c}/n (c = β in time_scale "exp_beta", else 0).
    """
    m = _resolve(model, x, t)
    logits = scores(x, m)
    if m.normalization == "softmax":
        return torch.softmax(logits, dim=-1)
    return torch.exp(logits - _usa_shift(m, x)) / _usa_count(m, logits)


def log_normalizer(x: torch.Tensor, model: Model, t: float = 0.0) -> torch.Tensor:
    """log Z_{β,i,h} = logsumexp_j (β⟨Q_h x_i, K_h x_j⟩ + b_ij) (2.4). x: (B, n, d). Returns (B, H, n)."""
    return torch.logsumexp(scores(x, model, t), dim=-1)


# ---------------------------------------------------------------------------------------------------------
# back ends


def _toy_dense(x: torch.Tensor, m: Model) -> torch.Tensor:
    """Q = K = V = I, one head, no mask: two batched matmuls and a softmax (the hot path)."""
    beta = m.beta_tensor()
    # scale the queries (O(B·n·d)) rather than the scores (O(B·n²))
    logits = torch.bmm(x * beta.view(-1, 1, 1), x.transpose(1, 2))
    if m.normalization == "softmax":
        a = torch.softmax(logits, dim=-1)
        return torch.bmm(a, x)
    shift = _usa_shift(m, x).view(-1, 1, 1)
    a = torch.exp(logits - shift)
    return torch.bmm(a, x) / x.shape[1]


def _general_dense(x: torch.Tensor, m: Model) -> torch.Tensor:
    q, k = _queries_keys(x, m)
    logits = torch.matmul(q * _beta4(m, x), k.transpose(-1, -2))
    bias = _bias(m, x.shape[1], x)
    if bias is not None:
        logits = logits + bias
    if m.normalization == "softmax":
        a = torch.softmax(logits, dim=-1)
    else:
        a = torch.exp(logits - _usa_shift(m, x)) / _usa_count(m, logits)
    f = torch.matmul(a, _values(x, m))  # (B, H, n, d)
    f = f.sum(1)
    return f / m.heads if m.head_reduction == "mean" else f


def _streaming(x: torch.Tensor, m: Model, c: int) -> torch.Tensor:
    """Online softmax over key blocks: running max, normaliser and weighted sum (memory O(B·H·n·c))."""
    n = x.shape[1]
    q, k = _queries_keys(x, m)
    v = _values(x, m)
    q = q * _beta4(m, x)
    softmax = m.normalization == "softmax"
    shift = None if softmax else _usa_shift(m, x)
    acc = None
    run_max = run_sum = count = None
    for j0 in range(0, n, c):
        j1 = min(j0 + c, n)
        logits = torch.matmul(q, k[..., j0:j1, :].transpose(-1, -2))
        bias = _bias(m, n, x, cols=slice(j0, j1))
        if bias is not None:
            logits = logits + bias
        vb = v[..., j0:j1, :]
        if softmax:
            blk_max = logits.amax(-1, keepdim=True)
            new_max = blk_max if run_max is None else torch.maximum(run_max, blk_max)
            # rows whose keys so far are all masked have max −inf; use 0 there to avoid inf − inf
            safe = torch.where(torch.isfinite(new_max), new_max, torch.zeros_like(new_max))
            w = torch.exp(logits - safe)
            if acc is None:
                acc, run_sum = torch.matmul(w, vb), w.sum(-1, keepdim=True)
            else:
                old = torch.exp(torch.where(torch.isfinite(run_max), run_max, safe) - safe)
                acc = acc * old + torch.matmul(w, vb)
                run_sum = run_sum * old + w.sum(-1, keepdim=True)
            run_max = new_max
        else:
            w = torch.exp(logits - shift)
            term = torch.matmul(w, vb)
            acc = term if acc is None else acc + term
            if m.uniform_count == "attended" and bias is not None:
                cnt = torch.isfinite(bias).to(x.dtype).sum(-1, keepdim=True)
                count = cnt if count is None else count + cnt
    if softmax:
        f = acc / run_sum
    else:
        f = acc / (count if count is not None else n)
    f = f.sum(1)
    return f / m.heads if m.head_reduction == "mean" else f


# ---------------------------------------------------------------------------------------------------------
# pieces shared by the back ends


def _check_x(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of shape (B, n, d), got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {x.dtype}")


def _resolve(model: Model, x: torch.Tensor, t: float | torch.Tensor) -> Model:
    if model.schedule is not None:
        if getattr(model.schedule, "vectorized", False):
            model = model.at(t)
        else:
            model = model.at(float(t.reshape(-1)[0]) if isinstance(t, torch.Tensor) else float(t))
    m = model.to(x.dtype, x.device)
    B, n, d = x.shape
    if m.batch_size not in (1, B):
        raise ValueError(f"model has per-system parameters for B = {m.batch_size} systems but x has B = {B}")
    for name, t_ in (("Q", m._q), ("K", m._k), ("QK", m._qk), ("V", m._v)):  # type: ignore[attr-defined]
        if t_ is not None and t_.shape[-1] != d:
            raise ValueError(f"{name} must have last dimension d = {d}, got shape {tuple(t_.shape[-2:])}")
    if m._qk is not None and m._qk.shape[-2] != d:  # type: ignore[attr-defined]
        raise ValueError(f"QK must have shape (d, d) with d = {d}, got {tuple(m._qk.shape[-2:])}")  # type: ignore
    if m._mask is not None and m._mask.shape[-1] != n:  # type: ignore[attr-defined]
        raise ValueError(f"mask must have shape (n, n) with n = {n}, got {tuple(m._mask.shape[-2:])}")  # type: ignore
    return m


def _beta4(m: Model, x: torch.Tensor) -> torch.Tensor:
    return m.beta_tensor().view(-1, 1, 1, 1)


def _queries_keys(x: torch.Tensor, m: Model) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows q_i, k_j with q_i·k_j = ⟨Q x_i, K x_j⟩: shapes (B, H, n, r)."""
    xh = x.unsqueeze(1)
    if m._q is not None:  # type: ignore[attr-defined]
        return torch.matmul(xh, m._q.transpose(-1, -2)), torch.matmul(xh, m._k.transpose(-1, -2))  # type: ignore
    if m._qk is not None:  # type: ignore[attr-defined]
        return torch.matmul(xh, m._qk), xh.expand(-1, m.heads, -1, -1)  # x_iᵀ (QᵀK) x_j  # type: ignore
    return xh, xh


def _values(x: torch.Tensor, m: Model) -> torch.Tensor:
    """V_h x_j as rows: (B, H, n, d)."""
    xh = x.unsqueeze(1)
    if m._v is None:  # type: ignore[attr-defined]
        return xh
    return torch.matmul(xh, m._v.transpose(-1, -2))  # type: ignore[attr-defined]


def _bias(m: Model, n: int, x: torch.Tensor, cols: slice | None = None) -> torch.Tensor | None:
    """Additive score bias (mask and causal −inf) of shape (·, ·, n, n) or its column block."""
    bias = m._mask  # type: ignore[attr-defined]
    if bias is not None and cols is not None:
        bias = bias[..., cols]
    if m.causal:
        j = torch.arange(n, device=x.device)
        if cols is not None:
            j = j[cols]
        i = torch.arange(n, device=x.device).unsqueeze(1)
        causal = torch.zeros((n, j.numel()), dtype=x.dtype, device=x.device)
        causal = causal.masked_fill(j.unsqueeze(0) > i, -math.inf)
        bias = causal if bias is None else bias + causal
    return bias


def _usa_shift(m: Model, x: torch.Tensor) -> torch.Tensor:
    """c in e^{β s − c}: β for time_scale "exp_beta" (so exponents stay ≤ 0 when scores ≤ 1), else 0."""
    beta = m.beta_tensor()
    if m.time_scale == "exp_beta":
        return beta.view(-1, 1, 1, 1)
    return torch.zeros((1, 1, 1, 1), dtype=x.dtype, device=x.device)


def _usa_count(m: Model, logits: torch.Tensor) -> torch.Tensor | int:
    if m.uniform_count == "attended":
        return torch.isfinite(logits).to(logits.dtype).sum(-1, keepdim=True)
    return logits.shape[-1]


def _by_time_groups(x: torch.Tensor, model: Model, t: torch.Tensor, **kw) -> torch.Tensor:
    """Time-dependent weights with per-system times: evaluate each distinct time on its own systems."""
    t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t.reshape(-1)
    out = torch.empty_like(x)
    for tv in torch.unique(t):
        idx = torch.nonzero(t == tv).reshape(-1)
        out[idx] = velocity(x[idx], model.take(idx), float(tv), **kw)
    return out
