"""Option parsing shared by the commands."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

__all__ = ["split_values"]


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
