"""The result of a simulation: saved times, positions, the model and solver that produced them, step counts,
event times and provenance. Storage (xarray, zarr) is :mod:`tokensphere.io.runs`; these methods call it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import xarray as xr

from .integrate.solver import Solver
from .model import Model
from .validate import validate_real

__all__ = ["Trajectory"]


@dataclass(eq=False)
class Trajectory:
    """A run. times: (T,) float64 (from t0; t0 > 0 for a continued run); positions: (T, B, n, d), NaN after a
    terminal event, or None when run with ``store=False``; steps, rejected: (B,) int; event_time: (B,)
    float64 (NaN when no event fired); metadata: JSON-serialisable dict.

    ``a == b`` compares the runs: times, positions (NaN equal to NaN), steps, rejected, event times, model
    and solver; not the metadata (wall time, creation date).
    """

    times: torch.Tensor
    positions: torch.Tensor | None
    model: Model
    solver: Solver
    steps: torch.Tensor
    rejected: torch.Tensor
    event_time: torch.Tensor
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(T, B, n, d)."""
        return tuple(self._require_positions().shape)  # type: ignore[return-value]

    def final(self) -> torch.Tensor:
        """Positions at the last saved time: (B, n, d)."""
        return self._require_positions()[-1]

    def at(self, t: float) -> torch.Tensor:
        """Positions at the saved time nearest to t (a finite number): (B, n, d)."""
        positions = self._require_positions()
        t = validate_real("t", t)
        return positions[int(torch.argmin((self.times - t).abs()))]

    def _require_positions(self) -> torch.Tensor:
        if self.positions is None:
            raise ValueError("this trajectory kept no positions (it was run with store=False)")
        return self.positions

    # ------------------------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trajectory):
            return NotImplemented
        if (self.positions is None) != (other.positions is None):
            return False
        from .io.runs import same_model

        pairs = [(self.times, other.times), (self.steps, other.steps), (self.rejected, other.rejected),
                 (self.event_time, other.event_time)]
        if self.positions is not None:
            pairs.append((self.positions, other.positions))
        return (
            all(a.shape == b.shape and bool(torch.equal(a.isnan(), b.isnan())) and
                bool(torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0)))
                if a.is_floating_point() else torch.equal(a, b) for a, b in pairs)
            and self.solver == other.solver
            and same_model(self.model, other.model)
        )

    __hash__ = None  # type: ignore[assignment]  (mutable, compared by value)

    def join(self, other: Trajectory) -> Trajectory:
        """This run followed by its continuation ``other`` (e.g. ``simulate(run, t_max=...)``) as one run.

        ``other`` must start at this run's final time in this run's final state, with the same systems and
        model; the duplicated time point is dropped, steps and rejected steps are summed, event times are
        this run's where set, else the continuation's. The solver and metadata are this run's; both runs'
        metadata (and the continuation's solver) are kept under ``metadata["parts"]``.
        Raises ValueError when the runs do not join.
        """
        a, b = self._require_positions(), other._require_positions()
        if a.shape[1:] != b.shape[1:]:
            raise ValueError(f"join: the runs have different systems (B, n, d): {tuple(a.shape[1:])} and "
                             f"{tuple(b.shape[1:])}")
        if float(other.times[0]) != float(self.times[-1]):
            raise ValueError(f"join: the continuation starts at t = {float(other.times[0]):g}, not at this run's "
                             f"final time {float(self.times[-1]):g}")
        if a.dtype == b.dtype:
            starts_here = torch.equal(a[-1].nan_to_num(0.0), b[0].nan_to_num(0.0))
        else:  # a continuation in another dtype starts from this final state re-normalised in its own dtype
            coarse = a.dtype if torch.finfo(a.dtype).eps > torch.finfo(b.dtype).eps else b.dtype
            gap = (a[-1].to(torch.float64) - b[0].to(torch.float64)).nan_to_num(0.0).abs().max()
            starts_here = bool(gap <= 4 * torch.finfo(coarse).eps * max(1.0, float(a[-1].nan_to_num(0.0).abs().max())))
        if not starts_here:
            raise ValueError("join: the continuation does not start from this run's final state")
        from .io.runs import same_model

        if not same_model(self.model, other.model):
            raise ValueError("join: the continuation ran a different model (an override of beta or the weights); "
                             "only a run and its unchanged continuation can be joined")
        parts = [dict(run.metadata, solver=run.solver.describe()) for run in (self, other)]
        return Trajectory(
            times=torch.cat([self.times, other.times[1:].to(self.times)]),
            positions=torch.cat([a, b[1:].to(a)]),
            model=self.model,
            solver=self.solver,
            steps=self.steps + other.steps,
            rejected=self.rejected + other.rejected,
            event_time=torch.where(self.event_time.isnan(), other.event_time.to(self.event_time), self.event_time),
            metadata={**self.metadata, "parts": parts},
        )

    # ------------------------------------------------------------------------------------------------
    def to_xarray(self) -> xr.Dataset:
        """Labelled dataset (schema of :mod:`tokensphere.io.runs`): x(time, system, token, dim), beta, steps,
        rejected, event_time (system), the model's arrays, and the model, solver and metadata as attributes."""
        from .io.runs import run_to_xarray

        return run_to_xarray(self)

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> Trajectory:
        """Rebuild a trajectory from :meth:`to_xarray` output."""
        from .io.runs import run_from_xarray

        return run_from_xarray(ds)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write a zarr store atomically; refuse an existing path unless ``overwrite``. Returns the path."""
        from .io.runs import save_run

        return save_run(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Trajectory:
        """Read a store written by :meth:`save`. Raises ValueError when ``path`` is not a saved run."""
        from .io.runs import load_run

        return load_run(path)
