"""Random weight ensembles for Figure 5 (the paper's Figure 5 and the authors' published script), drawn per system from seeded streams.

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

from .schedule import Schedule, layer_breakpoints, layer_index, register_schedule
from .validate import validate_choice, validate_real

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
        validate_choice("score", self.score, SCORES)
        validate_choice("value", self.value, VALUES)
        validate_choice("share", self.share, SHARING)
        if self.redraw is not None:
            validate_real("redraw", self.redraw, minimum=0.0, strict_minimum=True)
        # plus/minus_score with the identity score give V = ±I (c = 1, as in the authors' script)

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


@register_schedule
class RedrawSchedule(Schedule):
    """Time-dependent weights that redraw every τ = ``ensemble.redraw`` (the authors' ``regen_period``).

    On layer ℓ = :func:`~tokensphere.schedule.layer_index` (t, τ), system b uses the matrices drawn from its
    seed key (:meth:`Ensemble.keys` with ``layer=ℓ``). Vectorised over systems (each at its own time) and
    restrictable with :meth:`take`; restricted views share one draw cache, so each (key, layer) is drawn
    once however the integrator splits the batch (``draws`` counts the draws).
    """

    kind = "redraw"
    MAX_LAYERS_CACHED = 4  # layers kept in memory; the lowest is dropped first (systems move forward in time)

    def __init__(self, ensemble: Ensemble, d: int, seed: int, beta_index, system, dtype=torch.float64):
        if ensemble.redraw is None:
            raise ValueError("RedrawSchedule needs an ensemble with redraw = τ > 0")
        self.ensemble, self.d, self.seed, self.dtype = ensemble, int(d), int(seed), dtype
        self.beta_index = [int(k) for k in beta_index]
        self.system = [int(s) for s in system]
        if len(self.beta_index) != len(self.system):
            raise ValueError("beta_index and system must have one entry per system")
        self._systems: torch.Tensor | None = None  # rows of the root schedule this view covers
        self._shared = {"layers": {}, "draws": 0}

    @property
    def draws(self) -> int:
        """How many matrix sets have been drawn so far (by this schedule and every restriction of it)."""
        return self._shared["draws"]

    def _layer(self, ell: int, rows: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Matrices of layer ℓ for the root rows ``rows`` (drawing those not drawn yet): (R, d, d) each or None."""
        cache = self._shared["layers"]
        if ell not in cache:
            while len(cache) >= self.MAX_LAYERS_CACHED:
                del cache[min(cache)]
            R = len(self.system)
            cache[ell] = {"qk": None, "v": None, "drawn": torch.zeros(R, dtype=torch.bool), "by_key": {}}
        entry = cache[ell]
        missing = rows[~entry["drawn"][rows]].tolist()
        if missing:
            keys = self.ensemble.keys(self.seed, self.d, [self.beta_index[r] for r in missing],
                                      [self.system[r] for r in missing], layer=ell)
            for r, key in zip(missing, keys):
                if key not in entry["by_key"]:
                    entry["by_key"][key] = self.ensemble.draw_one(self.d, np.random.default_rng(np.random.SeedSequence(list(key))))
                    self._shared["draws"] += 1
                b, v = entry["by_key"][key]
                for name, val in (("qk", b), ("v", v)):
                    if val is None:
                        continue
                    if entry[name] is None:
                        entry[name] = torch.zeros(len(self.system), self.d, self.d, dtype=torch.float64)
                    entry[name][r] = torch.from_numpy(val)
            entry["drawn"][missing] = True
        return (None if entry["qk"] is None else entry["qk"][rows],
                None if entry["v"] is None else entry["v"][rows])

    def matrices(self, t, heads, dtype, device):
        tau = float(self.ensemble.redraw)
        rows = torch.arange(len(self.system)) if self._systems is None else self._systems
        ell = layer_index(t, tau).reshape(-1).expand(rows.numel())
        out: dict[str, torch.Tensor] = {}
        for layer in torch.unique(ell).tolist():
            sel = torch.nonzero(ell == layer).reshape(-1)
            qk, v = self._layer(int(layer), rows[sel])
            for name, val in (("qk", qk), ("v", v)):
                if val is None:
                    continue
                if name not in out:
                    out[name] = torch.empty(rows.numel(), 1, self.d, self.d, dtype=dtype, device=device)
                out[name][sel.to(device), 0] = val.to(dtype=dtype, device=device)
        return out

    def breakpoints(self, t_max: float, t0: float = 0.0) -> list[float]:
        """Layer boundaries kτ in (t0, t_max): the integrator lands on them."""
        return layer_breakpoints(float(self.ensemble.redraw), t_max, t0)

    def take(self, index: torch.Tensor) -> RedrawSchedule:
        sub = object.__new__(RedrawSchedule)
        sub.__dict__.update(self.__dict__)  # shares _shared (the draw cache)
        index = torch.as_tensor(index).reshape(-1).long()
        sub._systems = index if self._systems is None else self._systems[index]
        return sub

    def to_spec(self):
        spec = {"kind": self.kind, "ensemble": self.ensemble.describe(), "d": self.d, "seed": self.seed}
        arrays = {"beta_index": torch.tensor(self.beta_index, dtype=torch.float64),
                  "system": torch.tensor(self.system, dtype=torch.float64)}
        if self._systems is not None:
            arrays["systems"] = self._systems.double()
        return spec, arrays

    @classmethod
    def from_spec(cls, spec, arrays):
        return cls(Ensemble(**spec["ensemble"]), spec["d"], spec["seed"],
                   arrays["beta_index"].long().tolist(), arrays["system"].long().tolist())

    def __repr__(self) -> str:
        return f"RedrawSchedule({self.ensemble}, d={self.d}, seed={self.seed}, systems={len(self.system)})"
