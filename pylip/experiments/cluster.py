"""The Dask machinery of ``pylip sweep`` and ``pylip certify``: a client; futures collected as they finish.

:func:`open_client` gives a :class:`distributed.Client`: to an existing
scheduler (``scheduler="tcp://host:8786"``, e.g. one started by
``dask-jobqueue`` on SLURM or by ``dask scheduler``), or to an embedded
:class:`distributed.LocalCluster` with one worker process per core and one
thread each, BLAS and OpenMP pinned to one thread in the workers' environment
(the tasks also pin torch, :func:`pylip.sweep_tasks.pin_threads`). The
embedded cluster is closed with the client.

:func:`map_as_completed` submits one future per item (Dask ``retries`` for
tasks that raise outside the task's own error handling; a task whose worker
dies is rescheduled by the scheduler, up to ``distributed.scheduler.allowed-failures``
times) and yields ``(item, result or exception)`` as they complete.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import InputError

PINNED_THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def require_distributed() -> Any:
    """The ``distributed`` module, or an :class:`InputError` saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise InputError(
            "running on Dask needs the cluster extra: pip install 'pylip[cluster]' "
            "(or --workers 0 to run in this process)"
        ) from None
    return distributed


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def open_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A Dask client: to ``scheduler`` if given, else to an embedded LocalCluster of ``workers`` processes."""
    distributed = require_distributed()
    if scheduler is not None:
        if workers is not None:
            raise InputError("--workers sizes the embedded cluster; with --scheduler the cluster has its own")
        with _connect(distributed, scheduler) as client:
            yield client
        return
    n = default_workers() if workers is None else workers
    if n < 1:
        raise InputError(f"workers must be >= 1 for the Dask cluster, got {n}")
    cluster = distributed.LocalCluster(
        n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
        env=dict(PINNED_THREADS), silence_logs=40,
    )
    try:
        with distributed.Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def _connect(distributed: Any, scheduler: str) -> Any:
    """A client of a running scheduler; a bad address or no answer is the user's input, not a bug."""
    try:
        return distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (ValueError, TypeError, OSError, TimeoutError) as exc:  # bad address, refused, timed out
        raise InputError(
            f"--scheduler {scheduler!r}: could not connect to a Dask scheduler "
            f"({type(exc).__name__}: {exc}); "
            "give the address of a running scheduler, e.g. tcp://host:8786, or leave --scheduler out "
            "for an embedded cluster"
        ) from None


CONNECT_TIMEOUT = "10s"  # seconds to wait for a scheduler before saying it is not there


def map_as_completed(
    client: Any,
    function: Callable[..., Any],
    items: Iterable[tuple[str, tuple[Any, ...]]],
    *,
    retries: int = 2,
) -> Iterator[tuple[str, Any, BaseException | None]]:
    """Submit ``function(*args)`` per ``(key, args)``; yield ``(key, result, error)`` as each finishes.

    The Dask key of a task is ``key`` (so the dashboard names the run). On
    ``KeyboardInterrupt`` or a closed generator the pending futures are cancelled.
    """
    distributed = require_distributed()
    futures = {
        client.submit(function, *args, key=key, pure=False, retries=retries): key for key, args in items
    }
    pending = set(futures)
    try:
        for future in distributed.as_completed(list(futures)):
            pending.discard(future)
            try:
                yield futures[future], future.result(), None
            except Exception as exc:  # a task error or a worker lost too often (KilledWorker)
                yield futures[future], None, exc
    finally:
        if pending:
            client.cancel(list(pending))
