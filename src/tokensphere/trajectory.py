"""The result of a simulation, and its conversion to xarray and zarr (written atomically).

A :class:`Trajectory` holds saved times ``(T,)``, positions ``(T, B, n, d)``, the model and solver specs,
per-system step counts and event times, and run metadata (version, git commit, seed, dtype, device).
``to_xarray`` labels every axis; ``save`` writes a zarr store through a temporary sibling directory renamed
into place, so an interrupted write never leaves a half-written store at the target path.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from .integrate.solver import Solver
from .model import Model

__all__ = ["Trajectory", "check_output_path", "atomic_zarr_write"]

_MODEL_ARRAYS = ("Q", "K", "QK", "V", "mask")


@dataclass
class Trajectory:
    """times: (T,) float64; positions: (T, B, n, d) (NaN after a terminal event); steps, rejected: (B,) int;
    event_time: (B,) float64 (NaN when no event fired); metadata: JSON-serialisable dict."""

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
        self._require_positions()
        return tuple(self.positions.shape)  # type: ignore[return-value, union-attr]

    def final(self) -> torch.Tensor:
        """Positions at the last saved time: (B, n, d)."""
        self._require_positions()
        return self.positions[-1]  # type: ignore[index]

    def _require_positions(self) -> None:
        if self.positions is None:
            raise ValueError("this trajectory kept no positions (it was run with store=False)")

    def at(self, t: float) -> torch.Tensor:
        """Positions at the saved time nearest to t: (B, n, d)."""
        k = int(torch.argmin((self.times - t).abs()))
        return self.positions[k]

    # ------------------------------------------------------------------------------------------------
    def to_xarray(self) -> xr.Dataset:
        """Labelled dataset: x(time, system, token, dim), beta(system), steps/rejected/event_time(system),
        model matrices as model_<name>, specs and metadata as JSON attributes."""
        if self.positions is None:
            raise ValueError("this trajectory kept no positions (simulate(..., store=False)); nothing to convert")
        T, B, n, d = self.shape
        beta = self.model.beta_tensor().detach().cpu().double().expand(B).numpy()
        ds = xr.Dataset(
            {
                "x": (("time", "system", "token", "dim"), self.positions.detach().cpu().numpy()),
                "beta": (("system",), beta),
                "steps": (("system",), self.steps.cpu().numpy()),
                "rejected": (("system",), self.rejected.cpu().numpy()),
                "event_time": (("system",), self.event_time.cpu().double().numpy()),
            },
            coords={
                "time": self.times.cpu().double().numpy(),
                "system": np.arange(B),
                "token": np.arange(n),
                "dim": np.arange(d),
            },
        )
        for name in _MODEL_ARRAYS:
            val = getattr(self.model, name)
            if val is None or isinstance(val, str):
                continue
            arr = torch.as_tensor(val).detach().cpu().double().numpy()
            ds[f"model_{name}"] = (tuple(f"model_{name}_{i}" for i in range(arr.ndim)), arr)
        ds["x"].attrs["description"] = "token positions on the unit sphere, x[time, system, token, :]"
        ds.attrs["model"] = json.dumps(self.model.describe())
        ds.attrs["solver"] = json.dumps(self.solver.describe())
        ds.attrs["metadata"] = json.dumps(self.metadata)
        return ds

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> Trajectory:
        """Rebuild a trajectory saved by :meth:`to_xarray` (a time-dependent schedule is not restored)."""
        spec = json.loads(ds.attrs["model"])
        kw: dict[str, Any] = {k: v for k, v in spec.items() if k not in ("schedule",) + _MODEL_ARRAYS}
        beta = spec.get("beta")
        kw["beta"] = _tensor(ds["beta"].values) if isinstance(beta, str) else torch.as_tensor(beta)
        if isinstance(spec.get("V"), str) and not spec["V"].startswith("array"):
            kw["V"] = spec["V"]
        for name in _MODEL_ARRAYS:
            if f"model_{name}" in ds:
                kw[name] = _tensor(ds[f"model_{name}"].values)
        model = Model(**kw)
        solver_spec = json.loads(ds.attrs["solver"])
        solver = Solver(**solver_spec)
        meta = json.loads(ds.attrs.get("metadata", "{}"))
        if spec.get("schedule"):
            meta["schedule_not_restored"] = spec["schedule"]
        return cls(
            times=_tensor(ds["time"].values),
            positions=_tensor(ds["x"].values),
            model=model,
            solver=solver,
            steps=_tensor(ds["steps"].values),
            rejected=_tensor(ds["rejected"].values),
            event_time=_tensor(ds["event_time"].values),
            metadata=meta,
        )

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write a zarr store atomically; refuse an existing path unless ``overwrite``. Returns the path."""
        return atomic_zarr_write(self.to_xarray(), path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Trajectory:
        """Read a store written by :meth:`save`."""
        p = Path(path)
        if not p.exists():
            raise ValueError(f"run path does not exist: {p}")
        with xr.open_zarr(p, consolidated=False) as ds:
            return cls.from_xarray(ds.load())


def check_output_path(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Validate an output path before any work: its parent must be a writable directory and the path must
    not exist unless ``overwrite``. Raises ValueError naming the problem."""
    p = Path(path).expanduser()
    parent = p.parent if str(p.parent) else Path(".")
    if p.exists() and not overwrite:
        raise ValueError(f"out path already exists: {p} (pass overwrite=True / --overwrite to replace it)")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"out path is not writable: cannot create {parent} ({exc.strerror})") from None
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ValueError(f"out path is not writable: {parent} is not a writable directory")
    return p


def atomic_zarr_write(ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``ds`` as a zarr store at ``path`` via a temporary sibling renamed into place."""
    p = check_output_path(path, overwrite=overwrite)
    tmp = p.with_name(f".{p.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        ds.to_zarr(tmp, mode="w", consolidated=False)
        if p.exists():
            old = p.with_name(f".{p.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(p, old)
            os.replace(tmp, p)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, p)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return p


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True))
