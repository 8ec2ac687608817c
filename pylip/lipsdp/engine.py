"""pylip's own interior-point solver for the LipSDP certificate SDP (6), any depth.

The SDP is ``min L^2 s.t. P(L^2, T) <= 0`` with ``T = diag(t) >= 0`` (neuron
form) or ``t`` constant on each hidden layer (layer form); see :mod:`pylip.lmi`
for ``P``. Every multiplier enters ``P`` through a term of rank at most two:
for neuron ``i`` of hidden layer ``k`` let ``a_i`` be row ``i`` of ``W_{k-1}``
placed in the coordinates of layer ``k - 1`` and ``e_i`` its own unit vector;
with ``U_i = [a_i, e_i]`` and the sector's ``M = [[-2ab, a+b], [a+b, -2]]``

    P(s, t) = sum_i t_i U_i M U_i'  -  s E_0  +  Wl' Wl   (E_0: the input block).

The SDP is solved by a primal-dual interior-point method (HKM direction,
Mehrotra-type choice of the centring weight; Helmberg, Rendl, Vanderbei and
Wolkowicz 1996; Kojima, Shindoh and Hara 1997). Its Newton (Schur) matrix
over the multipliers is ``tr(F_i X F_j Z^-1) = tr(M Qx_ij M Qz_ij')`` with
``Z = -P``, the dual matrix ``X`` and the 2 x 2 blocks ``Q_ij = U_i' S U_j`` of
``[A; B] S [A; B]'`` (``S`` = ``X`` or ``Z^-1``; ``A`` stacks the ``a_i``, ``B``
the ``e_i``): it is assembled from a few products of ``S`` with the weights
instead of vectorised PSD cones. Every step costs ``O(N^3)`` for ``N = n_0 +
n_hidden`` (dense factorisations: the Newton matrix couples every pair of
neurons, so all of ``Z^-1`` is needed, not only its block-tridiagonal part).
When ``n_0 > n_1`` the input block is first reduced to the row space of ``W0``
(an exact congruence: ``P`` is ``-s I`` on its null space).

Each iterate ``y = (t, s)`` is strictly feasible (its ``-P`` has a Cholesky
factor), so the returned ``s`` is an upper bound on the optimum; the method
stops when the duality gap ``<X, Z> + w't`` is below ``tol * s`` and the dual
is feasible to ``RESIDUAL``. pylip then proves the point
(:func:`pylip.repair.secure_bound`), like every certificate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ..errors import InputError, SolverError

ENGINE_FORMS = ("neuron", "layer")
DEFAULT_TOLERANCE = 1e-9  # relative duality gap at which the method stops
# the dual's infeasibility (its equations are O(1)) at which it stops; rounding stalls it near 1e-6
RESIDUAL = 1e-5
MAX_STEPS = 200
STEP = 0.98  # fraction of the step to the boundary of the cones that is taken


@dataclass(frozen=True)
class EngineResult:
    """A strictly feasible point of the SDP (6) and how close to optimal it is.

    Attributes:
        t: one multiplier per hidden neuron (``T = diag(t)``), for the weights given.
        squared_bound: ``L^2`` with ``P(L^2, diag(t)) < 0`` (in floating point).
        gap: the duality gap ``<X, Z> + w't`` at the returned point (the dual feasible to ``RESIDUAL``).
        newton_steps: interior-point steps taken.
        solve_time: seconds.
    """

    t: np.ndarray
    squared_bound: float
    gap: float
    newton_steps: int
    solve_time: float


@dataclass(frozen=True)
class _Lmi:
    """The constant data of ``P(s, t)``: ``A`` (m x N), ``n0``, ``Wl' Wl`` and the sector's ``M``."""

    A: np.ndarray
    n0: int
    output_gram: np.ndarray  # N x N
    p: float  # M = [[p, q], [q, r]]
    q: float
    r: float
    spread: np.ndarray  # m x k: multiplier variable -> per-neuron t

    @property
    def size(self) -> int:
        return self.A.shape[1]

    def matrix(self, s: float, t: np.ndarray) -> np.ndarray:
        """``P(s, diag(t))``."""
        n0, A = self.n0, self.A
        At = A.T * t[None, :]  # A' T
        P = self.output_gram.copy()
        P[:, n0:] += self.q * At
        P[n0:, :] += self.q * At.T
        P[n0:, n0:] += self.r * np.diag(t)
        if self.p != 0.0:
            P += self.p * (At @ A)
        P[:n0, :n0] -= s * np.eye(n0)
        return P


def solve_certificate_sdp(
    weights: Sequence[np.ndarray],
    alpha: float,
    beta: float,
    *,
    form: str = "neuron",
    tol: float = DEFAULT_TOLERANCE,
    max_steps: int = MAX_STEPS,
) -> EngineResult:
    """Solve the LipSDP SDP (6) for ``weights`` (``[W0, ..., Wl]``, at least one hidden layer).

    Best called with weights of about unit spectral norm (``pylip.certify``
    scales them exactly by powers of two first).

    Raises:
        InputError: a form other than ``"neuron"``/``"layer"``, a bad sector or
            tolerance, fewer than two weight matrices or a zero matrix.
        SolverError: the method stalled before reaching ``tol``.
    """
    start = time.perf_counter()
    lmi_data = _lmi_data(weights, alpha, beta, form, tol)
    s, x = _initial_point(weights, lmi_data)
    state = _State.centred(lmi_data, s, x)
    for step in range(1, max_steps + 1):
        residual = float(np.max(np.abs(_dual_residual(lmi_data, state.X, state.w))))
        if state.gap <= tol * state.s and residual <= RESIDUAL:
            elapsed = time.perf_counter() - start
            return EngineResult(lmi_data.spread @ state.x, state.s, state.gap, step - 1, elapsed)
        state = _primal_dual_step(lmi_data, state)
    raise SolverError(
        f"pylip's LipSDP engine did not reach a relative gap of {tol:g} in {max_steps} steps (gap "
        f"{state.gap / state.s:.1e}, dual residual {residual:.1e}); use formulation='structured'"
    )


def _lmi_data(weights: Sequence[np.ndarray], alpha: float, beta: float, form: str, tol: float) -> _Lmi:
    matrices = [np.asarray(w, dtype=np.float64) for w in weights]
    if form not in ENGINE_FORMS:
        raise InputError(f"the engine solves form 'neuron' or 'layer', got {form!r}")
    if len(matrices) < 2:
        raise InputError("the engine needs at least one hidden layer (two weight matrices)")
    if any(w.ndim != 2 or not np.all(np.isfinite(w)) for w in matrices):
        raise InputError("every weight matrix must be a finite 2-D array")
    if any(not np.any(w) for w in matrices):
        raise InputError("a zero weight matrix makes the network constant (L = 0): no SDP to solve")
    if not (np.isfinite(alpha) and np.isfinite(beta) and 0.0 <= alpha <= beta and beta > 0.0):
        raise InputError(f"the sector needs 0 <= alpha <= beta, beta > 0; got [{alpha}, {beta}]")
    if not (0.0 < tol < 1e-2):
        raise InputError(f"tol must be in (0, 1e-2), got {tol}")
    first = _row_space(matrices[0])
    hidden = [w.shape[0] for w in matrices[:-1]]
    n0, m = first.shape[1], sum(hidden)
    A = np.zeros((m, n0 + m))
    row, col = 0, 0
    for w in [first, *matrices[1:-1]]:
        A[row : row + w.shape[0], col : col + w.shape[1]] = w
        row += w.shape[0]
        col += w.shape[1]
    gram = np.zeros((n0 + m, n0 + m))
    last = matrices[-1]
    gram[n0 + m - hidden[-1] :, n0 + m - hidden[-1] :] = last.T @ last
    if form == "neuron":
        spread = np.eye(m)
    else:
        spread = np.repeat(np.eye(len(hidden)), hidden, axis=0)
    return _Lmi(A, n0, gram, -2.0 * alpha * beta, alpha + beta, -2.0, spread)


def _row_space(W0: np.ndarray) -> np.ndarray:
    """``W0 V`` for an orthonormal basis ``V`` of its row space when it has more columns than rows."""
    if W0.shape[1] <= W0.shape[0]:
        return W0
    _, sigma, vt = np.linalg.svd(W0, full_matrices=False)
    rank = int(np.sum(sigma > sigma[0] * W0.shape[1] * np.finfo(np.float64).eps))
    return W0 @ vt[:rank].T


def _initial_point(weights: Sequence[np.ndarray], lmi_data: _Lmi) -> tuple[float, np.ndarray]:
    """A strictly feasible layer-constant point by Young's inequality on the cross terms of ``P``.

    ``2q x' W u <= |x|^2 + q^2 ||W||^2 |u|^2`` makes every diagonal block of the
    bound negative with ``lambda_l = 2 ||Wl||^2``, ``lambda_k = 2 q^2 ||W_k||^2
    lambda_{k+1}`` and ``s = 2 q^2 ||W0||^2 lambda_1`` (``-2ab A'TA <= 0`` only helps).
    """
    norms = [float(np.linalg.norm(w, 2)) for w in weights]
    q2 = lmi_data.q**2
    lam = [0.0] * (len(weights) - 1)
    lam[-1] = 2.0 * norms[-1] ** 2
    for k in range(len(weights) - 3, -1, -1):
        lam[k] = 2.0 * q2 * norms[k + 1] ** 2 * lam[k + 1]
    s = 2.0 * q2 * norms[0] ** 2 * lam[0]
    per_neuron = np.repeat(lam, [w.shape[0] for w in weights[:-1]])
    x = np.linalg.lstsq(lmi_data.spread, per_neuron, rcond=None)[0]
    return s, x


@dataclass(frozen=True)
class _State:
    """An iterate: ``y = (x, s)`` strictly feasible with ``Z = -P(y)``; the dual ``X > 0``, ``w > 0``."""

    s: float
    x: np.ndarray
    factor: np.ndarray  # Cholesky factor of Z
    X: np.ndarray
    w: np.ndarray

    @staticmethod
    def centred(lmi_data: _Lmi, s: float, x: np.ndarray) -> _State:
        """Start on the central path's direction: ``X = theta Z^-1``, ``w = theta / x``."""
        factor = _cholesky(-lmi_data.matrix(s, lmi_data.spread @ x))
        if factor is None:
            raise SolverError("pylip's LipSDP engine: the initial point is not strictly feasible")
        theta = s / (lmi_data.size + x.size)
        Zinv = scipy.linalg.cho_solve((factor, True), np.eye(lmi_data.size), check_finite=False)
        return _State(s, x, factor, theta * Zinv, theta / x)

    @property
    def gap(self) -> float:
        """``<X, Z> + w'x``: the duality gap (``s`` minus the dual bound when the dual is feasible)."""
        Z = self.factor @ self.factor.T
        return float(np.sum(self.X * Z) + self.w @ self.x)



def _cholesky(matrix: np.ndarray) -> np.ndarray | None:
    try:
        return scipy.linalg.cholesky(0.5 * (matrix + matrix.T), lower=True, check_finite=False)
    except (np.linalg.LinAlgError, ValueError):
        return None


def _blocks(lmi_data: _Lmi, S: np.ndarray) -> tuple[np.ndarray, ...]:
    """``U' S U`` for ``U = [A', B']``: ``A S A'``, ``A S B'``, ``B S B'``, and ``A S E_0``, ``B S E_0``."""
    n0 = lmi_data.n0
    AS = lmi_data.A @ S
    return AS @ lmi_data.A.T, AS[:, n0:], S[n0:, n0:], AS[:, :n0], S[n0:, :n0]


def _schur(lmi_data: _Lmi, X: np.ndarray, Zinv: np.ndarray) -> np.ndarray:
    """The HKM Newton matrix ``tr(F_i X F_j Z^-1)`` over ``(t, s)`` (``F_i = dP/dy_i``)."""
    p, q, r = lmi_data.p, lmi_data.q, lmi_data.r
    xaa, xae, xee, xa0, xe0 = _blocks(lmi_data, X)
    zaa, zae, zee, za0, ze0 = _blocks(lmi_data, Zinv)
    xea, zea = xae.T, zae.T
    # tr(M Qx_ij M Qz_ij'), Q_ij the 2 x 2 block [[aa, ae], [ea, ee]] of neurons i, j
    m11, m12 = p * xaa + q * xea, p * xae + q * xee
    m21, m22 = q * xaa + r * xea, q * xae + r * xee
    hess_t = (
        (p * m11 + q * m12) * zaa
        + (q * m11 + r * m12) * zae
        + (p * m21 + q * m22) * zea
        + (q * m21 + r * m22) * zee
    )
    cross = -(
        p * np.sum(xa0 * za0, axis=1)
        + q * (np.sum(xa0 * ze0, axis=1) + np.sum(xe0 * za0, axis=1))
        + r * np.sum(xe0 * ze0, axis=1)
    )
    n0, spread = lmi_data.n0, lmi_data.spread
    k = spread.shape[1]
    hess = np.empty((k + 1, k + 1))
    hess[:k, :k] = spread.T @ hess_t @ spread
    hess[:k, k] = hess[k, :k] = spread.T @ cross
    hess[k, k] = float(np.sum(X[:n0, :n0] * Zinv[:n0, :n0]))
    return hess


def _pairing(lmi_data: _Lmi, S: np.ndarray) -> np.ndarray:
    """``tr(F_i S)`` for every ``y_i``: the multipliers' ``tr(M U_i' S U_i)``, then ``-tr(S_00)``."""
    p, q, r = lmi_data.p, lmi_data.q, lmi_data.r
    saa, sae, see, _, _ = _blocks(lmi_data, S)
    per_neuron = p * np.diag(saa) + 2.0 * q * np.diag(sae) + r * np.diag(see)
    return np.append(lmi_data.spread.T @ per_neuron, -float(np.trace(S[: lmi_data.n0, : lmi_data.n0])))


def _equilibrated_solver(matrix: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A solver for ``matrix`` (symmetric, PD in exact arithmetic), equilibrated by its diagonal.

    Near the optimum the Newton matrix's condition grows like ``1 / mu``;
    Cholesky may then fail by rounding, and an LU solve is used instead.
    """
    scale = 1.0 / np.sqrt(np.abs(np.diag(matrix)) + np.finfo(np.float64).tiny)
    scaled = matrix * scale[:, None] * scale[None, :]
    try:
        cho = scipy.linalg.cho_factor(scaled, check_finite=False)
        return lambda rhs: scale * scipy.linalg.cho_solve(cho, scale * rhs, check_finite=False)
    except np.linalg.LinAlgError:
        lu = scipy.linalg.lu_factor(scaled, check_finite=False)
        return lambda rhs: scale * scipy.linalg.lu_solve(lu, scale * rhs, check_finite=False)


def _max_step(factor: np.ndarray, change: np.ndarray) -> float:
    """The largest ``h`` with ``L L' + h change >= 0`` (``inf`` if every ``h >= 0`` is)."""
    whitened = scipy.linalg.solve_triangular(factor, change, lower=True, check_finite=False)
    whitened = scipy.linalg.solve_triangular(factor, whitened.T, lower=True, check_finite=False)
    low = float(scipy.linalg.eigvalsh(0.5 * (whitened + whitened.T), subset_by_index=[0, 0])[0])
    return -1.0 / low if low < 0.0 else np.inf


def _max_positive_step(v: np.ndarray, dv: np.ndarray) -> float:
    falling = dv < 0.0
    return float(np.min(-v[falling] / dv[falling])) if np.any(falling) else np.inf


def _primal_dual_step(lmi_data: _Lmi, state: _State) -> _State:
    """One Mehrotra-type predictor / centring step of the HKM primal-dual method.

    The dual-form SDP ``min s`` s.t. ``Z = -P(y) >= 0``, ``x >= 0`` has the dual
    ``max <X, Wl'Wl>`` s.t. ``tr(X E_0) = 1``, ``<X, F_i> = w_i >= 0``. With
    ``g_i = tr(F_i Z^-1) - 1/x_i`` and ``H = [tr(F_i X F_j Z^-1)] + diag(w/x)``
    the HKM direction for the target ``sigma mu`` is linear in ``sigma mu``:
    ``H dy = -e_s - sigma mu g`` (the dual residual cancels out); ``dX``
    and ``dw`` follow.
    """
    n, k = lmi_data.size, state.x.size
    Zinv = scipy.linalg.cho_solve((state.factor, True), np.eye(n), check_finite=False)
    hess = _schur(lmi_data, state.X, Zinv)
    hess[:k, :k] += np.diag(state.w / state.x)
    gradient = _pairing(lmi_data, Zinv)
    gradient[:k] -= 1.0 / state.x
    solve = _equilibrated_solver(hess)
    objective = np.zeros(k + 1)
    objective[-1] = 1.0
    affine = solve(-objective)  # the dual residual cancels from the HKM system
    centring = solve(-gradient)
    mu = state.gap / (n + k)

    def direction(target: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        dy = affine + target * centring
        dZ = -(lmi_data.matrix(dy[-1], lmi_data.spread @ dy[:-1]) - lmi_data.output_gram)
        XdZ = state.X @ dZ @ Zinv
        dX = target * Zinv - state.X - 0.5 * (XdZ + XdZ.T)
        dw = target / state.x - state.w - (state.w / state.x) * dy[:k]
        return dy, dZ, dX, dw

    def lengths(
        dy: np.ndarray, dZ: np.ndarray, dX: np.ndarray, dw: np.ndarray
    ) -> tuple[float, float]:
        factor_X = _cholesky(state.X)
        primal = 0.0 if factor_X is None else min(_max_step(factor_X, dX), _max_positive_step(state.w, dw))
        dual = min(_max_step(state.factor, dZ), _max_positive_step(state.x, dy[:k]))
        return min(1.0, STEP * primal), min(1.0, STEP * dual)

    dy, dZ, dX, dw = direction(0.0)
    primal, dual = lengths(dy, dZ, dX, dw)
    Z = state.factor @ state.factor.T
    predicted = float(np.sum((state.X + primal * dX) * (Z + dual * dZ)))
    predicted += float((state.w + primal * dw) @ (state.x + dual * dy[:k]))
    sigma = min(1.0, max(predicted / state.gap, 0.0) ** 3)
    dy, dZ, dX, dw = direction(sigma * mu)
    primal, dual = lengths(dy, dZ, dX, dw)
    x, s = state.x + dual * dy[:k], state.s + dual * dy[-1]
    factor = _cholesky(-lmi_data.matrix(s, lmi_data.spread @ x))
    while factor is None or np.any(x <= 0.0):  # rounding at the boundary: shorten
        dual *= 0.5
        x, s = state.x + dual * dy[:k], state.s + dual * dy[-1]
        factor = _cholesky(-lmi_data.matrix(s, lmi_data.spread @ x))
    X = state.X + primal * dX
    w = state.w + primal * dw
    return _State(s, x, factor, 0.5 * (X + X.T), w)


def _dual_residual(lmi_data: _Lmi, X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``e_s + <X, F> - (w, 0)``: zero when ``(X, w)`` is feasible for the dual SDP."""
    residual = -_pairing(lmi_data, X)
    residual[-1] -= 1.0
    residual[:-1] += w
    return residual
