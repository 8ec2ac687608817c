"""Choice and invocation of the SDP solver behind every certificate.

The default solver is Clarabel (open source, interior point). The environment
variable ``PYLIP_SOLVER`` changes the default, which is how the tox matrix runs
the same tests against each solver.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from ..errors import SolverError

logger = logging.getLogger(__name__)

DEFAULT_SOLVER = "CLARABEL"
SOLVER_ENV_VAR = "PYLIP_SOLVER"
SUPPORTED_SOLVERS = ("CLARABEL", "SCS", "CVXOPT", "MOSEK")

# Settings chosen per solver so that each reaches the tolerances stated, with
# the accuracy each really achieves, in reference/README.md ("Solvers").
# Clarabel's defaults (gap and feasibility 1e-8) are too loose for the ADMM
# Lipschitz step: with a small mu its objective is flat in L^2, and the sine
# example's ADMM run passes a point where W_bar errors of 1e-6 decide between
# two outcomes 3 % apart (measured: gap and feasibility 1e-10 take the other
# branch than the original's SeDuMi run; 1e-12 follows it to 3e-6). SCS is first
# order: with eps 1e-9 it meets the interior-point tolerances on every
# reference case (at most 13,700 of the 200,000 iterations; degenerate certificates,
# dead or fixed-slope neurons, use all, and certify re-solves them). CVXOPT keeps its
# defaults: 1e-9 tolerances make it stop with an error on some steps.
SOLVER_OPTIONS: dict[str, dict[str, object]] = {
    "CLARABEL": {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12},
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000},
    "CVXOPT": {},
    "MOSEK": {},
}

_OK_STATUSES = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)


@dataclass(frozen=True)
class SolveInfo:
    """What a solve reported: solver name, cvxpy status, wall time, and whether it hit ``max_iters``.

    ``iteration_limit`` is True when the solver stopped at the iteration limit
    of its settings (SCS's ``max_iters``): its point is then no optimum to its
    stated accuracy, whatever the status says.
    """

    solver: str
    status: str
    solve_time: float
    iteration_limit: bool = False


def default_solver() -> str:
    """The solver used when none is given: ``$PYLIP_SOLVER`` or Clarabel."""
    return os.environ.get(SOLVER_ENV_VAR, DEFAULT_SOLVER)


@functools.lru_cache(maxsize=1)
def installed_solvers() -> frozenset[str]:
    """cvxpy's installed solvers, asked once per process (cvxpy re-imports each on every call: ~5 ms)."""
    return frozenset(cp.installed_solvers())


def resolve_solver(name: str | None) -> str:
    """Normalise a solver name, check it is supported, installed and usable."""
    chosen = default_solver() if name is None else name
    if not isinstance(chosen, str):
        raise SolverError(f"solver must be a string such as 'CLARABEL', got {chosen!r}")
    key = chosen.strip().upper()
    if key not in SUPPORTED_SOLVERS:
        source = f" (from ${SOLVER_ENV_VAR})" if name is None else ""
        raise SolverError(
            f"unknown solver {chosen!r}{source}; choose one of {', '.join(SUPPORTED_SOLVERS)} "
            f"(Clarabel is the default open solver)"
        )
    if key not in installed_solvers():
        extra = {"MOSEK": "mosek", "SCS": "solvers", "CVXOPT": "solvers"}.get(key, "")
        hint = f"pip install 'pylip[{extra}]'" if extra else "pip install clarabel"
        raise SolverError(f"solver {key} is not installed; install it with: {hint}")
    if key == "MOSEK":
        _require_mosek_licence()
    return key


@functools.lru_cache(maxsize=1)
def _mosek_licence_problem() -> str | None:
    """None if MOSEK can check out a licence, else the reason it cannot."""
    try:
        import mosek
    except ImportError:  # pragma: no cover - guarded by installed_solvers
        return "the mosek package is not installed"
    try:
        with mosek.Env() as env:
            env.checkoutlicense(mosek.feature.pts)
    except mosek.Error as exc:
        return " ".join(str(exc).split()).rstrip(":") or type(exc).__name__
    return None


def mosek_available() -> tuple[bool, str]:
    """Whether MOSEK is installed and licensed, and if not, why not."""
    if "MOSEK" not in installed_solvers():
        return False, "MOSEK is not installed (pip install 'pylip[mosek]')"
    problem = _mosek_licence_problem()
    if problem is None:
        return True, "MOSEK licence found"
    return False, (
        f"no MOSEK licence ({problem}); put it at ~/mosek/mosek.lic or set MOSEKLM_LICENSE_FILE"
    )


def _require_mosek_licence() -> None:
    problem = _mosek_licence_problem()
    if problem is not None:
        raise SolverError(
            "MOSEK is installed but cannot check out a licence "
            f"({problem.strip()}). Put the licence file at ~/mosek/mosek.lic or point "
            "the environment variable MOSEKLM_LICENSE_FILE at it; or use the open "
            "solver Clarabel instead (solver='CLARABEL', the default)."
        )


def solve(
    problem: cp.Problem,
    solver: str,
    *,
    what: str,
    warm_start: bool = False,
    options: Mapping[str, object] | None = None,
) -> SolveInfo:
    """Solve ``problem`` and raise :class:`SolverError` unless it reports an optimum.

    ``options`` replace the solver's :data:`SOLVER_OPTIONS`. Without ``warm_start``
    the result does not depend on earlier solves of the same (cached) problem.
    Any exception of the solver other than ``KeyboardInterrupt``/``SystemExit``
    (a Rust solver's panic is a ``BaseException``) becomes a :class:`SolverError`.
    """
    settings = SOLVER_OPTIONS.get(solver, {}) if options is None else options
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # cvxpy warns on OPTIMAL_INACCURATE; pylip records the status and checks the LMI itself
            warnings.filterwarnings("ignore", message="Solution may be inaccurate", category=UserWarning)
            problem.solve(solver=solver, warm_start=warm_start, **settings)
    except cp.error.SolverError as exc:
        raise SolverError(f"{solver} failed on the {what}: {exc}", status="solver_error") from exc
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - a Rust solver's panic is a BaseException
        raise SolverError(
            f"{solver} crashed on the {what} ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
            + _status_hint(None),
            status="solver_error",
        ) from exc
    elapsed = time.perf_counter() - start
    status = problem.status
    if status not in _OK_STATUSES:
        raise SolverError(
            f"{solver} returned status '{status}' on the {what}; "
            + _status_hint(status),
            status=status,
        )
    if status == cp.OPTIMAL_INACCURATE:
        logger.info("%s reported an inaccurate optimum on the %s; the result is checked", solver, what)
    limited = _stopped_at_iteration_limit(problem, settings)
    if limited:
        logger.info("%s stopped at its iteration limit on the %s", solver, what)
    return SolveInfo(solver=solver, status=status, solve_time=elapsed, iteration_limit=limited)


def _stopped_at_iteration_limit(problem: cp.Problem, settings: Mapping[str, object]) -> bool:
    """True if the solve used all ``max_iters`` iterations its settings allow."""
    limit = settings.get("max_iters")
    iterations = getattr(problem.solver_stats, "num_iters", None)
    return isinstance(limit, int) and isinstance(iterations, int) and iterations >= limit


def value_of(leaf: cp.Variable | cp.Parameter) -> np.ndarray:
    """The solved value of a cvxpy variable, as a float64 array (never ``None``)."""
    if leaf.value is None:
        raise SolverError(f"the solver returned no value for '{leaf.name()}'", status="no_value")
    return np.asarray(leaf.value, dtype=np.float64)


def _status_hint(status: str | None) -> str:
    if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        return (
            "the LMI has no solution for these data (for a fixed T: is every diagonal "
            "entry of T positive, and is the desired bound large enough?)"
        )
    if status in (cp.UNBOUNDED, cp.UNBOUNDED_INACCURATE):
        return "the problem is unbounded, which points to malformed input"
    return "try another solver (solver='CLARABEL', 'SCS', 'CVXOPT' or licensed 'MOSEK')"
