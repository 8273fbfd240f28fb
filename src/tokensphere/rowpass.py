"""The fused back end's compiled passes over a block of systems (numba): a transposed copy before its two
matrix products, and one sweep instead of five after them.

After the two matrix products of the fused back end, a block of k systems holds the exponentials
e_ij (k, n, n) and the weighted sums s_i = Σ_j e_ij x_j (k, n, d). What is left is, row by row,

    Z_i = Σ_j e_ij  (or a given normaliser),     r_i = ⟨x_i, s_i⟩,     f_i = (s_i − r_i x_i) / Z_i,

the tangent projection P⊥_{x_i} of (2.3) followed by the softmax (or uniform) normalisation, written
straight into the output. As torch calls these are six passes over the block (the row sums, the row
products and their sums, the subtraction, 1/Z_i, the scaling), each ~0.5 ns per element on a 2-core Xeon
even in the core's cache; compiled into one loop per row they are one pass, and one evaluation at
(B, n, d) = (2048, 32, 32) went from 2.1× to 2.8× the speed of the authors' step (BENCHMARKS.md).

The loops are compiled once per dtype and memory layout by numba (LLVM, no C compiler needed on the user's
machine) and cached on disk; they release the interpreter lock, so the lanes of
:func:`tokensphere.runtime.run_lanes` run them side by side. Sums are accumulated in float64 whatever the
dtype (float32 blocks gain accuracy; they are not rounded to float32 until the write). The floating-point
flags allow reassociation (vectorised sums) but keep infinities and NaN meaningful: an overflowed Z_i gives
1/Z_i = 0, which the fused back end's check catches.

Before the products, :func:`scaled_transpose` writes β x_bᵀ for each system b of the block into a (k, d, n)
buffer in one compiled loop, so the score product β X Xᵀ takes both operands in stored order (MKL's batched
product is slower with its second operand transposed in place at n = 32) and β costs no pass of its own.

Shapes: a block's sums ``s`` are (k, n, d) and its exponentials ``e`` (k, n, n); positions and output are the
whole batch's (B, n, d), the block starting at system ``start``.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

__all__ = ["as_array", "finish_rows", "row_finisher", "scaled_transpose", "transposer"]

Array = torch.Tensor | np.ndarray

# reassociation lets LLVM vectorise the sums; contraction lets it use fused multiply-adds. Not "fast": that
# would also assume no infinities or NaN, and the overflow check reads them.
_FLAGS = {"reassoc", "contract"}


@functools.cache
def _kernel():
    """The compiled loop (numba imported on first use: its import and compilation cost ~1 s, once)."""
    import numba

    def finish(s, x, e, den, project, out, inv, start):  # pragma: no cover - compiled; run through finish_rows
        k, n, d = s.shape
        from_rows = e.shape[0] > 0
        want_inv = inv.shape[0] > 0
        for b in range(k):
            a = start + b  # the system's row in x, out and inv
            for i in range(n):
                if from_rows:
                    z = 0.0
                    for j in range(n):
                        z += e[b, i, j]
                else:
                    z = np.float64(den[b, i])
                q = 1.0 / z
                if want_inv:
                    inv[a, i] = q
                if project:
                    r = 0.0
                    for c in range(d):
                        r += np.float64(x[a, i, c]) * np.float64(s[b, i, c])
                    for c in range(d):
                        out[a, i, c] = (s[b, i, c] - r * x[a, i, c]) * q
                else:
                    for c in range(d):
                        out[a, i, c] = s[b, i, c] * q

    try:  # compiled code kept on disk, next to this module or in numba's user cache directory
        return numba.njit(nogil=True, fastmath=_FLAGS, cache=True, boundscheck=False)(finish)
    except RuntimeError:  # neither is writable (a read-only install): compile in each process instead
        return numba.njit(nogil=True, fastmath=_FLAGS, cache=False, boundscheck=False)(finish)


@functools.cache
def _transposer():
    """The compiled transposing copy (see :func:`scaled_transpose`)."""
    import numba

    def transpose(x, beta, out, start):  # pragma: no cover - compiled; run through scaled_transpose
        k, d, n = out.shape
        nb = beta.shape[0]
        for b in range(k):
            a = start + b
            c0 = 1.0 if nb == 0 else (beta[0] if nb == 1 else beta[a])
            for c in range(d):
                for i in range(n):
                    out[b, c, i] = c0 * x[a, i, c]

    try:
        return numba.njit(nogil=True, cache=True, boundscheck=False)(transpose)
    except RuntimeError:
        return numba.njit(nogil=True, cache=False, boundscheck=False)(transpose)


def scaled_transpose(x: Array, beta: Array | None, out: Array, start: int = 0) -> None:
    """out[b] = β_b x_{start+b}ᵀ for a block of k systems: x (B, n, d), out (k, d, n), β a scalar (shape (1,)),
    one value per system of the batch (B,), or None for β = 1; NumPy arrays or CPU tensors of one dtype.

    The fused back end's score product β X Xᵀ then multiplies two operands in their stored order: for blocks of
    small systems (n = 32) MKL's batched product with the second operand transposed in place took 1.2–1.9×
    the time of the plain one on a 2-core Ice Lake Xeon, more than this copy costs. Unchecked beyond the
    shapes (the compiled loop reads and writes without bounds checks)."""
    x, out = as_array(x), as_array(out)
    k, d, n = out.shape
    if x.ndim != 3 or x.shape[1:] != (n, d) or not 0 <= start <= x.shape[0] - k:
        raise ValueError(f"scaled_transpose: x must be (B, n, d) = (B, {n}, {d}) with start in [0, B − {k}], got "
                         f"{x.shape} and start {start}")
    if out.dtype != x.dtype or x.dtype not in (np.float32, np.float64):
        raise ValueError(f"scaled_transpose: x and out must share one dtype, float32 or float64, got {x.dtype} "
                         f"and {out.dtype}")
    if not out.flags.writeable:
        raise ValueError("scaled_transpose: out must be writable")
    b = np.empty(0, dtype=x.dtype) if beta is None else np.ascontiguousarray(as_array(beta), dtype=x.dtype).reshape(-1)
    if b.shape[0] not in (0, 1, x.shape[0]):
        raise ValueError(f"scaled_transpose: beta must have 1 or B = {x.shape[0]} values, got {b.shape[0]}")
    transposer()(x, b, out, int(start))


def transposer():
    """The compiled loop of :func:`scaled_transpose` without its argument handling, for a loop that calls it once
    per block: ``run(x, beta, out, start)`` with NumPy arrays of one dtype, ``beta`` of length 0 (β = 1), 1 or
    B. Unchecked: a wrong shape reads or writes out of bounds."""
    return _transposer()


def finish_rows(
    s: Array,
    x: Array,
    out: Array,
    *,
    e: Array | None = None,
    den: Array | None = None,
    project: bool = True,
    inv: Array | None = None,
    start: int = 0,
) -> None:
    """out_i = P⊥_{x_i} s_i / Z_i for every row of a block of k systems (P⊥ only when ``project``), in one
    compiled pass.

    s: (k, n, d) the block's weighted sums Σ_j e_ij x_j. x, out: (B, n, d), the block being systems
    start … start + k − 1 (``out`` writable; it may be a view of a larger array). Z_i: the row sums of ``e``
    (k, n, n) — the softmax normaliser — or ``den`` (k, n), any broadcast view (a normaliser computed
    elsewhere, or the uniform one). inv: optional (B, n) array that receives 1/Z_i. Each argument is a CPU
    torch tensor or a NumPy array (callers convert the arrays they reuse once: :func:`as_array`), all of one
    dtype. Nothing is allocated; no gradient is recorded (the fused back end calls this only without
    autograd). Raises ValueError on any shape, range or dtype mismatch (the compiled loop itself reads and writes
    unchecked).
    """
    if (e is None) == (den is None):
        raise ValueError("finish_rows: give exactly one of e (row sums) and den (normalisers)")
    s, x, out = as_array(s), as_array(x), as_array(out)
    e = None if e is None else as_array(e)
    inv = None if inv is None else as_array(inv)
    if s.ndim != 3 or x.ndim != 3:
        raise ValueError(f"finish_rows: s must be (k, n, d) and x (B, n, d), got {s.shape} and {x.shape}")
    k, n, d = s.shape
    B = x.shape[0]
    if x.shape[1:] != (n, d) or out.shape != x.shape:
        raise ValueError(f"finish_rows: x and out must be (B, n, d) = (B, {n}, {d}), got {x.shape} and {out.shape}")
    if not isinstance(start, (int, np.integer)) or not 0 <= start <= B - k:
        raise ValueError(f"finish_rows: start must be an integer in [0, B − k] = [0, {B - k}], got {start!r}")
    if e is not None and e.shape != (k, n, n):
        raise ValueError(f"finish_rows: e must be (k, n, n) = ({k}, {n}, {n}), got {e.shape}")
    if den is not None:
        try:
            den = np.broadcast_to(as_array(den), (k, n))
        except ValueError:
            raise ValueError(f"finish_rows: den must broadcast to (k, n) = ({k}, {n}), got "
                             f"{np.shape(as_array(den))}") from None
    if inv is not None and inv.shape != (B, n):
        raise ValueError(f"finish_rows: inv must be (B, n) = ({B}, {n}), got {inv.shape}")
    arrays = [a for a in (s, x, out, e, den, inv) if a is not None]
    if len({a.dtype for a in arrays}) != 1 or s.dtype not in (np.float32, np.float64):
        raise ValueError(f"finish_rows: all arrays must share one dtype, float32 or float64, got "
                         f"{sorted({str(a.dtype) for a in arrays})}")
    if not out.flags.writeable:
        raise ValueError("finish_rows: out must be writable")
    row_finisher(s.dtype)(s, x, out, e, den, project, inv, int(start))


def row_finisher(dtype: np.dtype | torch.dtype):
    """The compiled pass of :func:`finish_rows` without its argument handling, for a loop that calls it once
    per block with arrays it has already converted (the fused back end: ~10 µs saved per block).

    Returns ``run(s, x, out, e, den, project, inv, start)``: NumPy arrays of ``dtype`` shaped as for
    :func:`finish_rows`, exactly one of ``e`` and ``den`` given (the other None), ``inv`` None or an array.
    Unchecked: a wrong shape reads or writes out of bounds."""
    dt = torch.empty(0, dtype=dtype).numpy().dtype if isinstance(dtype, torch.dtype) else np.dtype(dtype)
    kernel, (none3, none2) = _kernel(), _empty(dt)

    def run(s: np.ndarray, x: np.ndarray, out: np.ndarray, e: np.ndarray | None, den: np.ndarray | None,
            project: bool, inv: np.ndarray | None, start: int) -> None:
        kernel(s, x, none3 if e is None else e, none2 if den is None else den, project, out,
               none2 if inv is None else inv, start)

    return run


def as_array(t: Array) -> np.ndarray:
    """A NumPy view of a CPU tensor (no copy; detached), or the array itself."""
    return t if isinstance(t, np.ndarray) else t.detach().numpy()


@functools.cache
def _empty(dt: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Empty stand-ins for the arguments not given (the compiled loop tests their length)."""
    return np.empty((0, 0, 0), dtype=dt), np.empty((0, 0), dtype=dt)
