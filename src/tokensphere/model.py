"""The model specification: *what* the dynamics are (SPEC §2, §2.17).

A :class:`Model` is a frozen description of the self-attention particle system

    ẋ_i = P⊥_{x_i} ( Σ_h Σ_j A^h_ij V_h x_j ),   A^h_ij = e^{β⟨Q_h x_i, K_h x_j⟩ + b_ij} / Z_{β,i,h}   (2.3), (2.7)

with Z the softmax normaliser (SA) or the constant n (USA). It holds parameters only; the field itself is
computed by :func:`tokensphere.field.velocity`, and how to integrate is a separate solver spec.

Batch convention: positions are ``(B, n, d)``. Every parameter may be shared by the batch or given per
system with a leading axis of length B: β as shape ``(B,)`` makes a sweep over temperatures one batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import torch

from .validate import as_tensor, check_choice, check_int, check_tensor_finite

__all__ = ["Model", "Layerwise", "NORMALIZATIONS"]

NORMALIZATIONS = ("softmax", "uniform")
# e^{β} overflows float64 beyond ln(max double) ≈ 709.78 (SPEC §8.3); USA in original time is refused above.
USA_ORIGINAL_TIME_MAX_BETA = 700.0

Tensorish = Any  # torch.Tensor, numpy array, nested lists, or a Python number


@dataclass(frozen=True, eq=False)
class Model:
    """Self-attention dynamics on S^{d−1} (SPEC §2).

    Parameters
    ----------
    beta : float or array of shape (B,)
        Inverse temperature β ≥ 0; a vector gives one value per system of the batch.
    normalization : {"softmax", "uniform"}
        "softmax" divides by Z_{β,i} (SA, (2.3)); "uniform" divides by n (USA, SPEC §2.4) — or by the number
        of attended tokens when ``uniform_count="attended"`` (causal USA with 1/i).
    Q, K : array of shape (k, d), (B, k, d); with ``heads=H > 1``: (H, k, d) or (B, H, k, d)
        Query and key matrices (k may differ from d). Scores are ⟨Q x_i, K x_j⟩ = x_iᵀ QᵀK x_j.
    QK : array of shape (d, d), (B, d, d); with heads: (H, d, d) or (B, H, d, d)
        The bilinear form QᵀK given directly (instead of Q and K).
    V : "identity", "repulsive", or array of shape (d, d), (B, d, d); with heads: (H, d, d) or (B, H, d, d)
        Value matrix acting as x ↦ V x. "repulsive" is V = −I (SPEC §2.12).
    heads : int
        Number of heads H; heads are **summed** (2.7) unless ``head_reduction="mean"``.
    mask : array of shape (n, n), (B, n, n) or (B, H, n, n)
        Additive score bias b_ij (−inf masks the pair). Every row must keep one finite entry.
    causal : bool
        Token i attends only to j ≤ i (SPEC §2.8).
    uniform_count : {"n", "attended"}
        For USA with a mask: divide by n (default) or by the number of unmasked keys (1/i when causal).
    projection : bool
        Apply the tangent projection P⊥ (the paper's model). False gives pure self-attention (9.1) on R^d.
    time_scale : {"original", "exp_beta"}
        USA only: "exp_beta" integrates in s = e^{β} t, i.e. the field (1/n) Σ_j e^{β(⟨Qx_i,Kx_j⟩ − 1)} V x_j,
        which neither overflows nor underflows for β up to 10^4 (SPEC §8.3). In original time USA is
        refused for β > 700 (e^{β} overflows float64).
    schedule : callable t ↦ mapping, optional
        Time-dependent weights (SPEC §2.7): returns a mapping with any of "Q", "K", "QK", "V" that replace
        the constant ones at time t. See :class:`Layerwise` for piecewise-constant layers.

    Raises ``ValueError`` naming the parameter for every invalid value.
    """

    beta: Tensorish = 1.0
    normalization: Literal["softmax", "uniform"] = "softmax"
    Q: Tensorish | None = None
    K: Tensorish | None = None
    QK: Tensorish | None = None
    V: Tensorish | str = "identity"
    heads: int = 1
    head_reduction: Literal["sum", "mean"] = "sum"
    mask: Tensorish | None = None
    causal: bool = False
    uniform_count: Literal["n", "attended"] = "n"
    projection: bool = True
    time_scale: Literal["original", "exp_beta"] = "original"
    schedule: Callable[[float], Mapping[str, Tensorish]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_choice("normalization", self.normalization, NORMALIZATIONS)
        check_choice("head_reduction", self.head_reduction, ("sum", "mean"))
        check_choice("uniform_count", self.uniform_count, ("n", "attended"))
        check_choice("time_scale", self.time_scale, ("original", "exp_beta"))
        check_int("heads", self.heads, minimum=1)
        for flag in ("causal", "projection"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        if self.schedule is not None and not callable(self.schedule):
            raise ValueError(f"schedule must be a callable t -> mapping, got {type(self.schedule).__name__}")

        beta = as_tensor("beta", self.beta)
        if beta.ndim > 1:
            raise ValueError(f"beta must be a number or a 1-D array of shape (B,), got shape {tuple(beta.shape)}")
        if beta.numel() == 0:
            raise ValueError("beta must hold at least one value, got an empty array")
        if torch.isnan(beta).any() or torch.isinf(beta).any() or (beta < 0).any():
            bad = beta[~(torch.isfinite(beta) & (beta >= 0))][0].item()
            raise ValueError(f"beta must be a finite number >= 0, got {bad}")
        if self.time_scale == "exp_beta" and self.normalization != "uniform":
            raise ValueError("time_scale='exp_beta' applies to normalization='uniform' (USA) only")
        if (
            self.normalization == "uniform"
            and self.time_scale == "original"
            and float(beta.max()) > USA_ORIGINAL_TIME_MAX_BETA
        ):
            raise ValueError(
                f"beta must be <= {USA_ORIGINAL_TIME_MAX_BETA:g} for normalization='uniform' in original time "
                f"(e^beta overflows float64), got {float(beta.max()):g}; use time_scale='exp_beta'"
            )
        object.__setattr__(self, "_beta", beta.reshape(-1))

        if self.QK is not None and (self.Q is not None or self.K is not None):
            raise ValueError("give either QK or the pair (Q, K), not both")
        if (self.Q is None) != (self.K is None):
            raise ValueError("Q and K must be given together (or give QK)")
        H = self.heads
        if H > 1 and self.Q is None and self.QK is None:
            raise ValueError(f"heads={H} needs per-head Q and K (shape (H, k, d)) or QK (shape (H, d, d))")
        q = k = qk = None
        if self.Q is not None:
            q = _per_head("Q", self.Q, H)
            k = _per_head("K", self.K, H)
            if q.shape[-1] != k.shape[-1] or q.shape[-2] != k.shape[-2]:
                raise ValueError(
                    f"Q and K must have the same shape (k, d), got {tuple(q.shape[-2:])} and {tuple(k.shape[-2:])}"
                )
        if self.QK is not None:
            qk = _per_head("QK", self.QK, H)
            if qk.shape[-1] != qk.shape[-2]:
                raise ValueError(f"QK must be square (d, d), got {tuple(qk.shape[-2:])}")
        object.__setattr__(self, "_q", q)
        object.__setattr__(self, "_k", k)
        object.__setattr__(self, "_qk", qk)

        v: torch.Tensor | None
        if isinstance(self.V, str):
            check_choice("V", self.V, ("identity", "repulsive"))
            v, sign = None, (1.0 if self.V == "identity" else -1.0)
        else:
            v, sign = _per_head("V", self.V, H), 1.0
            if v.shape[-1] != v.shape[-2]:
                raise ValueError(f"V must be square (d, d), got {tuple(v.shape[-2:])}")
        object.__setattr__(self, "_v", v)
        object.__setattr__(self, "_sign", sign)

        m = None
        if self.mask is not None:
            m = as_tensor("mask", self.mask)
            if torch.isnan(m).any() or (m == math.inf).any():
                raise ValueError("mask must hold finite values or -inf (masked pairs), found NaN or +inf")
            if m.ndim == 2:
                m = m[None, None]
            elif m.ndim == 3:
                m = m[:, None]
            elif m.ndim != 4:
                raise ValueError(f"mask must have shape (n, n), (B, n, n) or (B, H, n, n), got {tuple(m.shape)}")
            if m.shape[-1] != m.shape[-2]:
                raise ValueError(f"mask must be square (n, n), got {tuple(m.shape[-2:])}")
            masked = m == -math.inf
            if self.causal:  # causal masking removes j > i as well
                n_ = m.shape[-1]
                masked = masked | torch.triu(torch.ones(n_, n_, dtype=torch.bool), diagonal=1)
            if masked.all(dim=-1).any():
                raise ValueError("mask must leave at least one finite entry in every row (a token attends to none)")
        object.__setattr__(self, "_mask", m)

        sizes = {t.shape[0] for t in (beta.reshape(-1), q, k, qk, v, m) if t is not None and t.ndim >= 1}
        batch_sizes = {s for s in sizes if s != 1}
        if len(batch_sizes) > 1:
            raise ValueError(f"per-system parameters must share one batch size B, got sizes {sorted(batch_sizes)}")
        object.__setattr__(self, "_batch", batch_sizes.pop() if batch_sizes else 1)

    # ------------------------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """Number of systems the parameters describe (1 when every parameter is shared)."""
        return self._batch  # type: ignore[attr-defined]

    @property
    def is_identity_attention(self) -> bool:
        """True for Q = K = I (scores ⟨x_i, x_j⟩), a single head and no mask."""
        return self._q is None and self._qk is None and self._mask is None and not self.causal  # type: ignore

    @property
    def is_sa_toy(self) -> bool:
        """True for the toy model Q = K = V = ±I with one head and no mask (SPEC §2.3, §2.12)."""
        return self.is_identity_attention and self._v is None and self.heads == 1 and self.schedule is None  # type: ignore

    @property
    def sign(self) -> float:
        """+1 for attractive V = I, −1 for repulsive V = −I; +1 when V is a general matrix."""
        return self._sign  # type: ignore[attr-defined]

    def beta_tensor(self) -> torch.Tensor:
        """β as a 1-D float tensor of shape (1,) or (B,)."""
        return self._beta  # type: ignore[attr-defined]

    def at(self, t: float | torch.Tensor) -> Model:
        """The model with time-dependent weights frozen at time ``t`` (itself when there is no schedule).

        A schedule with ``vectorized = True`` receives per-system times (a (B,) tensor) and returns
        per-system matrices; other schedules receive a float.
        """
        if self.schedule is None:
            return self
        update = dict(self.schedule(t))
        unknown = set(update) - {"Q", "K", "QK", "V", "beta"}
        if unknown:
            raise ValueError(f"schedule returned unknown keys {sorted(unknown)}; allowed: Q, K, QK, V, beta")
        if "QK" in update:
            update.setdefault("Q", None)
            update.setdefault("K", None)
        elif "Q" in update or "K" in update:
            update.setdefault("QK", None)
        return replace(self, schedule=None, **update)

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Model:
        """A copy whose tensors have the given dtype and device (the same object when nothing changes)."""
        probe = self._beta  # type: ignore[attr-defined]
        if (dtype is None or probe.dtype == dtype) and (device is None or probe.device == torch.device(device)):
            if all(
                getattr(self, "_" + n) is None or getattr(self, "_" + n).dtype == probe.dtype
                for n in ("q", "k", "qk", "v", "mask")
            ):
                return self
        kw: dict[str, Any] = {}
        for name in ("beta", "Q", "K", "QK", "V", "mask"):
            val = getattr(self, name)
            if val is None or isinstance(val, str):
                continue
            t = as_tensor(name, val)
            kw[name] = t.to(dtype=dtype or t.dtype, device=device or t.device)
        return replace(self, **kw)

    def take(self, index: torch.Tensor) -> Model:
        """The model restricted to the systems ``index`` (per-system parameters are indexed, shared ones kept).

        A schedule with a ``take(index)`` method (a vectorised, per-system schedule) is restricted too.
        """
        kw: dict[str, Any] = {}
        if self.schedule is not None and hasattr(self.schedule, "take"):
            kw["schedule"] = self.schedule.take(index)
        if self._batch == 1:  # type: ignore[attr-defined]
            return replace(self, **kw) if kw else self
        for name, internal in (("beta", "_beta"), ("Q", "_q"), ("K", "_k"), ("QK", "_qk"), ("V", "_v"), ("mask", "_mask")):
            t = getattr(self, internal)
            if t is None or t.shape[0] == 1:
                continue
            kw[name] = t.index_select(0, index.to(t.device))
        return replace(self, **kw)

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary (arrays summarised by shape) for run metadata."""
        out: dict[str, Any] = {}
        for f in fields(self):
            val = getattr(self, f.name)
            if f.name == "beta":
                b = self._beta  # type: ignore[attr-defined]
                out["beta"] = b.tolist() if b.numel() <= 4096 else f"array{tuple(b.shape)}"
            elif val is None or isinstance(val, (str, bool, int, float)):
                out[f.name] = val
            elif f.name == "schedule":
                out[f.name] = repr(val)
            else:
                out[f.name] = f"array{tuple(as_tensor(f.name, val).shape)}"
        return out


def _boundaries_below(t: float, tau: float) -> int:
    """#{k ≥ 1 : k·τ ≤ t} for t ≥ 0, computed against the float values k * tau (no epsilon)."""
    k = int(math.floor(t / tau))
    while k > 0 and k * tau > t:
        k -= 1
    while (k + 1) * tau <= t:
        k += 1
    return k


def _per_head(name: str, value: Tensorish, heads: int) -> torch.Tensor:
    """Canonical shape (B or 1, H, r, c) for a matrix parameter; see :class:`Model` for the accepted shapes."""
    t = as_tensor(name, value)
    check_tensor_finite(name, t)
    if t.ndim == 4 and t.shape[1] == heads:  # canonical (B, H, r, c)
        return t
    if heads == 1:
        if t.ndim == 2:
            return t[None, None]
        if t.ndim == 3:
            return t[:, None]
        raise ValueError(f"{name} must have shape (r, d) or (B, r, d), got {tuple(t.shape)}")
    if t.ndim == 3 and t.shape[0] == heads:
        return t[None]
    if t.ndim == 2 and name == "V":
        return t[None, None].expand(1, heads, *t.shape)
    raise ValueError(f"{name} must have shape (H, r, d) or (B, H, r, d) with H = heads = {heads}, got {tuple(t.shape)}")


class Layerwise:
    """Piecewise-constant weights in time: layer ℓ = ⌊t / layer_time⌋ (clipped to the last) uses the ℓ-th slice.

    Each keyword (``Q``, ``K``, ``QK``, ``V``) is a stack of shape (L, ...) whose slices have the shapes
    :class:`Model` accepts. Use it as ``Model(schedule=Layerwise(1.0, V=Vs))`` (SPEC §2.7).
    """

    def __init__(self, layer_time: float, **stacks: Tensorish) -> None:
        from .validate import check_real

        self.layer_time = check_real("layer_time", layer_time, minimum=0.0, strict_minimum=True)
        if not stacks:
            raise ValueError("Layerwise needs at least one of Q, K, QK, V")
        self.stacks = {k: as_tensor(k, v) for k, v in stacks.items()}
        lengths = {v.shape[0] for v in self.stacks.values()}
        if len(lengths) != 1:
            raise ValueError(f"every stack must have the same number of layers L, got {sorted(lengths)}")
        self.layers = lengths.pop()

    def layer(self, t: float) -> int:
        """Index of the layer active at time t: the number of boundaries k·layer_time ≤ t (clipped to [0, L−1]).

        Exact at the boundaries as floats (k * layer_time), which are also the integrator's landing times.
        """
        return min(max(_boundaries_below(t, self.layer_time), 0), self.layers - 1)

    def breakpoints(self, t_max: float) -> list[float]:
        """Layer boundaries ℓ·layer_time in (0, t_max): the integrator lands on them."""
        return [k * self.layer_time for k in range(1, self.layers) if k * self.layer_time < t_max]

    def __call__(self, t: float) -> dict[str, torch.Tensor]:
        ell = self.layer(float(t))
        return {k: v[ell] for k, v in self.stacks.items()}

    def __repr__(self) -> str:
        return f"Layerwise(layer_time={self.layer_time}, layers={self.layers}, keys={sorted(self.stacks)})"
