"""The thread policy: how many torch intra-op threads a computation uses, chosen by problem size.

Batches of small systems (n below :data:`LARGE_N` tokens) run fastest on **one** thread: their kernels are
many tiny matrix products whose threading costs more than it saves, and on a busy machine extra threads
oversubscribe the cores (many times slower on a loaded machine). Systems with n in the thousands
have large products that do gain from **all cores**. The cores are not left idle for small systems, though: the
fused kernel hands its cache-sized blocks of systems, and the step loop the rows of its large (B, n, d)
arrays (:func:`run_lanes_by_rows`), to **lanes**, one thread each (:func:`run_lanes`), all cores by default
(:func:`choose_lanes`) — separate small products side by side, where threads inside each product would
mostly wait for one another. The same policy serves the Python API
(:func:`tokensphere.simulate`, the sweeps, the theorem checks) and the CLI; pass ``threads=`` (``--threads``)
to override it (it caps the lanes too). Both numbers are recorded in every run's metadata.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch

from .validate import validate_int

__all__ = [
    "LANES_MIN_ELEMENTS", "LARGE_N", "all_cores", "available_memory", "choose_lanes", "choose_threads",
    "default_threads", "kernel_lanes", "lanes", "memory_budget", "run_lanes", "run_lanes_by_rows", "torch_threads",
]

LARGE_N = 512  # from this many tokens per system on, the (n × n) products are large enough to thread


def all_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        return max(os.cpu_count() or 1, 1)


_DEFAULT_THREADS: contextvars.ContextVar[int | None] = contextvars.ContextVar("tokensphere_threads", default=None)
THREADS_PER_CPU = 4  # the most torch threads asked for per logical CPU: beyond it a count is a mistake, and
# at 10^5 threads the OpenMP runtime or the progress bar's own thread fails with an out-of-memory error


def max_threads() -> int:
    """The largest thread count the package accepts: THREADS_PER_CPU × the machine's logical CPUs."""
    return THREADS_PER_CPU * max(os.cpu_count() or 1, 1)


def _check_threads(k: int) -> int:
    return validate_int("threads", k, minimum=1, maximum=max_threads())


@contextmanager
def default_threads(k: int | None) -> Iterator[int | None]:
    """Within the block (this thread), :func:`choose_threads` and :func:`choose_lanes` called without a count
    return ``k`` instead of the policy (None: the policy). The command line's root ``--threads`` enters this, so
    the integrations the library starts on its own follow it too. Yields ``k``."""
    if k is not None:
        _check_threads(k)
    token = _DEFAULT_THREADS.set(k)
    try:
        yield k
    finally:
        _DEFAULT_THREADS.reset(token)


def choose_threads(n: int, threads: int | None = None) -> int:
    """Threads for systems of ``n`` tokens: ``threads`` if given (an integer ≥ 1), else the count of an enclosing
    :func:`default_threads` block, else 1 for n < LARGE_N and :func:`all_cores` otherwise."""
    if threads is None:
        threads = _DEFAULT_THREADS.get()
    if threads is not None:
        return _check_threads(threads)
    return 1 if n < LARGE_N else all_cores()


@contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Run the block with ``n`` torch threads (None: leave the setting alone), then restore the old value.

    Yields the number of threads in force inside the block."""
    if n is None:
        yield torch.get_num_threads()
        return
    _check_threads(n)
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(old)


# -----------------------------------------------------------------------------------------------------------
# lanes: the fused kernel's blocks of systems and the step loop's rows spread over cores, one torch thread each

_LANES: contextvars.ContextVar[int | None] = contextvars.ContextVar("tokensphere_lanes", default=None)
_POOL: list[ThreadPoolExecutor] = []  # the worker threads, made on first use and grown when more are asked for
_POOL_LOCK = threading.Lock()


def choose_lanes(threads: int | None = None) -> int:
    """Lanes for a computation given ``threads`` (an integer ≥ 1, the cores it may use): that many, else the
    count of an enclosing :func:`default_threads` block, else :func:`all_cores`."""
    if threads is None:
        threads = _DEFAULT_THREADS.get()
    if threads is not None:
        return _check_threads(threads)
    return all_cores()


def kernel_lanes() -> int:
    """The lanes in force: those of the innermost :func:`lanes` block, else torch's intra-op thread count (a
    direct ``velocity`` call uses what torch would)."""
    k = _LANES.get()
    return torch.get_num_threads() if k is None else k


@contextmanager
def lanes(k: int | None) -> Iterator[int]:
    """Run the block with ``k`` lanes for the fused kernel (None: leave the setting alone). Yields the number in
    force inside the block."""
    if k is None:
        yield kernel_lanes()
        return
    token = _LANES.set(validate_int("lanes", k, minimum=1))
    try:
        yield k
    finally:
        _LANES.reset(token)


def _forget_workers_in_child() -> None:
    """After fork: the child has the pool object but none of its threads; let it make its own."""
    global _POOL_LOCK
    _POOL.clear()
    _POOL_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers_in_child)


def _workers(count: int) -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if not _POOL or _POOL[0]._max_workers < count:
            if _POOL:
                _POOL.pop().shutdown(wait=False)
            _POOL.append(ThreadPoolExecutor(max_workers=count, thread_name_prefix="tokensphere-lane"))
        return _POOL[0]


def run_lanes(k: int, fn: Callable[[], None]) -> None:
    """Call ``fn`` on ``k`` threads at once — this one and k − 1 pool workers — each with one torch intra-op
    thread, and return when every call has returned (the first exception is raised, after all have ended).
    ``fn`` shares its work out itself (e.g. by drawing blocks from one iterator). k ≤ 1: one call, here, with
    the thread settings untouched.

    The batches of small systems use the cores this way rather than by torch's threads inside each small
    product: the lanes meet only at the end of a call (no OpenMP team spinning between the many small
    operations, which makes one-thread-per-core runs many times slower on a busy machine; whole dopri5
    steps 1.49× faster than one thread on 2 cores at B = 4096, n = d = 32 with the step's passes on the lanes
    too: ``benchmarks/bench_step.py``, BENCHMARKS.md). Every block is
    computed by one thread with the same kernels whatever k is, so the result does not depend on k. The grad
    and inference modes of the caller are carried over to the workers."""
    if k <= 1:
        fn()
        return
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def work() -> None:
        torch.set_num_threads(1)  # this worker's own setting (the shared default is 1 meanwhile, see below)
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            fn()

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        futures = [_workers(k - 1).submit(work) for _ in range(k - 1)]
        try:
            fn()
        finally:
            errors = [f.exception() for f in futures]  # waits for each
        for err in errors:
            if err is not None:
                raise err
    finally:
        torch.set_num_threads(old)


LANES_MIN_ELEMENTS = 1 << 20  # (B, n, d) arrays from this size on are worth spreading over the lanes


def run_lanes_by_rows(like: torch.Tensor, fn: Callable[[slice], None]) -> None:
    """Call ``fn(rows)`` on contiguous slices of range(B), B = ``like.shape[0]``, that together cover it once:
    on the lanes in force (:func:`kernel_lanes`, two slices per lane) when ``like`` is a large CPU array (at
    least :data:`LANES_MIN_ELEMENTS` elements) and there are at least two rows per slice, else once on the
    whole batch (always off the CPU, where the device runs each operation in parallel itself). For the step
    loop's elementwise passes over (B, n, d) arrays: each row is computed by one thread, the same bits as one
    call."""
    k = kernel_lanes()
    parts, B = 2 * k, like.shape[0]
    if k <= 1 or like.device.type != "cpu" or like.numel() < LANES_MIN_ELEMENTS or B < 2 * parts:
        fn(slice(0, B))
        return
    bounds = [B * i // parts for i in range(parts + 1)]
    pending = iter([slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])])  # next() is atomic under the GIL

    def lane() -> None:
        for rows in pending:
            fn(rows)

    run_lanes(k, lane)


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
