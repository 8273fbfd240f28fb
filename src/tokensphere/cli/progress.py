"""Progress bars on stderr that appear at the first update and vanish on failure, for every command.

:func:`stderr_progress` holds the shared behaviour: the bar starts only when the work reports progress (so input
errors raised before any work print no bar), and on an exception or Ctrl-C it is erased, leaving only the
one-line error. Each command adapts the ``update`` callback to what its work reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import Progress, ProgressColumn

__all__ = ["stderr_progress"]


@contextmanager
def stderr_progress(*columns: str | ProgressColumn) -> Iterator[Callable[..., None]]:
    """A rich progress bar with these columns on stderr, holding one task.

    Yields ``update(**fields)``: the first call starts the bar and adds the task (``description``, ``total``,
    ``completed`` and custom fields as in ``Progress.add_task``); later calls update it (``Progress.update``).
    """
    progress = Progress(*columns, console=Console(stderr=True))
    task: list[Any] = []

    def update(**fields: Any) -> None:
        if task:
            progress.update(task[0], **fields)
            return
        progress.start()
        description = fields.pop("description", "")
        task.append(progress.add_task(description, **fields))

    try:
        yield update
    except BaseException:
        if task:  # erase the bar (Live.stop, not Progress.stop, which adds a blank line off a terminal)
            progress.live.transient = True
            progress.live.stop()
        raise
    if task:
        progress.stop()
