"""The thread policy: how many torch intra-op threads a computation uses, chosen by problem size.

Batches of small systems (n below :data:`LARGE_N` tokens) run fastest on **one** thread: their kernels are
many tiny matrix products whose threading costs more than it saves, and on a busy machine extra threads
oversubscribe the cores (measured 12–75× slower on a loaded 2-core machine). Systems with n in the thousands
have large products that do gain from **all cores**. The same policy serves the Python API
(:func:`tokensphere.simulate`, the sweeps, the theorem checks) and the CLI; pass ``threads=`` (``--threads``)
to override it. The number used is recorded in every run's metadata.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .validate import validate_int

__all__ = ["LARGE_N", "all_cores", "choose_threads", "torch_threads"]

LARGE_N = 512  # from this many tokens per system on, the (n × n) products are large enough to thread


def all_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        return max(os.cpu_count() or 1, 1)


def choose_threads(n: int, threads: int | None = None) -> int:
    """Threads for systems of ``n`` tokens: ``threads`` if given (an integer ≥ 1), else 1 for n < LARGE_N and
    :func:`all_cores` otherwise."""
    if threads is not None:
        return validate_int("threads", threads, minimum=1)
    return 1 if n < LARGE_N else all_cores()


@contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Run the block with ``n`` torch threads (None: leave the setting alone), then restore the old value.

    Yields the number of threads in force inside the block."""
    if n is None:
        yield torch.get_num_threads()
        return
    validate_int("threads", n, minimum=1)
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(old)
