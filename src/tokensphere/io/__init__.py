"""Everything that touches the disk: atomic writes (:mod:`.atomic`) and run provenance (:mod:`.metadata`).

Every file or store the package writes goes through :func:`atomic_path` (or the helpers built on it), so an
interrupted write never leaves a half-written result at the target path; a set of results that belong together
goes through :func:`atomic_folder` (or :func:`atomic_entries`, in place), so it appears all together or not at
all. Checking an output path creates no folder: the write does, and removes it again when it fails. What a
process killed outright left behind is undone by the next write into the same folder (:func:`recover_folder`).
"""

from .atomic import (
    atomic_entries,
    atomic_folder,
    atomic_path,
    atomic_zarr_write,
    recover_folder,
    validate_output_folder,
    validate_output_path,
    has_consolidated_metadata,
    is_zarr_store,
    open_zarr_store,
    write_json,
)
from .metadata import git_commit, package_version, run_metadata

__all__ = [
    "atomic_entries",
    "atomic_folder",
    "atomic_path",
    "atomic_zarr_write",
    "recover_folder",
    "validate_output_folder",
    "validate_output_path",
    "has_consolidated_metadata",
    "is_zarr_store",
    "open_zarr_store",
    "git_commit",
    "package_version",
    "run_metadata",
    "write_json",
]
