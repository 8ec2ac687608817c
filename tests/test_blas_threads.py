"""pylip.blas: the BLAS thread limit pylip's own linear algebra runs under."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from pylip.blas import blas_threads, configured_threads
from pylip.errors import InputError
from pylip.lipsdp import engine, one_layer


def _blas_counts() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_blas_threads_limits_and_restores() -> None:
    before = _blas_counts()
    with blas_threads(1):
        assert _blas_counts() and all(count == 1 for count in _blas_counts())
    assert _blas_counts() == before


def test_zero_leaves_the_libraries_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYLIP_THREADS", "0")
    before = _blas_counts()
    with blas_threads():
        assert _blas_counts() == before


@pytest.mark.parametrize("raw", ["-1", "two", "1.5"])
def test_bad_thread_counts_are_named(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("PYLIP_THREADS", raw)
    with pytest.raises(InputError, match="PYLIP_THREADS"):
        configured_threads()


@pytest.mark.parametrize("module, step, sizes", [
    (engine, "_primal_dual_step", (3, 6, 5, 2)),  # the deep engine
    (one_layer, "_step", (3, 6, 2)),  # one hidden layer: pylip.lipsdp.one_layer
])
def test_the_engine_runs_with_one_blas_thread(
    monkeypatch: pytest.MonkeyPatch, module: Any, step: str, sizes: tuple[int, ...]
) -> None:
    monkeypatch.delenv("PYLIP_THREADS", raising=False)
    seen: list[list[int]] = []
    original = getattr(module, step)

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(_blas_counts())
        return original(*args, **kwargs)

    monkeypatch.setattr(module, step, recording)
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((b, a)) for a, b in zip(sizes[:-1], sizes[1:])]
    engine.solve_certificate_sdp(weights, 0.0, 1.0)
    assert seen and all(counts == [1] * len(counts) for counts in seen)
