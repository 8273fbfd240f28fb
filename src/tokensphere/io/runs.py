"""Stored runs: a :class:`~tokensphere.Trajectory` as a labelled xarray dataset and a zarr store, and back.

Schema ``tokensphere.run``, version 1 (attribute ``schema_version``):

| variable | dims | content |
|---|---|---|
| ``x`` | (time, system, token, dim) | positions x_i(t) in the run's dtype; NaN after a system's terminal event |
| ``beta`` | (system,) | β of each system, float64 (a label for selection; the model's own β is ``model_beta``) |
| ``steps``, ``rejected`` | (system,) | accepted and rejected steps, int64 |
| ``event_time`` | (system,) | time of the terminal event, float64, NaN when none fired |
| ``model_<name>`` | (model_<name>_0, …) | the model's arrays (β, Q, K, QK, V, mask, schedule arrays) as given by ``Model.to_spec`` |

Coordinates: ``time`` (float64, the saved times, starting at t0 for a continued run), ``system``, ``token``,
``dim`` (integers from 0). Attributes (JSON strings unless noted): ``schema`` = "tokensphere.run",
``schema_version`` = 1 (an integer), ``model`` (the model's options, ``Model.to_spec``), ``model_arrays``
(variable name → array name), ``solver`` (``Solver.describe()``), ``metadata`` (run provenance, see
:func:`tokensphere.io.run_metadata`). Stores are written atomically with consolidated metadata, so
``xarray.open_zarr`` opens them without falling back (or warning). Stores written before the schema existed
(no ``schema_version``) are still read; their time-dependent schedule cannot be restored.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import xarray as xr

from ..integrate.sde import solver_from_spec
from ..model import Model
from .atomic import atomic_zarr_write, open_zarr_store

if TYPE_CHECKING:
    from ..trajectory import Trajectory

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "load_run",
    "open_run_store",
    "run_from_xarray",
    "run_to_xarray",
    "same_model",
    "save_run",
]

SCHEMA = "tokensphere.run"
SCHEMA_VERSION = 1
_LEGACY_ARRAYS = ("Q", "K", "QK", "V", "mask")


def same_model(a: Model, b: Model) -> bool:
    """True when two models have the same options and bit-identical arrays (``Model.to_spec``: shapes, values;
    schedules included)."""
    if a is b:
        return True
    (sa, xa), (sb, xb) = a.to_spec(), b.to_spec()
    if sa != sb or set(xa) != set(xb):
        return False
    return all(xa[k].shape == xb[k].shape and torch.equal(xa[k].detach().cpu(), xb[k].detach().cpu().to(xa[k].dtype))
               for k in xa)


# ------------------------------------------------------------------------------------------------------------
# Trajectory <-> xarray


def run_to_xarray(traj: Trajectory) -> xr.Dataset:
    """The dataset of the schema above. Raises ValueError for a run kept without positions (store=False)."""
    if traj.positions is None:
        raise ValueError("this trajectory kept no positions (simulate(..., store=False)); nothing to convert")
    T, B, n, d = traj.positions.shape
    ds = xr.Dataset(
        {
            "x": (("time", "system", "token", "dim"), traj.positions.detach().cpu().numpy()),
            "beta": (("system",), traj.model.beta_tensor().detach().cpu().double().expand(B).numpy()),
            "steps": (("system",), traj.steps.cpu().numpy()),
            "rejected": (("system",), traj.rejected.cpu().numpy()),
            "event_time": (("system",), traj.event_time.cpu().double().numpy()),
        },
        coords={
            "time": traj.times.cpu().double().numpy(),
            "system": np.arange(B),
            "token": np.arange(n),
            "dim": np.arange(d),
        },
    )
    spec, arrays = traj.model.to_spec()
    names: dict[str, str] = {}
    for name, arr in arrays.items():
        var = _variable_name(name, names)
        names[var] = name
        a = arr.detach().cpu().numpy()
        ds[var] = (tuple(f"{var}_{i}" for i in range(a.ndim)), a)
    ds["x"].attrs["description"] = "token positions on the unit sphere, x[time, system, token, :]"
    ds["event_time"].attrs["description"] = "time of the terminal event (NaN: none fired)"
    ds.attrs.update(
        schema=SCHEMA,
        schema_version=SCHEMA_VERSION,
        model=json.dumps(spec),
        model_arrays=json.dumps(names),
        solver=json.dumps(traj.solver.describe()),
        metadata=json.dumps(traj.metadata),
    )
    return ds


def run_from_xarray(ds: xr.Dataset) -> Trajectory:
    """The :class:`~tokensphere.Trajectory` of a dataset written by :func:`run_to_xarray` (or by the
    pre-schema writer). Raises ValueError for a dataset without the run attributes."""
    from ..trajectory import Trajectory

    if "model" not in ds.attrs or "solver" not in ds.attrs:
        raise ValueError("the dataset is not a saved tokensphere run (no model/solver attributes)")
    version = int(ds.attrs.get("schema_version", 0))
    if version > SCHEMA_VERSION:
        raise ValueError(f"the run was written with schema_version {version}; this tokensphere reads up to "
                         f"{SCHEMA_VERSION} (upgrade tokensphere)")
    spec = json.loads(ds.attrs["model"])
    meta = json.loads(ds.attrs.get("metadata", "{}"))
    if version == 0:
        model, lost = _legacy_model(ds, spec)
        if lost:
            meta["schedule_not_restored"] = lost
    else:
        names = json.loads(ds.attrs["model_arrays"])
        model = Model.from_spec(spec, {name: _tensor(ds[var].values) for var, name in names.items()})
    return Trajectory(
        times=_tensor(ds["time"].values),
        positions=_tensor(ds["x"].values),
        model=model,
        solver=solver_from_spec(json.loads(ds.attrs["solver"])),
        steps=_tensor(ds["steps"].values),
        rejected=_tensor(ds["rejected"].values),
        event_time=_tensor(ds["event_time"].values),
        metadata=meta,
    )


def _legacy_model(ds: xr.Dataset, spec: dict[str, Any]) -> tuple[Model, str | None]:
    """The model of a store written before the schema: ``describe()`` options plus model_<name> arrays."""
    kw: dict[str, Any] = {k: v for k, v in spec.items() if k not in ("schedule",) + _LEGACY_ARRAYS}
    beta = spec.get("beta")
    kw["beta"] = _tensor(ds["beta"].values) if isinstance(beta, str) else torch.as_tensor(beta, dtype=torch.float64)
    if isinstance(spec.get("V"), str) and not spec["V"].startswith("array"):
        kw["V"] = spec["V"]
    for name in _LEGACY_ARRAYS:
        if f"model_{name}" in ds:
            kw[name] = _tensor(ds[f"model_{name}"].values)
    return Model(**kw), spec.get("schedule")


# ------------------------------------------------------------------------------------------------------------
# zarr stores


def save_run(traj: Trajectory, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the run as a zarr store at ``path`` (atomically, consolidated metadata). Returns the path;
    raises ValueError for an existing path without ``overwrite`` or an unwritable location."""
    return atomic_zarr_write(run_to_xarray(traj), path, overwrite=overwrite)


def load_run(path: str | os.PathLike) -> Trajectory:
    """Read a run written by :func:`save_run`; the model, schedule included, is the one that ran.

    Raises ValueError when the path does not exist, holds no zarr store, or holds a store that is not a run.
    """
    with open_run_store(path) as ds:
        if "model" not in ds.attrs or "solver" not in ds.attrs:
            raise ValueError(f"{path} is a zarr store but not a saved tokensphere run (no model/solver attributes)")
        try:
            loaded = ds.load()
        except (RuntimeError, OSError, ValueError) as exc:  # a chunk that does not decode (truncated, overwritten)
            raise ValueError(f"{path} is damaged: a chunk cannot be read ({' '.join(str(exc).split())[:200]})") from None
        return run_from_xarray(loaded)


def open_run_store(path: str | os.PathLike) -> xr.Dataset:
    """Open a zarr store lazily, through its consolidated metadata when it has some (no fallback warning).

    Raises ValueError naming the path when it does not exist or is not a zarr store (a file, a plain folder).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ValueError(f"run path does not exist: {p}")
    if not (p / ".zgroup").is_file() and not (p / "zarr.json").is_file():  # zarr format 2 or 3
        raise ValueError(f"{p} is not a saved tokensphere run (no zarr store found)")
    return open_zarr_store(p)


def _variable_name(array: str, taken: dict[str, str]) -> str:
    """model_<array> with every character outside [A-Za-z0-9_] replaced (zarr paths use '/')."""
    base = "model_" + re.sub(r"\W", "_", array)
    var, k = base, 1
    while var in taken:
        var, k = f"{base}_{k}", k + 1
    return var


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True))
