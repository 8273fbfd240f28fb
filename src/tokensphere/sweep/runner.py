"""Running a sweep: the pending work units, computed in this process or on Dask distributed, written as they finish.

Without a scheduler address the units run on an embedded ``LocalCluster`` (one single-threaded worker process
per core by default; ``workers=1`` computes in this process, without Dask). With ``scheduler="tcp://host:port"``
they run on that existing cluster, unchanged. Workers only compute; this process writes every result into the
store, so the store need not be visible to the workers. A worker that dies has its units recomputed elsewhere
by Dask; a unit that keeps killing its workers (most likely by exhausting their memory) ends the run with a
MemoryError naming it, and a lost scheduler with a ValueError; a run that dies is resumed by running it again:
finished units (``done`` flags and data) are skipped.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import xarray as xr

from ..validate import validate_int, validate_real
from .config import SweepConfig
from .store import done_units, open_or_create, read_store, write_unit
from .units import Unit, check_units, compute_unit, describe_unit

__all__ = ["run_sweep", "default_workers", "connect", "dask_failure"]

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

    with _sigint_ignored():
        # the dashboard on any free port (":8787" may be taken by another cluster on this machine)
        cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                   dashboard_address=":0", silence_logs=logging.CRITICAL))
        # (a unit's error reaches this process as the exception itself: the CLI prints it as one line, so the
        # workers' own "Compute Failed" tracebacks are not logged)
        client = stack.enter_context(Client(cluster))
    client.run(_ignore_sigint)  # Ctrl-C stops this process; the workers end with the cluster
    return client


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored in this process while the block runs (the previous handler restored after).

    The local cluster spawns its workers as fresh Python processes, which inherit an ignored SIGINT (and then
    keep it: Python installs its KeyboardInterrupt handler only over the default). A Ctrl-C while they import
    would otherwise print one traceback per worker. The price: a Ctrl-C during the cluster's start (seconds)
    is ignored; one after it interrupts as usual. Only the main thread may set handlers: elsewhere, unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:  # None: a handler set outside Python, which cannot be put back; the default is the nearest
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)


def _ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def dask_failure(exc: BaseException, status: str, config: SweepConfig, unit: Unit | None,
                 scheduler: str) -> BaseException:
    """The exception to raise for ``exc``, raised while waiting for ``unit`` (None: while submitting) on Dask,
    the future in state ``status``: a one-line error for Dask's own failures, ``exc`` itself for the unit's.

    * ``KilledWorker``: every worker that ran the unit died (usually the kernel or the nanny ending a process
      that ran out of memory) → MemoryError naming the unit;
    * a lost connection (the futures cancelled, CommClosedError or another OSError of the client) → ValueError
      naming the scheduler. An OSError the unit itself raised on a worker (state "error") is the unit's own.
    """
    from distributed import KilledWorker

    where = "a work unit" if unit is None else f"the work unit {describe_unit(config, unit)}"
    resume = "the units finished so far are saved: run the same command again to resume"
    if isinstance(exc, KilledWorker):
        return MemoryError(f"{where} killed its Dask worker process each time it ran (KilledWorker), most likely "
                           "by needing more memory than a worker has: give the workers more memory, or make units "
                           f"smaller (sweep.seeds, sweep.betas_per_unit, model.n); {resume}")
    if status != "error" and isinstance(exc, (CancelledError, OSError)):
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        return ValueError(f"lost the connection to the Dask scheduler {scheduler} while waiting for {where} "
                          f"({reason}); {resume}")
    return exc


def _dask_results(client: Any, config: SweepConfig, pending: list[Unit]) -> Iterator[tuple[Unit, Any]]:
    """(unit, result) for each pending unit as it finishes on the cluster; Dask's failures as one line."""
    from dask.distributed import as_completed

    scheduler = getattr(client.scheduler, "address", None) or "of this run"
    unit, status = None, "pending"
    try:
        futures = {client.submit(compute_unit, config, u, pure=False): u for u in pending}
        for future in as_completed(futures):
            unit, status = futures[future], future.status
            result = future.result()
            yield unit, result
            unit, status = None, "pending"
    except Exception as exc:  # noqa: BLE001 - dask_failure gives back what it does not translate
        translated = dask_failure(exc, status, config, unit, scheduler)
        if translated is exc:
            raise
        if isinstance(translated, ValueError):  # lost: the client's own reconnection log would be a second line
            _close_quietly(client)
        raise translated from None


def _close_quietly(client: Any) -> None:
    """Close a client whose scheduler is gone, without its "failed to reconnect" log (the error says it)."""
    log = logging.getLogger("distributed.client")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        client.close()
    except Exception:  # noqa: BLE001 - closing a broken connection: the error being raised is the news
        pass
    finally:
        log.setLevel(level)


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
    Raises ValueError for an invalid configuration value, a store of another sweep (unless ``overwrite``), a
    damaged store, a scheduler that does not answer or that is lost; MemoryError for a unit that kills every
    Dask worker that runs it.
    """
    if workers is not None:
        validate_int("workers", workers, minimum=1)
    validate_real("connect_timeout", connect_timeout, minimum=0.0, strict_minimum=True)
    path = Path(out).expanduser()  # once, here: every later step (and message) uses the same path
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
            results = _dask_results(client, config, pending)
        for unit, result in results:
            write_unit(path, config, unit, result)
            finished += 1
            if progress is not None:
                progress(finished, len(units))
    return read_store(path)
