"""Atomic writes: a result appears at its path complete, or not at all.

Each writer produces its output at a temporary sibling (``.NAME.tmp-XXXXXXXX``, NAME shortened when the file
system's name limit requires it) and renames it into place with ``os.replace``, which is atomic on POSIX file
systems. A directory (a zarr store) that already exists is first renamed aside, so the target path always holds
either the old result or the new one. A target that is a symbolic link is replaced by the result; what it pointed
to is left alone. ``~`` in a path means the home directory. Zarr stores are written with consolidated metadata,
and :func:`open_zarr_store` reads a store through it when present, so xarray never falls back with a warning.

Folders: checking an output path (:func:`validate_output_path`) creates nothing; the write that puts a result in
place creates the missing folders above it, and removes them again when the write fails, so bad input or an
interrupted write leaves no empty folder behind. A set of results that belong together (the files of
``tokensphere figures``, ``probe``, ``check``) is written through :func:`atomic_folder`: it appears all together
or not at all. A set whose writers must see its final paths (they record them, as the demo's report does) is
written in place through :func:`atomic_entries`, which puts the earlier entries back when the write fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import xarray as xr

__all__ = ["atomic_entries", "atomic_folder", "atomic_path", "atomic_zarr_write", "validate_output_folder",
           "validate_output_path", "has_consolidated_metadata", "open_zarr_store", "write_json"]


def validate_output_path(path: str | os.PathLike, *, overwrite: bool, create: bool = False) -> Path:
    """Validate an output path before any work: the path must not exist unless ``overwrite``, and its parent
    must be a writable directory or, when missing, its nearest existing ancestor must be one. Nothing is created
    (the write that puts the result in place makes the missing folders, see :func:`atomic_path`), so input
    refused after this check leaves no empty folder behind; ``create=True`` makes the missing parent folders now.
    Returns the path; raises ValueError naming the problem."""
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
    :func:`validate_output_path` checks it (nothing is created), and the path, if it exists, a directory. Returns
    the path; raises ValueError naming the problem."""
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


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing ancestors; return those this call created, deepest first."""
    missing = []
    while not (folder.exists() or folder.is_symlink()) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    created = []
    for f in reversed(missing):
        try:
            f.mkdir()
        except FileExistsError:  # made meanwhile by someone else: not ours to remove
            continue
        created.append(f)
    return created[::-1]


def _remove_folders(created: list[Path]) -> None:
    """Remove the folders :func:`_make_folders` created (deepest first), as long as they are empty."""
    for f in created:
        try:
            f.rmdir()
        except OSError:  # not empty (something else was put there): kept, and so are those above it
            return


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write (a file or a directory); on success rename it to ``path``.

    The temporary keeps the suffix of ``path`` (writers that choose a format by suffix still work). Missing
    folders above ``path`` are created first. On any exception the temporary is removed, so are the folders
    created for it, and ``path`` is left as it was: an existing directory is moved aside only once the new
    result exists, and moved back if the rename that replaces it fails (or is interrupted). A writer that
    produced nothing raises FileNotFoundError, with ``path`` untouched.
    """
    p = Path(path).expanduser()
    created = _make_folders(p.parent)
    suffix = p.suffix if len(p.suffix) <= 32 else ""  # a "suffix" that long is no format's: not kept
    tmp = _sibling(p, p.stem if suffix else p.name, f".tmp-{uuid.uuid4().hex[:8]}{suffix}")
    placed = False
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
            placed = True
            _remove(old)  # a link: only the link (rmtree would refuse it and leave it behind)
        else:
            os.replace(tmp, p)
            placed = True
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)
        if not placed:
            _remove_folders(created)


def _is_store(path: Path) -> bool:
    """True for a zarr store (v3 or v2): one result, replaced whole, never merged file by file."""
    return any((path / name).is_file() for name in ("zarr.json", ".zgroup", ".zarray"))


def _set_entries(stage: Path, folder: Path) -> list[tuple[Path, Path]]:
    """(staged, target) pairs that commit ``stage`` into ``folder``: files, links and zarr stores one to one; a
    staged folder whose target is an existing folder (neither a store) merged entry by entry, so that files
    already there that the set does not name are kept."""
    pairs = []
    for entry in sorted(stage.iterdir()):
        target = folder / entry.name
        if (entry.is_dir() and not entry.is_symlink() and target.is_dir() and not target.is_symlink()
                and not _is_store(entry) and not _is_store(target)):
            pairs += _set_entries(entry, target)
        else:
            pairs.append((entry, target))
    return pairs


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) that arrives inside the block until its end, then raise KeyboardInterrupt. Only in
    the main thread (where Python handles signals); elsewhere the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:  # None: the handler was not set from Python; Python's own is the closest to put back
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
    if caught:
        raise KeyboardInterrupt


def _commit_set(stage: Path, folder: Path) -> None:
    """Move every entry of ``stage`` into ``folder`` (an existing directory), replacing the entries of the same
    names; on any failure put everything back as it was."""
    backup = _sibling(stage, "tokensphere-set", f".old-{uuid.uuid4().hex[:8]}")
    backup.mkdir()
    pairs = _set_entries(stage, folder)
    aside: list[tuple[Path, Path]] = []  # (old result moved aside, its target)
    placed: list[tuple[Path, Path]] = []  # (staged, target) moved into place
    try:
        with _sigint_deferred():
            try:
                for i, (_, target) in enumerate(pairs):
                    if target.exists() or target.is_symlink():
                        os.replace(target, backup / str(i))
                        aside.append((backup / str(i), target))
                for staged, target in pairs:
                    os.replace(staged, target)
                    placed.append((staged, target))
            except BaseException:
                for staged, target in reversed(placed):
                    os.replace(target, staged)
                for old, target in reversed(aside):
                    os.replace(old, target)
                raise
    finally:
        _remove(backup)


@contextmanager
def atomic_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging folder to write a set of results into; on success the set appears in ``folder``
    all together, on any exception (Ctrl-C included) none of it does and ``folder`` is left as it was.

    A missing ``folder`` is the staging folder renamed into place (one rename; missing folders above it are
    created, and removed again on failure). In an existing one, each staged entry replaces the entry of the same
    name, a zarr store whole, a sub-folder entry by entry (other files in ``folder`` are kept); the staging
    folder is then a hidden sub-folder of ``folder`` (same file system), the old entries are moved aside before
    the new ones are renamed in and moved back if that fails, and a Ctrl-C during those renames takes effect
    after them.
    """
    p = Path(folder).expanduser()
    if p.exists() and not p.is_dir():
        raise ValueError(f"out must be a folder, got {p}, an existing file")
    if p.is_dir():
        stage = _sibling(p / "tokensphere-set", "tokensphere-set", f".tmp-{uuid.uuid4().hex[:8]}")
        stage.mkdir()
        try:
            yield stage
            _commit_set(stage, p)
        finally:
            _remove(stage)
        return
    created = _make_folders(p.parent)
    stage = _sibling(p, p.name, f".tmp-{uuid.uuid4().hex[:8]}")
    stage.mkdir()
    placed = False
    try:
        yield stage
        try:
            os.rename(stage, p)  # the whole set in one rename
        except OSError:
            if not p.is_dir():
                raise
            _commit_set(stage, p)  # made meanwhile (by someone else): merged rather than replaced
        placed = True
    finally:
        if stage.exists():
            _remove(stage)
        if not placed:
            _remove_folders(created)


@contextmanager
def atomic_entries(folder: str | os.PathLike, names: Sequence[str]) -> Iterator[Path]:
    """Yield ``folder`` (created if missing) to write its entries ``names`` in place, all of them or none: for a
    set whose writers must see the final paths (they record them).

    The entries of those names already in ``folder`` are first moved aside into a hidden sub-folder; on success
    they are deleted; on any exception (Ctrl-C included) the entries of those names written meanwhile are
    removed, the old ones moved back, and a ``folder`` created here removed again, so ``folder`` is left as it
    was (a Ctrl-C during those moves takes effect after them). Other entries of ``folder`` are never touched.
    """
    p = Path(folder).expanduser()
    if p.exists() and not p.is_dir():
        raise ValueError(f"out must be a folder, got {p}, an existing file")
    created = _make_folders(p)
    backup = _sibling(p / "tokensphere-set", "tokensphere-set", f".old-{uuid.uuid4().hex[:8]}")
    owned: list[str] = []  # names whose old entry (if any) is aside: what is there now is this run's
    aside: list[str] = []
    done = False
    try:
        backup.mkdir()
        with _sigint_deferred():
            for name in names:
                if (p / name).exists() or (p / name).is_symlink():
                    os.replace(p / name, backup / name)
                    aside.append(name)
                owned.append(name)
        yield p
        done = True
    finally:
        if done:
            _remove(backup)
        else:
            with _sigint_deferred():
                for name in owned:
                    _remove(p / name)  # written by this run
                for name in aside:
                    os.replace(backup / name, p / name)
            if backup.is_dir() and not any(backup.iterdir()):  # never delete an old entry not yet back
                backup.rmdir()
            _remove_folders(created)


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
