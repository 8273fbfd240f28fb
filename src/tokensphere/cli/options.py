"""Option parsing shared by the commands."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from ..io import validate_output_path
from ..runtime import choose_threads, default_threads, torch_threads

T = TypeVar("T")

__all__ = ["FIGURE_SUFFIXES", "check_figure_path", "command_threads", "root_threads", "root_threads_applied",
           "split_values"]

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def check_figure_path(figure: Path, *, overwrite: bool = True) -> Path:
    """A figure path, checked before any work: a suffix matplotlib writes (FIGURE_SUFFIXES) and a writable
    folder (nothing is created: the write makes a missing folder); an existing file only with ``overwrite``;
    never an existing directory (it would be deleted to make room). Raises ValueError naming it."""
    if figure.suffix.lower() not in FIGURE_SUFFIXES:
        raise ValueError(f"figure must end in {', '.join(FIGURE_SUFFIXES)}, got {figure.name!r}")
    if figure.expanduser().is_dir():
        raise ValueError(f"figure path {figure} is an existing directory; give a file name")
    return validate_output_path(figure, overwrite=overwrite, name="figure")


_ROOT_THREADS: contextvars.ContextVar[int | None] = contextvars.ContextVar("tokensphere_cli_threads", default=None)


@contextmanager
def root_threads_applied(threads: int | None) -> Iterator[None]:
    """Run a command under the root option ``tokensphere --threads`` (None: not given): torch's thread count set
    to it (restored afterwards), :func:`root_threads` returning it, and the library's thread policy replaced by it
    (:func:`tokensphere.runtime.default_threads`: every ``simulate`` the command starts uses it)."""
    token = _ROOT_THREADS.set(threads)
    try:
        with torch_threads(threads), default_threads(threads):  # the library's own integrations follow it too
            yield
    finally:
        _ROOT_THREADS.reset(token)


def root_threads() -> int | None:
    """The root option ``tokensphere --threads N`` of the command being run, or None (not given, or a command
    function called from Python rather than from the command line)."""
    return _ROOT_THREADS.get()


def command_threads(n: int) -> int:
    """torch threads for a command whose systems have ``n`` tokens: the root ``--threads`` when given (it wins
    over the policy), else the policy :func:`tokensphere.runtime.choose_threads` (one thread below 512 tokens)."""
    return choose_threads(n, root_threads())


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
