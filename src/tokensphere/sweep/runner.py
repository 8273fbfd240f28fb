"""Running a sweep: the pending work units, computed in this process or on Dask distributed, written as they finish.

Without a scheduler address the units run on an embedded ``LocalCluster`` (one single-threaded worker process
per core by default; ``workers=1`` computes in this process, without Dask). With ``scheduler="tcp://host:port"``
they run on that existing cluster, unchanged. Workers only compute; this process writes every result into the
store, so the store need not be visible to the workers. A worker that dies has its units recomputed elsewhere
by Dask; a run that dies is resumed by running it again: finished units (``done`` flags) are skipped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import xarray as xr

from ..validate import validate_int, validate_real
from .config import SweepConfig
from .store import done_units, open_or_create, read_store, write_unit
from .units import check_units, compute_unit

__all__ = ["run_sweep", "default_workers", "connect"]

CONNECT_TIMEOUT = 10.0  # seconds to wait for an existing scheduler


def default_workers() -> int:
    """The cores this process may use (one worker process per core)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def connect(scheduler: str, timeout: float = CONNECT_TIMEOUT) -> Any:
    """A ``dask.distributed.Client`` of the scheduler at ``scheduler`` ("tcp://host:port"). Raises ValueError
    naming the address when it does not answer within ``timeout`` seconds."""
    from dask.distributed import Client

    validate_real("connect_timeout", timeout, minimum=0.0, strict_minimum=True)
    try:
        return Client(scheduler, timeout=f"{timeout}s")
    except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, a malformed address: one message
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ValueError(f"could not connect to the scheduler {scheduler} within {timeout:g} s ({reason}); start it with "
                         "`dask scheduler` and `dask worker ADDRESS`, or leave --scheduler out to run locally"
                         ) from None


def _local_client(workers: int, stack: ExitStack) -> Any:
    from dask.distributed import Client, LocalCluster

    # the dashboard on any free port (":8787" may be taken by another cluster on this machine)
    cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                               dashboard_address=":0", silence_logs=logging.CRITICAL))
    # (a unit's error reaches this process as the exception itself: the CLI prints it as one line, so the
    # workers' own "Compute Failed" tracebacks are not logged)
    client = stack.enter_context(Client(cluster))
    client.run(_ignore_sigint)  # Ctrl-C stops this process; the workers end with the cluster
    return client


def _ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def dashboard_of(client: Any) -> str | None:
    """The dashboard address of a client's scheduler (None when it serves none); its pages need bokeh."""
    if "dashboard" not in client.scheduler_info().get("services", {}):
        return None
    try:
        import bokeh  # noqa: F401 - only to say whether the pages can be drawn
    except ImportError:
        return f"{client.dashboard_link} (its pages need bokeh where the scheduler runs; it is not installed here)"
    return client.dashboard_link


def run_sweep(
    config: SweepConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
    progress: Callable[[int, int], None] | None = None,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    extra: Callable[[], xr.Dataset] | None = None,
    attrs: dict[str, Any] | None = None,
) -> xr.Dataset:
    """Run (or resume) ``config`` into the zarr store ``out`` and return its dataset (loaded).

    workers: processes of the embedded LocalCluster (default: one per core; 1 computes in this process).
    scheduler: address of an existing Dask scheduler (then ``workers`` is ignored). progress(done, total) is
    called once before the work and after each unit; on_start(info) once the executor is ready, with
    info = {"executor": "process" | "local cluster" | "scheduler", "workers": int, "dashboard": str | None}.
    extra, attrs: ``extra()`` gives variables, ``attrs`` attributes to add to a new store (e.g. the phase
    diagram's curve Γ; extra is called only when the store is created).
    Raises ValueError for an invalid configuration value, a store of another sweep (unless ``overwrite``) or a
    scheduler that does not answer.
    """
    if workers is not None:
        validate_int("workers", workers, minimum=1)
    validate_real("connect_timeout", connect_timeout, minimum=0.0, strict_minimum=True)
    path = Path(out)
    check_units(config)
    with ExitStack() as stack:
        client = stack.enter_context(connect(scheduler, connect_timeout)) if scheduler else None
        open_or_create(config, path, overwrite=overwrite, extra=extra, attrs=attrs)
        units = config.units()
        pending = [u for u, ok in zip(units, done_units(path, config)) if not ok]
        finished = len(units) - len(pending)
        n_workers = workers or default_workers()
        if client is None and n_workers > 1 and len(pending) > 1:
            client = _local_client(min(n_workers, len(pending)), stack)
        if on_start is not None:
            on_start({
                "executor": "scheduler" if scheduler else "process" if client is None else "local cluster",
                "workers": 1 if client is None else len(client.scheduler_info().get("workers", {})),
                "dashboard": None if client is None else dashboard_of(client),
            })
        if progress is not None:
            progress(finished, len(units))
        if client is None:
            results = ((u, compute_unit(config, u)) for u in pending)
        else:
            from dask.distributed import as_completed

            futures = {client.submit(compute_unit, config, u, pure=False): u for u in pending}
            results = ((futures[f], f.result()) for f in as_completed(futures))
        for unit, result in results:
            write_unit(path, config, unit, result)
            finished += 1
            if progress is not None:
                progress(finished, len(units))
    return read_store(path)
