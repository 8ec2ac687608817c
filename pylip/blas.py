"""BLAS thread counts for pylip's own dense linear algebra.

The LipSDP engine (:mod:`pylip.lipsdp.engine`) and the trainers alternate many
factorisations and products of matrices of a few hundred rows. On the
2-core reference machine OpenBLAS's second thread makes them slower, not
faster: the engine took 1.4 s on 10-48-48-5 with two BLAS threads and 0.08 s
with one; 10-64x4-10 5.5 s and 0.98 s; 10-128x4-10 16.4 s and 9.0 s;
784-256-10 9.3 s and 4.5 s (measured at issue 11). So these run with one BLAS
thread unless ``$PYLIP_THREADS`` says otherwise (``0`` leaves the libraries'
settings alone).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from .errors import InputError

THREADS_ENV_VAR = "PYLIP_THREADS"
DEFAULT_THREADS = 1


def configured_threads() -> int:
    """The thread count for pylip's compute: ``$PYLIP_THREADS`` or 1 (0: leave the libraries' defaults)."""
    raw = os.environ.get(THREADS_ENV_VAR)
    if raw is None:
        return DEFAULT_THREADS
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise InputError(f"${THREADS_ENV_VAR} must be an integer >= 0 (0: library defaults), got {raw!r}")
    return value


def at_most(threads: int | None) -> contextlib.AbstractContextManager[None]:
    """``blas_threads(threads)``, or nothing for ``None`` (a solver's ``blas_threads=None``: leave them)."""
    return contextlib.nullcontext() if threads is None else blas_threads(int(threads))


@contextlib.contextmanager
def blas_threads(threads: int | None = None) -> Iterator[None]:
    """Run the block with ``threads`` BLAS threads (default :func:`configured_threads`), then restore them."""
    count = configured_threads() if threads is None else threads
    if count == 0:
        yield
        return
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped,unused-ignore]

    with threadpool_limits(limits=count, user_api="blas"):
        yield
