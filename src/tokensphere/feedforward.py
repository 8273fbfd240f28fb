"""The feed-forward term of the full Transformer (2.8): w σ(a x_i + b), added to the attention field.

    ẋ_i = P⊥_{x_i} ( Σ_h Σ_j A^h_ij V_h x_j + w σ(a x_i + b) )                                         (2.8)

with w ∈ R^{d×p}, a ∈ R^{p×d}, b ∈ R^p (hidden width p; the paper writes p = d) and σ a Lipschitz function
applied entrywise (ReLU, GELU, tanh). :class:`FeedForward` is the frozen, validated description that a
:class:`~tokensphere.Model` holds (``Model(feedforward=FeedForward(w, a, b))``); its canonical tensors ride on
:class:`~tokensphere.weights.Weights` as ``ff_w`` (B or 1, d, p), ``ff_a`` (B or 1, p, d), ``ff_b`` (B or 1, p),
and :func:`feedforward_term` is the arithmetic the kernel (:func:`tokensphere.field.velocity`) adds before the
tangent projection. Time-dependent w(t), a(t), b(t) come from a schedule whose ``matrices(t, …)`` returns the
keys ``ff_w``, ``ff_a``, ``ff_b`` (as :class:`tokensphere.control.ControlSchedule` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .validate import as_tensor, validate_choice, validate_tensor_finite

__all__ = ["ACTIVATIONS", "FeedForward", "activation", "add_feedforward", "canonical_layer", "feedforward_term"]

# σ of (2.8): Lipschitz, entrywise
ACTIVATIONS = ("relu", "gelu", "tanh")


def activation(name: str, z: torch.Tensor) -> torch.Tensor:
    """σ(z) entrywise for σ ∈ ACTIVATIONS ("gelu" is the exact erf form). z: any shape. Returns z's shape."""
    if name == "relu":
        return torch.relu(z)
    if name == "gelu":
        return F.gelu(z)
    if name == "tanh":
        return torch.tanh(z)
    raise ValueError(f"activation must be one of {', '.join(map(repr, ACTIVATIONS))}, got {name!r}")


@dataclass(frozen=True, eq=False)
class FeedForward:
    """The feed-forward layer w σ(a x + b) of (2.8), validated and in canonical shapes.

    w: (d, p) or (B, d, p). a: (p, d) or (B, p, d). b: (p,) or (B, p), or None for b = 0. activation: σ, one of
    "relu", "gelu", "tanh". After construction ``w``, ``a``, ``b`` hold the canonical tensors (B or 1, d, p),
    (B or 1, p, d), (B or 1, p) in one promoted dtype (float64 for array-likes); tensors that require grad keep
    their autograd graph. Raises ValueError naming the parameter on a wrong shape, a non-finite value or an
    unknown activation.
    """

    w: Any
    a: Any
    b: Any = None
    activation: str = "relu"

    def __post_init__(self) -> None:
        validate_choice("activation", self.activation, ACTIVATIONS)
        w = canonical_layer("w", self.w, 2)
        a = canonical_layer("a", self.a, 2)
        d, p = w.shape[-2], w.shape[-1]
        if a.shape[-2:] != (p, d):
            raise ValueError(f"a must have shape (p, d) = ({p}, {d}) to match w of shape (d, p), got "
                             f"{tuple(a.shape[-2:])}")
        b = torch.zeros(1, p, dtype=w.dtype, device=w.device) if self.b is None else canonical_layer("b", self.b, 1)
        if b.shape[-1] != p:
            raise ValueError(f"b must have shape (p,) = ({p},) to match w of shape (d, p), got {tuple(b.shape[-1:])}")
        sizes = {t.shape[0] for t in (w, a, b)} - {1}
        if len(sizes) > 1:
            raise ValueError(f"w, a and b must share one batch size B, got sizes {sorted(sizes)}")
        dtype = torch.promote_types(torch.promote_types(w.dtype, a.dtype), b.dtype)
        for name, t in (("w", w), ("a", a), ("b", b)):
            object.__setattr__(self, name, t.to(dtype))

    @property
    def dim(self) -> int:
        """The token dimension d."""
        return self.w.shape[-2]

    @property
    def width(self) -> int:
        """The hidden width p."""
        return self.w.shape[-1]

    def to_spec(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """(JSON-able options, arrays w, a, b in canonical shapes); :meth:`from_spec` inverts it."""
        return {"activation": self.activation}, {"w": self.w.detach(), "a": self.a.detach(), "b": self.b.detach()}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], arrays: Mapping[str, Any]) -> FeedForward:
        """Rebuild from :meth:`to_spec` output (arrays may be tensors or NumPy arrays)."""
        return cls(arrays["w"], arrays["a"], arrays["b"], activation=spec.get("activation", "relu"))

    def __repr__(self) -> str:
        batch = f", B={self.w.shape[0]}" if self.w.shape[0] != 1 else ""
        return f"FeedForward(d={self.dim}, p={self.width}, activation={self.activation!r}{batch})"


def canonical_layer(name: str, value: Any, ndim: int) -> torch.Tensor:
    """value of shape (…) with ``ndim`` trailing axes, or (B, …): returned as (B or 1, …), checked finite."""
    t = as_tensor(name, value)
    validate_tensor_finite(name, t)
    if t.ndim == ndim:
        return t.unsqueeze(0)
    if t.ndim == ndim + 1:
        return t
    shapes = {"w": "(d, p) or (B, d, p)", "a": "(p, d) or (B, p, d)", "b": "(p,) or (B, p)"}[name]
    raise ValueError(f"{name} must have shape {shapes}, got {tuple(t.shape)}")


def feedforward_term(x: torch.Tensor, w: Any) -> torch.Tensor | None:
    """The unprojected feed-forward term w σ(a x_i + b) of (2.8) for every token, or None without one.

    x: (B, n, d). w: a :class:`~tokensphere.weights.Weights` (already frozen at the time t) whose ``ff_w``
    (B or 1, d, p), ``ff_a`` (B or 1, p, d), ``ff_b`` (B or 1, p) are set, or None. Returns (B, n, d) in x's dtype.
    Raises ValueError when the weights' d differs from x's.
    """
    if w.ff_w is None:
        return None
    if w.ff_w.shape[-2] != x.shape[-1]:
        raise ValueError(f"feedforward w must have shape (d, p) with d = {x.shape[-1]}, got {tuple(w.ff_w.shape[-2:])}")
    z = torch.matmul(x, w.ff_a.transpose(-1, -2)) + w.ff_b.unsqueeze(-2)  # (B, n, p): a x_i + b
    return torch.matmul(activation(w.ff_activation, z), w.ff_w.transpose(-1, -2))  # (B, n, d): w σ(·)


def add_feedforward(f: torch.Tensor, x: torch.Tensor, w: Any) -> torch.Tensor:
    """f + w σ(a x_i + b) (2.8) when the weights carry a feed-forward layer, else f itself.

    f, x: (B, n, d); w: :class:`~tokensphere.weights.Weights` at the current time. Returns (B, n, d).
    """
    term = feedforward_term(x, w)
    return f if term is None else f + term
