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

__all__ = ["LARGE_N", "all_cores", "available_memory", "choose_threads", "memory_budget", "torch_threads"]

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


# -----------------------------------------------------------------------------------------------------------
# memory: what the velocity kernel may allocate (its back end is chosen from this, see field.plan)

MEMORY_FRACTION = 0.5  # share of the available memory one kernel call may use for its (n × n) blocks
_FALLBACK_BYTES = 2 * 1024**3  # when the platform tells nothing


def available_memory(device: torch.device | str = "cpu") -> int:
    """Bytes free on ``device`` now: ``MemAvailable`` of /proc/meminfo on CPU (the kernel's estimate of what
    can be allocated without swapping), ``torch.cuda.mem_get_info`` on CUDA. Falls back to the free physical
    pages, then to 2 GiB, where neither is readable."""
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):  # pragma: no cover - platforms without sysconf
        return _FALLBACK_BYTES


def memory_budget(device: torch.device | str = "cpu") -> int:
    """Bytes one kernel call may use for its temporaries: :data:`MEMORY_FRACTION` of
    :func:`available_memory`."""
    return int(available_memory(device) * MEMORY_FRACTION)
