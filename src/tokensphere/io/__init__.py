"""Everything that touches the disk: atomic writes (:mod:`.atomic`) and run provenance (:mod:`.metadata`).

Every file or store the package writes goes through :func:`atomic_path` (or the helpers built on it), so an
interrupted write never leaves a half-written result at the target path.
"""

from .atomic import (
    atomic_path,
    atomic_zarr_write,
    validate_output_folder,
    validate_output_path,
    has_consolidated_metadata,
    open_zarr_store,
    write_json,
)
from .metadata import git_commit, package_version, run_metadata

__all__ = [
    "atomic_path",
    "atomic_zarr_write",
    "validate_output_folder",
    "validate_output_path",
    "has_consolidated_metadata",
    "open_zarr_store",
    "git_commit",
    "package_version",
    "run_metadata",
    "write_json",
]
