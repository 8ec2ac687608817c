"""The ADMM Lipschitz step (10b) and dual update (10c) for one hidden layer.

With ``T`` fixed, LMI (7)

    M(L^2, W) = [[-L^2 I, beta W0' T, 0], [beta T W0, -2T, W1'], [0, W1, -I]] <= 0

is linear in ``L^2`` and the weights, so the Lipschitz step

    min  mu L^2 + rho/2 ||W - W_bar||_F^2 + tr(Y' (W - W_bar))   s.t. M(L^2, W_bar) <= -eps I

is a semidefinite program in ``(L^2, W_bar)``. Mode ``"regularize"`` (the
original's ``ind_Lip = 1``, eq. 9) keeps ``L^2`` a variable; mode
``"enforce"`` (``ind_Lip = 2``, eq. 12) fixes ``L^2 = L_des^2``.

Up to a constant, ``rho/2 ||W - W_bar||^2 + tr(Y'(W - W_bar))`` equals
``rho/2 ||W_bar - (W + Y/rho)||^2``; dividing the objective by ``rho`` leaves
``(mu/rho) L^2 + 1/2 ||W_bar - (W + Y/rho)||^2`` with the same minimiser. So
the problem is compiled once as a DPP-parameterized cvxpy problem in the
target ``W + Y/rho``, ``mu/rho``, ``L_des^2`` and ``T``, and re-solved at every
ADMM iteration.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np

from ..errors import CertificateError, InputError, SolverError
from ..lipsdp import lmi, memory
from ..lipsdp.certificate import DEFAULT_MARGIN, fallback_solvers
from ..lipsdp.proof import scaled_max_eigenvalue
from ..lipsdp.repair import secure_bound, secure_weights
from ..lipsdp.solvers import SOLVER_ENV_VAR, SolveInfo, resolve_solver, solve, value_of
from ..validation import as_dim, as_matrix, as_number, as_scalar
from .fast_step import solve_step_dual

MODES = {1: "regularize", 2: "enforce"}
# From this width on (and n_h >= n_x + n_y) the dual solver of pylip.fast_step takes the
# step by default: at 10-100-10 about 0.2 s against Clarabel's 2-3 s (bench/certificate_scale.py).
FAST_STEP_MIN_HIDDEN = 50

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepResult:
    """Outcome of one Lipschitz step (10b) and dual update (10c).

    ``W0_bar, W1_bar`` satisfy LMI (7) at ``squared_bound`` with the step's
    ``T`` (checked in float64: ``max_eigenvalue <= 0``); ``Y0, Y1`` are the
    dual-updated multipliers ``Y + rho (W - W_bar)``.
    """

    W0_bar: np.ndarray
    W1_bar: np.ndarray
    Y0: np.ndarray
    Y1: np.ndarray
    squared_bound: float
    status: str
    solve_time: float
    max_eigenvalue: float
    repaired: bool

    @property
    def bound(self) -> float:
        """``L`` with ``L**2 >= squared_bound``, so (7) also holds at ``bound**2``."""
        return lmi.sqrt_up(self.squared_bound)


def check_multiplier(T: Any, n_h: int, *, name: str = "T") -> np.ndarray:
    """A fixed multiplier must be ``n_h x n_h``, diagonal and positive."""
    matrix = as_matrix(T, name)
    if matrix.shape != (n_h, n_h):
        raise InputError(f"{name} must be {n_h} x {n_h} (n_h x n_h), got {matrix.shape}")
    off_diagonal = matrix - np.diag(np.diag(matrix))
    if np.any(off_diagonal != 0):
        raise InputError(
            f"{name} must be diagonal (Theorem 1 needs T in D_n; a coupled T is unsound, "
            "Section II-C); take the T returned by calculate_Lipschitz / certify"
        )
    bad = np.flatnonzero(np.diag(matrix) <= 0)
    if bad.size:
        raise InputError(
            f"{name} has non-positive diagonal entries at neurons {bad.tolist()}: LMI (7) then "
            "asks -2 T <= -eps I and the Lipschitz step is infeasible. Re-certify the network, "
            "or pass repair_T=<small positive value> to replace those entries explicitly"
        )
    return matrix


def lmi7_matrix(
    W0_bar: np.ndarray, W1_bar: np.ndarray, T: np.ndarray, squared_bound: float, beta: float = 1.0
) -> np.ndarray:
    """``M(L^2, W_bar)`` of LMI (7), in float64."""
    n_y, n_h = W1_bar.shape
    n_x = W0_bar.shape[1]
    return np.block(
        [
            [-squared_bound * np.eye(n_x), beta * W0_bar.T @ T, np.zeros((n_x, n_y))],
            [beta * T @ W0_bar, -2.0 * T, W1_bar.T],
            [np.zeros((n_y, n_x)), W1_bar, -np.eye(n_y)],
        ]
    )


class LipschitzStep:
    """The compiled Lipschitz step for one network shape and mode.

    Build it once and call :meth:`solve` at every ADMM iteration: only the
    parameter values change, so cvxpy does not re-canonicalize the problem.

    ``fast``: solve the step with the dual interior-point method of
    :mod:`pylip.fast_step` (the Schur form of (7), an ``(n_x + n_y)``-square
    multiplier) instead of the SDP. ``None`` (default) chooses it for wide
    layers (``n_h >= max(50, n_x + n_y)``) when no solver is named; if it gives
    up, the SDP is solved. Either way the result is checked against (7).
    """

    def __init__(
        self,
        n_x: int,
        n_h: int,
        n_y: int,
        T: Any,
        *,
        mode: str = "regularize",
        beta: float = 1.0,
        solver: str | None = None,
        margin: float = DEFAULT_MARGIN,
        repair_T: float | None = None,
        fast: bool | None = None,
    ) -> None:
        if mode not in MODES.values():
            raise InputError(f"mode must be 'regularize' (ind_Lip 1) or 'enforce' (ind_Lip 2), got {mode!r}")
        if not as_number(beta, "beta") > 0:
            raise InputError(f"beta must be > 0 (the activation's largest slope), got {beta}")
        if as_number(margin, "margin") < 0:
            raise InputError(f"margin must be a finite number >= 0, got {margin}")
        n_x, n_h, n_y = as_dim(n_x, "n_x"), as_dim(n_h, "n_h"), as_dim(n_y, "n_y")
        self.dims = (n_x, n_h, n_y)
        self.mode = mode
        self.beta = float(beta)
        self.solver = resolve_solver(solver)
        self.margin = float(margin)
        self.fast = _use_fast_step(fast, solver, n_x, n_h, n_y)
        if repair_T is not None:
            T = np.array(as_matrix(T, "T"))
            diagonal = np.diag(T).copy()
            replacement = as_number(repair_T, "repair_T")
            if replacement <= 0:
                raise InputError(f"repair_T replaces T's entries <= 0, so it must be > 0, got {replacement}")
            diagonal[diagonal <= 0] = replacement
            np.fill_diagonal(T, diagonal)
        self.T = check_multiplier(T, n_h)
        self._build()

    def _build(self) -> None:
        n_x, n_h, n_y = self.dims
        self.W0_bar = cp.Variable((n_h, n_x), name="W0_bar")
        self.W1_bar = cp.Variable((n_y, n_h), name="W1_bar")
        self.target0 = cp.Parameter((n_h, n_x), name="W0_plus_Y0_over_rho")
        self.target1 = cp.Parameter((n_y, n_h), name="W1_plus_Y1_over_rho")
        self.t = cp.Parameter(n_h, nonneg=True, name="t")
        self.t.value = np.diag(self.T).copy()
        proximity = 0.5 * (
            cp.sum_squares(self.W0_bar - self.target0) + cp.sum_squares(self.W1_bar - self.target1)
        )
        self.squared, self.mu_over_rho, objective = step_objective(self.mode, proximity)
        TW0 = self.beta * cp.multiply(cp.reshape(self.t, (n_h, 1), order="F"), self.W0_bar)
        M = cp.bmat(
            [
                [-self.squared * np.eye(n_x), TW0.T, np.zeros((n_x, n_y))],
                [TW0, -2.0 * cp.diag(self.t), self.W1_bar.T],
                [np.zeros((n_y, n_x)), self.W1_bar, -np.eye(n_y)],
            ]
        )
        size = n_x + n_h + n_y
        self.problem = cp.Problem(cp.Minimize(objective), [M << -self.margin * np.eye(size)])
        if not self.problem.is_dcp(dpp=True):  # type: ignore[call-arg]  # pragma: no cover
            raise RuntimeError("the Lipschitz step is not DPP: it would be recompiled every call")

    def solve(
        self,
        W0: Any,
        W1: Any,
        Y0: Any,
        Y1: Any,
        *,
        rho: float,
        mu: float = 0.0,
        L_des: float | None = None,
    ) -> StepResult:
        """One Lipschitz step (10b) at the current weights ``W`` and multipliers ``Y``, then (10c)."""
        n_x, n_h, n_y = self.dims
        W0, W1 = _shaped(W0, "W0", (n_h, n_x)), _shaped(W1, "W1", (n_y, n_h))
        Y0, Y1 = _shaped(Y0, "Y0", (n_h, n_x)), _shaped(Y1, "Y1", (n_y, n_h))
        rho, mu, L_des = checked_step_settings(self.mode, rho, mu, L_des)
        target0, target1 = W0 + Y0 / rho, W1 + Y1 / rho
        if L_des is not None:
            _require_L_des_in_range(L_des, target0, target1, self.beta)
        solved = None
        if self._fast_applies(mu):
            solved = self._solve_dual(target0, target1, mu / rho, L_des)
        if solved is None:
            solved = self._solve_sdp(target0, target1, mu / rho, L_des)
        W0_bar, W1_bar, squared, info = solved
        W0_bar, W1_bar, squared, top, repaired = self._checked(W0_bar, W1_bar, squared, L_des)
        return StepResult(
            W0_bar=W0_bar,
            W1_bar=W1_bar,
            Y0=Y0 + rho * (W0 - W0_bar),
            Y1=Y1 + rho * (W1 - W1_bar),
            squared_bound=squared,
            status=info.status,
            solve_time=info.solve_time,
            max_eigenvalue=top,
            repaired=repaired,
        )

    def _solve_sdp(
        self, target0: np.ndarray, target1: np.ndarray, mu_over_rho: float, L_des: float | None
    ) -> tuple[np.ndarray, np.ndarray, float, SolveInfo]:
        """The SDP (10b): as posed, then if the solver fails rescaled, then with the fallback solvers.

        The first attempt is the problem exactly as the original poses it (the
        paper examples' path). A failure is retried on the exactly rescaled
        problem (:meth:`_set_parameters`), first with this step's solver, then
        with :func:`pylip.certificate.fallback_solvers` in their stated order.
        The step is a projection onto a non-empty convex set whenever ``T > 0``
        and ``L_des > 0``, so it has a solution; only the solvers can fail.
        """
        what = f"Lipschitz step (10b, {self.mode})"
        memory.require_step_fits(f"{what} SDP", self.dims, self.solver, fast_available=not self.fast)
        attempts = [(self.solver, 1.0), (self.solver, self._scale)]
        attempts += [(name, self._scale) for name in fallback_solvers(self.solver)]
        failure: SolverError | None = None
        for solver_name, scale in attempts:
            self._set_parameters(target0, target1, mu_over_rho, L_des, scale)
            try:
                info = solve(self.problem, solver_name, what=what, warm_start=False)
            except SolverError as exc:
                failure = failure or exc
                logger.info("%s failed at scale %g (%s); trying the next attempt", solver_name, scale, exc)
                continue
            W0_bar = scale * value_of(self.W0_bar)
            W1_bar = scale * value_of(self.W1_bar)
            squared = scale**4 * float(value_of(self.squared))
            return W0_bar, W1_bar, squared, info
        assert failure is not None
        raise SolverError(
            f"{failure} (also failed: the rescaled problem, and the solvers "
            f"{', '.join(fallback_solvers(self.solver)) or 'none other installed'})",
            status=failure.status,
        )

    def _set_parameters(
        self, target0: np.ndarray, target1: np.ndarray, mu_over_rho: float, L_des: float | None, scale: float
    ) -> None:
        """Parameter values of the SDP in units where ``W = s V``, ``T = s^2 T'``, ``L^2 = s^4 L'^2``.

        LMI (7) is congruent under ``diag(I / s^2, I / s, I)`` to (7) in the
        scaled data, and the objective divided by ``s^2`` keeps its minimiser
        with ``mu/rho`` replaced by ``s^2 mu/rho``. ``s`` is a power of two, so
        the scaling is exact.
        """
        self.target0.value, self.target1.value = target0 / scale, target1 / scale
        self.t.value = np.diag(self.T) / scale**2
        if self.mu_over_rho is not None:
            self.mu_over_rho.value = mu_over_rho * scale**2
        elif L_des is not None:
            self.squared.value = (L_des / scale**2) ** 2

    @property
    def _scale(self) -> float:
        """A power of two near ``sqrt(median t)``: makes ``T'`` of order one (and ``V``, ``L'`` with it
        when ``T`` comes from a certificate)."""
        median = float(np.median(np.diag(self.T)))
        return math.ldexp(1.0, round(0.5 * math.log2(median))) if median > 0 else 1.0

    def _fast_applies(self, mu: float) -> bool:
        return self.fast and (self.mode == "enforce" or mu > 0)

    def _solve_dual(
        self, target0: np.ndarray, target1: np.ndarray, mu_over_rho: float, L_des: float | None
    ) -> tuple[np.ndarray, np.ndarray, float, SolveInfo] | None:
        """The step by :func:`pylip.fast_step.solve_step_dual`; ``None`` if it gives up (the SDP runs)."""
        try:
            solution = solve_step_dual(
                target0,
                target1,
                np.diag(self.T),
                mode=self.mode,
                beta=self.beta,
                margin=self.margin,
                mu_over_rho=mu_over_rho if self.mode == "regularize" else None,
                squared_bound=L_des**2 if self.mode == "enforce" and L_des is not None else None,
            )
        except SolverError as exc:
            logger.info("the dual step solver gave up (%s); solving the SDP with %s", exc, self.solver)
            return None
        status = "optimal" if solution.converged else "optimal_inaccurate"
        info = SolveInfo(solver="pylip-dual", status=status, solve_time=solution.solve_time)
        return solution.W0_bar, solution.W1_bar, float(solution.squared_bound), info

    def max_eigenvalue(self, W0_bar: np.ndarray, W1_bar: np.ndarray, squared_bound: float) -> float:
        """Largest eigenvalue of LMI (7) at ``(L^2, W_bar)`` with this step's ``T``."""
        return lmi.max_eigenvalue(lmi7_matrix(W0_bar, W1_bar, self.T, squared_bound, self.beta))

    def _checked(
        self, W0_bar: np.ndarray, W1_bar: np.ndarray, squared: float, L_des: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, float, float, bool]:
        """Prove LMI (7) (as eq. 5) at the returned point, repairing it minimally first if need be.

        Regularize: ``L`` is raised to the smallest provable value for this
        ``W_bar`` and ``T``; enforce (``L = L_des`` fixed): ``W_bar`` is shrunk
        by the largest provable factor ``s <= 1`` (:mod:`pylip.repair`).
        """
        t = np.diag(self.T)
        what = f"Lipschitz step (10b, {self.mode})"
        if self.mode == "enforce":
            target = lmi.sqrt_up(max(squared, 0.0)) if L_des is None else L_des
            point = secure_weights([W0_bar, W1_bar], t, target, 0.0, self.beta, what=what)
        else:
            try:
                point = secure_bound(
                    [W0_bar, W1_bar], t, lmi.sqrt_up(max(squared, 0.0)), 0.0, self.beta,
                    scale_multiplier=False, what=what,
                )
            except CertificateError:
                point = secure_weights(
                    [W0_bar, W1_bar], t, lmi.sqrt_up(max(squared, 0.0)), 0.0, self.beta, what=what
                )
        W0_new, W1_new = point.weights
        top = scaled_max_eigenvalue(point.weights, t, point.bound, 0.0, self.beta)
        return W0_new, W1_new, point.bound * point.bound, top, point.repaired


def step_objective(
    mode: str, proximity: cp.Expression
) -> tuple[cp.Variable | cp.Parameter, cp.Parameter | None, cp.Expression]:
    """``L^2``, the parameter ``mu/rho`` (regularize mode only) and the objective of (10b) over ``rho``.

    Regularize (eq. 9): ``L^2`` is a variable and the objective ``(mu/rho) L^2 +
    proximity``; enforce (eq. 12): ``L^2`` is the parameter ``L_des^2`` and the
    objective the proximity term alone.
    """
    if mode == "regularize":
        squared = cp.Variable(nonneg=True, name="L2")
        mu_over_rho = cp.Parameter(nonneg=True, name="mu_over_rho")
        return squared, mu_over_rho, mu_over_rho * squared + proximity
    return cp.Parameter(nonneg=True, name="L_des_squared"), None, proximity


def checked_step_settings(
    mode: str, rho: Any, mu: Any, L_des: Any
) -> tuple[float, float, float | None]:
    """``(rho, mu, L_des)`` of a Lipschitz step, checked: ``L_des`` is None in the regularize mode.

    ``rho > 0`` (the ADMM penalty); ``mu >= 0`` weighs ``L^2`` in the regularize
    mode (eq. 9); ``L_des > 0`` is the bound enforced in the enforce mode (eq. 12).
    """
    rho = as_scalar(rho, "rho")
    if rho <= 0:
        raise InputError(f"rho (the ADMM penalty) must be > 0, got {rho}")
    if mode == "regularize":
        mu = as_scalar(mu, "mu")
        if mu < 0:
            raise InputError(f"mu (the weight of L^2 in eq. 9) must be >= 0, got {mu}")
        return rho, mu, None
    if L_des is None:
        raise InputError("L_des is required when enforcing a bound (mode 'enforce', eq. 12; ind_Lip = 2)")
    L_des = as_scalar(L_des, "L_des")
    if L_des <= 0:
        raise InputError(f"L_des (the enforced Lipschitz bound) must be > 0, got {L_des}")
    return rho, 0.0, L_des


L_DES_RANGE = (1e-6, 1e6)  # L_des over the trivial bound of W + Y/rho: where the step solves and proves


def _require_L_des_in_range(L_des: float, target0: np.ndarray, target1: np.ndarray, beta: float) -> None:
    """Refuse an ``L_des`` so far from the weights' scale that LMI (7) cannot be solved and proven.

    The ratio of ``L_des`` to ``beta ||W0 + Y0/rho|| ||W1 + Y1/rho||`` is invariant
    under rescaling the layers; outside :data:`L_DES_RANGE` the blocks of (7)
    differ by more than the solvers' and the proof's float64 resolution (measured:
    1e-8 and 1e8 fail on random 3-5-2 nets, 1e-7 and 1e6 solve and prove).
    """
    trivial = beta * float(np.linalg.norm(target0, 2)) * float(np.linalg.norm(target1, 2))
    if trivial == 0.0 or not math.isfinite(trivial):
        return
    low, high = L_DES_RANGE
    ratio = L_des / trivial
    if not low <= ratio <= high:
        raise InputError(
            f"L_des = {L_des:.3g} is {ratio:.3g} times the product of the spectral norms of W + Y/rho "
            f"({trivial:.3g}); the enforce step solves for L_des between {low:g} and {high:g} times "
            "that product: choose L_des in that range (or rescale the network's layers)"
        )


def _use_fast_step(fast: bool | None, solver: str | None, n_x: int, n_h: int, n_y: int) -> bool:
    """Whether the dual step solver replaces the SDP: by default for wide layers when no solver is named.

    Below ``FAST_STEP_MIN_HIDDEN`` neurons (the paper's 1-10-1 examples among
    them, whose parity with the original depends on the SDP solver's path) and
    whenever a solver is named (``solver=`` or ``$PYLIP_SOLVER``), the SDP runs.
    """
    if fast is not None:
        if not isinstance(fast, bool):
            raise InputError(f"fast must be True, False or None (choose by size), got {fast!r}")
        return fast
    named = solver is not None or SOLVER_ENV_VAR in os.environ
    return not named and n_h >= max(FAST_STEP_MIN_HIDDEN, n_x + n_y)


def _shaped(value: Any, name: str, shape: tuple[int, int]) -> np.ndarray:
    matrix = as_matrix(value, name)
    if matrix.shape != shape:
        raise InputError(f"{name} must have shape {shape} for this network, got {matrix.shape}")
    return matrix
