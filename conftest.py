"""Test-session hooks shared by tests/ and parity_tests/."""

from __future__ import annotations

import pytest

from pylip.lipsdp.solvers import SOLVER_ENV_VAR, default_solver, mosek_available
from pylip.train.cpu_arithmetic import request_avx2_mkl

# The tests run the arithmetic the `pylip` command runs and the recordings were made in.
request_avx2_mkl()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a MOSEK licence, skip (with the reason) what needs MOSEK.

    That is every test when MOSEK is the default solver (``PYLIP_SOLVER=MOSEK``,
    the tox cell py311-mosek), else the tests marked ``mosek``. They are
    reported as skipped, never as passed.
    """
    everything = default_solver().strip().upper() == "MOSEK"
    marked = [item for item in items if item.get_closest_marker("mosek")]
    if not (everything or marked):
        return
    available, reason = mosek_available()
    if available:
        return
    skip = pytest.mark.skip(reason=f"{SOLVER_ENV_VAR}=MOSEK, but {reason}" if everything else reason)
    for item in items if everything else marked:
        item.add_marker(skip)


@pytest.fixture
def no_named_solver(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset ``PYLIP_SOLVER`` for a test of ``formulation="auto"``'s engine routing.

    A tox cell names its solver there, and a named solver keeps the cvxpy formulations.
    """
    monkeypatch.delenv(SOLVER_ENV_VAR, raising=False)
