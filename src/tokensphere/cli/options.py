"""Option parsing shared by the commands."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from ..io import validate_output_path

T = TypeVar("T")

__all__ = ["FIGURE_SUFFIXES", "check_figure_path", "split_values"]

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def check_figure_path(figure: Path, *, overwrite: bool = True) -> Path:
    """A figure path, checked before any work: a suffix matplotlib writes (FIGURE_SUFFIXES) and a writable
    folder (created when missing); an existing file only with ``overwrite``; never an existing directory (it
    would be deleted to make room). Raises ValueError naming it."""
    if figure.suffix.lower() not in FIGURE_SUFFIXES:
        raise ValueError(f"figure must end in {', '.join(FIGURE_SUFFIXES)}, got {figure.name!r}")
    if figure.expanduser().is_dir():
        raise ValueError(f"figure path {figure} is an existing directory; give a file name")
    return validate_output_path(figure, overwrite=overwrite)


def split_values(values: Sequence[str], convert: Callable[[str], T], error: str) -> list[T]:
    """Values from repeated and/or comma-separated options: ``["1", "4,9"]`` → ``[1, 4, 9]`` (converted).

    ``error`` is the message prefix for a token that does not convert, e.g. "beta must be a finite number >= 0";
    the ValueError reads ``<error>, got '<token>'``.
    """
    out: list[T] = []
    for item in values:
        for token in item.split(","):
            try:
                out.append(convert(token))
            except ValueError:
                raise ValueError(f"{error}, got {token.strip()!r}") from None
    return out
