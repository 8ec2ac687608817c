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
instead of vectorised PSD cones.

``P`` is block tridiagonal over the layers, a chordal pattern, and the method
uses it as the completion-based primal-dual methods do (Fukuda, Kojima,
Murota and Nakata 2000; :mod:`pylip.lipsdp.chordal`): ``Z`` is factorised
block by block (no fill), ``Z^-1`` follows by block substitution, and the
dual matrix ``X`` is kept on the pattern only, its positive definiteness
checked clique by clique (neighbouring layers) and its products taken with
its maximum-determinant completion. The Newton matrix still couples every
pair of neurons, so a step costs ``O(N^2 n_max + m^3)`` for ``N = n_0 +
n_hidden``, ``n_max`` the widest block and ``m`` multipliers, instead of the
``O(N^3)`` of dense factorisations (a dense version took 2.3 s on
5-32x10-3 and 6.2 s on 10-128x4-10 where this takes 0.8 s and 2.8 s).
Products with ``A`` go layer by layer (its blocks are the ``W_k``); the step to
the dual cone's boundary is found by bisection on block factorisations, the
primal's from each clique's whitened direction. When ``n_0 > n_1`` the input
block is first reduced to
the row space of ``W0`` (an exact congruence: ``P`` is ``-s I`` on its null space).

Each iterate ``y = (t, s)`` is strictly feasible (its ``-P`` has a Cholesky
factor), so the returned ``s`` is an upper bound on the optimum; the method
stops when the duality gap ``<X, Z> + w't`` is below ``tol * s`` with the dual
feasible to ``RESIDUAL``, or when ``s`` is within ``BOUND_GAP`` (relative) of
the best dual lower bound of its iterates (:func:`_dual_bound`). pylip then
proves the point (:func:`pylip.repair.secure_bound`), like every certificate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ..blas import blas_threads
from ..errors import InputError, SolverError
from . import chordal

ENGINE_FORMS = ("neuron", "layer")
DEFAULT_TOLERANCE = 1e-9  # relative duality gap at which the method stops
# the dual's infeasibility (its equations are O(1)) at which it stops; rounding stalls it near 1e-6
RESIDUAL = 1e-5
# or: the relative gap to the best dual bound so far (_dual_bound) at which it stops: a
# certificate of optimality ten times finer than the 1e-6 promised (near the optimum rounding
# in the dual matrix X can keep its residual above RESIDUAL and the gap open: 5-32x10-3)
BOUND_GAP = 1e-7
MAX_STEPS = 200
STEP = 0.98  # fraction of the step to the boundary of the cones that is taken
# iterative refinement of the Newton solves: the dual's equations hold only as well as they are solved
REFINEMENTS = 2
# the initial point's multipliers are this multiple of the least feasible ones, layer by layer
GROWTH = 2.0


@dataclass(frozen=True)
class EngineResult:
    """A strictly feasible point of the SDP (6) and how close to optimal it is.

    Attributes:
        t: one multiplier per hidden neuron (``T = diag(t)``), for the weights given.
        squared_bound: ``L^2`` with ``P(L^2, diag(t)) < 0`` (in floating point).
        gap: ``s`` minus the dual bound of the returned dual matrix (:func:`_dual_bound`).
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
    """The constant data of ``P(s, t)``: ``A``'s blocks, ``n0``, the constant term and the sector's ``M``.

    ``constant`` is ``Wl' Wl + margin I``: the engine solves ``P + margin I <= 0``.
    """

    n0: int
    constant: np.ndarray  # N x N
    p: float  # M = [[p, q], [q, r]]
    q: float
    r: float
    spread: np.ndarray  # m x k: multiplier variable -> per-neuron t
    layers: tuple[tuple[np.ndarray, slice, slice], ...]  # A's nonzero blocks: (W_k, its rows, its columns)
    neuron_form: bool
    pattern: chordal.BlockPattern  # P's blocks: the (reduced) input, then each hidden layer
    mask: np.ndarray  # True on the pattern

    @property
    def size(self) -> int:
        return self.pattern.size

    def matrix(self, s: float, t: np.ndarray) -> np.ndarray:
        """``P(s, diag(t))``, layer by layer: ``A'T`` has one block ``W_k' T_k`` per hidden layer."""
        n0 = self.n0
        P = self.constant.copy()
        for w, rows, cols in self.layers:
            hidden = slice(n0 + rows.start, n0 + rows.stop)  # layer k's own coordinates
            wt = w.T * t[rows][None, :]  # W_k' T_k
            P[cols, hidden] += self.q * wt
            P[hidden, cols] += self.q * wt.T
            if self.p != 0.0:  # p W_k' T_k W_k, in the block of layer k - 1
                P[cols, cols] += self.p * wt @ w
        diagonal = np.arange(n0, self.size)
        P[diagonal, diagonal] += self.r * t
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
    margin: float = 0.0,
) -> EngineResult:
    """Solve the LipSDP SDP (6) for ``weights`` (``[W0, ..., Wl]``, at least one hidden layer).

    Best called with weights of about unit spectral norm (``pylip.certify``
    scales them exactly by powers of two first). ``margin >= 0`` solves
    ``P(L^2, T) <= -margin I`` instead of ``P <= 0`` (``certify``'s margin).
    One hidden layer (two matrices) is solved on its Schur form by
    :func:`pylip.lipsdp.one_layer.solve_one_layer_sdp`, which also takes
    per-neuron sectors and a margin vector.

    Raises:
        InputError: a form other than ``"neuron"``/``"layer"``, a bad sector or
            tolerance, fewer than two weight matrices or a zero matrix.
        SolverError: the method stalled before reaching ``tol``.

    It runs with one BLAS thread (:mod:`pylip.blas`; ``$PYLIP_THREADS``
    changes it): two were several times slower on the reference machine.
    """
    if len(weights) == 2:
        from .one_layer import solve_one_layer_sdp  # imported here: it imports EngineResult from this module

        return solve_one_layer_sdp(weights, alpha, beta, form=form, tol=tol, max_steps=max_steps,
                                   margin=margin)
    start = time.perf_counter()
    lmi_data = _lmi_data(weights, alpha, beta, form, tol, margin)
    with blas_threads():
        return _interior_point(weights, lmi_data, tol, max_steps, start)


def _interior_point(
    weights: Sequence[np.ndarray], lmi_data: _Lmi, tol: float, max_steps: int, start: float
) -> EngineResult:
    s, x = _initial_point(weights, lmi_data)
    state = _State.centred(lmi_data, s, x)
    lower = -np.inf
    for step in range(1, max_steps + 1):
        lower = max(lower, _dual_bound(lmi_data, state))  # every iterate's bound holds
        gap = state.s - lower
        converged = state.gap <= tol * state.s and _dual_infeasibility(lmi_data, state) <= RESIDUAL
        if converged or gap <= BOUND_GAP * state.s:
            elapsed = time.perf_counter() - start
            return EngineResult(lmi_data.spread @ state.x, state.s, gap, step - 1, elapsed)
        state = _primal_dual_step(lmi_data, state)
    raise SolverError(
        f"pylip's LipSDP engine did not reach a relative gap of {tol:g} in {max_steps} steps (gap "
        f"to the dual bound {gap / state.s:.1e}); use formulation='structured'"
    )


def _lmi_data(
    weights: Sequence[np.ndarray], alpha: float, beta: float, form: str, tol: float, margin: float
) -> _Lmi:
    matrices = [np.asarray(w, dtype=np.float64) for w in weights]
    if form not in ENGINE_FORMS:
        raise InputError(f"the engine solves form 'neuron' or 'layer', got {form!r}")
    if len(matrices) < 2:
        raise InputError("the engine needs at least one hidden layer (two weight matrices)")
    if any(w.ndim != 2 or not np.all(np.isfinite(w)) for w in matrices):
        raise InputError("every weight matrix must be a finite 2-D array")
    if any(not np.any(w) for w in matrices):
        raise InputError("a zero weight matrix makes the network constant (L = 0): no SDP to solve")
    if not (np.isfinite(alpha) and np.isfinite(beta) and alpha < beta and beta > 0.0):
        raise InputError(f"the sector needs alpha < beta, beta > 0; got [{alpha}, {beta}]")
    if not (0.0 < tol < 1e-2):
        raise InputError(f"tol must be in (0, 1e-2), got {tol}")
    if not (np.isfinite(margin) and margin >= 0.0):
        raise InputError(f"margin must be a finite number >= 0, got {margin}")
    first = _row_space(matrices[0])
    hidden = [w.shape[0] for w in matrices[:-1]]
    n0, m = first.shape[1], sum(hidden)
    layers = []
    row, col = 0, 0
    for w in [first, *matrices[1:-1]]:
        rows, cols = slice(row, row + w.shape[0]), slice(col, col + w.shape[1])
        layers.append((w, rows, cols))
        row += w.shape[0]
        col += w.shape[1]
    constant = margin * np.eye(n0 + m)
    last = matrices[-1]
    constant[n0 + m - hidden[-1] :, n0 + m - hidden[-1] :] += last.T @ last
    if form == "neuron":
        spread = np.eye(m)
    else:
        spread = np.repeat(np.eye(len(hidden)), hidden, axis=0)
    pattern = chordal.BlockPattern((n0, *hidden))
    return _Lmi(n0, constant, -2.0 * alpha * beta, alpha + beta, -2.0, spread, tuple(layers),
                form == "neuron", pattern, pattern.mask())


def _row_space(W0: np.ndarray) -> np.ndarray:
    """``W0 V`` for an orthonormal basis ``V`` of its row space when it has more columns than rows."""
    if W0.shape[1] <= W0.shape[0]:
        return W0
    _, sigma, vt = np.linalg.svd(W0, full_matrices=False)
    rank = int(np.sum(sigma > sigma[0] * W0.shape[1] * np.finfo(np.float64).eps))
    return W0 @ vt[:rank].T


def _initial_point(weights: Sequence[np.ndarray], lmi_data: _Lmi) -> tuple[float, np.ndarray]:
    """A strictly feasible layer-constant point, by a backward Schur-complement recursion over the layers.

    ``P`` is block tridiagonal over the layers (hidden layer ``k``'s diagonal
    block ``r t_k I + p t_{k+1} W_k' W_k``, the last one plus ``Wl' Wl``, and
    ``q t_{k+1} W_k'`` beside it), so ``P < 0`` exactly when every Schur
    complement ``S_k = C_k + r t_k I`` taken from the last layer backwards is
    negative definite, with ``C_k = D_k - q^2 t_{k+1}^2 W_k' S_{k+1}^-1 W_k``.
    Each ``t_k`` is ``GROWTH`` times the least that makes ``S_k < 0``, and
    ``s`` is ``GROWTH`` times the least for the input block. This costs the
    sum of the layers' cubes and starts within a small factor of the optimum
    on deep nets (Young's inequality on every cross term, used before,
    started 1e6-fold above it on ten hidden layers and spent half of the
    steps coming down). Scaling ``(s, t)`` up keeps a point feasible; a
    point that rounding leaves infeasible is scaled until it is not.
    """
    p, q, r, n0 = lmi_data.p, lmi_data.q, lmi_data.r, lmi_data.n0
    blocks = [w for w, _, _ in lmi_data.layers]  # W_0 (row space), W_1, ..., W_{l-1}
    last = slice(lmi_data.size - blocks[-1].shape[0], lmi_data.size)
    margin = float(lmi_data.constant[0, 0]) if n0 else 0.0
    lam = [0.0] * len(blocks)
    complement = lmi_data.constant[last, last].copy()  # C_l = Wl' Wl + margin I
    for k in range(len(blocks) - 1, -1, -1):
        lam[k] = GROWTH * _least_multiplier(complement, r)
        schur = complement + r * lam[k] * np.eye(complement.shape[0])
        w = blocks[k]
        below = w.T @ np.linalg.solve(schur, w)
        complement = margin * np.eye(w.shape[1]) + lam[k] * (p * (w.T @ w) - q**2 * lam[k] * below)
    s = GROWTH * max(float(np.linalg.eigvalsh(complement)[-1]), 0.0)
    per_neuron = np.repeat(lam, [w.shape[0] for w in blocks])
    x = np.linalg.lstsq(lmi_data.spread, per_neuron, rcond=None)[0]
    for _ in range(60):
        if s > 0.0 and _strictly_feasible_slack(lmi_data, s, x)[1] is not None:
            break
        s, x = 2.0 * s + np.finfo(np.float64).tiny, 2.0 * x
    return s, x


def _least_multiplier(complement: np.ndarray, r: float) -> float:
    """The least ``t > 0`` with ``complement + r t I < 0`` (``r < 0``), floored at a share of its size."""
    eigenvalues = np.linalg.eigvalsh(0.5 * (complement + complement.T))
    floor = 1e-3 * max(float(np.max(np.abs(eigenvalues))), np.finfo(np.float64).tiny)
    return max(float(eigenvalues[-1]), floor) / -r


@dataclass(frozen=True)
class _State:
    """An iterate: ``y = (x, s)`` strictly feasible with ``Z = -P(y)``; the dual ``X``, ``w > 0``.

    ``X`` is kept on ``P``'s block-tridiagonal pattern only (zero elsewhere):
    the SDP's data lie there, and every clique block of ``X`` being positive
    definite (``clique_factors``, their Cholesky factors) is what proves a
    positive definite completion exists (:mod:`pylip.lipsdp.chordal`).
    ``factor`` is ``Z``'s block Cholesky factor: it proves ``Z > 0``.
    """

    s: float
    x: np.ndarray
    Z: np.ndarray
    factor: chordal.BlockFactor
    X: np.ndarray
    clique_factors: list[np.ndarray]
    w: np.ndarray

    @staticmethod
    def centred(lmi_data: _Lmi, s: float, x: np.ndarray) -> _State:
        """Start on the central path's direction: ``X = theta Z^-1`` (on the pattern), ``w = theta / x``."""
        Z, factor = _strictly_feasible_slack(lmi_data, s, x)
        if factor is None:
            raise SolverError("pylip's LipSDP engine: the initial point is not strictly feasible")
        theta = s / (lmi_data.size + x.size)
        X = theta * lmi_data.pattern.inverse(factor) * lmi_data.mask
        clique_factors = lmi_data.pattern.clique_factors(X)
        if clique_factors is None:
            raise SolverError("pylip's LipSDP engine: the initial point is too ill-conditioned")
        return _State(s, x, Z, factor, X, clique_factors, theta / x)

    @property
    def gap(self) -> float:
        """``<X, Z> + w'x``: the duality gap (``s`` minus the dual bound when the dual is feasible)."""
        return float(np.sum(self.X * self.Z) + self.w @ self.x)


def _strictly_feasible_slack(
    lmi_data: _Lmi, s: float, x: np.ndarray
) -> tuple[np.ndarray, chordal.BlockFactor | None]:
    """``Z = -P(s, x) - margin I`` and its block Cholesky factor (``None`` if ``Z`` is not PD)."""
    Z = -lmi_data.matrix(s, lmi_data.spread @ x)
    return Z, lmi_data.pattern.cholesky(Z)


def _dual_bound(lmi_data: _Lmi, state: _State) -> float:
    """A lower bound on the SDP's optimum from the dual matrix ``X >= 0`` (weak duality).

    For every feasible ``(s, t)``: ``0 >= <X, P> = sum_i t_i <X, F_i> - s tr(X_00) + <X, C>``
    (``C`` the constant term), so ``s >= (<X, C> + sum_i t_i <X, F_i>) / tr(X_00)``;
    with every ``<X, F_i> >= 0`` that is at least ``<X, C> / tr(X_00)``. Rounding
    leaves some ``<X, F_i>`` slightly negative; they are charged at the current
    ``t`` (near the optimal one), so the stop is sound up to that rounding.
    ``X`` is known on ``P``'s pattern only; its clique blocks are positive
    definite, so a positive semidefinite completion exists, and ``<X, P>``
    reads only the pattern.
    """
    pairing = _pairing(lmi_data, state.X)
    charged = float(np.minimum(pairing[:-1], 0.0) @ state.x)
    return (float(np.sum(state.X * lmi_data.constant)) + charged) / -pairing[-1]


def _left_A(lmi_data: _Lmi, S: np.ndarray) -> np.ndarray:
    """``A S`` layer by layer: ``A`` is block bidiagonal (``W_k`` in row block ``k``, column block ``k``)."""
    return np.vstack([w @ S[cols] for w, _, cols in lmi_data.layers])


def _right_At(lmi_data: _Lmi, S: np.ndarray) -> np.ndarray:
    """``S A'`` layer by layer."""
    return np.hstack([S[:, cols] @ w.T for w, _, cols in lmi_data.layers])


def _blocks(lmi_data: _Lmi, S: np.ndarray) -> tuple[np.ndarray, ...]:
    """``U' S U`` for ``U = [A', B']``: ``A S A'``, ``A S B'``, ``B S B'``, and ``A S E_0``, ``B S E_0``."""
    n0 = lmi_data.n0
    AS = _left_A(lmi_data, S)
    return _right_At(lmi_data, AS), AS[:, n0:], S[n0:, n0:], AS[:, :n0], S[n0:, :n0]


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
    hess[:k, :k] = hess_t if lmi_data.neuron_form else spread.T @ hess_t @ spread
    hess[:k, k] = hess[k, :k] = spread.T @ cross
    hess[k, k] = float(np.sum(X[:n0, :n0] * Zinv[:n0, :n0]))
    return hess


def _pairing(lmi_data: _Lmi, S: np.ndarray) -> np.ndarray:
    """``tr(F_i S)`` for every ``y_i`` (``S`` symmetric): ``tr(M U_i' S U_i)``, then ``-tr(S_00)``."""
    p, q, r, n0 = lmi_data.p, lmi_data.q, lmi_data.r, lmi_data.n0
    AS = _left_A(lmi_data, S)
    saa = np.concatenate([np.sum(AS[rows][:, cols] * w, axis=1) for w, rows, cols in lmi_data.layers])
    per_neuron = p * saa + 2.0 * q * np.diag(AS[:, n0:]) + r * np.diag(S)[n0:]
    return np.append(lmi_data.spread.T @ per_neuron, -float(np.trace(S[:n0, :n0])))


def _equilibrated_solver(matrix: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A solver for ``matrix`` (symmetric, PD in exact arithmetic), equilibrated by its diagonal.

    Near the optimum the Newton matrix's condition grows like ``1 / mu``;
    Cholesky may then fail by rounding, and an LU solve is used instead.
    """
    scale = 1.0 / np.sqrt(np.abs(np.diag(matrix)) + np.finfo(np.float64).tiny)
    scaled = matrix * scale[:, None] * scale[None, :]
    try:
        cho = scipy.linalg.cho_factor(scaled, check_finite=False)

        def once(rhs: np.ndarray) -> np.ndarray:
            return scale * scipy.linalg.cho_solve(cho, scale * rhs, check_finite=False)
    except np.linalg.LinAlgError:
        lu = scipy.linalg.lu_factor(scaled, check_finite=False)

        def once(rhs: np.ndarray) -> np.ndarray:
            return scale * scipy.linalg.lu_solve(lu, scale * rhs, check_finite=False)

    def refined(rhs: np.ndarray) -> np.ndarray:
        solution = once(rhs)
        for _ in range(REFINEMENTS):
            solution = solution + once(rhs - matrix @ solution)
        return solution

    return refined


def _max_positive_step(v: np.ndarray, dv: np.ndarray) -> float:
    falling = dv < 0.0
    return float(np.min(-v[falling] / dv[falling])) if np.any(falling) else np.inf


@dataclass(frozen=True)
class _Direction:
    """A step ``(dy, dZ)`` of the multipliers and ``(dX, dw)`` of the dual."""

    dy: np.ndarray
    dZ: np.ndarray
    dX: np.ndarray
    dw: np.ndarray


def _primal_dual_step(lmi_data: _Lmi, state: _State) -> _State:
    """One Mehrotra-type predictor / centring step of the HKM primal-dual method.

    The dual-form SDP ``min s`` s.t. ``Z = -P(y) >= 0``, ``x >= 0`` has the dual
    ``max <X, C>`` s.t. ``tr(X E_0) = 1``, ``<X, F_i> = w_i >= 0``. With
    ``g_i = tr(F_i Z^-1) - 1/x_i`` and ``H = [tr(F_i X F_j Z^-1)] + diag(w/x)``
    the HKM direction for the target ``sigma mu`` is linear in ``sigma mu``:
    ``H dy = -e_s - sigma mu g`` (the dual residual cancels out); ``dX`` and
    ``dw`` follow. ``Z^-1`` comes from the Cholesky factor's triangular
    inverse, which also whitens ``dZ`` for the step length. (Mehrotra's
    second-order corrector was tried: on these problems it made ``s`` oscillate
    and took three times as many steps.)
    """
    n, k = lmi_data.size, state.x.size
    pattern = lmi_data.pattern
    Zinv = pattern.inverse(state.factor)
    completed = pattern.completion(state.X, state.clique_factors)
    hess = _schur(lmi_data, completed, Zinv)
    hess[:k, :k] += np.diag(state.w / state.x)
    gradient = _pairing(lmi_data, Zinv)
    gradient[:k] -= 1.0 / state.x
    solve = _equilibrated_solver(hess)
    objective = np.zeros(k + 1)
    objective[-1] = 1.0
    affine = solve(-objective)
    centring = solve(-gradient)
    mu = state.gap / (n + k)

    def direction(target: float) -> _Direction:
        dy = affine + target * centring
        dZ = -(lmi_data.matrix(dy[-1], lmi_data.spread @ dy[:-1]) - lmi_data.constant)
        XdZ = pattern.product_on_pattern(completed, dZ, Zinv)
        dX = target * Zinv * lmi_data.mask - state.X - 0.5 * (XdZ + XdZ.T)
        dw = target / state.x - state.w - (state.w / state.x) * dy[:k]
        return _Direction(dy, dZ, dX, dw)

    primal_step = pattern.clique_step(state.clique_factors)
    dual_step = pattern.step(state.Z, state.factor)

    def lengths(d: _Direction) -> tuple[float, float]:
        primal = min(primal_step(d.dX), _max_positive_step(state.w, d.dw))
        dual = min(dual_step(d.dZ, 1.0 / STEP), _max_positive_step(state.x, d.dy[:k]))
        return min(1.0, STEP * primal), min(1.0, STEP * dual)

    predictor = direction(0.0)
    primal, dual = lengths(predictor)
    predicted = float(np.sum((state.X + primal * predictor.dX) * (state.Z + dual * predictor.dZ)))
    predicted += float((state.w + primal * predictor.dw) @ (state.x + dual * predictor.dy[:k]))
    sigma = min(1.0, max(predicted / state.gap, 0.0) ** 3)
    step = direction(sigma * mu)
    primal, dual = lengths(step)
    return _next_state(lmi_data, state, step, primal, dual)


def _dual_infeasibility(lmi_data: _Lmi, state: _State) -> float:
    """The largest violation of the dual's equations ``tr(X E_0) = 1``, ``<X, F_i> = w_i``."""
    residual = -_pairing(lmi_data, state.X)
    residual[-1] -= 1.0
    residual[:-1] += state.w
    return float(np.max(np.abs(residual)))


def _next_state(lmi_data: _Lmi, state: _State, step: _Direction, primal: float, dual: float) -> _State:
    """Take the steps, halving each until its new point has a Cholesky factor (rounding at the boundary)."""
    k = state.x.size
    while True:
        x, s = state.x + dual * step.dy[:k], state.s + dual * step.dy[-1]
        Z, factor = _strictly_feasible_slack(lmi_data, s, x)
        if factor is not None and np.all(x > 0.0):
            break
        dual *= 0.5
    while True:
        X = state.X + primal * step.dX
        X = 0.5 * (X + X.T)
        w = state.w + primal * step.dw
        clique_factors = lmi_data.pattern.clique_factors(X)
        if clique_factors is not None and np.all(w > 0.0):
            break
        primal *= 0.5
    return _State(s, x, Z, factor, X, clique_factors, w)
