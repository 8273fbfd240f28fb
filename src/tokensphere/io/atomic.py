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

A process killed outright (SIGKILL, power loss) runs no clean-up. Every hidden temporary therefore carries
its owner in its name (``.NAME.KIND-PID@HOST-XXXXXXXX``, HOST a hash of the host name), and the next atomic
write into the same folder first recovers what a dead owner on this host left there (:func:`recover_folder`):
entries it had moved aside are put back in place of what it had half written, so the folder is again as
before the killed run, and its staging and scrap folders are removed. Temporaries of live processes, and of
processes on other hosts (a shared file system), are never touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
import socket
import uuid
import warnings
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import xarray as xr

__all__ = ["atomic_entries", "atomic_folder", "atomic_path", "atomic_zarr_write", "recover_folder",
           "validate_output_folder", "validate_output_path", "has_consolidated_metadata", "is_zarr_store", "open_zarr_store",
           "write_json"]


REPLACEABLE = {
    "zarr": "a zarr store",
    "run": "a run folder (one holding summary.json)",
}


def validate_output_path(path: str | os.PathLike, *, overwrite: bool, create: bool = False, name: str = "out",
                         replaces: str | None = None) -> Path:
    """Validate an output path before any work: the path must not exist unless ``overwrite``, and its parent
    must be a writable directory or, when missing, its nearest existing ancestor must be one. Nothing is created
    (the write that puts the result in place makes the missing folders, see :func:`atomic_path`), so input
    refused after this check leaves no empty folder behind; ``create=True`` makes the missing parent folders now.

    name: the parameter the messages name ("out", "figure"). replaces: what ``overwrite`` may replace whole —
    ``"zarr"`` (a zarr store) or ``"run"`` (a folder holding summary.json), always also an empty folder; any
    other existing path (a plain folder with other files, a file) is refused even with ``overwrite``, so that
    replacing a result never deletes data the library did not write. None: the path is one file, replaced as
    such. With ``replaces``, the current folder and the folders above it are refused.
    Returns the path; raises ValueError naming the problem."""
    p = Path(path).expanduser()
    if replaces is not None and replaces not in REPLACEABLE:
        raise ValueError(f"replaces must be one of {sorted(REPLACEABLE)} or None, got {replaces!r}")
    if replaces is not None:  # a result replaced whole: never the folder this runs in, nor one above it
        here, target = Path.cwd().resolve(), p.resolve()
        if target == here or target in here.parents:
            raise ValueError(f"{name} must name a new folder, not the current folder or one above it: {str(p)!r}")
    parent = p.parent if str(p.parent) else Path(".")
    if p.exists() and not overwrite:
        raise ValueError(f"{name} path already exists: {p} (pass overwrite=True / --overwrite to replace it)")
    if p.exists() and replaces is not None and not _replaceable(p, replaces):
        raise ValueError(
            f"{name} path {p} exists and is not {REPLACEABLE[replaces]} or an empty folder; overwrite replaces "
            "only those, so that no other data is lost: remove it yourself or choose another path")
    if not create and not parent.exists():
        ancestor = parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
            raise ValueError(f"{name} path is not writable: cannot create {parent} ({ancestor} is not a writable "
                             "directory)")
        return p
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"{name} path is not writable: cannot create {parent} ({exc.strerror})") from None
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ValueError(f"{name} path is not writable: {parent} is not a writable directory")
    return p


def _replaceable(p: Path, kind: str) -> bool:
    """Whether an existing path is what ``validate_output_path(..., replaces=kind)`` lets overwrite replace."""
    if not p.is_dir() or p.is_symlink():
        return False
    if not any(p.iterdir()):
        return True
    if kind == "zarr":
        return is_zarr_store(p)
    return (p / "summary.json").is_file()


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


def _host() -> str:
    """This host's tag in temporary names: 8 hex digits of a hash of its name."""
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def _tail(kind: str, suffix: str = "") -> str:
    """The end of a temporary's name: ``.KIND-PID@HOST-XXXXXXXX`` and the suffix (the owner, for recovery)."""
    return f".{kind}-{os.getpid()}@{_host()}-{uuid.uuid4().hex[:8]}{suffix}"


# kinds: tmp (a file or staging folder being written), old (a result atomic_path moved aside), aside (entries
# atomic_entries moved aside), commit (the entries a set's commit moved aside, with its manifest), scrap (done with)
_TEMPORARY = re.compile(r"^\.(?P<base>.*)\.(?P<kind>tmp|old|aside|commit|scrap)-(?P<pid>\d+)@(?P<host>[0-9a-f]{8})-"
                        r"[0-9a-f]{8}")
_MANIFEST = "manifest.json"
_POSIX = os.name == "posix"


def _alive(pid: int) -> bool:
    """Whether a process of that id exists on this host (one we may not signal counts as alive). Off POSIX
    every owner counts as alive (on Windows ``os.kill`` would terminate the process, not probe it), so nothing
    is recovered there."""
    if pid == os.getpid() or not _POSIX:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _stale(folder: Path) -> list[tuple[str, Path, re.Match]]:
    """(kind, path, name match) of the temporaries in ``folder`` left by dead processes of this host."""
    host, found = _host(), []
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    for name in names:
        m = _TEMPORARY.match(name)
        if m and m["host"] == host and not _alive(int(m["pid"])):
            found.append((m["kind"], folder / name, m))
    return found


def recover_folder(folder: str | os.PathLike) -> list[Path]:
    """Undo what atomic writes into ``folder`` left behind when their process was killed outright (SIGKILL,
    power loss: no clean-up ran): only temporaries of dead processes of this host, recognised by their names.

    - entries a set's commit (:func:`atomic_folder`) or :func:`atomic_entries` had moved aside are put back,
      replacing what the killed run had put or half written under their names (and a commit's entries that had
      no earlier version are removed), so ``folder`` holds the set from before the killed run;
    - a result :func:`atomic_path` had moved aside is put back where its path is empty (killed between its two
      renames), else deleted (the new result was in place);
    - staging folders, temporary files and scrap are deleted.

    Returns the paths put back. Errors are not raised (a temporary that cannot be handled is left as it is):
    recovery must never stop the write that calls it."""
    folder = Path(folder).expanduser()
    restored: list[Path] = []
    stale = _stale(folder)
    for kind, path, m in stale:  # the moved-aside entries first: a commit's rollback reads its staging folder
        try:
            if kind == "commit":
                restored += _roll_back_commit(path)
            elif kind == "aside":
                restored += _put_back_entries(folder, path)
            elif kind == "old":
                target = folder / m["base"]
                if not m["base"] or len(path.name.encode()) >= _name_max(folder) - 3:
                    continue  # the name may have been shortened (_sibling): which target is not certain
                if target.exists() or target.is_symlink():
                    _remove(path)
                else:
                    os.replace(path, target)
                    restored.append(target)
        except Exception:  # noqa: BLE001 - a damaged temporary is left as it is; the write goes on
            continue
    for kind, path, _ in stale:
        if kind in ("tmp", "scrap") and (path.exists() or path.is_symlink()):
            _remove(path)
    return restored


def _roll_back_commit(backup: Path) -> list[Path]:
    """Undo a commit of :func:`_commit_set` killed half-way, from the manifest it wrote before its first rename
    (absolute paths): each target it had filled (its staged entry is gone) is emptied, and each entry it had
    moved aside goes back."""
    try:
        manifest = json.loads((backup / _MANIFEST).read_text())
        stage, pairs = Path(manifest["stage"]), manifest["pairs"]
    except (OSError, ValueError, KeyError):  # killed before the manifest was written: nothing renamed yet
        _remove(backup)
        return []
    # an entry gone from the staging folder was placed by the commit; with the staging folder itself gone
    # (removed by hand) that cannot be told, and nothing is removed: old entries go back only to empty paths
    known = stage.is_dir()
    restored, kept = [], False
    for i, (staged, target) in enumerate(pairs):
        staged, target, old = Path(staged), Path(target), backup / str(i)
        if known and not (staged.exists() or staged.is_symlink()):
            _remove(target)  # placed by the killed commit
        if old.exists() or old.is_symlink():
            if target.exists() or target.is_symlink():
                kept = True  # never delete an old entry that cannot go back
                continue
            os.replace(old, target)
            restored.append(target)
    if not kept:
        _remove(backup)
    return restored


def _put_back_entries(folder: Path, backup: Path) -> list[Path]:
    """Undo an :func:`atomic_entries` killed half-way. Its manifest, written once every old entry was aside,
    names the entries the run owned: each is removed (the run's, maybe half written) and its old one put back.
    Without a manifest the run was killed while moving the old entries aside (nothing written yet): they
    go back."""
    kept = backup / "entries"
    try:
        names = json.loads((backup / _MANIFEST).read_text())["names"]
    except (OSError, ValueError, KeyError):
        names = []
    for name in names:
        _remove(folder / name)
    restored = []
    for entry in sorted(kept.iterdir()) if kept.is_dir() else []:
        target = folder / entry.name
        if not (target.exists() or target.is_symlink()):
            os.replace(entry, target)
            restored.append(target)
    _remove(backup)
    return restored


def _discard(path: Path) -> None:
    """Delete a folder of moved-aside entries that is done with: renamed to scrap first (one atomic step), so
    that a kill during the deletion never leaves a half-deleted folder that recovery would take for one to put
    back."""
    scrap = _sibling(path, "tokensphere-set", _tail("scrap"))
    try:
        os.replace(path, scrap)
    except OSError:
        scrap = path
    _remove(scrap)


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
    recover_folder(p.parent)
    suffix = p.suffix if len(p.suffix) <= 32 else ""  # a "suffix" that long is no format's: not kept
    tmp = _sibling(p, p.stem if suffix else p.name, _tail("tmp", suffix))
    placed = False
    try:
        yield tmp
        if not (tmp.exists() or tmp.is_symlink()):
            raise FileNotFoundError(f"the writer produced nothing at {tmp}; {p} left as it was")
        # a directory (or a link to one), or anything replaced by a directory: moved aside first, since a
        # rename cannot replace a non-empty directory, nor a file by a directory
        if p.is_dir() or ((p.exists() or p.is_symlink()) and tmp.is_dir()):
            old = _sibling(p, p.name, _tail("old"))
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


def is_zarr_store(path: str | os.PathLike) -> bool:
    """True for a zarr store (v3 or v2): one result, replaced whole, never merged file by file."""
    path = Path(path)
    return any((path / name).is_file() for name in ("zarr.json", ".zgroup", ".zarray"))


def _set_entries(stage: Path, folder: Path) -> list[tuple[Path, Path]]:
    """(staged, target) pairs that commit ``stage`` into ``folder``: files, links and zarr stores one to one; a
    staged folder whose target is an existing folder (neither a store) merged entry by entry, so that files
    already there that the set does not name are kept."""
    pairs = []
    for entry in sorted(stage.iterdir()):
        target = folder / entry.name
        if (entry.is_dir() and not entry.is_symlink() and target.is_dir() and not target.is_symlink()
                and not is_zarr_store(entry) and not is_zarr_store(target)):
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
    backup = _sibling(stage, "tokensphere-set", _tail("commit"))
    backup.mkdir()
    pairs = _set_entries(stage, folder)
    # what a recovery needs to undo this commit if the process is killed during it (recover_folder)
    manifest = {"stage": str(stage.absolute()), "pairs": [[str(a.absolute()), str(b.absolute())] for a, b in pairs]}
    (backup / f"{_MANIFEST}.tmp").write_text(json.dumps(manifest))
    os.replace(backup / f"{_MANIFEST}.tmp", backup / _MANIFEST)
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
        _discard(backup)


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
        recover_folder(p)
        stage = _sibling(p / "tokensphere-set", "tokensphere-set", _tail("tmp"))
        stage.mkdir()
        try:
            yield stage
            _commit_set(stage, p)
        finally:
            _remove(stage)
        return
    created = _make_folders(p.parent)
    recover_folder(p.parent)
    stage = _sibling(p, p.name, _tail("tmp"))
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
    recover_folder(p)
    backup = _sibling(p / "tokensphere-set", "tokensphere-set", _tail("aside"))
    kept = backup / "entries"
    owned: list[str] = []  # names whose old entry (if any) is aside: what is there now is this run's
    aside: list[str] = []
    done = False
    try:
        kept.mkdir(parents=True)
        with _sigint_deferred():
            for name in names:
                if (p / name).exists() or (p / name).is_symlink():
                    os.replace(p / name, kept / name)
                    aside.append(name)
                owned.append(name)
            # from here on every name is this run's: a recovery after a kill removes them all (recover_folder)
            (backup / f"{_MANIFEST}.tmp").write_text(json.dumps({"names": list(names)}))
            os.replace(backup / f"{_MANIFEST}.tmp", backup / _MANIFEST)
        yield p
        done = True
    finally:
        if done:
            _discard(backup)
        else:
            with _sigint_deferred():
                for name in owned:
                    _remove(p / name)  # written by this run
                for name in aside:
                    os.replace(kept / name, p / name)
            if not (kept.is_dir() and any(kept.iterdir())):  # never delete an old entry not yet back
                _remove(backup)
            _remove_folders(created)


def atomic_zarr_write(ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``ds`` as a zarr store with consolidated metadata at ``path``, atomically. Returns the path."""
    p = validate_output_path(path, overwrite=overwrite, replaces="zarr")
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
