"""The zarr store of a sweep: layout, creation, refusal of a different sweep, unit writes and the done flags.

Dimensions: the swept axes (grid order), then ``seed`` (per-seed values) or ``quantile`` (quantile summaries),
then ``t``. Chunks are one work unit long on every swept axis and whole on the others, so units never share a
chunk and each writes its own region. The store is created once, atomically (:func:`tokensphere.io.atomic_path`)
and with consolidated metadata, holding metadata and coordinates only (unwritten chunks read as NaN, ``done`` as
false). Unit writes change chunks only, never metadata, so the consolidated metadata stays valid, and zarr
writes each chunk atomically (every chunk, also one that holds only the fill value). A unit's ``done`` flags are
written after its data: a unit cut short is simply computed again, and so is a unit whose flags are set but one of
whose data chunks is missing (deleted by hand, say).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import torch
import xarray as xr
import zarr

from ..io import atomic_path, run_metadata, validate_output_path
from ..io.atomic import is_zarr_store, open_zarr_store
from .config import SweepConfig
from .statistics import QUANTILES, STATISTICS

__all__ = ["CONFIG_ATTR", "template", "open_or_create", "write_unit", "done_units", "read_store"]

CONFIG_ATTR = "sweep_config"  # canonical JSON of the configuration: the identity of the store


def _coords(config: SweepConfig) -> dict[str, Any]:
    # strings as object arrays: zarr 3 stores them as variable-length UTF-8 (fixed-width UTF-32 has no v3 spec)
    coords: dict[str, Any] = {name: np.array(values, dtype=object if isinstance(values[0], str) else None)
                              for name, values in config.axes}
    coords["t"] = config.times
    dims = {d for dims in config.variables().values() for d in dims}
    if "seed" in dims:
        coords["seed"] = np.arange(config.seeds)
    if "quantile" in dims:
        coords["quantile"] = list(QUANTILES)
    return coords


def template(config: SweepConfig, extra: xr.Dataset | None = None, attrs: dict[str, Any] | None = None) -> xr.Dataset:
    """The empty store (NaN data, ``done`` false) as a lazy dataset with chunk encodings; ``extra``: variables
    and coordinates to add (their encodings kept); ``attrs``: attributes to add."""
    coords = _coords(config)
    sizes = {name: len(values) for name, values in coords.items()}
    chunks = config.chunks
    data = {}
    for name, dims in config.variables().items():
        shape = tuple(sizes[d] for d in dims)
        data[name] = (dims, da.full(shape, np.nan, chunks=tuple(chunks[d] for d in dims)))
    axes = config.axis_names
    data["done"] = (axes, da.zeros(config.shape, dtype=bool, chunks=tuple(chunks[d] for d in axes)))
    ds = xr.Dataset(data, coords=coords)
    for name in ds.data_vars:
        ds[name].encoding["chunks"] = tuple(chunks[d] for d in ds[name].dims)
    rename = dict(config.names)
    summaries = dict(config.summaries)
    for stat in config.statistics:
        over = (["per seed"] if config.per_seed else []) + list(summaries.get(stat, ()))
        for how in over:
            raw = stat if how == "per seed" else f"{stat}_{how}"
            ds[rename.get(raw, raw)].attrs.update(statistic=stat, description=STATISTICS[stat].description,
                                                  over_seeds=how)
    ds["done"].attrs["description"] = "true once the grid point's work unit is written (data first, then this flag)"
    if extra is not None:
        ds = ds.merge(extra)
    ds.attrs[CONFIG_ATTR] = config.to_json()
    ds.attrs["config"] = config.text
    ds.attrs["metadata"] = json.dumps(run_metadata(dtype=torch.float64, device="cpu", threads=1))
    ds.attrs.update(attrs or {})
    return ds


def open_or_create(config: SweepConfig, path: Path, *, overwrite: bool,
                   extra: Callable[[], xr.Dataset] | None = None, attrs: dict[str, Any] | None = None) -> None:
    """Create the store at ``path`` (atomically; ``extra()`` gives variables to add), or accept an existing store
    of the same configuration (to resume). No data chunk is written at creation. Raises ValueError for a path
    that is not a sweep store or holds a different configuration, unless ``overwrite`` (which replaces it)."""
    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        if not path.is_dir() or not is_zarr_store(path):
            raise ValueError(f"out path {path} exists and is not a zarr store; pass overwrite=True / --overwrite "
                             "to replace it")
        try:
            with open_zarr_store(path) as ds:
                stored = ds.attrs.get(CONFIG_ATTR)
        except Exception:  # noqa: BLE001 - any reading failure means "not a sweep store we wrote"
            stored = None
        if stored is None:
            raise ValueError(f"out path {path} exists and is not a sweep store; pass overwrite=True / --overwrite "
                             "to replace it")
        diff = config.differences(json.loads(stored))
        if diff:
            raise ValueError(f"out store {path} holds a different sweep (differs in {', '.join(diff)}); pass "
                             "overwrite=True / --overwrite to replace it, or choose another out path")
        return
    validate_output_path(path, overwrite=overwrite, replaces="zarr")  # never a folder of other data
    ds = template(config, None if extra is None else extra(), attrs)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # zarr 3 notes that consolidated metadata is not (yet) in the v3 spec; xarray reads it all the same
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        # compute=False: metadata and coordinates only; unwritten chunks read as the fill value (NaN, False)
        ds.to_zarr(tmp, mode="w", consolidated=True, compute=False)


def _region(config: SweepConfig, unit: tuple[tuple[int, int], ...]) -> dict[str, slice]:
    return {name: slice(a, b) for name, (a, b) in zip(config.axis_names, unit)}


def write_unit(path: Path, config: SweepConfig, unit: tuple[tuple[int, int], ...],
               results: dict[str, np.ndarray]) -> None:
    """Write one unit's variables (leading axis K = the unit's points) into its region, then its done flags."""
    shape = tuple(b - a for a, b in unit)
    dims = config.variables()
    data = {name: (dims[name], arr.reshape(shape + arr.shape[1:])) for name, arr in results.items()}
    region = _region(config, unit)
    # every chunk is written, also one of NaN only (the fill value, which zarr would skip): done_units reads a
    # missing chunk as a unit to compute again
    xr.Dataset(data).to_zarr(path, region=region, consolidated=False, write_empty_chunks=True)
    # the flags go last: a unit interrupted before this line is computed again on resume
    xr.Dataset({"done": (config.axis_names, np.ones(shape, dtype=bool))}).to_zarr(
        path, region=region, consolidated=False)


def done_units(path: Path, config: SweepConfig) -> list[bool]:
    """Per unit of ``config.units()``: whether all its done flags are set and every data variable has its chunk
    for the unit. A flag chunk that cannot be read, or a missing data chunk, counts as not done."""
    path = Path(path).expanduser()
    arr = zarr.open_array(str(path), path="done", mode="r")
    data = [zarr.open_array(str(path), path=name, mode="r") for name in config.variables()]
    out = []
    for unit in config.units():
        try:
            flags = bool(np.all(arr[tuple(slice(a, b) for a, b in unit)]))
        except Exception:  # noqa: BLE001 - a damaged flag chunk: recompute the unit
            flags = False
        out.append(flags and all(_has_chunk(path, v, unit) for v in data))
    return out


def _has_chunk(path: Path, arr: zarr.Array, unit: tuple[tuple[int, int], ...]) -> bool:
    """Whether the chunk of ``arr`` (a data variable: the swept axes, then whole dimensions) that holds ``unit``
    is on disk. Units are chunk-aligned, so one chunk per variable: the unit's start over the chunk length on
    each axis, 0 on the others."""
    start = [a // length for (a, _), length in zip(unit, arr.chunks)]
    index = tuple(start + [0] * (len(arr.shape) - len(unit)))
    key = arr.metadata.encode_chunk_key(index)
    return (path / arr.path / key).is_file()


def read_store(path: Path) -> xr.Dataset:
    """The store's dataset, loaded into memory. Raises ValueError naming the store and the variable when a chunk
    cannot be read (a damaged or truncated file)."""
    path = Path(path).expanduser()
    try:
        ds = open_zarr_store(path)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - its metadata or an index coordinate cannot be read
        raise _damaged(path, None, exc) from None
    with ds:
        for name in list(ds.variables):  # one at a time, to name the damaged one
            try:
                ds.variables[name].load()  # in place: the dataset's own variable
            except MemoryError:
                raise
            except Exception as exc:  # noqa: BLE001 - a decompression, decoding or shape error of a chunk
                raise _damaged(path, name, exc) from None
        return ds.load()


def _damaged(path: Path, name: str | None, exc: BaseException) -> ValueError:
    reason = " ".join(str(exc).split())[:200] or type(exc).__name__
    what = f"variable {name}: {reason}" if name is not None else reason
    return ValueError(f"store {path} is damaged ({what}); re-run with --overwrite (overwrite=True) to compute it "
                      "again")
