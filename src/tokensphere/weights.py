"""The canonical weights of a model: the tensors the kernel and the energies read, in one dtype and device.

A :class:`~tokensphere.Model` is what the user wrote (numbers, arrays in any accepted shape, names such as
``V="repulsive"``). It is validated once and turned into one :class:`Weights`: every matrix in the canonical
shape (B or 1, H, r, c), β as a (B or 1,) vector, the mask as (B or 1, H or 1, n, n). The model keeps one
``Weights`` per (dtype, device) it has been used with, so the conversion happens once, not at every step.

Restricting to a subset of systems (:meth:`Weights.take`) and freezing time-dependent weights at a time
(:meth:`Weights.with_matrices`) are tensor operations on an already validated object: no re-validation in
the step loop.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import torch

__all__ = ["Weights"]

MATRICES = ("q", "k", "qk", "v")


@dataclass(frozen=True, eq=False)
class Weights:
    """Validated, canonical model tensors (see the module docstring for the shapes).

    beta: (B or 1,). q, k: (B or 1, H, r, d) or None (Q = K = I unless ``qk``). qk: (B or 1, H, d, d) or None.
    v: (B or 1, H, d, d) or None (V = sign·I). mask: (B or 1, H or 1, n, n) additive bias or None.
    sign: +1, or −1 for V = −I. The remaining fields are the model's static options.
    """

    beta: torch.Tensor
    q: torch.Tensor | None
    k: torch.Tensor | None
    qk: torch.Tensor | None
    v: torch.Tensor | None
    mask: torch.Tensor | None
    sign: float
    normalization: str
    heads: int
    head_reduction: str
    causal: bool
    uniform_count: str
    projection: bool
    time_scale: str
    # the feed-forward layer w σ(a x + b) of (2.8) (tokensphere.feedforward): (B or 1, d, p), (B or 1, p, d),
    # (B or 1, p), or None without one
    ff_w: torch.Tensor | None = None
    ff_a: torch.Tensor | None = None
    ff_b: torch.Tensor | None = None
    ff_activation: str = "relu"
    # Sinkhorn (tokensphere.sinkhorn) and hardmax (tokensphere.hardmax) options, and the centered value term
    # Σ_j A_ij V (x_j − x_i) of (9.4)
    sinkhorn_iters: int = 100
    sinkhorn_tol: float = 1e-9
    ties: object = "average"
    tie_tol: float = 1e-12
    tie_seed: int = 0
    centered: bool = False
    # the continuous form of a block's normalisation (tokensphere.norms): "post", "pre", "rms", "ngpt"; the RMSNorm
    # gain (d,) (not per system) or None
    norm: str = "post"
    norm_gain: torch.Tensor | None = None

    @cached_property
    def batch(self) -> int:
        """Number of systems the per-system tensors describe (1 when every tensor is shared)."""
        return max(t.shape[0] for t in self._tensors())

    @property
    def identity_attention(self) -> bool:
        """Scores ⟨x_i, x_j⟩: Q = K = I, no mask, not causal."""
        return self.q is None and self.qk is None and self.mask is None and not self.causal

    @property
    def toy(self) -> bool:
        """The paper's toy model: Q = K = I, V = ±I, one head, no mask (the dense fast path)."""
        return self.identity_attention and self.v is None and self.heads == 1

    def _tensors(self) -> list[torch.Tensor]:
        return [t for t in (self.beta, self.q, self.k, self.qk, self.v, self.mask, self.ff_w, self.ff_a, self.ff_b)
                if t is not None]

    def to(self, dtype: torch.dtype, device: torch.device) -> Weights:
        """The same weights as ``dtype`` on ``device`` (masks keep −inf)."""

        def conv(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(dtype=dtype, device=device)

        return replace(
            self, beta=conv(self.beta), q=conv(self.q), k=conv(self.k), qk=conv(self.qk), v=conv(self.v),
            mask=conv(self.mask), ff_w=conv(self.ff_w), ff_a=conv(self.ff_a), ff_b=conv(self.ff_b),
            norm_gain=conv(self.norm_gain),
        )

    def take(self, index: torch.Tensor) -> Weights:
        """The weights of the systems ``index`` (a 1-D long tensor): per-system tensors are indexed, shared
        ones (leading size 1) kept. Pure tensor indexing, no validation (this runs inside the step loop)."""
        if self.batch == 1:
            return self
        out = object.__new__(Weights)
        state = out.__dict__
        state.update(self.__dict__)
        for name in ("beta", "q", "k", "qk", "v", "mask", "ff_w", "ff_a", "ff_b"):
            t = state[name]
            if t is not None and t.shape[0] != 1:
                state[name] = t.index_select(0, index if index.device == t.device else index.to(t.device))
        state["batch"] = index.numel()
        return out

    def with_matrices(self, update: dict[str, torch.Tensor]) -> Weights:
        """Replace some of q, k, qk, v, ff_w, ff_a, ff_b (canonical tensors, already in this dtype and device).

        Giving ``qk`` clears q and k; giving q and k clears qk (the two ways of writing the scores).
        A schedule's V replaces V = ±I as well, sign included. A Q without K (or K without Q) pairs with the
        model's own K (Q), or with the identity when the model has none (Q = K = I); it cannot pair with scores
        given as QK (ValueError).
        """
        if not update:
            return self
        kw = dict(update)
        if "qk" in kw:
            kw.setdefault("q", None)
            kw.setdefault("k", None)
        elif ("q" in kw) != ("k" in kw):
            given, other = ("q", "k") if "q" in kw else ("k", "q")
            partner = getattr(self, other)
            if partner is None:
                if self.qk is not None:
                    raise ValueError(f"the schedule gives {given.upper()} without {other.upper()} while the model's "
                                     "scores are given as QK: give both Q and K, or QK")
                t = kw[given]
                d = t.shape[-1]
                if t.shape[-2] != d:
                    raise ValueError(f"the schedule gives {given.upper()} of shape {tuple(t.shape[-2:])} without "
                                     f"{other.upper()}, which is then the identity: it must be square (d, d)")
                partner = torch.eye(d, dtype=t.dtype, device=t.device).expand(1, t.shape[1], d, d)
            kw[other] = partner
            kw["qk"] = None
        elif "q" in kw:
            kw["qk"] = None
        if "v" in kw:
            kw["sign"] = 1.0
        return replace(self, **kw)


def canonical_matrix(name: str, value: object, heads: int) -> torch.Tensor:
    """A matrix parameter in the canonical shape (B or 1, H, r, c), checked finite.

    Accepted: (r, c) and (B, r, c) with one head; (H, r, c), (B, H, r, c), and for V also (r, c) (the same
    value matrix for every head), with ``heads = H``. Raises ValueError naming ``name``.
    """
    from .validate import as_tensor, validate_tensor_finite

    t = as_tensor(name, value)
    validate_tensor_finite(name, t)
    if t.ndim == 4 and t.shape[1] == heads:
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
