"""Thread counts for training: one compute thread unless asked otherwise.

Training alternates small torch steps with SDP solves and BLAS calls. torch's
default (one thread per core) then competes with the solver's and BLAS's own
threads on the same cores: on the 2-core reference machine the README's
``train_lipschitz`` snippet took 65-106 s with torch's default threads and
25 s with one thread (measured when issue 14 was filed). So the trainers run
with one torch thread and one BLAS thread by default; ``$PYLIP_THREADS``
changes that (e.g. ``PYLIP_THREADS=4`` for large nets on a many-core machine),
and ``PYLIP_THREADS=0`` leaves the libraries' own settings alone.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ..blas import blas_threads, configured_threads

F = TypeVar("F", bound=Callable[..., Any])


def training_threads() -> int:
    """The thread count for training: ``$PYLIP_THREADS`` or 1 (0: leave the libraries' defaults)."""
    return configured_threads()


@contextlib.contextmanager
def limited_threads(threads: int | None = None) -> Iterator[None]:
    """Run the block with ``threads`` torch and BLAS threads, restoring the previous counts after."""
    count = training_threads() if threads is None else threads
    if count == 0:
        yield
        return
    with blas_threads(count):
        try:
            import torch
        except ImportError:
            yield
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(count)
        try:
            yield
        finally:
            torch.set_num_threads(previous)


def with_training_threads(function: F) -> F:
    """Decorate a trainer so that it runs inside :func:`limited_threads`."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with limited_threads():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
