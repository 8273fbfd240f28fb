"""Trainable time-dependent parameters θ(t) and the schedule that hands them to the kernel.

Three parametrisations of one matrix (or vector) valued function of time on [0, T], each a ``torch.nn.Module``
whose ``forward(t)`` takes a 0-d or (B,) float64 time tensor and returns the value, shape ``shape`` or
(B, *shape):

* :class:`Constant` — θ(t) = θ (a time-independent weight);
* :class:`Piecewise` — a discrete Transformer of L layers: θ(t) = θ_k on [kT/L, (k+1)T/L) (the last layer
  closed at T); the layer index is :func:`tokensphere.schedule.layer_index`, the one layer index of the package;
* :class:`Smooth` — θ(t) = Σ_{k<K} c_k P_k(2t/T − 1), Legendre polynomials P_k on [−1, 1] (a small smooth basis).

:class:`ControlSchedule` is a :class:`~tokensphere.schedule.Schedule` built from such modules for any of
Q, K, QK, V and the feed-forward w, a, b of (2.8); :class:`Controls` gathers β and the schedule and builds the
:class:`~tokensphere.Model` that :func:`tokensphere.field.velocity` reads, keeping every autograd edge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..feedforward import ACTIVATIONS, FeedForward
from ..model import Model
from ..schedule import Schedule, layer_breakpoints, layer_index
from ..validate import validate_choice, validate_int, validate_real

__all__ = ["Constant", "Piecewise", "Smooth", "ControlSchedule", "Controls", "KEYS", "legendre"]

# schedule keys: the attention matrices (user names) and the feed-forward layer of (2.8)
KEYS = {"Q": "q", "K": "k", "QK": "qk", "V": "v", "w": "ff_w", "a": "ff_a", "b": "ff_b"}


def _shape(shape: Sequence[int]) -> tuple[int, ...]:
    """A parameter's shape: a sequence of integers ≥ 1 (raises ValueError naming ``shape``)."""
    try:
        out = tuple(int(k) for k in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be a sequence of integers >= 1, got {shape!r}") from None
    if any(k < 1 for k in out):
        raise ValueError(f"shape must be a sequence of integers >= 1, got {out}")
    return out


def _broadcast_init(init: Any, shape: tuple[int, ...]) -> torch.Tensor:
    """``init`` as float64, broadcast to ``shape`` (raises ValueError naming ``init``)."""
    value = torch.as_tensor(init, dtype=torch.float64)
    try:
        return value.expand(*shape).clone()
    except RuntimeError:
        raise ValueError(f"init must broadcast to shape {shape}, got shape {tuple(value.shape)}") from None


def _initial(shape: Sequence[int], init: Any, generator: torch.Generator | None, scale: float) -> torch.Tensor:
    """init given (broadcast to shape), or scale·N(0, 1) drawn from ``generator`` (float64)."""
    shape = _shape(shape)
    if init is not None:
        return _broadcast_init(init, shape)
    if generator is None:
        return torch.zeros(*shape, dtype=torch.float64)
    return scale * torch.randn(*shape, generator=generator, dtype=torch.float64)


class Constant(nn.Module):
    """θ(t) = θ for all t. shape: the value's shape; init: a value (broadcast) or None for scale·N(0, 1) from
    ``generator`` (zeros without one). forward(t) → ``shape`` for 0-d t, (B, *shape) for (B,) t."""

    def __init__(self, shape: Sequence[int], init: Any = None, *, generator: torch.Generator | None = None,
                 scale: float = 1.0) -> None:
        super().__init__()
        self.value = nn.Parameter(_initial(tuple(shape), init, generator, scale))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t)
        return self.value if t.ndim == 0 else self.value.expand(t.numel(), *self.value.shape)

    def breakpoints(self, t_max: float, t0: float = 0.0) -> list[float]:
        return []


class Piecewise(nn.Module):
    """θ(t) = θ_k on [k·T/L, (k+1)·T/L): L layers of a discrete Transformer (the last layer extends beyond T).

    layers: L ≥ 1. t_max: T > 0. shape, init, generator, scale: as :class:`Constant` (init broadcast to every
    layer). Parameter ``values`` of shape (L, *shape). forward(t) → ``shape`` for 0-d t, (B, *shape) for (B,) t.
    """

    def __init__(self, layers: int, t_max: float, shape: Sequence[int], init: Any = None, *,
                 generator: torch.Generator | None = None, scale: float = 1.0) -> None:
        super().__init__()
        self.layers = validate_int("layers", layers, minimum=1)
        self.t_max = validate_real("t_max", t_max, minimum=0.0, strict_minimum=True)
        self.values = nn.Parameter(_initial((self.layers, *shape), init, generator, scale))

    @property
    def layer_time(self) -> float:
        return self.t_max / self.layers

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        ell = layer_index(t, self.layer_time, self.layers)
        return self.values[ell.to(self.values.device)]

    def breakpoints(self, t_max: float, t0: float = 0.0) -> list[float]:
        """Layer boundaries k·T/L in (t0, t_max)."""
        return layer_breakpoints(self.layer_time, t_max, t0, self.layers)


def legendre(s: torch.Tensor, degree: int) -> torch.Tensor:
    """Legendre polynomials P_0 … P_{degree−1} at s ∈ [−1, 1] by Bonnet's recursion
    (k+1) P_{k+1} = (2k+1) s P_k − k P_{k−1}. s: any shape (...). degree ≥ 1. Returns (..., degree)."""
    degree = validate_int("degree", degree, minimum=1)
    out = [torch.ones_like(s)]
    if degree > 1:
        out.append(s)
    for k in range(1, degree - 1):
        out.append(((2 * k + 1) * s * out[k] - k * out[k - 1]) / (k + 1))
    return torch.stack(out[:degree], dim=-1)


class Smooth(nn.Module):
    """θ(t) = Σ_{k<K} c_k P_k(2t/T − 1): a smooth, polynomial-in-time weight (Legendre basis on [0, T]).

    basis: K ≥ 1 (K = 1 is a constant). t_max: T > 0. init: the constant part c_0 (broadcast); the higher
    coefficients start at zero, or at scale·N(0, 1)/(k+1) from ``generator`` when init is None.
    Parameter ``coefficients`` (K, *shape). forward(t) → ``shape`` for 0-d t, (B, *shape) for (B,) t.
    """

    def __init__(self, basis: int, t_max: float, shape: Sequence[int], init: Any = None, *,
                 generator: torch.Generator | None = None, scale: float = 1.0) -> None:
        super().__init__()
        self.basis = validate_int("basis", basis, minimum=1)
        self.t_max = validate_real("t_max", t_max, minimum=0.0, strict_minimum=True)
        shape = _shape(shape)
        c = torch.zeros(self.basis, *shape, dtype=torch.float64)
        if init is not None:
            c[0] = _broadcast_init(init, shape)
        elif generator is not None:
            decay = 1.0 / torch.arange(1, self.basis + 1, dtype=torch.float64)
            c = scale * torch.randn(self.basis, *shape, generator=generator, dtype=torch.float64)
            c = c * decay.view(-1, *([1] * len(shape)))
        self.coefficients = nn.Parameter(c)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        s = 2.0 * torch.as_tensor(t, dtype=self.coefficients.dtype) / self.t_max - 1.0
        phi = legendre(s, self.basis)  # (..., K)
        return torch.tensordot(phi, self.coefficients, dims=([-1], [0]))

    def breakpoints(self, t_max: float, t0: float = 0.0) -> list[float]:
        return []


class ControlSchedule(Schedule):
    """A schedule whose weights are trainable modules θ(t) (:class:`Constant`, :class:`Piecewise`,
    :class:`Smooth`, or any module with ``forward(t)`` and ``breakpoints``).

    parts: {"Q"|"K"|"QK"|"V": module giving (r, d) matrices, "w": (d, p), "a": (p, d), "b": (p,)}; one head.
    ``matrices(t, …)`` returns the canonical tensors (B or 1, 1, r, c) and (B or 1, d, p), (B or 1, p, d),
    (B or 1, p) for the feed-forward keys ``ff_w``, ``ff_a``, ``ff_b``, with the autograd graph to the modules'
    parameters. It is not storable (its modules are Python objects): freeze it with ``model.at(t)``.
    """

    kind = "control"

    def __init__(self, parts: Mapping[str, nn.Module]) -> None:
        unknown = set(parts) - set(KEYS)
        if unknown:
            raise ValueError(f"control parts must be among {', '.join(KEYS)}; got unknown keys {sorted(unknown)}")
        if "QK" in parts and ("Q" in parts or "K" in parts):
            raise ValueError("give either QK or the pair (Q, K), not both")
        if ("Q" in parts) != ("K" in parts):
            raise ValueError("Q and K must be given together (or give QK)")
        ff = {"w", "a", "b"} & set(parts)
        if ff and ff != {"w", "a", "b"}:
            raise ValueError("the feed-forward layer needs all of w, a and b")
        self.parts = dict(parts)

    def matrices(self, t, heads, dtype, device):
        if heads != 1:
            raise ValueError(f"ControlSchedule drives one head, got heads = {heads}")
        t = torch.as_tensor(t, dtype=torch.float64)
        if t.ndim == 1 and t.numel() > 1 and bool((t == t[0]).all()):
            t = t[0]  # one time for the whole batch: shared weights
        t = t.reshape(()) if t.numel() == 1 else t
        out = {}
        for name, module in self.parts.items():
            val = module(t).to(dtype=dtype, device=device)
            if t.ndim == 0:
                val = val.unsqueeze(0)  # (1, ...)
            if name in ("Q", "K", "QK", "V"):
                val = val.unsqueeze(1)  # (B or 1, H = 1, r, c)
            out[KEYS[name]] = val
        return out

    def breakpoints(self, t_max: float, t0: float = 0.0) -> list[float]:
        return sorted({b for m in self.parts.values() for b in m.breakpoints(t_max, t0)})

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={type(m).__name__}" for k, m in self.parts.items())
        return f"ControlSchedule({inner})"


class Controls(nn.Module):
    """All trainable parameters of one controlled system: β and the time-dependent weights.

    beta: the initial β ≥ 0; trainable when ``train_beta`` (a Parameter, used as is: keep it ≥ 0 yourself or
    read :meth:`model`'s error). parts: as :class:`ControlSchedule` (modules registered here, so
    ``controls.parameters()`` is everything). activation: σ of the feed-forward layer (when w, a, b are parts).
    normalization: "softmax" (SA) or "uniform" (USA). :meth:`model` builds the :class:`~tokensphere.Model` —
    a cheap validation (measured ≈ 0.2 ms), so a fresh model per training step costs nothing noticeable.
    """

    def __init__(self, parts: Mapping[str, nn.Module], *, beta: float = 1.0, train_beta: bool = False,
                 activation: str = "relu", normalization: str = "softmax") -> None:
        super().__init__()
        self.schedule = ControlSchedule(parts)
        self.parts = nn.ModuleDict(dict(parts))
        self.activation = validate_choice("activation", activation, ACTIVATIONS)
        self.normalization = validate_choice("normalization", normalization, ("softmax", "uniform"))
        b = torch.tensor(validate_real("beta", beta, minimum=0.0), dtype=torch.float64)
        if train_beta:
            self.beta = nn.Parameter(b)
        else:
            self.register_buffer("beta", b)

    def model(self) -> Model:
        """The model ẋ_i = P⊥_{x_i}(Σ_j A_ij(t) V(t) x_j + w(t) σ(a(t) x_i + b(t))) with these parameters."""
        ff = None
        if "w" in self.parts:  # the activation (and the shapes at t = 0) come from a FeedForward; the
            z = torch.zeros((), dtype=torch.float64)  # schedule supplies w(t), a(t), b(t)
            ff = FeedForward(self.parts["w"](z), self.parts["a"](z), self.parts["b"](z), activation=self.activation)
        return Model(beta=self.beta, normalization=self.normalization, schedule=self.schedule, feedforward=ff)

    def breakpoints(self, t_max: float) -> list[float]:
        """The jump times of the piecewise parts in (0, t_max)."""
        return self.schedule.breakpoints(t_max)
