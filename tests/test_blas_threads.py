"""pylip.blas: the BLAS thread limit pylip's own linear algebra runs under."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from pylip.blas import blas_threads, configured_threads
from pylip.errors import InputError
from pylip.lipsdp import engine


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


def test_the_engine_runs_with_one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYLIP_THREADS", raising=False)
    seen: list[list[int]] = []
    original = engine._primal_dual_step

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(_blas_counts())
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "_primal_dual_step", recording)
    rng = np.random.default_rng(0)
    engine.solve_certificate_sdp([rng.standard_normal((6, 3)), rng.standard_normal((2, 6))], 0.0, 1.0)
    assert seen and all(counts == [1] * len(counts) for counts in seen)
