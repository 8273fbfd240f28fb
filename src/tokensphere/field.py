"""THE attention velocity field. Every model variant, integrator, energy and analysis calls this module.

    ẋ_i = P⊥_{x_i} ( Σ_h Σ_j A^h_ij V_h x_j )                                                  (2.3), (2.7)
    A^h_ij = exp(β⟨Q_h x_i, K_h x_j⟩ + b_ij) / Z_{β,i,h}   (softmax, SA)
    A^h_ij = exp(β⟨Q_h x_i, K_h x_j⟩ + b_ij − c) / n       (uniform, USA; c = β when time_scale="exp_beta")
    A^h = Sinkhorn(exp(β⟨Q_h x_i, K_h x_j⟩ + b_ij))       (sinkhorn: doubly stochastic, Remark 3.5)
    A^h_ij = 1{j ∈ C_i}/|C_i|, C_i = argmax_j ⟨Q_h x_i, K_h x_j⟩   (hardmax, β → ∞, (9.5)–(9.6))
    centered=True: V_h x_j replaced by V_h (x_j − x_i), the rescaled dynamics (9.4)
    norm="pre" | "rms" | "ngpt": the continuous forms of other block normalisations (docs/blocks.md)

Shapes: positions ``x`` are ``(B, n, d)``; attention and scores are ``(B, H, n, n)``. Every back end shifts
the exponents by a bound on the row's scores, so no β overflows them. Five back ends give the same numbers
(to round-off); :func:`plan` picks one from the model, the shapes and the free memory (``velocity`` calls it,
the user never has to):

- ``fused``: the toy model (Q = K = V = I, one head, no mask), batches of small systems. One matrix product
  for the scores β⟨x_i, x_j⟩, the exponentials in place, one product for the weighted sums Σ_j e_ij x_j. By
  Cauchy–Schwarz |β⟨x_i, x_j⟩| ≤ β max_j |x_j|² (the largest diagonal score), so while that is below the
  dtype's margin (600 in float64, 70 in float32: β ≤ 600 for unit vectors) no shift is needed at all; above
  it the row maximum (SA) or the model's shift (USA) is subtracted. On the CPU the batch runs in cache-sized
  blocks of systems, drawn by the lanes of :func:`tokensphere.runtime.run_lanes` (one thread each; the result
  does not depend on their number); each block ends with one compiled pass per row
  (:mod:`tokensphere.rowpass`: Z_i, the projection, 1/Z_i and the write).
- ``symmetric``: the toy model at large n in float64, without gradients. e_ij = e_ji, so only the blocks of
  tokens I ≤ J are computed (block rows against strips of columns), each serving the rows of I and
  (transposed) of J: 3/4 of the products and half the exponentials, memory O(B·(n·d + block²)). No shift is
  possible here; beyond the margin it hands the call to ``sdpa``.
- ``sdpa``: torch's fused CPU attention (flash attention with an online softmax, memory O(n·d)); it also
  returns log Z_i, from which the uniform (USA) field is recovered. Q, K, V, heads, masks, causal.
- ``dense``: materialises the (B, H, n, n) scores (the general reference path).
- ``streaming`` (``chunk_size=c``, or chosen when the dense scores do not fit): an online softmax over key
  blocks of size c, memory O(B·H·n·c).
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass

import numpy as np
import torch

from .feedforward import add_feedforward, feedforward_term
from .hardmax import hardmax
from .model import Model
from .norms import ellipsoid_project, sphere
from .rowpass import as_array, row_finisher, transposer
from .runtime import kernel_lanes, memory_budget, run_lanes, torch_threads
from .sinkhorn import sinkhorn
from .validate import validate_int
from .weights import Weights

__all__ = ["velocity", "attention", "scores", "tangent_project", "log_normalizer", "weights_at", "plan", "KernelPlan"]


def tangent_project(
    x: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None = None, work: torch.Tensor | None = None
) -> torch.Tensor:
    """P⊥_x y = y − ⟨x, y⟩ x, row by row (the projection of (2.3)). x, y: (..., d). Returns (..., d), written
    into ``out`` when given (``out`` may be ``y`` itself); ``work``, a scratch tensor of y's shape, saves the
    temporary of the row products."""
    return torch.addcmul(y, _rowdot(x, y, work), x, value=-1.0, out=out)


def _rowdot(a: torch.Tensor, b: torch.Tensor, work: torch.Tensor | None = None) -> torch.Tensor:
    """⟨a_i, b_i⟩ over the last axis, keepdim. The product followed by a product with a column of ones is
    several times faster than torch's reduction over a short last axis when d is small or the operands fit in
    the core's cache (a block of the fused path); for large arrays einsum avoids the (…, d) temporary."""
    d = a.shape[-1]
    if work is not None or (a.numel() >= 4096 and (d <= 16 or a.numel() * a.element_size() <= _CACHE_BYTES)):
        prod = a * b if work is None else torch.mul(a, b, out=work)
        return torch.matmul(prod, _ones(d, a.dtype, a.device))
    return torch.einsum("...i,...i->...", a, b).unsqueeze(-1)


_WORKSPACES = threading.local()  # per thread: the fused path's block buffers, reused across calls


def _workspace(step: int, n: int, d: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Block buffers of the fused path for blocks of ``step`` systems of (n, d): scores (step, n, n), weighted
    sums (step, n, d) and the scaled, transposed keys (step, d, n).
    Kept per thread (concurrent calls from other threads get their own) for the last few shapes, so repeated
    calls reuse them instead of asking the allocator for fresh, cold memory each time (each block is at most
    a few hundred KiB: the cache-sized blocks)."""
    cache = getattr(_WORKSPACES, "buffers", None)
    if cache is None:
        cache = _WORKSPACES.buffers = {}
    key = (step, n, d, dtype, device)
    bufs = cache.pop(key, None)
    if bufs is None:
        with torch.inference_mode(False):
            bufs = tuple(torch.empty(shape, dtype=dtype, device=device) for shape in
                         ((step, n, n), (step, n, d), (step, d, n)))
        while len(cache) >= 4:  # the oldest shape goes
            cache.pop(next(iter(cache)))
    cache[key] = bufs  # most recent last
    return bufs


@functools.lru_cache(maxsize=64)
def _ones(d: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A (d, 1) column of ones (row sums by a matrix product), made once per (d, dtype, device) — outside
    inference mode, so that it can also enter products that autograd records."""
    with torch.inference_mode(False):
        return torch.ones((d, 1), dtype=dtype, device=device)


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
    unprojected field). chunk_size: if given, stream over key blocks of this size (memory O(B·H·n·chunk_size));
    by default :func:`plan` chooses the back end (and a chunk size when needed) from the free memory.
    Returns (B, n, d) in the dtype of x; tangent to each x_i when projected. Differentiable in x and in the
    model's tensors. Raises ValueError on shape mismatches, MemoryError when no back end fits in memory.
    """
    w = weights_at(model, x, t)
    if project is None:
        project = w.projection
    y, x = x, (sphere(x) if w.norm == "pre" else x)  # pre-norm: F reads the normalised stream N(y)
    p = _plan(x, w, chunk_size)  # the one dispatch: back end chosen by plan()
    if project and p.backend == "fused" and w.norm == "post" and not w.centered and w.ff_w is None:
        f = _toy_dense(x, w, p.block, project=True)  # projected block by block, in the core's cache
        return f if w.sign == 1.0 else (f * w.sign if f.requires_grad else f.mul_(w.sign))
    if p.backend in ("sdpa", "symmetric") and x.device.type == "cpu":  # large products: torch's threads
        with torch_threads(max(kernel_lanes(), torch.get_num_threads())):
            f = _run(p, x, w)
    else:
        f = _run(p, x, w)
    if w.centered:  # Σ_j A_ij V (x_j − x_i) = Σ_j A_ij V x_j − V x_i (rows sum to 1), (9.4), for every head
        f = f - _reduce_heads(_values(x, w).expand(-1, w.heads, -1, -1), w)
    if w.sign != 1.0:
        f = f * w.sign
    if w.norm == "ngpt":  # each term normalised to unit length (docs/blocks.md)
        ff = feedforward_term(x, w)
        f = sphere(f) if ff is None else sphere(f) + sphere(ff)
    else:
        f = add_feedforward(f, x, w)  # + w σ(a x_i + b), the feed-forward term of (2.8)
    if w.norm == "rms":  # always: the tangent projection of the ellipsoid Σ_k (y_k/g_k)² = d along y
        return ellipsoid_project(y, f, w.norm_gain)
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
    """Attention logits β⟨Q_h x_i, K_h x_j⟩ + b_ij (with −inf where masked; without β for hardmax, (9.6)).
    x: (B, n, d). Returns (B, H, n, n)."""
    w = weights_at(model, x, t)
    _require_nn_fits(x, w, "scores")
    return _scores(x, w)


def attention(x: torch.Tensor, model: Model, t: float | torch.Tensor = 0.0) -> torch.Tensor:
    """The self-attention matrices A^h (2.5). x: (B, n, d). Returns (B, H, n, n).

    Softmax rows sum to 1. For USA, A_ij = e^{β s_ij − c}/n (c = β in time_scale "exp_beta", else 0). Sinkhorn
    (Remark 3.5) rows and columns sum to 1; hardmax (9.5)–(9.6) is uniform on each row's argmax set.
    """
    w = weights_at(model, x, t)
    _require_nn_fits(x, w, "attention")
    return _attention(_scores(x, w), w, x)


def log_normalizer(x: torch.Tensor, model: Model, t: float | torch.Tensor = 0.0) -> torch.Tensor:
    """log Z_{β,i,h} = logsumexp_j (β⟨Q_h x_i, K_h x_j⟩ + b_ij) (2.4). x: (B, n, d). Returns (B, H, n).

    When the (B, H, n, n) scores do not fit in memory (CPU, softmax or uniform models) it comes from torch's
    fused attention in O(n·d) memory (a row with every key masked then reads 0, not −inf)."""
    w = weights_at(model, x, t)
    flash_ok = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    if flash_ok and w.normalization in ("softmax", "uniform") and not _nn_fits(x, w):
        return _flash(x, w)[1]
    _require_nn_fits(x, w, "log_normalizer")
    return torch.logsumexp(_scores(x, w), dim=-1)


def _nn_fits(x: torch.Tensor, w: Weights) -> bool:
    """Whether two (B, H, n, n) tensors of x's dtype fit in the memory one call may use."""
    B, n, _ = x.shape
    nbytes = 2 * B * w.heads * n * n * x.element_size()
    return nbytes <= SMALL_BYTES or nbytes <= memory_budget(x.device)


def _require_nn_fits(x: torch.Tensor, w: Weights, what: str) -> None:
    if not _nn_fits(x, w):
        B, n, _ = x.shape
        need = 2 * B * w.heads * n * n * x.element_size()
        raise MemoryError(
            f"{what}: the (B, H, n, n) = ({B}, {w.heads}, {n}, {n}) matrices need {need / 2**30:.2f} GiB but only "
            f"{memory_budget(x.device) / 2**30:.2f} GiB may be used; pass fewer systems or tokens (velocity itself "
            "needs no n × n matrix)"
        )


# ---------------------------------------------------------------------------------------------------------
# the plan: which back end runs, chosen from the model, the shapes and the free memory

# general models: from this many tokens on torch's fused attention (O(n·d) memory) rather than dense scores
SDPA_MIN_N = 256
# the toy model: the fused path below this many tokens (the fastest there at every d measured, 1.2–1.4× ahead
# of the fused attention at n = 256–384, d ≥ 32); from it on the symmetric back end in float64 (1.06–1.2×
# ahead of both at n = 768, 1.16–1.42× ahead of the fused attention at n = 2048–4096) and the fused attention
# in float32 (the three about equal at n = 512; benchmarks/bench_backends.py, BENCHMARKS.md)
FUSED_MAX_N = 512
SYMMETRIC_MIN_N = FUSED_MAX_N
SYMMETRIC_BLOCK = 512  # its blocks of tokens (rows), taken against strips of SYMMETRIC_STRIP blocks of columns:
SYMMETRIC_STRIP = 4  # products of 512 × 2048 × d, an 8 MiB score strip per system (with the padded values:
#                      4–14 % faster than one product per pair of blocks at n = 2048–8192, BENCHMARKS.md)
SMALL_BYTES = 256 * 1024**2  # temporaries below this size never trigger a memory probe
LINEAR_ARRAYS = 4  # about the (B, H, n, d) arrays the back ends beside the fused one hold at once (padding aside)
# |exponent| below which e^{±exponent} neither overflows nor underflows, with room for sums of n terms
_EXP_MARGIN = {torch.float64: 600.0, torch.float32: 70.0}
_CACHE_BYTES = 512 * 1024  # operands that count as in the core's cache (products and row sums in _rowdot)
# a block's working set in the fused toy path: its scores, transposed keys, weighted sums, positions and output,
# (n² + 4·n·d) values per system, held in half a 1.25 MiB L2 (BENCHMARKS.md: blocks of 16 systems at (2048, 32,
# 32), 64 at (2048, 32, 2))
_BLOCK_BYTES = 640 * 1024
_BLOCK_MIN = 4  # systems per block at least, while their scores fit in _CACHE_BYTES (see block_systems)
_LANES_MIN_SCORES = 1 << 20  # B·n² from which the fused path spreads its blocks over lanes (≥ 2 blocks per lane)
_TINY = 8192  # B·n² up to which the fused path runs as three plain torch calls (per-call overhead dominates)


def _exp_margin(dt: torch.dtype) -> float:
    """Largest exponent the unshifted exponentials may reach in dtype dt: 600 (float64), 70 (float32), else
    ⌊ln max⌋ − 10 (78 for bfloat16, 1 for float16, whose e^11.1 already overflows)."""
    if dt in _EXP_MARGIN:
        return _EXP_MARGIN[dt]
    return float(math.floor(math.log(torch.finfo(dt).max)) - 10)


@dataclass(frozen=True)
class KernelPlan:
    """The back end :func:`velocity` uses for a given input, and why.

    backend: "fused", "symmetric", "sdpa", "dense" or "streaming" (see the module docstring). block: systems
    per block of the fused path (< B when the whole batch's scores would not fit). chunk_size: the key-block
    size of the streaming path, the token blocks of the symmetric one. reason: one line.
    """

    backend: str
    block: int | None = None
    chunk_size: int | None = None
    reason: str = ""

    def describe(self) -> str:
        """A short label: "fused", "sdpa", "dense", "streaming (chunk 512)", "fused (blocks of 64)"."""
        if self.backend == "streaming":
            return f"streaming (chunk {self.chunk_size})"
        if self.backend == "symmetric":
            return f"symmetric (blocks of {self.chunk_size})"
        if self.backend == "fused" and self.block is not None:
            return f"fused (blocks of {self.block})"
        return self.backend


_FUSED = KernelPlan("fused", reason="toy model, small systems")
_SDPA = KernelPlan("sdpa", reason="fused attention (online softmax, O(n·d) memory)")
_DENSE = KernelPlan("dense", reason="general weights, scores fit in memory")


def plan(x: torch.Tensor, model: Model, t: float | torch.Tensor = 0.0, *, chunk_size: int | None = None) -> KernelPlan:
    """The back end ``velocity(x, model, t, chunk_size=chunk_size)`` runs, with its block sizes.

    x: (B, n, d). Reads the free memory (:func:`tokensphere.runtime.available_memory`) only when the dense
    temporaries would exceed 256 MiB. Raises MemoryError when not even the streaming path fits.
    """
    w = weights_at(model, x, t)
    return _plan(x, w, chunk_size)


def _needs_grad(x: torch.Tensor, w: Weights) -> bool:
    if not torch.is_grad_enabled():
        return False
    return x.requires_grad or any(t.requires_grad for t in w._tensors())


def _plan(x: torch.Tensor, w: Weights, chunk_size: int | None) -> KernelPlan:
    B, n, d = x.shape
    if chunk_size is not None:
        chunk_size = validate_int("chunk_size", chunk_size, minimum=1)
        if w.normalization in ("sinkhorn", "hardmax"):
            raise ValueError(f"chunk_size (streaming) cannot run normalization={w.normalization!r}, which needs "
                             "the whole n × n attention matrix; leave chunk_size=None")
        return KernelPlan("streaming", chunk_size=int(chunk_size), reason="chunk_size given")
    size, H = x.element_size(), w.heads
    budget: list[int] = []

    def fits(nbytes: int) -> bool:
        if nbytes <= SMALL_BYTES:
            return True
        if not budget:
            budget.append(memory_budget(x.device))
        return nbytes <= budget[0]

    if w.normalization in ("sinkhorn", "hardmax"):  # they need the whole (n, n) matrix: dense only
        need = 4 * B * H * n * n * size
        if fits(need):
            return KernelPlan("dense", reason=f"{w.normalization} attention needs the whole n × n matrix")
        raise MemoryError(
            f"velocity: normalization={w.normalization!r} needs the dense (B, H, n, n) = ({B}, {H}, {n}, {n}) "
            f"attention ({need / 2**30:.2f} GiB) but only {budget[0] / 2**30:.2f} GiB may be used; evaluate "
            "fewer systems or tokens at a time"
        )
    if w.toy and n < FUSED_MAX_N:
        per_system = 2 * n * n * size
        if fits(B * per_system):
            return _FUSED
        if fits(per_system) and not _needs_grad(x, w):  # with autograd the fused path takes one whole block
            block = max(1, (budget[0] if budget else SMALL_BYTES) // per_system)
            return KernelPlan("fused", block=int(block), reason="toy model, batch in blocks that fit")
    # every other back end holds a few (B, H, n, ·) arrays (queries, padded values, accumulators, the output):
    # refuse at once when even those do not fit, before any of them is allocated
    linear = LINEAR_ARRAYS * B * H * n * d * size
    if not fits(linear):
        raise MemoryError(
            f"velocity: its O(B·H·n·d) arrays alone need about {linear / 2**30:.2f} GiB for (B, H, n, d) = "
            f"({B}, {H}, {n}, {d}) but only {budget[0] / 2**30:.2f} GiB may be used; evaluate fewer systems or "
            "tokens at a time"
        )
    grad = _needs_grad(x, w)
    sdpa_ok = (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and not (grad and w.normalization != "softmax")  # its log-sum-exp output has no gradient
        and not (grad and w.mask is not None and w.mask.requires_grad)
    )
    dense_bytes = 3 * B * H * n * n * size
    if (sdpa_ok and not grad and w.toy and n >= SYMMETRIC_MIN_N and w.normalization in ("softmax", "uniform")
            and x.dtype == torch.float64):  # in float32 torch's fused attention is the faster (0.9×)
        # its (B, c, SYMMETRIC_STRIP·c) score strip, halved while it does not fit (many systems at once)
        c = SYMMETRIC_BLOCK
        while c > 64 and not fits(SYMMETRIC_STRIP * B * c * c * size):
            c //= 2
        if fits(SYMMETRIC_STRIP * B * c * c * size):
            return KernelPlan("symmetric", chunk_size=c, reason="toy model, large n: half the scores")
    if sdpa_ok and (n >= SDPA_MIN_N or not fits(dense_bytes)):
        return _SDPA
    if fits(dense_bytes):
        return _DENSE
    avail = budget[0]
    c = min(n, avail // (3 * B * H * n * size))
    if c < 1:
        raise MemoryError(
            f"velocity: even one key column per block needs {3 * B * H * n * size / 2**30:.2f} GiB for (B, H, n) = "
            f"({B}, {H}, {n}) but only {avail / 2**30:.2f} GiB may be used; evaluate fewer systems at a time"
        )
    return KernelPlan("streaming", chunk_size=int(c), reason="dense scores do not fit: key blocks sized to memory")


def _run(p: KernelPlan, x: torch.Tensor, w: Weights) -> torch.Tensor:
    if p.backend == "fused":
        return _toy_dense(x, w) if p.block is None else _toy_dense(x, w, p.block)
    if p.backend == "sdpa":
        return _sdpa(x, w)
    if p.backend == "symmetric":
        f = _symmetric(x, w, p.chunk_size)
        return _sdpa(x, w) if f is None else f
    if p.backend == "dense":
        return _general_dense(x, w)
    return _streaming(x, w, p.chunk_size)


# ---------------------------------------------------------------------------------------------------------
# back ends


def block_systems(n: int, d: int, itemsize: int) -> int:
    """Systems of (n, d) per block of the fused path: as many as keep a block's working set — scores (n, n),
    transposed keys (d, n), weighted sums, positions and output (n, d) each — within ``_BLOCK_BYTES``; but at
    least ``_BLOCK_MIN`` while their scores fit in ``_CACHE_BYTES`` (each batched product has a fixed cost, ~9 µs
    a call at n = 128, d = 64, one thread: blocks of one system at (16, 128, 64) ran 0.88–0.92× the speed of
    blocks of four, ``benchmarks/bench_field_ab.py``), and at least one."""
    by_set = _BLOCK_BYTES // ((n * n + 4 * n * d) * itemsize)
    return max(1, by_set, min(_BLOCK_MIN, _CACHE_BYTES // (n * n * itemsize)))


def _lane_count(B: int, n: int, blocks: int) -> int:
    """Lanes for the fused path's blocks: one per core (``kernel_lanes``) with at least two blocks each, and
    only for batches of a million scores or more (waking a worker is not free, and the lanes share one
    interpreter lock)."""
    return min(kernel_lanes(), blocks // 2) if B * n * n >= _LANES_MIN_SCORES else 1


def _reads_are_free(x: torch.Tensor) -> bool:
    """Whether reading a value of x's device to the host costs nothing (the CPU). Elsewhere (CUDA) each read
    waits for the device, so the back ends decide from shapes alone and keep every value on the device."""
    return x.device.type == "cpu"


def _toy_dense(
    x: torch.Tensor, w: Weights, block: int | None = None, project: bool = False, stable: bool = False
) -> torch.Tensor:
    """Q = K = V = I, one head, no mask: G = β⟨x_i, x_j⟩ by one product, the exponentials in place, one
    product for Σ_j e_ij x_j, then one compiled pass per row (:func:`tokensphere.rowpass.finish_rows`) for
    the row sums Z_i and, with ``project``, the tangent projection, so the field of (2.3) comes out in one
    sweep over the batch.

    No row maximum in the common case: |β⟨x_i, x_j⟩| ≤ β max_j|x_j|², read off the diagonal of G, so while
    that bound is below the dtype's margin the exponentials neither overflow nor underflow (and keep their
    relative accuracy), and softmax is invariant under the shift. Beyond it (β in the hundreds) the row
    maximum is subtracted (SA) or the model's shift c (USA, time_scale "exp_beta"). SA on the CPU with β below
    the margin less log n + 1 skips the bound: every row holds its diagonal term e^{β|x_i|²} ≥ 1, so no row
    sum can vanish, and one check of all row sums after the sweep decides — each at most e^margin, hence every
    term too, as the bound guaranteed (a finite sum is not enough: with |x_j| > 1, Σ_j e_ij x_j can overflow
    below it); if it fails (|x_j|² ≫ 1), the batch is evaluated again with the row maximum subtracted. Off the
    CPU no value is read to decide this (each read would wait for the device): the shifted form is always
    used. On the CPU without gradients (float32, float64) the batch runs in blocks of systems whose working
    set takes about 640 KiB (:func:`block_systems`; on one lane at least one system per torch thread), each
    block's scores, sums and projection computed in preallocated buffers while they stay in the core's cache
    (2–3× fewer passes over memory than whole-batch operations at (2048, 32, 32)); the score product reads a
    compiled transposed copy of the block, scaled by β (:func:`tokensphere.rowpass.scaled_transpose`), so
    both of its operands are in stored order."""
    B, n, d = x.shape
    softmax = w.normalization == "softmax"
    if B * n * n <= _TINY:  # a few thousand scores: the fewest torch calls win (torch's softmax subtracts the max)
        g = torch.bmm(x * w.beta.view(-1, 1, 1), x.transpose(1, 2))
        if softmax:
            f = torch.bmm(torch.softmax(g, dim=-1), x)
        else:
            f = torch.bmm(torch.exp(g - _usa_shift(w, x).view(-1, 1, 1)), x) / n
        return tangent_project(x, f) if project else f
    dt, dev = x.dtype, x.device
    host = _reads_are_free(x)  # else every value read below would wait for the device: always stabilise
    unit_beta = host and w.beta.numel() == 1 and not w.beta.requires_grad and float(w.beta) == 1.0
    margin = _exp_margin(dt)
    exp_beta = not softmax and w.time_scale == "exp_beta"
    big_beta = exp_beta and (not host or float(w.beta.detach().max()) > margin)
    shift = None if softmax else _usa_shift(w, x).reshape(-1, 1, 1)  # (1 or B, 1, 1)
    # one block, out of place: for autograd, off the CPU (the cache-sized blocks are a CPU idea; on a GPU they
    # would only add kernel launches and a host read per block), and in half precision (the compiled last pass
    # is for float32 and float64)
    grad = ((torch.is_grad_enabled() and (x.requires_grad or w.beta.requires_grad)) or x.device.type != "cpu"
            or dt not in (torch.float32, torch.float64))
    # SA, β below the margin (less log n: unit inputs then pass the check), no autograd: exponentials taken as
    # they are, all row sums checked once at the end
    optimistic = softmax and host and not grad and not stable and float(w.beta.max()) <= margin - math.log(n) - 1
    floor = math.exp(-margin)  # every row sum at most e^margin, hence every term, as the bound guaranteed
    # otherwise the bound max_b β_b max_j |x_j|² (= the largest diagonal score): from x for small d (one pass
    # over B·n·d), else from the diagonal of each block of scores
    bound = None
    if host and d <= 16 and not optimistic:
        sq = torch.matmul(x.detach() * x.detach(), torch.ones((d, 1), dtype=dt, device=dev)).amax()
        bound = float(sq) * float(w.beta.detach().max())
    if grad:
        step = B
    else:
        cap = B if block is None else min(B, block)  # a block the memory allows (plan)
        step = min(cap, block_systems(n, d, x.element_size()))
        if _lane_count(B, n, -(-B // step)) == 1:
            # one lane: the products of a block share torch's threads, which split a batched product by
            # systems — blocks of one system left a second thread idle (measured at (16, 128, 64) with blocks
            # of one: 0.90× the baseline's speed on two threads against 1.06–1.12× with blocks of 2–8)
            step = max(step, min(cap, torch.get_num_threads()))
    xt = x.transpose(1, 2)

    # the blocks' views, made by one call each (cheaper than slicing every block in Python)
    cuts = list(range(step, B, step))
    xs, xts = x.tensor_split(cuts), xt.tensor_split(cuts)
    betas = None if w.beta.numel() == 1 else w.beta.tensor_split(cuts)
    shifts = None if shift is None or shift.shape[0] == 1 else shift.tensor_split(cuts)

    def sweep(i: int, bufs: tuple | None) -> torch.Tensor | None:
        """The field of block i (systems i·step …): returned (autograd, out of place), or written into ``out``
        through the block buffers ``bufs`` (sized for a whole block, the last block may be shorter: tensors,
        then NumPy views of the scores and products for the compiled pass)."""
        xb = xs[i]
        k = xb.shape[0]
        beta = w.beta if betas is None else betas[i]
        if bufs is None:
            q = xb if unit_beta else xb * beta.view(-1, 1, 1)
            g = torch.bmm(q, xts[i])
        else:
            if k < step:
                bufs = tuple(b[:k] for b in bufs)
            g_buf, y_buf, t_buf, g_np, y_np, t_np = bufs
            transpose(x_np, beta_np, t_np, i * step)  # β_b x_bᵀ, so the product takes both in stored order
            g = torch.bmm(xb, t_buf, out=g_buf)  # β⟨x_i, x_j⟩
        if optimistic:
            plain = True
        elif host:
            # β ≥ 0 (validated)
            blk_bound = bound if bound is not None else float(g.detach().diagonal(0, 1, 2).amax())
            plain = blk_bound <= margin and not big_beta
        else:
            plain = False
        if plain:
            e = g.exp_()
        elif softmax:
            e = g.sub_(g.amax(-1, keepdim=True).detach()).exp_()
        else:
            e = g.sub_(shift if shifts is None else shifts[i]).exp_()
        num = torch.bmm(e, xb) if bufs is None else torch.bmm(e, xb, out=y_buf)  # Σ_j e_ij x_j
        if not softmax:
            den = n * torch.exp(beta).view(-1, 1, 1) if plain and exp_beta else n
        elif bufs is None:
            den = e.sum(-1, keepdim=True)
        else:
            den = None  # the row sums of e, taken in the compiled pass below
        if bufs is None:
            f = num / den
            return tangent_project(xb, f) if project else f
        # Z_i, P⊥ (linear: applied to Σ_j e_ij x_j before the scaling) and 1/Z_i in one compiled pass per row,
        # written straight into the output (e, num: in g_buf and the product buffer, seen by the NumPy views)
        if den is None:
            den_np = None
        elif isinstance(den, torch.Tensor):
            den_np = as_array(den.view(-1, 1).expand(k, n))
        else:
            den_np = np.broadcast_to(np.asarray(den, dtype=x_np.dtype), (k, n))
        finish(y_np, x_np, out_np, g_np if den_np is None else None, den_np, project, inv_np, i * step)
        return None

    if grad:  # one block (step = B), out of place
        return sweep(0, None)
    out = torch.empty_like(x)
    inv_den = torch.empty((B, n), dtype=dt, device=dev) if optimistic else None
    x_np, out_np = as_array(x), as_array(out)  # for the compiled pass (CPU here)
    inv_np = None if inv_den is None else as_array(inv_den)
    finish = row_finisher(dt)  # the compiled pass, called with the arrays above and the blocks' NumPy views
    transpose = transposer()
    beta_np = (np.empty(0, dtype=x_np.dtype) if unit_beta
               else np.ascontiguousarray(as_array(w.beta.detach().to(dt).reshape(-1))))
    pending = iter(range(len(xs)))  # the blocks, handed out one at a time to the lanes (next() is atomic under the GIL)

    def lane() -> None:
        g_buf, y_buf, t_buf = _workspace(step, n, d, dt, dev)  # per thread: per lane
        bufs = (g_buf, y_buf, t_buf, as_array(g_buf), as_array(y_buf), as_array(t_buf))
        for i in pending:
            sweep(i, bufs)

    run_lanes(_lane_count(B, n, len(xs)), lane)
    # a row sum beyond e^margin: a term may have overflowed, or Σ_j e_ij x_j may (|x_j| > 1); NaN fails too
    if inv_den is not None and not float(inv_den.amin()) >= floor:
        return _toy_dense(x, w, block, project, stable=True)
    return out


def _symmetric(x: torch.Tensor, w: Weights, c: int) -> torch.Tensor | None:
    """The toy model's field for large n from half of the score matrix: with Q = K = I, one head and a β (and
    USA shift) per system, e_ij = exp(β⟨x_i, x_j⟩ − c) = e_ji. The tokens are cut into blocks of c rows; each
    block I is taken against the columns j ≥ min I, in strips of SYMMETRIC_STRIP·c columns: one product gives
    a strip's scores, one pass its exponentials, one product Σ_j e_ij [x_j | 1] for the rows of I and one,
    from the transpose, Σ_{i∈I} e_ij [x_i | 1] for the rows of the strip beyond I. So every pair of blocks
    I ≤ J is computed once: 3/4 of the products and 1/2 of the exponentials of the whole matrix (for many
    blocks), in few large products; memory O(B·(n·d + SYMMETRIC_STRIP·c²)). The column of ones gives the
    row sums Z_i (SA). No shift by the row maximum (it would break the symmetry): this runs only while
    β max_j |x_j|² − c stays below the dtype's margin (read from x: CPU only), else returns None and the
    caller takes the fused attention instead. x: (B, n, d). Returns the unprojected (B, n, d) field."""
    B, n, d = x.shape
    dt = x.dtype
    softmax = w.normalization == "softmax"
    margin = _exp_margin(dt)
    beta = w.beta.detach().view(-1, 1, 1)
    sq = float(_rowdot(x, x).amax())  # max_j |x_j|²
    shift = None if softmax else _usa_shift(w, x).view(-1, 1, 1)
    top = float((beta * sq - (0.0 if shift is None else shift)).amax())
    if top > margin:
        return None
    # the values [x | 1] (SA) or x (USA), zero-padded to whole 64-byte lines: the products with a width of
    # 72 rather than 65 (d = 64, float64) run 3–20 % faster here, and no slower at small d
    per_line = max(1, 64 // x.element_size())
    m = -(-(d + softmax) // per_line) * per_line
    vals = torch.zeros((B, n, m), dtype=dt, device=x.device)
    vals[..., :d] = x
    if softmax:
        vals[..., d] = 1.0
    q = x if (w.beta.numel() == 1 and float(beta) == 1.0) else x * beta
    acc = torch.zeros((B, n, m), dtype=dt, device=x.device)
    width = SYMMETRIC_STRIP * c  # the columns of one strip: SYMMETRIC_STRIP blocks, one product for all
    buf = torch.empty(B * min(c, n) * min(width, n), dtype=dt, device=x.device)
    for i0 in range(0, n, c):
        i1 = min(i0 + c, n)
        for j0 in range(i0, n, width):  # the strip of rows I against columns j0 … j1 − 1, all ≥ i0
            j1 = min(j0 + width, n)
            e = buf[: B * (i1 - i0) * (j1 - j0)].view(B, i1 - i0, j1 - j0)
            torch.bmm(q[:, i0:i1], x[:, j0:j1].transpose(1, 2), out=e)  # β⟨x_i, x_j⟩
            if shift is not None:
                e.sub_(shift)
            e.exp_()
            acc[:, i0:i1].baddbmm_(e, vals[:, j0:j1])  # rows of I, from every column of the strip
            k0 = max(j0, i1)  # the strip's columns beyond I: their rows, from the transpose
            if k0 < j1:
                acc[:, k0:j1].baddbmm_(e[:, :, k0 - j0 :].transpose(1, 2), vals[:, i0:i1])
    if softmax:
        return acc[..., :d] / acc[..., d : d + 1]
    return acc[..., :d] / n


def _sdpa(x: torch.Tensor, w: Weights) -> torch.Tensor:
    """torch's fused CPU attention (see :func:`_flash`). USA: its softmax output times Z_i e^{−c} / count,
    with Z_i = exp(logsumexp) returned by the same call."""
    B, n, d = x.shape
    o, lse, bias = _flash(x, w)
    if w.normalization == "uniform":
        if w.uniform_count == "attended" and bias is not None:
            count = torch.isfinite(bias).to(x.dtype).sum(-1, keepdim=True)
        elif w.uniform_count == "attended" and w.causal:
            count = torch.arange(1, n + 1, dtype=x.dtype, device=x.device).view(n, 1)
        else:
            count = n
        o = o * torch.exp(lse.unsqueeze(-1) - _usa_shift(w, x)) / count
    return _reduce_heads(o, w)


def _flash(x: torch.Tensor, w: Weights) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Softmax attention by torch's fused CPU kernel on (B, H, n, ·) queries β·Q x, keys K x, values V x
    (zero-padded to one width, which changes no score and adds zero columns), memory O(B·H·n·d).
    Returns the (B, H, n, d) output, the (B, H, n) log-sum-exp of the scores and the additive bias used."""
    B, n, d = x.shape
    H = w.heads
    x = x.contiguous()  # the fused kernel reads the feature axis as contiguous: any other layout reads garbage
    q, k = _queries_keys(x, w)
    q = (q * w.beta.view(-1, 1, 1, 1)).expand(B, H, n, -1)
    k = k.expand(B, H, n, -1)
    v = _values(x, w).expand(B, H, n, -1)
    width = max(q.shape[-1], d)
    if q.shape[-1] < width:
        q = torch.nn.functional.pad(q, (0, width - q.shape[-1]))
        k = torch.nn.functional.pad(k, (0, width - k.shape[-1]))
    if d < width:
        v = torch.nn.functional.pad(v, (0, width - d))
    bias = _bias(w, n, x) if w.mask is not None else None  # causal alone is the kernel's flag
    causal = w.causal and bias is None
    o, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, causal, attn_mask=bias, scale=1.0
    )
    return o[..., :d], lse, bias


def _scores(x: torch.Tensor, w: Weights) -> torch.Tensor:
    q, k = _queries_keys(x, w)
    if w.normalization != "hardmax":  # hardmax (β → ∞) reads the unscaled scores ⟨Q x_i, K x_j⟩ (9.6)
        q = q * w.beta.view(-1, 1, 1, 1)
    logits = torch.matmul(q, k.transpose(-1, -2))
    bias = _bias(w, x.shape[1], x)
    return logits if bias is None else logits + bias


def _attention(logits: torch.Tensor, w: Weights, x: torch.Tensor) -> torch.Tensor:
    if w.normalization == "softmax":
        return torch.softmax(logits, dim=-1)
    if w.normalization == "sinkhorn":  # doubly stochastic, Remark 3.5
        return sinkhorn(logits, w.sinkhorn_iters, w.sinkhorn_tol)
    if w.normalization == "hardmax":  # β → ∞, (9.5)–(9.6)
        return hardmax(logits, w.tie_tol, w.ties, w.tie_seed)
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
    if w.v is not None and w.v.shape[-2] != d:
        raise ValueError(f"V must have shape (d, d) with d = {d}, got {tuple(w.v.shape[-2:])}")
    if w.q is not None and w.k is not None and w.q.shape[-2] != w.k.shape[-2]:
        raise ValueError(f"Q and K must have the same number of rows k (shapes (k, d)), got Q with "
                         f"{w.q.shape[-2]} and K with {w.k.shape[-2]}")
    if w.norm_gain is not None and w.norm_gain.shape != (d,):
        raise ValueError(f"norm_gain must have shape (d,) = ({d},), got {tuple(w.norm_gain.shape)}")
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
