"""Run provenance: package version, git commit, library versions, dtype, device, threads, creation time."""

from __future__ import annotations

import datetime as _dt
import functools
import platform
import subprocess
from importlib import metadata as _importlib_metadata
from pathlib import Path
from typing import Any

import torch

__all__ = ["git_commit", "package_version", "run_metadata"]


@functools.cache
def package_version() -> str:
    """The installed distribution's version (pyproject.toml is the one place it is written)."""
    try:
        return _importlib_metadata.version("tokensphere")
    except _importlib_metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


@functools.cache
def git_commit() -> str:
    """HEAD of the checkout the package is imported from (``-dirty`` if tracked files of the package changed), or
    "unknown".

    Git is trusted only when it tracks this very file: a package installed inside some other repository (a
    virtual environment in a user's project, say) would otherwise record that project's commit. Looked up once
    per process: a long sweep or a loop of ``simulate`` calls does not spawn git each time.
    """
    here = Path(__file__).resolve()
    package = here.parent.parent  # the tokensphere package: what "-dirty" is about
    tracked = _git(here.parent, "ls-files", "--error-unmatch", "--", here.name)
    head = _git(here.parent, "rev-parse", "HEAD") if tracked is not None else None
    if head is None:
        return "unknown"
    dirty = _git(here.parent, "status", "--porcelain", "--untracked-files=no", "--", str(package))
    return head + ("-dirty" if dirty else "")


def _git(folder: Path, *args: str) -> str | None:
    """The stripped output of ``git -C folder ARGS``, or None when git is missing, fails or hangs."""
    try:
        out = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=5,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def run_metadata(*, dtype: torch.dtype, device: torch.device | str, **extra: Any) -> dict[str, Any]:
    """Provenance of a result: versions, git commit, dtype, device, torch threads, time; ``extra`` is added
    as is (e.g. ``chunk_size=``, ``threads=``)."""
    out = {
        "tokensphere_version": package_version(),
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "dtype": str(dtype).replace("torch.", ""),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    out.update(extra)
    return out
