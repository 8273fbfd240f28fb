"""Time-dependent weights: one protocol for every schedule (the paper's §2.7, depth-dependent Q(t), K(t), V(t)).

A :class:`Schedule` maps **per-system times** to canonical weight tensors, so a batch whose systems sit at
different times is evaluated in one call, never system by system:

* ``matrices(t, heads, dtype, device)``: t is a 0-d or (B,) float64 tensor; returns a dict with some of
  ``q``, ``k``, ``qk``, ``v``, each of shape (B or 1, H, r, c) (see :mod:`tokensphere.weights`);
* ``breakpoints(t_max, t0=0.0)``: the times in (t0, t_max) where the weights jump (the integrator lands on
  them, so no step straddles a discontinuity);
* ``take(index)``: the schedule restricted to a subset of systems (a view: caches are shared);
* ``to_spec()`` / ``from_spec(spec, arrays)``: a JSON-able description and its arrays, so a stored run
  rebuilds the very schedule that ran (:func:`schedule_from_spec`).

Implementations: :class:`Layerwise` (piecewise-constant layers, a discrete Transformer),
:class:`tokensphere.ensembles.RedrawSchedule` (fresh random matrices every τ, Figure 5), and
:class:`CallableSchedule`, which wraps any Python function ``t ↦ {"Q": ..., "V": ...}`` (it cannot be stored).
Layer ℓ of a piecewise-constant schedule with layer length τ is :func:`layer_index`, written once.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch

from .validate import as_tensor, validate_real
from .feedforward import canonical_layer
from .weights import canonical_matrix

__all__ = [
    "Schedule",
    "Layerwise",
    "CallableSchedule",
    "layer_index",
    "layer_breakpoints",
    "as_schedule",
    "register_schedule",
    "schedule_from_spec",
]

USER_KEYS = ("Q", "K", "QK", "V")
# feed-forward stacks of a Layerwise schedule (2.8): user key → (canonical key, trailing dims of one layer)
FEEDFORWARD_KEYS = {"w": ("ff_w", 2), "a": ("ff_a", 2), "b": ("ff_b", 1)}
_CANONICAL = {"Q": "q", "K": "k", "QK": "qk", "V": "v"}
_KINDS: dict[str, type[Schedule]] = {}


def layer_index(t: torch.Tensor | float, tau: float, layers: int | None = None) -> torch.Tensor:
    """ℓ(t) = #{k ≥ 1 : k·τ ≤ t}, clipped to [0, layers − 1]: the layer active at time t.

    Exact at the boundaries as floats (the values k * τ, which are also the integrator's landing times): the
    floor of t/τ is corrected against them, no epsilon. t: number or tensor (any shape). Returns a long tensor
    of the shape of t.
    """
    tt = torch.as_tensor(t, dtype=torch.float64)
    k = torch.floor(tt / tau)
    k = k - (k * tau > tt).to(k.dtype)
    k = k + ((k + 1) * tau <= tt).to(k.dtype)
    k = k.clamp(min=0)
    if layers is not None:
        k = k.clamp(max=layers - 1)
    return k.long()


def layer_breakpoints(tau: float, t_max: float, t0: float = 0.0, layers: int | None = None) -> list[float]:
    """Layer boundaries k·τ (k ≥ 1, and k < layers when given) in the open interval (t0, t_max)."""
    last = math.floor(t_max / tau) + 1
    if layers is not None:
        last = min(last, layers - 1)
    return [k * tau for k in range(1, last + 1) if t0 < k * tau < t_max]


class Schedule(ABC):
    """The schedule protocol (see the module docstring)."""

    kind: ClassVar[str] = ""

    @abstractmethod
    def matrices(
        self, t: torch.Tensor, heads: int, dtype: torch.dtype, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """Canonical weights at per-system times t (0-d or (B,)): {"q"|"k"|"qk"|"v": (B or 1, H, r, c)}."""

    def breakpoints(self, t_max: float, t0: float = 0.0) -> list[float]:
        """Jump times in (t0, t_max); none for smooth schedules."""
        return []

    def take(self, index: torch.Tensor) -> Schedule:
        """Restriction to the systems ``index``; shared schedules return themselves."""
        return self

    def to_spec(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """(JSON-able description with a "kind", arrays) from which :func:`schedule_from_spec` rebuilds it."""
        raise ValueError(f"a {type(self).__name__} cannot be stored")

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], arrays: Mapping[str, torch.Tensor]) -> Schedule:
        raise ValueError(f"a {cls.__name__} cannot be restored")

    def __call__(self, t: float | torch.Tensor) -> dict[str, torch.Tensor]:
        """The weights at time t in the user's names (Q, K, QK, V, and a Layerwise's feed-forward w, a, b),
        canonical shapes, float64 on the CPU."""
        out = self.matrices(torch.as_tensor(t, dtype=torch.float64), self._heads_hint(), torch.float64,
                            torch.device("cpu"))
        names = {v: k for k, v in _CANONICAL.items()} | {v[0]: k for k, v in FEEDFORWARD_KEYS.items()}
        return {names[k]: v for k, v in out.items()}

    def _heads_hint(self) -> int:
        return 1


def register_schedule(cls: type[Schedule]) -> type[Schedule]:
    """Class decorator: make ``cls`` (with a unique ``kind``) restorable by :func:`schedule_from_spec`."""
    _KINDS[cls.kind] = cls
    return cls


def schedule_from_spec(spec: Mapping[str, Any], arrays: Mapping[str, torch.Tensor]) -> Schedule:
    """Rebuild a schedule from :meth:`Schedule.to_spec` output. Raises ValueError for an unknown kind."""
    kind = spec.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"schedule kind {kind!r} cannot be restored (known: {', '.join(sorted(_KINDS))})")
    sched = _KINDS[kind].from_spec(spec, arrays)
    if "systems" in arrays:
        sched = sched.take(arrays["systems"].long())
    return sched


def _gather(stack: torch.Tensor, layers: torch.Tensor, systems: torch.Tensor | None) -> torch.Tensor:
    """Per-system slices of a canonical stack (L, B_s, H, r, c) at per-system layers (B,) → (B, H, r, c)."""
    if stack.shape[1] == 1:
        return stack[layers, 0]
    rows = torch.arange(layers.numel(), device=stack.device) if systems is None else systems.to(stack.device)
    return stack[layers.to(stack.device), rows]


@register_schedule
class Layerwise(Schedule):
    """Piecewise-constant weights: on [ℓτ, (ℓ+1)τ) layer ℓ (clipped to the last) uses the ℓ-th slice.

    Each keyword (``Q``, ``K``, ``QK``, ``V``) is a stack of shape (L, ...) whose slices have the shapes
    :class:`~tokensphere.Model` accepts (shared, per system (B, ...), per head (H, ...)). A discrete
    Transformer of L layers: ``Model(schedule=Layerwise(1.0, V=Vs))``. Vectorised over systems.

    The feed-forward layer of (2.8) may vary by layer too: stacks ``w`` (L, d, p), ``a`` (L, p, d), ``b`` (L, p)
    (or per system (L, B, ...)) replace those of the model's :class:`~tokensphere.FeedForward`, which must be
    given (it sets σ): ``Model(feedforward=FeedForward(w[0], a[0], b[0]), schedule=Layerwise(1.0, w=w, a=a, b=b))``.
    """

    kind = "layerwise"

    def __init__(self, layer_time: float, **stacks: Any) -> None:
        self.layer_time = validate_real("layer_time", layer_time, minimum=0.0, strict_minimum=True)
        if not stacks:
            raise ValueError("Layerwise needs at least one of Q, K, QK, V")
        unknown = set(stacks) - set(USER_KEYS) - set(FEEDFORWARD_KEYS)
        if unknown:
            raise ValueError(f"Layerwise takes stacks of Q, K, QK, V and the feed-forward w, a, b; got unknown keys "
                             f"{sorted(unknown)}")
        self.stacks = {k: as_tensor(k, v) for k, v in stacks.items()}
        lengths = {v.shape[0] if v.ndim else 0 for v in self.stacks.values()}
        if len(lengths) != 1:
            raise ValueError(f"every stack must have the same number of layers L, got {sorted(lengths)}")
        self.layers = lengths.pop()
        if self.layers < 1:
            raise ValueError("Layerwise stacks must hold at least one layer (shape (L, ...), L >= 1)")
        self._systems: torch.Tensor | None = None
        self._canonical: dict[tuple, dict[str, torch.Tensor]] = {}

    def layer(self, t: float) -> int:
        """Index of the layer active at time t (see :func:`layer_index`)."""
        return int(layer_index(t, self.layer_time, self.layers))

    def breakpoints(self, t_max: float, t0: float = 0.0) -> list[float]:
        """Layer boundaries ℓ·τ in (t0, t_max)."""
        return layer_breakpoints(self.layer_time, t_max, t0, self.layers)

    def _stacks(self, heads: int, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
        key = (heads, dtype, device)
        if key not in self._canonical:
            self._canonical[key] = {
                _CANONICAL[k]: torch.stack([canonical_matrix(k, s, heads) for s in v]).to(dtype=dtype, device=device)
                for k, v in self.stacks.items() if k in _CANONICAL
            }
            for k, (name, dims) in FEEDFORWARD_KEYS.items():
                if k in self.stacks:
                    self._canonical[key][name] = torch.stack(
                        [canonical_layer(k, s, dims) for s in self.stacks[k]]).to(dtype=dtype, device=device)
        return self._canonical[key]

    def matrices(self, t, heads, dtype, device):
        stacks = self._stacks(heads, dtype, device)
        ell = layer_index(t, self.layer_time, self.layers).reshape(-1)
        if ell.numel() == 1 or bool((ell == ell[0]).all()):  # one layer for every system: no gather
            e = int(ell[0])
            sys = self._systems
            return {k: (s[e] if s.shape[1] == 1 or sys is None else s[e].index_select(0, sys.to(s.device)))
                    for k, s in stacks.items()}
        return {k: _gather(s, ell, self._systems) for k, s in stacks.items()}

    def take(self, index: torch.Tensor) -> Layerwise:
        sub = object.__new__(Layerwise)
        sub.__dict__.update(self.__dict__)
        sub.__dict__.pop("_attention_part", None)  # made for the unrestricted systems
        index = index.reshape(-1).long()
        sub._systems = index if self._systems is None else self._systems[index]
        return sub

    def without_feedforward(self) -> Layerwise | None:
        """The schedule of the attention weights alone: this one without its feed-forward stacks w, a, b,
        restricted to the same systems (itself when it has none; None when it has nothing else). Made once and
        kept, with its own cache of canonical tensors (the block sub-steps ask for it at every step)."""
        if not set(self.stacks) & set(FEEDFORWARD_KEYS):
            return self
        if "_attention_part" not in self.__dict__:
            part = None
            if set(self.stacks) - set(FEEDFORWARD_KEYS):
                part = object.__new__(Layerwise)
                part.__dict__.update(self.__dict__)
                part.stacks = {k: v for k, v in self.stacks.items() if k not in FEEDFORWARD_KEYS}
                part._canonical = {}
            self.__dict__["_attention_part"] = part
        return self.__dict__["_attention_part"]

    def to_spec(self):
        arrays = dict(self.stacks)
        if self._systems is not None:
            arrays["systems"] = self._systems.double()
        return {"kind": self.kind, "layer_time": self.layer_time, "keys": sorted(self.stacks)}, arrays

    @classmethod
    def from_spec(cls, spec, arrays):
        return cls(spec["layer_time"], **{k: arrays[k] for k in spec["keys"]})

    def _heads_hint(self) -> int:
        return next(iter(self._canonical))[0] if self._canonical else 1

    def __repr__(self) -> str:
        return f"Layerwise(layer_time={self.layer_time}, layers={self.layers}, keys={sorted(self.stacks)})"


class CallableSchedule(Schedule):
    """Any function ``t ↦ mapping`` with some of Q, K, QK, V (shapes as :class:`~tokensphere.Model` accepts).

    The function receives a float time, or the (B,) tensor of per-system times if it has the attribute
    ``vectorized = True`` (then it returns per-system matrices). Per-system times for a scalar function are
    evaluated once per distinct time. Its jumps, if any, come from an optional ``breakpoints(t_max)`` method
    of the function. A Python function cannot be stored: a saved run records its repr only.
    """

    kind = "callable"

    def __init__(self, fn: Callable[[Any], Mapping[str, Any]]) -> None:
        if not callable(fn):
            raise ValueError(f"schedule must be a Schedule or a callable t -> mapping, got {type(fn).__name__}")
        self.fn = fn

    def _eval(self, t: Any, heads: int, dtype, device) -> dict[str, torch.Tensor]:
        update = dict(self.fn(t))
        unknown = set(update) - set(USER_KEYS)
        if unknown:
            raise ValueError(f"schedule returned unknown keys {sorted(unknown)}; allowed: Q, K, QK, V")
        out = {}
        for k, val in update.items():
            m = canonical_matrix(k, val, heads)
            if k in ("QK", "V") and m.shape[-1] != m.shape[-2]:
                raise ValueError(f"schedule returned {k} of shape {tuple(m.shape[-2:])}; {k} must be square (d, d)")
            out[_CANONICAL[k]] = m.to(dtype=dtype, device=device)
        return out

    def matrices(self, t, heads, dtype, device):
        tt = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
        if getattr(self.fn, "vectorized", False):
            return self._eval(tt, heads, dtype, device)
        values, inverse = torch.unique(tt, return_inverse=True)
        if values.numel() == 1:
            return self._eval(float(values[0]), heads, dtype, device)
        per_time = [self._eval(float(v), heads, dtype, device) for v in values]
        rows = torch.arange(tt.numel())
        out = {}
        for k in per_time[0]:
            stack = torch.stack([p[k].expand(tt.numel(), *p[k].shape[1:]) for p in per_time])  # (U, B, H, r, c)
            out[k] = stack[inverse, rows]
        return out

    def breakpoints(self, t_max: float, t0: float = 0.0) -> list[float]:
        bps = getattr(self.fn, "breakpoints", None)
        return [] if bps is None else [b for b in bps(t_max) if t0 < b < t_max]

    def take(self, index):
        take = getattr(self.fn, "take", None)
        return self if take is None else CallableSchedule(take(index))

    def __repr__(self) -> str:
        return f"CallableSchedule({self.fn!r})"


def as_schedule(value: Any) -> Schedule | None:
    """None, a :class:`Schedule`, or a callable wrapped as :class:`CallableSchedule`."""
    if value is None or isinstance(value, Schedule):
        return value
    return CallableSchedule(value)
