"""A fast dual interior-point solver for the Lipschitz step (10b) with a fixed diagonal ``T``.

With ``T = diag(t)``, ``t > 0``, fixed, the Schur complement on the ``-2T``
block turns LMI (7), ``M(L^2, W_bar) <= -eps I``, into one ``m x m`` matrix
inequality (``m = n_x + n_y``, the Schur form of (7))

    A(z) := sum_k v_k v_k' / c_k  <=  D(L^2) := blkdiag((L^2 - eps) I_nx, (1 - eps) I_ny),

with ``c_k = 2 t_k - eps``, ``z_k = (w0bar_k; w1bar_k)`` (row ``k`` of
``W0_bar``, column ``k`` of ``W1_bar``) and ``v_k = S_k z_k``,
``S_k = blkdiag(beta t_k I_nx, I_ny)``. The step's objective (divided by
``rho``) ``(mu/rho) L^2 + 1/2 ||z - z0||^2`` is separable per hidden neuron
except through that constraint, so with a multiplier ``Lam >= 0`` (``m x m``)

    z_k(Lam) = (I + 2 S_k Lam S_k / c_k)^{-1} z0_k,
    g(Lam)   = sum_k 1/2 z0_k' (z0_k - z_k(Lam)) - <Lam, D0>,
    grad g   = A(z(Lam)) - D0,

where ``D0 = D(L_des^2)`` in the enforce mode (eq. 12) and ``D0 = D(0)`` in the
regularize mode (eq. 9), which adds the dual constraint
``tr(Lam_xx) <= mu/rho``. The concave dual is maximised with the log-barrier
``log det Lam`` (and ``log(mu/rho - tr Lam_xx)``) by Newton steps in the
``m (m + 1) / 2`` entries of ``Lam``, each costing ``O(n_h m^4 + m^6)``
instead of an SDP with a dense PSD cone of size ``n_x + n_h + n_y``:
first a primal-dual (HKM-scaled) path-following phase down to a relative gap
``SWITCH``, then a damped-Newton barrier phase (barrier weight cut by
``SHRINK``, backtracking that keeps ``Lam > 0`` and the trace below its cap),
restarted from the initial point if the primal-dual phase stalled early (it
can on badly scaled ``t``). Each phase has ``max_iterations`` Newton steps; if
that fails, the barrier method alone is tried once more from the start.

Stop criterion, checked after every step: the primal point ``z(Lam)`` made
feasible for the Schur form of (7) (enforce: scaled by the factor
``min(1, lambda_max(D^-1/2 A D^-1/2)^-1/2)``; regularize: with the exact minimal
``L^2`` for it) has duality gap ``primal - g(Lam) <= tol * 1/2 ||z0||^2``. The
primal is 1-strongly convex, so that point satisfies ``||z - z*||^2 <= 2 gap``.
If rounding stalls the method first (``Lam`` numerically singular, no ascent,
or no gap decrease in three cuts), the best point is returned with
``converged=False`` when its gap is ``<= ACCEPT * tol * 1/2 ||z0||^2``, else
:class:`SolverError`. The returned point is accurate, not guaranteed to
satisfy (7) in float64: the caller applies its own check and repair
(``LipschitzStep._checked``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

from .. import blas
from ..errors import InputError, SolverError
from ..validation import as_matrix, as_step_multiplier, as_step_settings

CENTERING = 1.0  # a Newton step with decrement <= CENTERING * mu_b ends the centring
SHRINK = 0.1  # the barrier weight's factor per outer iteration
PRIMAL_DUAL = True  # start with the primal-dual phase (_primal_dual)
SIGMA = 0.1  # its centring parameter (raised after short steps)
SWITCH = 1e-11  # relative gap where the primal-dual phase hands over to the barrier phase
PD_ITERATIONS = 60  # at most this many primal-dual steps before the barrier phase
ACCEPT = 1e3  # a stalled solve is returned (converged=False) if its gap is <= ACCEPT * tol * scale


class _Stalled(Exception):
    """The line search found no ascent: rounding limits the barrier phase."""


@dataclass(frozen=True)
class DualStepSolution:
    """Result of :func:`solve_step_dual`: the step's ``W_bar`` and ``L^2`` (eq. 10b)."""

    W0_bar: np.ndarray
    W1_bar: np.ndarray
    squared_bound: float
    iterations: int
    converged: bool
    gap: float
    solve_time: float


@dataclass
class _Problem:
    z0: np.ndarray  # (n_h, m) targets, z0_k = (G0[k, :], G1[:, k])
    s: np.ndarray  # (n_h, m) diagonal of S_k
    c: np.ndarray  # (n_h,) 2 t_k - eps
    d: np.ndarray  # (m,) diagonal of D0
    n_x: int
    trace_cap: float | None  # mu/rho in the regularize mode
    margin: float


def solve_step_dual(
    G0: Any,
    G1: Any,
    t: Any,
    *,
    mode: str,
    beta: float = 1.0,
    mu_over_rho: float | None = None,
    squared_bound: float | None = None,
    margin: float = 0.0,
    tol: float = 1e-13,
    max_iterations: int = 200,
    blas_threads: int | None = 1,
) -> DualStepSolution:
    """Solve the Lipschitz step (10b) subject to LMI (7) with ``T = diag(t)`` fixed.

    ``G0 = W0 + Y0/rho`` (``n_h x n_x``) and ``G1 = W1 + Y1/rho`` (``n_y x n_h``)
    are the targets. ``mode="enforce"`` (eq. 12) fixes ``L^2 = squared_bound``;
    ``mode="regularize"`` (eq. 9) minimises ``mu_over_rho L^2 + 1/2 ||W_bar - G||^2``.
    ``margin`` is the ``eps`` of ``M <= -eps I``. Converged when the duality gap is
    ``<= tol`` times ``1/2 ||G||_F^2`` at a primal-feasible point (module docstring). If rounding
    stops the gap above that, a point with gap ``<= 1e3 tol`` times it is returned with
    ``converged=False``; worse, or ``max_iterations`` Newton steps exhausted, raises
    :class:`SolverError`. ``blas_threads`` caps BLAS threads during the solve (:mod:`pylip.blas`;
    ``None`` leaves them alone): the matrices are small and threads only contend.
    """
    with blas.at_most(blas_threads):
        return _solve(G0, G1, t, mode, beta, mu_over_rho, squared_bound, margin, tol, max_iterations)


def _solve(
    G0: Any,
    G1: Any,
    t: Any,
    mode: str,
    beta: float,
    mu_over_rho: float | None,
    squared_bound: float | None,
    margin: float,
    tol: float,
    max_iterations: int,
) -> DualStepSolution:
    start = time.perf_counter()
    problem = _validated(G0, G1, t, mode, beta, mu_over_rho, squared_bound, margin)
    if not (tol > 0 and np.isfinite(tol)):
        raise InputError(f"tol must be a positive number, got {tol}")
    if int(max_iterations) < 1:
        raise InputError(f"max_iterations must be >= 1, got {max_iterations}")
    n_x = problem.n_x

    scale = 0.5 * float(np.sum(problem.z0**2))
    if scale == 0.0:
        z, iterations, gap = problem.z0.copy(), 0, 0.0
    elif problem.trace_cap is None and _max_eig(_constraint(problem, problem.z0)) < -1e-12 * _d_scale(
        problem
    ):  # targets strictly feasible: Lam = 0 is optimal
        z, iterations, gap = problem.z0.copy(), 0, 0.0
    else:
        try:
            z, iterations, gap = _interior_point(problem, scale, tol, int(max_iterations), PRIMAL_DUAL)
        except SolverError:
            if not PRIMAL_DUAL:
                raise
            # the primal-dual phase can mislead on badly scaled t: retry with the barrier method alone
            z, iterations, gap = _interior_point(problem, scale, tol, int(max_iterations), False)

    W0_bar = np.ascontiguousarray(z[:, :n_x])
    W1_bar = np.ascontiguousarray(z[:, n_x:].T)
    if problem.trace_cap is None:
        squared = float(squared_bound)  # type: ignore[arg-type]
    else:
        squared = _minimal_squared(problem, z)
        if not np.isfinite(squared):  # pragma: no cover - excluded by the gap test
            raise SolverError("the dual step solver returned a point with I - A_yy not positive definite")
    return DualStepSolution(
        W0_bar=W0_bar,
        W1_bar=W1_bar,
        squared_bound=squared,
        iterations=iterations,
        converged=gap <= tol * scale,
        gap=gap,
        solve_time=time.perf_counter() - start,
    )


def _validated(
    G0: Any,
    G1: Any,
    t: Any,
    mode: str,
    beta: float,
    mu_over_rho: float | None,
    squared_bound: float | None,
    margin: float,
) -> _Problem:
    G0 = as_matrix(G0, "G0")
    G1 = as_matrix(G1, "G1")
    n_h, n_x = G0.shape
    n_y = G1.shape[0]
    if G1.shape[1] != n_h:
        raise InputError(f"G1 must be n_y x n_h with n_h = {n_h} (the rows of G0), got shape {G1.shape}")
    beta, margin, trace_cap, squared = as_step_settings(
        mode, beta=beta, margin=margin, mu_over_rho=mu_over_rho, squared_bound=squared_bound
    )
    t = as_step_multiplier(t, n_h, margin)
    d = np.concatenate([np.full(n_x, -margin), np.full(n_y, 1.0 - margin)])
    if squared is not None:  # enforce (eq. 12): L^2 = L_des^2 fixed
        d[:n_x] += squared
    z0 = np.hstack([G0, G1.T])
    s = np.hstack([np.outer(beta * t, np.ones(n_x)), np.ones((n_h, n_y))])
    return _Problem(z0=z0, s=s, c=2.0 * t - margin, d=d, n_x=n_x, trace_cap=trace_cap, margin=margin)


def _max_eig(matrix: np.ndarray) -> float:
    return float(np.linalg.eigvalsh(0.5 * (matrix + matrix.T))[-1])


def _d_scale(problem: _Problem) -> float:
    return float(max(1.0, np.max(np.abs(problem.d))))


def _gram(problem: _Problem, z: np.ndarray) -> np.ndarray:
    """``A(z) = sum_k S_k z_k z_k' S_k / c_k``."""
    u = problem.s * z
    return (u / problem.c[:, None]).T @ u


def _constraint(problem: _Problem, z: np.ndarray) -> np.ndarray:
    """``A(z) - D0`` (enforce mode: ``<= 0`` iff (7) holds)."""
    return _gram(problem, z) - np.diag(problem.d)


def _minimal_squared(problem: _Problem, z: np.ndarray) -> float:
    """The exact minimal ``L^2 >= 0`` with (7) at ``z`` (Schur complement on the output block)."""
    n_x = problem.n_x
    A = _gram(problem, z)
    A_xx, A_xy, A_yy = A[:n_x, :n_x], A[:n_x, n_x:], A[n_x:, n_x:]
    C = (1.0 - problem.margin) * np.eye(A_yy.shape[0]) - A_yy
    try:
        factor = scipy.linalg.cho_factor(0.5 * (C + C.T))
    except np.linalg.LinAlgError:
        return float("inf")
    schur = A_xx + A_xy @ scipy.linalg.cho_solve(factor, A_xy.T)
    return max(problem.margin + _max_eig(schur), 0.0)


class _Dual:
    """The dual function of the step and its derivatives in the ``m (m + 1) / 2`` entries of ``Lam``."""

    def __init__(self, problem: _Problem) -> None:
        self.p = problem
        m = problem.z0.shape[1]
        self.m = m
        self.iu, self.ju = np.triu_indices(m)
        self.size = self.iu.size
        pair = np.empty((m, m), dtype=np.intp)
        pair[self.iu, self.ju] = np.arange(self.size)
        pair[self.ju, self.iu] = np.arange(self.size)
        self.pair = pair
        # Lam = sum_p x_p E_p with E_p = e_i e_j' + e_j e_i' (i != j) or e_i e_i' (i = j)
        self.half = np.where(self.iu == self.ju, 0.5, 1.0)
        self.half_outer = np.outer(self.half, self.half)
        # (a, b) in {(i, j), (j, i)} for x_p, (c, d) in {(k, l), (l, k)} for x_q: pair(a, c), pair(d, b)
        self.combos = [
            (pair[a[:, None], c[None, :]], pair[d[None, :], b[:, None]])
            for a, b in ((self.iu, self.ju), (self.ju, self.iu))
            for c, d in ((self.iu, self.ju), (self.ju, self.iu))
        ]
        self.xx = np.zeros(self.size)
        self.xx[(self.iu == self.ju) & (self.iu < problem.n_x)] = 1.0  # tr(Lam_xx) = xx . x
        self.weight = problem.s / np.sqrt(problem.c)[:, None]  # S_k / sqrt(c_k)
        self.outer = 2.0 * self.weight[:, :, None] * self.weight[:, None, :]  # 2 diag(S_k) diag(S_k)' / c_k
        self.outer_pairs = 0.5 * self.outer[:, self.iu, self.ju]
        self.eye = np.eye(m)

    def matrix(self, x: np.ndarray) -> np.ndarray:
        Lam = np.empty((self.m, self.m))
        Lam[self.iu, self.ju] = x
        Lam[self.ju, self.iu] = x
        return Lam

    def vector(self, Lam: np.ndarray) -> np.ndarray:
        return Lam[self.iu, self.ju].copy()

    def _system(self, Lam: np.ndarray) -> np.ndarray:
        return self.eye + self.outer * Lam

    def value(self, Lam: np.ndarray) -> tuple[float, np.ndarray]:
        """``g(Lam)`` and ``z(Lam)``."""
        z0 = self.p.z0
        z = np.linalg.solve(self._system(Lam), z0[:, :, None])[:, :, 0]
        g = 0.5 * float(np.sum(z0 * (z0 - z))) - float(np.dot(np.diag(Lam), self.p.d))
        return g, z

    def derivatives(self, Lam: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """``g``, its gradient and Hessian in ``x``, and ``z(Lam)``."""
        p = self.p
        H_inv = np.linalg.inv(self._system(Lam))
        z = np.einsum("kab,kb->ka", H_inv, p.z0)
        g = 0.5 * float(np.sum(p.z0 * (p.z0 - z))) - float(np.dot(np.diag(Lam), p.d))
        u = self.weight * z  # S_k z_k / sqrt(c_k)
        grad = u.T @ u - np.diag(p.d)
        # d grad = -2 sum_k (P_k dLam R_k + R_k dLam P_k), P_k = S H^-1 S / c, R_k = S z z' S / c
        P = self.outer_pairs * H_inv[:, self.iu, self.ju]
        R = u[:, self.iu] * u[:, self.ju]
        K = P.T @ R  # K[pair(a, c), pair(d, b)] = sum_k P_k,ac R_k,db
        return g, self.reduce_gradient(grad), -2.0 * self.reduce_product(K + K.T), z

    def reduce_gradient(self, grad: np.ndarray) -> np.ndarray:
        """``d/dx_p = <grad, E_p>``."""
        return (grad[self.iu, self.ju] + grad[self.ju, self.iu]) * self.half

    def reduce_product(self, K: np.ndarray) -> np.ndarray:
        """``E_p' H E_q`` for ``H[a, b, c, d] = K[pair(a, c), pair(d, b)]`` (``d grad_ab / d Lam_cd``)."""
        total = np.zeros((self.size, self.size))
        for first, second in self.combos:
            total += K[first, second]
        return total * self.half_outer

    def reduce_outer(self, left: np.ndarray, right: np.ndarray | None = None) -> np.ndarray:
        """``E_p' H E_q`` for ``H[a, b, c, d] = left_ac right_db`` (default ``right = left``)."""
        first_flat = left[self.iu, self.ju]
        second_flat = first_flat if right is None else right[self.iu, self.ju]
        total = np.zeros((self.size, self.size))
        for first, second in self.combos:
            total += first_flat[first] * second_flat[second]
        return total * self.half_outer


def _barrier_value(dual: _Dual, x: np.ndarray, mu_b: float) -> tuple[float, np.ndarray] | None:
    """``g + mu_b (log det Lam + log(cap - tr Lam_xx))`` and ``z``, or None outside the domain."""
    Lam = dual.matrix(x)
    try:
        chol = np.linalg.cholesky(Lam)
    except np.linalg.LinAlgError:
        return None
    logdet = 2.0 * float(np.sum(np.log(np.diag(chol))))
    if not np.isfinite(logdet):
        return None
    cap = dual.p.trace_cap
    if cap is not None:
        slack = cap - float(dual.xx @ x)
        if slack <= 0:
            return None
        logdet += float(np.log(slack))
    g, z = dual.value(Lam)
    return g + mu_b * logdet, z


def _newton_step(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``matrix^{-1} rhs`` for the negated Hessian (positive definite), robust to rounding at tiny mu_b."""
    try:
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(matrix), rhs)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(matrix)
        floor = max(float(values[-1]), 0.0) * 1e-15 + np.finfo(float).tiny
        return vectors @ ((vectors.T @ rhs) / np.maximum(values, floor))


def _step_to_boundary(dual: _Dual, x: np.ndarray, step: np.ndarray) -> float:
    """The largest ``alpha`` keeping ``Lam + alpha dLam > 0`` (and ``tr Lam_xx`` below the cap)."""
    chol = np.linalg.cholesky(dual.matrix(x))
    half = scipy.linalg.solve_triangular(chol, dual.matrix(step), lower=True)
    scaled = scipy.linalg.solve_triangular(chol, half.T, lower=True)
    lowest = float(np.linalg.eigvalsh(0.5 * (scaled + scaled.T))[0])
    alpha = -1.0 / lowest if lowest < 0 else np.inf
    cap = dual.p.trace_cap
    rate = float(dual.xx @ step)
    if cap is not None and rate > 0:
        alpha = min(alpha, (cap - float(dual.xx @ x)) / rate)
    return alpha


def _feasible(dual: _Dual, z: np.ndarray, g: float) -> tuple[np.ndarray, float]:
    """A primal-feasible point near ``z`` and its duality gap against ``g`` (inf if there is none).

    Enforce mode: ``z`` scaled by ``s = min(1, lambda_max(D^-1/2 A(z) D^-1/2)^-1/2)`` (``A`` is quadratic
    in ``z``, ``D > 0``). Regularize mode: ``z`` with its exact minimal ``L^2``.
    """
    p = dual.p
    if p.trace_cap is None:
        root = 1.0 / np.sqrt(p.d)
        top = _max_eig(root[:, None] * _gram(p, z) * root[None, :])
        if top > 1.0:
            z = z / np.sqrt(top)
        return z, 0.5 * float(np.sum((z - p.z0) ** 2)) - g
    squared = _minimal_squared(p, z)
    return z, p.trace_cap * squared + 0.5 * float(np.sum((z - p.z0) ** 2)) - g


def _interior_point(
    problem: _Problem, scale: float, tol: float, max_iterations: int, primal_dual: bool
) -> tuple[np.ndarray, int, float]:
    dual = _Dual(problem)
    m, n_x = dual.m, problem.n_x
    # start at a I with 2 a |S_k|^2 / c_k ~ 1, inside the trace cap
    a = 1.0 / float(np.median(2.0 * np.max(dual.weight, axis=1) ** 2))
    if problem.trace_cap is not None:
        a = min(a, 0.5 * problem.trace_cap / n_x)
    x = dual.vector(a * np.eye(m))
    g, grad, _, _ = dual.derivatives(dual.matrix(x))
    mu_b = max(a * float(np.max(np.abs(grad))), tol * scale)
    degree = m + (1 if problem.trace_cap is not None else 0)
    target = tol * scale
    iterations = 0
    best: tuple[float, np.ndarray] = (float("inf"), problem.z0)
    stalled = 0
    budget = max_iterations
    if primal_dual:
        start = (x, mu_b)
        x, mu_b, iterations, best = _primal_dual(
            dual, x, mu_b, scale, tol, min(max_iterations, PD_ITERATIONS)
        )
        if best[0] <= target:
            return best[1], iterations, max(best[0], 0.0)
        budget += iterations
        if not best[0] <= 10.0 * SWITCH * scale:  # the primal-dual phase stalled early: restart
            x, mu_b = start
    try:
        while iterations < budget:
            # centre for this mu_b by damped Newton
            for _ in range(50):
                if iterations >= budget:
                    break
                Lam = dual.matrix(x)
                g, grad, hessian, z = dual.derivatives(Lam)
                L_inv = np.linalg.inv(Lam)
                L_inv = 0.5 * (L_inv + L_inv.T)
                grad_f = grad + mu_b * dual.reduce_gradient(L_inv)
                hess_f = hessian - mu_b * dual.reduce_outer(L_inv)
                if problem.trace_cap is not None:
                    slack = problem.trace_cap - float(dual.xx @ x)
                    grad_f = grad_f - (mu_b / slack) * dual.xx
                    hess_f = hess_f - (mu_b / slack**2) * np.outer(dual.xx, dual.xx)
                step = _newton_step(-0.5 * (hess_f + hess_f.T), grad_f)
                decrement = float(grad_f @ step)
                iterations += 1
                current = _barrier_value(dual, x, mu_b)
                assert current is not None
                f0 = current[0]
                alpha = min(1.0, 0.99 * _step_to_boundary(dual, x, step))
                while alpha > 1e-12:
                    trial = _barrier_value(dual, x + alpha * step, mu_b)
                    if trial is not None and trial[0] >= f0 + 0.25 * alpha * decrement:
                        break
                    alpha *= 0.5
                else:
                    if decrement <= 1e-9 * max(1.0, abs(f0)):  # stalled at rounding level: centred enough
                        break
                    raise _Stalled
                x = x + alpha * step
                if decrement <= CENTERING * mu_b:
                    break
            g, z = dual.value(dual.matrix(x))
            z, gap = _feasible(dual, z, g)
            if gap < best[0]:
                best, stalled = (gap, z), 0
            else:
                stalled += 1
            if gap <= target:
                return z, iterations, max(gap, 0.0)
            if stalled >= 3:  # rounding floor: the gap no longer decreases
                break
            mu_b = max(SHRINK * mu_b, 0.01 * target / degree)
    except (np.linalg.LinAlgError, _Stalled):  # Lam numerically singular or no ascent: rounding floor
        pass
    if best[0] <= ACCEPT * target:
        return best[1], iterations, best[0]
    raise SolverError(
        f"the dual step solver did not reach duality gap {target:.3e} in {max_iterations} Newton steps "
        f"(best gap {best[0]:.3e})"
    )


def _primal_dual(
    dual: _Dual, x: np.ndarray, mu: float, scale: float, tol: float, max_iterations: int
) -> tuple[np.ndarray, float, int, tuple[float, np.ndarray]]:
    """Phase 1, HKM-type path following: the barrier Hessian ``mu Lam^-1 (x) Lam^-1`` becomes
    ``sym(Lam^-1 (x) Z)`` with a separately updated ``Z`` (no re-centring after each ``mu`` cut).

    Returns ``(x, mu, iterations, (best gap, its primal point))`` once the gap is ``<= SWITCH``
    relative (or ``tol``), or when it stalls; the barrier phase then finishes from ``x``.
    """
    problem = dual.p
    m = dual.m
    cap = problem.trace_cap
    Lam = dual.matrix(x)
    Z = mu * np.linalg.inv(Lam)
    slack = 0.0 if cap is None else cap - float(dual.xx @ x)
    ell = 0.0 if cap is None else mu / slack
    degree = m + (0 if cap is None else 1)
    target = tol * scale
    best: tuple[float, np.ndarray] = (float("inf"), problem.z0)
    stalled = 0
    sigma = SIGMA
    iterations = 0
    try:
        while iterations < max_iterations:
            Lam = dual.matrix(x)
            g, grad, hessian, z = dual.derivatives(Lam)
            z, gap = _feasible(dual, z, g)
            if gap < best[0]:
                best, stalled = (gap, z), 0
            else:
                stalled += 1
            if gap <= max(target, SWITCH * scale) or stalled >= 3:
                break
            iterations += 1
            L_inv = np.linalg.inv(Lam)
            L_inv = 0.5 * (L_inv + L_inv.T)
            complementarity = float(np.sum(Lam * Z)) + slack * ell
            mu = max(sigma * complementarity / degree, 0.01 * target / degree)
            grad_f = grad + mu * dual.reduce_gradient(L_inv)
            matrix = 0.5 * (dual.reduce_outer(L_inv, Z) + dual.reduce_outer(Z, L_inv)) - hessian
            if cap is not None:
                grad_f = grad_f - (mu / slack) * dual.xx
                matrix = matrix + (ell / slack) * np.outer(dual.xx, dual.xx)
            step = _newton_step(0.5 * (matrix + matrix.T), grad_f)
            product = L_inv @ dual.matrix(step) @ Z
            d_Z = mu * L_inv - Z - 0.5 * (product + product.T)
            d_ell = 0.0 if cap is None else mu / slack - ell + (ell / slack) * float(dual.xx @ step)
            decrement = float(grad_f @ step)
            alpha = min(1.0, 0.95 * _step_to_boundary(dual, x, step))
            current = _barrier_value(dual, x, mu)
            assert current is not None
            while alpha > 1e-12:
                trial = _barrier_value(dual, x + alpha * step, mu)
                if trial is not None and trial[0] >= current[0] + 1e-4 * alpha * decrement:
                    break
                alpha *= 0.5
            else:
                break
            alpha_dual = min(1.0, 0.95 * _cone_step(Z, d_Z))
            if cap is not None and d_ell < 0:
                alpha_dual = min(alpha_dual, 0.95 * ell / -d_ell)
            x = x + alpha * step
            Z = Z + alpha_dual * d_Z
            Z = 0.5 * (Z + Z.T)
            if cap is not None:
                slack = cap - float(dual.xx @ x)
                ell = ell + alpha_dual * d_ell
            sigma = min(0.5, max(SIGMA, (1.0 - min(alpha, alpha_dual)) ** 2))
    except np.linalg.LinAlgError:  # Lam or Z numerically singular: hand over
        pass
    return x, mu, iterations, best


def _cone_step(X: np.ndarray, dX: np.ndarray) -> float:
    """The largest ``alpha`` with ``X + alpha dX > 0`` for ``X > 0``."""
    chol = np.linalg.cholesky(X)
    half = scipy.linalg.solve_triangular(chol, dX, lower=True)
    scaled = scipy.linalg.solve_triangular(chol, half.T, lower=True)
    lowest = float(np.linalg.eigvalsh(0.5 * (scaled + scaled.T))[0])
    return -1.0 / lowest if lowest < 0 else float("inf")
