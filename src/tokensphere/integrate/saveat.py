"""*What to record*: the output times, and whether positions are kept or only handed to a hook.

Steps land exactly on every output time (no "first step past the checkpoint"), so the state recorded at t
is the solution at t to the solver's accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..validate import as_tensor, validate_int, validate_real

__all__ = ["SaveAt", "SaveHook"]

# hook(k, systems, x): output indices (S,), system indices (S,), positions (S, n, d) reaching an output time
SaveHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True, eq=False)
class SaveAt:
    """Output times t (T,), sorted, finite; stored as a float64 tensor.

    store: keep the positions (T, B, n, d) in the result (False: the positions only reach ``on_save``, e.g.
    a sweep that reduces them to statistics). on_save: hook(k, systems, x) called with the output indices
    (S,), the system indices (S,) and the positions (S, n, d) whenever systems reach an output time.
    Raises ValueError for an empty, non-finite, not strictly increasing or multi-dimensional t.
    """

    t: Any
    store: bool = True
    on_save: SaveHook | None = None

    def __post_init__(self) -> None:
        if isinstance(self.t, bool) or (isinstance(self.t, torch.Tensor) and self.t.dtype == torch.bool):
            raise ValueError(f"save_at must be a list of output times, got {self.t!r}")
        ts = as_tensor("save_at", self.t).to(torch.float64)
        if ts.ndim > 1:
            raise ValueError(f"save_at must be a 1-D list of output times, got shape {tuple(ts.shape)}")
        ts = ts.reshape(-1)
        if ts.numel() == 0 or not bool(torch.isfinite(ts).all()):
            raise ValueError("save_at must be a non-empty list of finite times")
        if bool((ts[1:] <= ts[:-1]).any()):
            raise ValueError("save_at times must be strictly increasing (sorted, no time repeated)")
        if not isinstance(self.store, bool):
            raise ValueError(f"store must be True or False, got {self.store!r}")
        if self.on_save is not None and not callable(self.on_save):
            raise ValueError(f"on_save must be a callable hook(k, systems, x), got {type(self.on_save).__name__}")
        object.__setattr__(self, "t", ts)

    @classmethod
    def linspace(cls, t0: float, t1: float, count: int, **kw: Any) -> SaveAt:
        """``count`` (≥ 2) equally spaced output times from t0 to t1 > t0, both included."""
        t0 = validate_real("t0", t0)
        t1 = validate_real("t_max", t1, minimum=t0, strict_minimum=True)
        validate_int("save_at", count, minimum=2)
        return cls(torch.linspace(t0, t1, count, dtype=torch.float64), **kw)

    @property
    def t_end(self) -> float:
        """The last output time (where the integration stops)."""
        return float(self.t[-1])
