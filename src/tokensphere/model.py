"""The model specification: *what* the dynamics are (§2 of the paper, eqs. (2.3)–(2.7)).

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
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import torch

from .feedforward import FeedForward
from .hardmax import check_tie_policy
from .schedule import Layerwise, Schedule, as_schedule, schedule_from_spec
from .validate import as_tensor, validate_choice, validate_int, validate_real
from .weights import Weights, canonical_matrix

__all__ = ["Model", "Layerwise", "NORMALIZATIONS", "UnrestoredSchedule", "usa_max_beta", "validate_beta"]

NORMALIZATIONS = ("softmax", "uniform", "sinkhorn", "hardmax")
# e^{β} overflows float64 beyond ln(max double) ≈ 709.78 ; USA in original time is refused above (about 10 below
# the overflow: room for sums of up to ~e^9 terms). Other dtypes: usa_max_beta.
USA_ORIGINAL_TIME_MAX_BETA = 700.0


def usa_max_beta(dtype: torch.dtype) -> float:
    """The largest β USA in original time accepts in ``dtype``: ⌊ln(largest finite value)⌋ − 9, so 700 in
    float64 (:data:`USA_ORIGINAL_TIME_MAX_BETA`), 79 in float32 and bfloat16, 2 in float16; the field
    (1/n) Σ_j e^{β⟨x_i, x_j⟩} x_j of unit tokens then stays finite for n up to about e^9 ≈ 8000 tokens at
    the limit (more below it)."""
    return float(math.floor(math.log(torch.finfo(dtype).max)) - 9)

Tensorish = Any  # torch.Tensor, numpy array, nested lists, or a Python number


@dataclass(frozen=True, eq=False)
class Model:
    """Self-attention dynamics on S^{d−1} ((2.3); heads (2.7)).

    Parameters
    ----------
    beta : float or array of shape (B,)
        Inverse temperature β ≥ 0; a vector gives one value per system of the batch.
    normalization : {"softmax", "uniform", "sinkhorn", "hardmax"}
        "softmax" divides by Z_{β,i} (SA, (2.3)); "uniform" divides by n (USA, §3.3 of the paper) — or by the number
        of attended tokens when ``uniform_count="attended"`` (causal USA with 1/i). "sinkhorn" scales e^{scores}
        to a doubly stochastic matrix (Remark 3.5, :mod:`tokensphere.sinkhorn`); "hardmax" is the β → ∞ limit
        (9.5)–(9.6): uniform weights on argmax_j ⟨Q x_i, K x_j⟩ (β is ignored; :mod:`tokensphere.hardmax`).
    sinkhorn_iters, sinkhorn_tol : int ≥ 0, float in [0, 1]
        Sinkhorn only: at most this many column + row iterations, stopping once every column sums to 1 within
        the tolerance (rows always sum to 1: the last step is a row normalisation). Defaults 100, 1e-9.
    ties, tie_tol, tie_seed : {"average", "lowest", "random"} or callable, float ≥ 0, int
        Hardmax only: the Filippov selection at a tie (|C_i| > 1): average over C_i (9.5) [default], the lowest
        index, a seeded random member, or ``rule(candidates, scores) -> weights``; j ∈ C_i when its score is
        within ``tie_tol`` (default 1e-12) of the row maximum.
    centered : bool
        Value term Σ_j A_ij V (x_j − x_i) instead of Σ_j A_ij V x_j: with ``projection=False`` this is the
        time-homogeneous rescaled dynamics (9.4) (and (9.5) with hardmax). Needs row-stochastic attention
        (not "uniform"); on the sphere with V = I it changes nothing (P⊥_{x_i} x_i = 0).
    norm : {"post", "pre", "rms", "ngpt"}
        The continuous form of a Transformer block's normalisation (docs/blocks.md): "post" (default, the paper's
        P⊥); "pre": ẏ_i = F_i(N(Y)) on the unnormalised stream (needs ``projection=False``); "rms": ẏ_i = P_y F_i
        on the ellipsoid Σ_k (y_k/g_k)² = d, P_y v = v − (⟨y ⊘ g², v⟩/d) y (needs ``projection=False``);
        "ngpt": ẋ_i = P⊥_{x_i}(Ĝ_A + Ĝ_F), each term normalised to unit length (needs ``projection=True``).
    norm_gain : array of shape (d,), optional
        The RMSNorm gain g > 0 of ``norm="rms"`` (default ones).
    Q, K : array of shape (k, d), (B, k, d); with ``heads=H > 1``: (H, k, d) or (B, H, k, d)
        Query and key matrices (k may differ from d). Scores are ⟨Q x_i, K x_j⟩ = x_iᵀ QᵀK x_j.
    QK : array of shape (d, d), (B, d, d); with heads: (H, d, d) or (B, H, d, d)
        The bilinear form QᵀK given directly (instead of Q and K).
    V : "identity", "repulsive", or array of shape (d, d), (B, d, d); with heads: (H, d, d) or (B, H, d, d)
        Value matrix acting as x ↦ V x. "repulsive" is V = −I (the repulsive case, §9 of the paper).
    heads : int
        Number of heads H; heads are **summed** (2.7) unless ``head_reduction="mean"``.
    mask : array of shape (n, n), (B, n, n) or (B, H, n, n)
        Additive score bias b_ij (−inf masks the pair), or a boolean array in torch's convention (True: i may
        attend to j; False masks the pair). Every row must keep one unmasked entry.
    causal : bool
        Token i attends only to j ≤ i (causal masking; not in the paper, Karagodin–Polyanskiy–Rigollet 2024).
    uniform_count : {"n", "attended"}
        For USA with a mask: divide by n (default) or by the number of unmasked keys (1/i when causal).
    projection : bool
        Apply the tangent projection P⊥ (the paper's model). False gives pure self-attention (9.1) on R^d.
    time_scale : {"original", "exp_beta"}
        USA only: "exp_beta" integrates in s = e^{β} t, i.e. the field (1/n) Σ_j e^{β(⟨Qx_i,Kx_j⟩ − 1)} V x_j,
        which neither overflows nor underflows for β up to 10^4. In original time USA is
        refused for β > 700 (e^{β} overflows float64).
    schedule : callable t ↦ mapping, optional
        Time-dependent weights (depth-dependent Q(t), K(t), V(t), §2 of the paper): returns a mapping with any of "Q", "K", "QK", "V" that replace
        the constant ones at time t. See :class:`Layerwise` for piecewise-constant layers.
    noise : float
        Strength σ ≥ 0 of independent Brownian motion on the sphere added to every token (Problem 7):
        dx_i = P⊥_{x_i}(Σ_j A_ij V x_j) dt + σ P⊥_{x_i} ∘ dW_i (Stratonovich). σ > 0 runs through the stochastic
        integrators of :mod:`tokensphere.integrate.sde` and needs ``projection=True``; 0 is the ODE.
    feedforward : FeedForward, optional
        The feed-forward term w σ(a x_i + b) of the full Transformer (2.8), added before the projection.

    Raises ``ValueError`` naming the parameter for every invalid value.
    """

    beta: Tensorish = 1.0
    normalization: Literal["softmax", "uniform", "sinkhorn", "hardmax"] = "softmax"
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
    noise: float = 0.0
    schedule: Schedule | Callable[[float], Mapping[str, Tensorish]] | None = field(default=None, repr=False)
    feedforward: FeedForward | None = None
    sinkhorn_iters: int = 100
    sinkhorn_tol: float = 1e-9
    ties: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "average"
    tie_tol: float = 1e-12
    tie_seed: int = 0
    centered: bool = False
    norm: Literal["post", "pre", "rms", "ngpt"] = "post"
    norm_gain: Tensorish | None = None
    # canonical weights per (dtype, device), filled by __post_init__ (the one private state)
    _weights: dict[tuple[torch.dtype, torch.device], Weights] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _last_take: tuple[torch.Tensor, Model, torch.Tensor, int] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        validate_choice("normalization", self.normalization, NORMALIZATIONS)
        validate_choice("head_reduction", self.head_reduction, ("sum", "mean"))
        validate_choice("uniform_count", self.uniform_count, ("n", "attended"))
        validate_choice("time_scale", self.time_scale, ("original", "exp_beta"))
        self.__dict__["heads"] = validate_int("heads", self.heads, minimum=1)
        for flag in ("causal", "projection", "centered"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        self.__dict__["schedule"] = as_schedule(self.schedule)
        self.__dict__["noise"] = validate_real("noise", self.noise, minimum=0.0)
        if self.noise > 0 and not self.projection:
            raise ValueError("noise > 0 is Brownian motion on the sphere: it needs projection=True")
        beta = validate_beta(self.beta, self.normalization, self.time_scale)
        self.__dict__["sinkhorn_iters"] = validate_int("sinkhorn_iters", self.sinkhorn_iters, minimum=0)
        self.__dict__["sinkhorn_tol"] = validate_real("sinkhorn_tol", self.sinkhorn_tol, minimum=0.0, maximum=1.0)
        self.__dict__["tie_tol"] = validate_real("tie_tol", self.tie_tol, minimum=0.0)
        self.__dict__["tie_seed"] = validate_int("tie_seed", self.tie_seed, minimum=0)
        check_tie_policy(self.ties)
        norm_gain = _check_norm(self.norm, self.norm_gain, self.projection)
        if self.centered and self.normalization == "uniform":
            raise ValueError("centered=True needs row-stochastic attention (normalization 'softmax', 'sinkhorn' or "
                             "'hardmax'), got normalization='uniform'")
        q, k, qk = _check_scores(self.Q, self.K, self.QK, self.heads)
        v, sign = _check_values(self.V, self.heads)
        mask = _check_mask(self.mask, self.causal, self.heads)
        ff = self.feedforward
        if ff is not None and not isinstance(ff, FeedForward):
            raise ValueError(f"feedforward must be a tokensphere.FeedForward or None, got {type(ff).__name__}")
        if ff is None and isinstance(self.schedule, Layerwise) and set(self.schedule.stacks) & {"w", "a", "b"}:
            raise ValueError("feedforward must be given (a tokensphere.FeedForward, which sets σ) when the schedule "
                             "holds feed-forward stacks w, a, b")
        weights = Weights(
            beta=beta, q=q, k=k, qk=qk, v=v, mask=mask, sign=sign, normalization=self.normalization,
            heads=self.heads, head_reduction=self.head_reduction, causal=self.causal,
            uniform_count=self.uniform_count, projection=self.projection, time_scale=self.time_scale,
            sinkhorn_iters=self.sinkhorn_iters, sinkhorn_tol=self.sinkhorn_tol, ties=self.ties,
            tie_tol=self.tie_tol, tie_seed=self.tie_seed, centered=self.centered, norm=self.norm, norm_gain=norm_gain,
            **({} if ff is None else {"ff_w": ff.w, "ff_a": ff.a, "ff_b": ff.b, "ff_activation": ff.activation}),
        )
        dtype = beta.dtype
        for t in weights._tensors():
            dtype = torch.promote_types(dtype, t.dtype)
        _check_usa_dtype(weights, dtype)
        weights = weights.to(dtype, beta.device)  # one dtype for all (a float32 matrix with a Python β: float64)
        sizes = {t.shape[0] for t in weights._tensors()} - {1}
        if len(sizes) > 1:
            raise ValueError(f"per-system parameters must share one batch size B, got sizes {sorted(sizes)}")
        # the one private state: canonical weights per (dtype, device), built on first use
        self._weights[(dtype, beta.device)] = weights

    # ------------------------------------------------------------------------------------------------
    def weights(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Weights:
        """The canonical :class:`~tokensphere.weights.Weights` in ``dtype`` on ``device`` (cached per pair;
        default: as given, float64 on the CPU for Python numbers)."""
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ValueError(f"dtype must be a floating-point torch dtype (torch.float64, torch.float32, ...), "
                             f"got {dtype!r}")
        cache = self._weights
        base = next(iter(cache.values()))
        key = (dtype or base.beta.dtype, torch.device(device) if device is not None else base.beta.device)
        w = cache.get(key)
        if w is None:
            _check_usa_dtype(base, key[0])
            w = cache[key] = base.to(*key)
        return w

    @property
    def batch_size(self) -> int:
        """Number of systems the parameters describe (1 when every parameter is shared)."""
        return self.weights().batch

    @property
    def is_identity_attention(self) -> bool:
        """True for Q = K = I (scores ⟨x_i, x_j⟩), no mask, not causal."""
        return self.weights().identity_attention

    @property
    def is_sa_toy(self) -> bool:
        """True for the toy model Q = K = V = ±I with one head, no mask and constant weights (§2, (2.3)), SA or USA
        normalisation, the plain value term and post-norm (the setting of the paper's energy identities).
        ``projection`` is not checked: the model may run with or without the tangent projection."""
        w = self.weights()
        return (w.toy and self.schedule is None and w.ff_w is None and w.normalization in ("softmax", "uniform")
                and not w.centered and w.norm == "post")

    @property
    def sign(self) -> float:
        """+1 for attractive V = I, −1 for repulsive V = −I; +1 when V is a general matrix."""
        return self.weights().sign

    def beta_tensor(self) -> torch.Tensor:
        """β as a 1-D float tensor of shape (1,) or (B,)."""
        return self.weights().beta

    def at(self, t: float | torch.Tensor) -> Model:
        """The model with time-dependent weights frozen at time ``t`` (itself when there is no schedule).

        t: a number, or a (B,) tensor of per-system times (then the matrices are per system).
        """
        if self.schedule is None:
            return self
        w = self.weights()
        frozen = w.with_matrices(self.schedule.matrices(torch.as_tensor(t, dtype=torch.float64), self.heads,
                                                        w.beta.dtype, w.beta.device))
        return _from_weights(self, frozen, schedule=None)

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Model:
        """A copy whose tensors have the given dtype and device (the same object when nothing changes)."""
        base = self.weights()
        w = self.weights(dtype, device)
        if w is base:
            return self
        return _from_weights(self, w, schedule=self.schedule)

    def take(self, index: torch.Tensor) -> Model:
        """The model restricted to the systems ``index`` (per-system parameters indexed, shared ones kept).

        Pure tensor indexing of the already validated weights (and of every cached dtype/device copy); a
        schedule is restricted with its own ``take``.
        """
        if not (isinstance(index, torch.Tensor) and index.dtype == torch.long and index.ndim == 1):
            index = _system_index(index)
        # the integrator restricts to the same active systems step after step: remember the last restriction
        last = self._last_take
        if last is not None:
            # the driver passes the same index tensor, unchanged, until its active set changes: then no
            # comparison (on CUDA, no host-device synchronisation) is needed
            if last[2] is index and last[3] == index._version:
                return last[1]
            if last[0].shape == index.shape and torch.equal(last[0], index.to(last[0].device)):
                return last[1]
        sched = None if self.schedule is None else self.schedule.take(index)
        cache = self._weights
        base = next(iter(cache.values()))
        if base.batch == 1 and sched is self.schedule:
            return self
        out = _from_weights(self, base.take(index), schedule=sched)
        out_cache = out._weights
        for key, w in cache.items():
            if key not in out_cache:
                out_cache[key] = w.take(index)
        # a cache, not state: the model stays immutable
        self.__dict__["_last_take"] = (index.clone(), out, index, index._version)
        return out

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary (arrays summarised by shape) for run metadata and reports."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if not f.init:
                continue
            val = getattr(self, f.name)
            if f.name == "beta":
                b = self.beta_tensor()
                out["beta"] = b.tolist() if b.numel() <= 4096 else f"array{tuple(b.shape)}"
            elif f.name in ("schedule", "feedforward") or callable(val):
                out[f.name] = None if val is None else repr(val)
            elif val is None or isinstance(val, (str, bool, int, float)):
                out[f.name] = val
            else:
                out[f.name] = f"array{tuple(as_tensor(f.name, val).shape)}"
        return out

    def to_spec(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Everything needed to rebuild this model: (JSON-able options, arrays).

        Arrays: ``beta`` and the matrices in their canonical shapes (``Q``, ``K``, ``QK``, ``V``, ``mask``),
        and the schedule's arrays prefixed ``schedule/``. :meth:`from_spec` inverts it exactly. A schedule
        that cannot be stored (a Python callable) is recorded by its repr and restored as a schedule that
        refuses to run (:class:`UnrestoredSchedule`).
        """
        w = self.weights()
        spec: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self)
            if f.init and f.name != "V" and isinstance(getattr(self, f.name), (bool, int, str))
        }
        spec["V"] = self.V if isinstance(self.V, str) else None
        spec["noise"] = self.noise
        spec["sinkhorn_tol"], spec["tie_tol"] = self.sinkhorn_tol, self.tie_tol
        if callable(self.ties):  # a Python rule cannot be stored: its repr, restored as a rule that refuses to run
            spec["ties"], spec["ties_repr"] = "user", repr(self.ties)
        arrays: dict[str, torch.Tensor] = {"beta": w.beta}
        for name, t in (("Q", w.q), ("K", w.k), ("QK", w.qk), ("V", w.v), ("mask", w.mask), ("norm_gain", w.norm_gain)):
            if t is not None:
                arrays[name] = t
        spec["schedule"] = None
        if self.schedule is not None:
            try:
                sched_spec, sched_arrays = self.schedule.to_spec()
            except ValueError:
                sched_spec, sched_arrays = {"kind": "unrestorable", "repr": repr(self.schedule)}, {}
            spec["schedule"] = sched_spec
            arrays.update({f"schedule/{k}": v for k, v in sched_arrays.items()})
        spec["feedforward"] = None
        if w.ff_w is not None:
            spec["feedforward"] = {"activation": w.ff_activation}
            arrays.update({"feedforward/w": w.ff_w, "feedforward/a": w.ff_a, "feedforward/b": w.ff_b})
        # a spec is a record: a model built from trainable tensors stores their current values
        return spec, {k: v.detach() for k, v in arrays.items()}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], arrays: Mapping[str, Any]) -> Model:
        """Rebuild a model from :meth:`to_spec` output (arrays may be tensors or NumPy arrays)."""
        tens = {k: as_tensor(k, v) for k, v in arrays.items()}
        kw = {k: v for k, v in spec.items() if k not in ("schedule", "feedforward", "ties_repr")}
        if kw.get("ties") == "user":
            kw["ties"] = _UnrestoredTieRule(spec.get("ties_repr", "?"))
        for name in ("Q", "K", "QK", "V", "mask", "norm_gain"):
            if name in tens:
                kw[name] = tens[name]
        if kw.get("V") is None:
            kw["V"] = "identity"
        kw["beta"] = tens["beta"]
        sched = spec.get("schedule")
        if sched is not None:
            sub = {k.split("/", 1)[1]: v for k, v in tens.items() if k.startswith("schedule/")}
            if sched.get("kind") == "unrestorable":
                kw["schedule"] = UnrestoredSchedule(sched.get("repr", "?"))
            else:
                kw["schedule"] = schedule_from_spec(sched, sub)
        if spec.get("feedforward") is not None:
            sub = {k.split("/", 1)[1]: v for k, v in tens.items() if k.startswith("feedforward/")}
            kw["feedforward"] = FeedForward.from_spec(spec["feedforward"], sub)
        return cls(**kw)


class UnrestoredSchedule(Schedule):
    """Stands in for a Python-function schedule of a stored run: loading works, running refuses clearly."""

    kind = "unrestorable"

    def __init__(self, description: str) -> None:
        self.description = description

    def matrices(self, t, heads, dtype, device):
        raise ValueError(
            f"this run used a Python function as its schedule ({self.description}), which cannot be stored; "
            "pass model=Model(..., schedule=...) to continue it"
        )

    def to_spec(self):
        return {"kind": "unrestorable", "repr": self.description}, {}

    def __repr__(self) -> str:
        return f"UnrestoredSchedule({self.description})"


class _UnrestoredTieRule:
    """Stands in for a Python tie rule of a stored hardmax run: loading works, running refuses clearly."""

    def __init__(self, description: str) -> None:
        self.description = description

    def __call__(self, candidates, scores):
        raise ValueError(f"this run used a Python function as its hardmax tie rule ({self.description}), which "
                         "cannot be stored; pass model=Model(..., ties=...) to continue it")

    def __repr__(self) -> str:
        return f"UnrestoredTieRule({self.description})"


def _from_weights(model: Model, w: Weights, *, schedule: Schedule | None) -> Model:
    """A Model sharing ``model``'s options whose parameters are the canonical tensors of ``w`` (no validation:
    ``w`` comes from a validated model by indexing, conversion or freezing a schedule)."""
    out = object.__new__(Model)
    state = out.__dict__  # a frozen dataclass refuses setattr, not its own __dict__
    state.update(model.__dict__)
    state.update(beta=w.beta, Q=w.q, K=w.k, QK=w.qk, mask=w.mask, schedule=schedule,
                 V=model.V if isinstance(model.V, str) and w.v is None else w.v, norm_gain=w.norm_gain,
                 feedforward=None if w.ff_w is None else _feedforward_of(w))
    state["_weights"] = {(w.beta.dtype, w.beta.device): w}
    state["_last_take"] = None
    return out


def _system_index(index: Any) -> torch.Tensor:
    """``take``'s index as a 1-D long tensor: integers (any integer dtype or sequence), or a boolean mask over the
    systems (its True positions). Raises ValueError for anything else (fractional numbers would be truncated)."""
    try:
        t = torch.as_tensor(index)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"index must be integers or a boolean mask over the systems, got "
                         f"{type(index).__name__}") from None
    if t.dtype == torch.bool:
        return t.reshape(-1).nonzero().reshape(-1)
    if t.is_floating_point() or t.is_complex():
        raise ValueError(f"index must be integers or a boolean mask over the systems, got dtype "
                         f"{str(t.dtype).replace('torch.', '')}")
    return t.reshape(-1).long()


def _feedforward_of(w: Weights) -> FeedForward:
    """The FeedForward holding ``w``'s canonical feed-forward tensors (already validated: not checked again), so
    that a model rebuilt from its fields (``dataclasses.replace``) keeps the layer its weights use."""
    ff = object.__new__(FeedForward)
    for name, value in (("w", w.ff_w), ("a", w.ff_a), ("b", w.ff_b), ("activation", w.ff_activation)):
        object.__setattr__(ff, name, value)
    return ff


def _check_usa_dtype(w: Weights, dtype: torch.dtype) -> None:
    """USA in original time in a dtype narrower than float64: refuse a β whose e^β overflows it (validate_beta
    checked float64 only; the dtype is known once weights in it are asked for: one host read, then cached)."""
    if w.normalization != "uniform" or w.time_scale != "original" or not dtype.is_floating_point:
        return
    limit = usa_max_beta(dtype)
    if limit < USA_ORIGINAL_TIME_MAX_BETA and float(w.beta.max()) > limit:
        name = str(dtype).replace("torch.", "")
        raise ValueError(
            f"beta must be <= {limit:g} for normalization='uniform' in original time in {name} (e^beta overflows "
            f"{name}), got {float(w.beta.max()):g}; use time_scale='exp_beta' or float64"
        )


def validate_beta(value: Tensorish, normalization: str = "softmax", time_scale: str = "original", *,
                  positive: bool = False, normalizations: tuple[str, ...] = NORMALIZATIONS) -> torch.Tensor:
    """β as a 1-D tensor (k,) (a number gives (1,)), validated with the model's rules: finite, ≥ 0 (> 0 when
    ``positive``), time_scale "exp_beta" only with USA, and USA in original time only up to 700 (e^β
    overflows float64 beyond); ``normalizations``: the ones the caller supports. The one β check of the package:
    :class:`Model`, the circle and the mean-field solvers call it. Raises ValueError naming beta."""
    validate_choice("normalization", normalization, normalizations)
    validate_choice("time_scale", time_scale, ("original", "exp_beta"))
    beta = as_tensor("beta", value)
    if beta.ndim > 1:
        raise ValueError(f"beta must be a number or a 1-D array of shape (B,), got shape {tuple(beta.shape)}")
    if beta.numel() == 0:
        raise ValueError("beta must hold at least one value, got an empty array")
    op = ">" if positive else ">="
    bad = ~(torch.isfinite(beta) & ((beta > 0) if positive else (beta >= 0)))
    if bool(bad.any()):
        raise ValueError(f"beta must be a finite number {op} 0, got {beta[bad][0].item()}")
    if time_scale == "exp_beta" and normalization != "uniform":
        raise ValueError("time_scale='exp_beta' applies to normalization='uniform' (USA) only")
    top = float(beta.detach().max())  # detached: a trainable β is checked without a warning
    if normalization == "uniform" and time_scale == "original" and top > USA_ORIGINAL_TIME_MAX_BETA:
        raise ValueError(
            f"beta must be <= {USA_ORIGINAL_TIME_MAX_BETA:g} for normalization='uniform' in original time "
            f"(e^beta overflows float64), got {top:g}; use time_scale='exp_beta'"
        )
    return beta.reshape(-1)


def _check_scores(Q, K, QK, heads: int):
    if QK is not None and (Q is not None or K is not None):
        raise ValueError("give either QK or the pair (Q, K), not both")
    if (Q is None) != (K is None):
        raise ValueError("Q and K must be given together (or give QK)")
    if heads > 1 and Q is None and QK is None:
        raise ValueError(f"heads={heads} needs per-head Q and K (shape (H, k, d)) or QK (shape (H, d, d))")
    q = k = qk = None
    if Q is not None:
        q, k = canonical_matrix("Q", Q, heads), canonical_matrix("K", K, heads)
        if q.shape[-2:] != k.shape[-2:]:
            raise ValueError(
                f"Q and K must have the same shape (k, d), got {tuple(q.shape[-2:])} and {tuple(k.shape[-2:])}"
            )
    if QK is not None:
        qk = canonical_matrix("QK", QK, heads)
        if qk.shape[-1] != qk.shape[-2]:
            raise ValueError(f"QK must be square (d, d), got {tuple(qk.shape[-2:])}")
    return q, k, qk


def _check_values(V, heads: int) -> tuple[torch.Tensor | None, float]:
    if isinstance(V, str):
        validate_choice("V", V, ("identity", "repulsive"))
        return None, (1.0 if V == "identity" else -1.0)
    v = canonical_matrix("V", V, heads)
    if v.shape[-1] != v.shape[-2]:
        raise ValueError(f"V must be square (d, d), got {tuple(v.shape[-2:])}")
    return v, 1.0


def _check_norm(norm: str, gain, projection: bool) -> torch.Tensor | None:
    validate_choice("norm", norm, ("post", "pre", "rms", "ngpt"))
    if norm in ("pre", "rms") and projection:
        raise ValueError(f"norm={norm!r} evolves tokens off the unit sphere (R^d or an ellipsoid): it needs "
                         "projection=False")
    if norm == "ngpt" and not projection:
        raise ValueError("norm='ngpt' keeps tokens on the unit sphere: it needs projection=True")
    if gain is None:
        return None
    if norm != "rms":
        raise ValueError(f"norm_gain applies to norm='rms' only, got norm={norm!r}")
    g = as_tensor("norm_gain", gain)
    if g.ndim != 1 or not bool(torch.isfinite(g).all()) or not bool((g > 0).all()):
        raise ValueError(f"norm_gain must be a 1-D array (d,) of finite entries > 0, got shape {tuple(g.shape)}")
    return g


def _bool_mask(mask: Any) -> torch.Tensor | None:
    """``mask`` as a boolean tensor when it is a boolean array (tensor, NumPy array or nested lists), else None."""
    if isinstance(mask, torch.Tensor):
        return mask if mask.dtype == torch.bool else None
    if hasattr(mask, "dtype"):  # a NumPy array or scalar
        return torch.as_tensor(mask) if str(mask.dtype) == "bool" else None
    try:
        t = torch.as_tensor(mask)
    except (TypeError, ValueError, RuntimeError):
        return None  # not an array: as_tensor below says so
    return t if t.dtype == torch.bool else None


def _check_mask(mask, causal: bool, heads: int = 1) -> torch.Tensor | None:
    if mask is None:
        return None
    allowed = _bool_mask(mask)
    if allowed is not None:  # True: may attend (torch's convention)
        m = torch.zeros(allowed.shape, dtype=torch.float64, device=allowed.device).masked_fill_(~allowed, -math.inf)
    else:
        m = as_tensor("mask", mask)
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
    if m.shape[1] not in (1, heads):
        raise ValueError(f"mask must have shape (B, H, n, n) with H = heads = {heads} or 1, got {tuple(m.shape)}")
    masked = m == -math.inf
    if causal:  # causal masking removes j > i as well
        n = m.shape[-1]
        masked = masked | torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    if masked.all(dim=-1).any():
        raise ValueError("mask must leave at least one finite entry in every row (a token attends to none)")
    return m


