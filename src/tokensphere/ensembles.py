"""Random weight ensembles for Figure 5 (SPEC §6, §7), drawn per system from seeded streams.

Score matrices B = QᵀK (scores β x_iᵀ B x_j), with G, G₁, G₂ i.i.d. standard Gaussian d×d matrices:

| score | B |
|---|---|
| identity | I |
| ginibre_product | G₁G₂/√d (authors' mode 1; "Q, K Ginibre") |
| wigner_authors | G + Gᵀ with off-diagonal /√2 and diagonal /2: every entry variance 1 (authors' mode 2) |
| goe | (G + Gᵀ)/√2 (authors' mode 3) |

Value matrices, written as the authors' row-convention matrix W (tokens are rows, M ← M + η A M W):

| value | W |
|---|---|
| identity | I |
| psd | GGᵀ/√d (authors' mode 1) |
| ginibre | G/√d (no authors' mode; offered for Figure 5(a), and recorded) |
| plus_score | +B/c, c = √d for ginibre_product / wigner_authors, √(d+1) for goe, 1 for identity (mode 2) |
| minus_score | −B/c (mode 3) |

In the column convention of :class:`tokensphere.Model` (x ↦ V x) the value matrix is V = Wᵀ; it matters only
for non-symmetric W (plus/minus_score with ginibre_product, and ginibre).

Sharing (the authors' ``noanneal``): "independent" (fresh per system and per β), "per_beta" (one draw per β,
shared by its systems), "shared" (one draw for the whole run). ``redraw`` = τ > 0 draws new matrices on each
layer [kτ, (k+1)τ) (the authors' ``regen_period``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .validate import check_choice, check_real

__all__ = ["Ensemble", "SCORES", "VALUES", "SHARING", "RedrawSchedule"]

SCORES = ("identity", "ginibre_product", "wigner_authors", "goe")
VALUES = ("identity", "psd", "ginibre", "plus_score", "minus_score")
SHARING = ("independent", "per_beta", "shared")


@dataclass(frozen=True)
class Ensemble:
    """A random (B, V) ensemble; see the module docstring for the formulas."""

    score: str = "identity"
    value: str = "identity"
    share: str = "independent"
    redraw: float | None = None

    def __post_init__(self) -> None:
        check_choice("score", self.score, SCORES)
        check_choice("value", self.value, VALUES)
        check_choice("share", self.share, SHARING)
        if self.redraw is not None:
            check_real("redraw", self.redraw, minimum=0.0, strict_minimum=True)
        # plus/minus_score with the identity score give V = ±I (c = 1, SPEC §7)

    @property
    def is_identity(self) -> bool:
        return self.score == "identity" and self.value == "identity"

    def describe(self) -> dict:
        return asdict(self)

    def _scale(self, d: int) -> float:
        return {"identity": 1.0, "ginibre_product": math.sqrt(d), "wigner_authors": math.sqrt(d), "goe": math.sqrt(d + 1)}[
            self.score
        ]

    def draw_one(self, d: int, rng: np.random.Generator) -> tuple[np.ndarray | None, np.ndarray | None]:
        """One draw: (B or None for identity, V in column convention or None for identity)."""
        if self.score == "identity":
            b = None
        elif self.score == "ginibre_product":
            b = rng.standard_normal((d, d)) @ rng.standard_normal((d, d)) / math.sqrt(d)
        else:
            g = rng.standard_normal((d, d))
            s = g + g.T
            if self.score == "goe":
                b = s / math.sqrt(2)
            else:
                b = s / math.sqrt(2)
                np.fill_diagonal(b, np.diag(s) / 2)
        eye = np.eye(d)
        if self.value == "identity":
            w = None
        elif self.value == "psd":
            g = rng.standard_normal((d, d))
            w = g @ g.T / math.sqrt(d)
        elif self.value == "ginibre":
            w = rng.standard_normal((d, d)) / math.sqrt(d)
        else:
            sign = 1.0 if self.value == "plus_score" else -1.0
            w = sign * (eye if b is None else b) / self._scale(d)
        return b, (None if w is None else w.T)

    def draw(self, d: int, keys: list[tuple[int, ...]], dtype=torch.float64) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Draws for systems identified by seed keys: returns (QK (B, d, d) or None, V (B, d, d) or None).

        Systems with equal keys get equal matrices, so sharing is expressed by the keys (see :meth:`keys`).
        """
        cache: dict[tuple, tuple] = {}
        bs, vs = [], []
        for key in keys:
            if key not in cache:
                cache[key] = self.draw_one(d, np.random.default_rng(np.random.SeedSequence(list(key))))
            b, v = cache[key]
            bs.append(b)
            vs.append(v)
        qk = None if bs[0] is None else torch.from_numpy(np.stack(bs)).to(dtype)
        val = None if vs[0] is None else torch.from_numpy(np.stack(vs)).to(dtype)
        return qk, val

    def keys(self, seed: int, d: int, beta_index: list[int], system: list[int], layer: int = 0) -> list[tuple[int, ...]]:
        """Seed keys per system for this sharing mode (ints ≥ 0; the same key means the same matrices)."""
        tag = 7919  # separates matrix streams from initial-condition streams
        if self.share == "shared":
            return [(seed, tag, d, layer)] * len(system)
        if self.share == "per_beta":
            return [(seed, tag, d, layer, k) for k in beta_index]
        return [(seed, tag, d, layer, k, s) for k, s in zip(beta_index, system)]


class RedrawSchedule:
    """Time-dependent weights that redraw every τ: layer ℓ = ⌊t/τ⌋ uses the keys with ``layer=ℓ``.

    Vectorised over systems (each system may be at its own time), and restrictable to a subset of systems
    with :meth:`take`, so the batched integrator never loops over systems.
    """

    vectorized = True

    def __init__(self, ensemble: Ensemble, d: int, seed: int, beta_index, system, dtype=torch.float64):
        self.ensemble, self.d, self.seed, self.dtype = ensemble, d, seed, dtype
        self.beta_index = list(beta_index)
        self.system = list(system)
        self._cache: dict[int, tuple] = {}

    def _layer(self, ell: int):
        if ell not in self._cache:
            if len(self._cache) > 4:
                self._cache.clear()
            keys = self.ensemble.keys(self.seed, self.d, self.beta_index, self.system, layer=ell)
            self._cache[ell] = self.ensemble.draw(self.d, keys, self.dtype)
        return self._cache[ell]

    def __call__(self, t) -> dict:
        tau = float(self.ensemble.redraw)
        tt = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
        if tt.numel() == 1:
            tt = tt.expand(len(self.system))
        # #{k ≥ 1: k·τ ≤ t} against the float boundaries k * τ (the integrator's landing times), no epsilon
        layers = torch.floor(tt / tau)
        layers = layers - (layers * tau > tt).to(layers.dtype)
        layers = (layers + ((layers + 1) * tau <= tt).to(layers.dtype)).long().clamp(min=0)
        out: dict = {}
        if bool((layers == layers[0]).all()):  # every system on the same layer: no per-system gather
            qk, v = self._layer(int(layers[0]))
            if qk is not None:
                out["QK"] = qk
            if v is not None:
                out["V"] = v
            return out
        qk_rows, v_rows = [], []
        for b, ell in enumerate(layers.tolist()):
            qk, v = self._layer(ell)
            qk_rows.append(None if qk is None else qk[b])
            v_rows.append(None if v is None else v[b])
        if qk_rows[0] is not None:
            out["QK"] = torch.stack(qk_rows)
        if v_rows[0] is not None:
            out["V"] = torch.stack(v_rows)
        return out

    def breakpoints(self, t_max: float) -> list[float]:
        """Layer boundaries kτ in (0, t_max): the integrator lands on them."""
        tau = float(self.ensemble.redraw)
        return [k * tau for k in range(1, int(math.floor(t_max / tau)) + 1) if k * tau < t_max]

    def take(self, index: torch.Tensor) -> RedrawSchedule:
        idx = index.tolist()
        sub = RedrawSchedule(
            self.ensemble, self.d, self.seed, [self.beta_index[i] for i in idx], [self.system[i] for i in idx], self.dtype
        )
        return sub

    def __repr__(self) -> str:
        return f"RedrawSchedule({self.ensemble}, d={self.d}, seed={self.seed}, systems={len(self.system)})"
