"""Atomic writes: a result appears at its path complete, or not at all.

Each writer produces its output at a temporary sibling (``.NAME.tmp-XXXXXXXX``, NAME shortened when the file
system's name limit requires it) and renames it into place with ``os.replace``, which is atomic on POSIX file
systems. A directory (a zarr store) that already exists is first renamed aside, so the target path always holds
either the old result or the new one. A target that is a symbolic link is replaced by the result; what it pointed
to is left alone. ``~`` in a path means the home directory. Zarr stores are written with consolidated metadata,
and :func:`open_zarr_store` reads a store through it when present, so xarray never falls back with a warning.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import xarray as xr

__all__ = ["atomic_path", "atomic_zarr_write", "validate_output_folder", "validate_output_path", "has_consolidated_metadata", "open_zarr_store",
           "write_json"]


def validate_output_path(path: str | os.PathLike, *, overwrite: bool, create: bool = True) -> Path:
    """Validate an output path before any work: its parent must be a writable directory (created if missing;
    with ``create=False`` only checked: its nearest existing ancestor must be a writable directory, so that a
    later failure leaves no empty folder behind) and the path must not exist unless ``overwrite``. Returns the
    path; raises ValueError naming the problem."""
    p = Path(path).expanduser()
    parent = p.parent if str(p.parent) else Path(".")
    if p.exists() and not overwrite:
        raise ValueError(f"out path already exists: {p} (pass overwrite=True / --overwrite to replace it)")
    if not create and not parent.exists():
        ancestor = parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
            raise ValueError(f"out path is not writable: cannot create {parent} ({ancestor} is not a writable "
                             "directory)")
        return p
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"out path is not writable: cannot create {parent} ({exc.strerror})") from None
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ValueError(f"out path is not writable: {parent} is not a writable directory")
    return p


def validate_output_folder(path: str | os.PathLike) -> Path:
    """Validate a folder that results are written into (files in it replaced) before any work: its parent as
    :func:`validate_output_path` checks it, and the path, if it exists, a directory. Returns the path; raises
    ValueError naming the problem."""
    p = validate_output_path(path, overwrite=True)
    if p.exists() and not p.is_dir():
        raise ValueError(f"out must be a folder, got {p}, an existing file")
    return p


NAME_MAX = 255  # bytes in a file name, when the file system does not say (Linux, macOS)


def _name_max(folder: Path) -> int:
    """The longest file name (in bytes) the file system of ``folder`` accepts."""
    try:
        return int(os.pathconf(folder if folder.exists() else ".", "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):  # no such limit reported, or not on POSIX
        return NAME_MAX


def _sibling(p: Path, base: str, tail: str) -> Path:
    """The hidden sibling ``.{base}{tail}`` of ``p``, ``base`` shortened (at a character boundary) so that the name
    fits the file system: a target name near the limit still gets a temporary (``tail`` holds a random part,
    so shortening keeps names distinct)."""
    room = _name_max(p.parent) - len(f".{tail}".encode())
    short = base.encode()[:max(room, 1)].decode(errors="ignore") or "x"
    return p.with_name(f".{short}{tail}")


def _remove(path: Path) -> None:
    """Remove a file, a symbolic link (not what it points to) or a directory tree, whichever ``path`` is."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write (a file or a directory); on success rename it to ``path``.

    The temporary keeps the suffix of ``path`` (writers that choose a format by suffix still work). On any
    exception the temporary is removed and ``path`` is left as it was: an existing directory is moved aside only
    once the new result exists, and moved back if the rename that replaces it fails (or is interrupted). A
    writer that produced nothing raises FileNotFoundError, with ``path`` untouched.
    """
    p = Path(path).expanduser()
    suffix = p.suffix if len(p.suffix) <= 32 else ""  # a "suffix" that long is no format's: not kept
    tmp = _sibling(p, p.stem if suffix else p.name, f".tmp-{uuid.uuid4().hex[:8]}{suffix}")
    try:
        yield tmp
        if not (tmp.exists() or tmp.is_symlink()):
            raise FileNotFoundError(f"the writer produced nothing at {tmp}; {p} left as it was")
        # a directory (or a link to one), or anything replaced by a directory: moved aside first, since a
        # rename cannot replace a non-empty directory, nor a file by a directory
        if p.is_dir() or ((p.exists() or p.is_symlink()) and tmp.is_dir()):
            old = _sibling(p, p.name, f".old-{uuid.uuid4().hex[:8]}")
            os.replace(p, old)
            try:
                os.replace(tmp, p)
            except BaseException:
                os.replace(old, p)  # the old result back in place
                raise
            _remove(old)  # a link: only the link (rmtree would refuse it and leave it behind)
        else:
            os.replace(tmp, p)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def atomic_zarr_write(ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``ds`` as a zarr store with consolidated metadata at ``path``, atomically. Returns the path."""
    p = validate_output_path(path, overwrite=overwrite)
    with atomic_path(p) as tmp, warnings.catch_warnings():
        # zarr 3 notes that consolidated metadata is not (yet) in the v3 spec; xarray reads it all the same
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        ds.to_zarr(tmp, mode="w", consolidated=True)
    return p


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented UTF-8 JSON, atomically. Returns the path."""
    p = Path(path).expanduser()
    with atomic_path(p) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return p


def has_consolidated_metadata(path: str | os.PathLike) -> bool:
    """True when the zarr store at ``path`` carries consolidated metadata (zarr v3 inline, or v2 ``.zmetadata``)."""
    p = Path(path)
    if (p / ".zmetadata").is_file():
        return True
    try:
        root = json.loads((p / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(root, dict) and bool(root.get("consolidated_metadata"))


def open_zarr_store(path: str | os.PathLike) -> xr.Dataset:
    """Open a zarr store lazily: through its consolidated metadata when it has some (what
    :func:`atomic_zarr_write` writes), else from the per-array metadata. Either way xarray is told which, so it
    never falls back with a warning. Use it as a context manager (``with open_zarr_store(p) as ds``)."""
    return xr.open_zarr(path, consolidated=has_consolidated_metadata(path))
