"""pylip's own interior-point solver for the LipSDP certificate SDP (6), any depth.

The SDP is ``min L^2 s.t. P(L^2, T) <= 0`` with ``T = diag(t) >= 0`` (neuron
form) or ``t`` constant on each hidden layer (layer form); see :mod:`pylip.lmi`
for ``P``. Every multiplier enters ``P`` through a term of rank at most two:
for neuron ``i`` of hidden layer ``k`` let ``a_i`` be row ``i`` of ``W_{k-1}``
placed in the coordinates of layer ``k - 1`` and ``e_i`` its own unit vector;
with ``U_i = [a_i, e_i]`` and its sector's ``M_i = [[-2 a_i b_i, a_i + b_i], [a_i + b_i, -2]]``
(one sector for all neurons, or one per neuron: the local bounds of :mod:`pylip.lipsdp.local`)

    P(s, t) = sum_i t_i U_i M_i U_i'  -  s E_0  +  Wl' Wl   (E_0: the input block).

The SDP is solved by a primal-dual interior-point method (HKM direction,
Mehrotra-type choice of the centring weight; Helmberg, Rendl, Vanderbei and
Wolkowicz 1996; Kojima, Shindoh and Hara 1997). Its Newton (Schur) matrix
over the multipliers is ``tr(F_i X F_j Z^-1) = tr(M_i Qx_ij M_j Qz_ij')`` with
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

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

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
# rounding can stop the method short of BOUND_GAP where multipliers grow large (per-neuron sectors of
# width 1e-6, local bounds at small radii: 3.5e-6 on a 64-128-128-10 ball): after STALL_STEPS steps
# within ACCEPTABLE_GAP without halving the gap it stops and returns its point (converged=False,
# with its certified gap); a gap still above ACCEPTABLE_GAP at MAX_STEPS raises SolverError
STALL_STEPS = 10
ACCEPTABLE_GAP = 1e-4
# fraction of the step to the boundary of the cones that is taken: steps on 18 deep nets (depths 2-20,
# widths 16-64) at 0.98 / 0.95 / 0.93 / 0.9 / 0.85 / 0.8: 579 / 473 / 466 / 464 / 491 / 512 (0.995
# failed on 3): farther from the boundary the iterates stay centred and the steps long
STEP = 0.9
# the step to that boundary is found by bisection to this relative accuracy ...
STEP_ACCURACY = 0.05
# ... and the predictor's, which only sets the centring weight, to this one: on 21 deep nets 1e-2 and
# 0.1 took 548 steps in 12.4 s CPU, 0.05 and 0.3 536 in 10.4 s (0.1 and 0.3: 550, 11.0 s); a class-pair
# SDP of a 64-128-128-10 net (N = 320, where bisection is half of a step) 1.8 s -> 1.7 s
PREDICTOR_ACCURACY = 0.3
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
        gap: ``squared_bound`` minus the best dual bound of the iterates (:func:`_dual_bound`):
            the optimum lies in ``[squared_bound - gap, squared_bound]``.
        newton_steps: interior-point steps taken.
        solve_time: seconds.
        converged: ``False`` where rounding stopped the method before a relative gap of
            ``BOUND_GAP`` (the gap is then at most ``ACCEPTABLE_GAP``; see ``gap``).
    """

    t: np.ndarray
    squared_bound: float
    gap: float
    newton_steps: int
    solve_time: float
    converged: bool = True


@dataclass(frozen=True)
class _Lmi:
    """The constant data of ``P(s, t)``: ``A``'s blocks, ``n0``, the constant term and the sectors' ``M_i``.

    ``constant`` is ``Wl' Wl``. ``M_i = [[p_i, q_i], [q_i, r]]`` with ``p``, ``q`` one
    entry per hidden neuron and ``r = -2``.
    """

    n0: int
    constant: np.ndarray  # N x N
    p: np.ndarray  # m
    q: np.ndarray  # m
    r: float
    spread: np.ndarray  # m x k: multiplier variable -> per-neuron t
    layers: tuple[tuple[np.ndarray, slice, slice], ...]  # A's nonzero blocks: (W_k, its rows, its columns)
    neuron_form: bool
    pattern: chordal.BlockPattern  # P's blocks: the (reduced) input, then each hidden layer
    mask: np.ndarray  # True on the pattern

    @functools.cached_property
    def factors(self) -> tuple[np.ndarray, np.ndarray, float]:
        return _rank_two_factors(self)

    @property
    def size(self) -> int:
        return self.pattern.size

    def matrix(self, s: float, t: np.ndarray) -> np.ndarray:
        """``P(s, diag(t))``, layer by layer: ``A'T`` has one block ``W_k' T_k`` per hidden layer."""
        n0 = self.n0
        P = self.constant.copy()
        for w, rows, cols in self.layers:
            hidden = slice(n0 + rows.start, n0 + rows.stop)  # layer k's own coordinates
            wt = w.T * (self.q[rows] * t[rows])[None, :]  # q W_k' T_k
            P[cols, hidden] += wt
            P[hidden, cols] += wt.T
            p_t = self.p[rows] * t[rows]
            if np.any(p_t):  # W_k' diag(p) T_k W_k, in the block of layer k - 1
                P[cols, cols] += (w.T * p_t[None, :]) @ w
        diagonal = np.arange(n0, self.size)
        P[diagonal, diagonal] += self.r * t
        P[:n0, :n0] -= s * np.eye(n0)
        return P


def solve_certificate_sdp(
    weights: Sequence[np.ndarray],
    alpha: float | np.ndarray,
    beta: float | np.ndarray,
    *,
    form: str = "neuron",
    tol: float = DEFAULT_TOLERANCE,
    max_steps: int = MAX_STEPS,
    margin: float = 0.0,
) -> EngineResult:
    """Solve the LipSDP SDP (6) for ``weights`` (``[W0, ..., Wl]``, at least one hidden layer).

    Best called with weights of about unit spectral norm (``pylip.certify``
    scales them exactly by powers of two first). ``alpha`` and ``beta`` are
    numbers (one sector ``alpha < beta``, ``beta > 0``) or one entry per hidden
    neuron (``alpha_i < beta_i``: a neuron with ``alpha_i = beta_i`` is linear, and
    its optimal multiplier unbounded). ``0 <= margin < 1`` solves
    ``P(L^2, T) <= -margin diag(L^2 I, T)`` instead of ``P <= 0`` (``T``'s entries
    of neurons with ``alpha_i = beta_i`` left out: :func:`_margin_free_sector`): a
    relative margin, the same condition for the weights before and after
    ``certify``'s exact rescaling (:meth:`pylip.lipsdp.certificate._Normalization.multiplier`
    maps ``diag(L^2 I, T)`` as it maps ``P``), which moves the bound by about
    ``margin`` relative at any scale of the network.
    One hidden layer (two matrices) is solved on its Schur form by
    :func:`pylip.lipsdp.one_layer.solve_one_layer_sdp`.

    Raises:
        InputError: a form other than ``"neuron"``/``"layer"``, a bad sector,
            margin or tolerance, fewer than two weight matrices or a zero matrix.
        SolverError: the method stalled before reaching ``tol``.

    It runs with one BLAS thread (:mod:`pylip.blas`; ``$PYLIP_THREADS``
    changes it): two were several times slower on the reference machine.
    """
    if np.ndim(margin) != 0 or not (np.isfinite(margin) and 0.0 <= margin < 1.0):
        raise InputError(f"margin must be a number in [0, 1) (relative), got {margin!r}")
    if margin == 0.0:
        return _margin_free_solve(weights, alpha, beta, form, tol, max_steps)
    a, b, kappa = _margin_free_sector(alpha, beta, float(margin), hidden_layers=len(weights) - 1)
    result = _margin_free_solve(weights, a, b, form, tol, max_steps)
    scale = 1.0 / (1.0 - margin)
    return replace(result, t=kappa * result.t, squared_bound=scale * result.squared_bound,
                   gap=scale * result.gap)


def _margin_free_solve(
    weights: Sequence[np.ndarray], alpha: float | np.ndarray, beta: float | np.ndarray, form: str, tol: float,
    max_steps: int,
) -> EngineResult:
    """(6) with ``P <= 0``: one hidden layer on its Schur form, deeper nets by the chordal method."""
    if len(weights) == 2:
        from .one_layer import solve_one_layer_sdp  # imported here: it imports EngineResult from this module

        return solve_one_layer_sdp(weights, alpha, beta, form=form, tol=tol, max_steps=max_steps)
    start = time.perf_counter()
    lmi_data = _lmi_data(weights, alpha, beta, form, tol)
    with blas_threads():
        return _interior_point(weights, lmi_data, tol, max_steps, start)


def _margin_free_sector(
    alpha: float | np.ndarray, beta: float | np.ndarray, margin: float, *, hidden_layers: int
) -> tuple[float | np.ndarray, float | np.ndarray, float | np.ndarray]:
    """The sectors ``[a', b']`` and ``kappa`` with which the relative margin disappears.

    ``P(L^2, T) + margin diag(L^2 I, T)`` is ``P`` with ``-(1 - margin) L^2 I`` on the
    input block and each ``M_i``'s ``-2`` replaced by ``-(2 - margin)``. With
    ``t' = t / kappa``, ``kappa = 2 / (2 - margin)``, that is ``P((1 - margin) L^2, T')``
    for the sector with ``a' + b' = kappa (a + b)`` and ``a' b' = kappa a b``, real since
    ``kappa >= 1``: the margin-free SDP in ``(1 - margin) L^2`` and ``T'``. A neuron known
    to be linear (``a = b``) keeps its sector and gets no margin (``kappa = 1``): its optimal
    multiplier is unbounded, and a margin in proportion to it would cap it and raise the
    bound by about ``sqrt(margin)`` (measured 4e-6 to 1.4e-5 at 1e-9). The sectors are
    checked first (the map would turn ``a > b`` into a proper sector).
    """
    a, b = np.broadcast_arrays(np.asarray(alpha, dtype=np.float64), np.asarray(beta, dtype=np.float64))
    if a.ndim == 0:
        if not (np.isfinite(alpha) and np.isfinite(beta) and alpha < beta and beta > 0.0):
            raise InputError(f"the sector needs alpha < beta, beta > 0; got [{alpha}, {beta}]")
    elif not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))) or np.any(a > b):
        raise InputError("per-neuron sectors need finite alpha_i <= beta_i")
    elif hidden_layers > 1 and np.any(a == b):
        _sectors(a, b, a.size)  # the deep engine's refusal of linear neurons, with its message
    linear = a == b
    kappa = np.where(linear, 1.0, 2.0 / (2.0 - margin))
    total, product = kappa * (a + b), kappa * a * b
    high = 0.5 * (total + np.sqrt(np.maximum(total * total - 4.0 * product, 0.0)))
    low = np.divide(product, high, out=np.zeros_like(high), where=high != 0.0)  # no cancellation
    low, high = np.where(linear, a, low), np.where(linear, b, high)
    if a.ndim == 0:
        return float(low), float(high), float(kappa)
    return low, high, kappa


def _interior_point(
    weights: Sequence[np.ndarray], lmi_data: _Lmi, tol: float, max_steps: int, start: float
) -> EngineResult:
    s, x = _initial_point(weights, lmi_data)
    state = _State.centred(lmi_data, s, x)
    lower = -np.inf
    gaps: list[float] = []  # the relative gap to the best dual bound, step by step
    for step in range(1, max_steps + 1):
        lower = max(lower, _dual_bound(lmi_data, state))  # every iterate's bound holds
        gaps.append((state.s - lower) / state.s)
        converged = state.gap <= tol * state.s and _dual_infeasibility(lmi_data, state) <= RESIDUAL
        if converged or gaps[-1] <= BOUND_GAP:
            return _result(lmi_data, state, lower, step - 1, start, converged=True)
        if _stalled(gaps):
            break
        state = _primal_dual_step(lmi_data, state)
    if gaps[-1] <= ACCEPTABLE_GAP:
        return _result(lmi_data, state, lower, len(gaps) - 1, start, converged=False)
    raise SolverError(
        f"pylip's LipSDP engine stopped {'at rounding' if len(gaps) < max_steps else 'at its step limit'} "
        f"with a relative gap of {gaps[-1]:.1e} to its dual bound (above {ACCEPTABLE_GAP:g}); use "
        "formulation='structured'"
    )


def _stalled(gaps: list[float]) -> bool:
    """Near the optimum, no halving of the relative gap in :data:`STALL_STEPS` steps: rounding stops it.

    (Far from it, before the dual is feasible, progress can be slow without a stall.)
    """
    recent = gaps[-1 - STALL_STEPS :]
    return len(gaps) > STALL_STEPS and max(recent) < ACCEPTABLE_GAP and gaps[-1] > 0.5 * recent[0]


def _result(
    lmi_data: _Lmi, state: _State, lower: float, steps: int, start: float, *, converged: bool
) -> EngineResult:
    return EngineResult(lmi_data.spread @ state.x, state.s, state.s - lower, steps,
                        time.perf_counter() - start, converged)


def _lmi_data(
    weights: Sequence[np.ndarray],
    alpha: float | np.ndarray,
    beta: float | np.ndarray,
    form: str,
    tol: float,
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
    if not (0.0 < tol < 1e-2):
        raise InputError(f"tol must be in (0, 1e-2), got {tol}")
    first = _row_space(matrices[0])
    hidden = [w.shape[0] for w in matrices[:-1]]
    n0, m = first.shape[1], sum(hidden)
    a, b = _sectors(alpha, beta, m)
    layers = []
    row, col = 0, 0
    for w in [first, *matrices[1:-1]]:
        rows, cols = slice(row, row + w.shape[0]), slice(col, col + w.shape[1])
        layers.append((w, rows, cols))
        row += w.shape[0]
        col += w.shape[1]
    constant = np.zeros((n0 + m, n0 + m))
    last = matrices[-1]
    constant[n0 + m - hidden[-1] :, n0 + m - hidden[-1] :] = last.T @ last
    if form == "neuron":
        spread = np.eye(m)
    else:
        spread = np.repeat(np.eye(len(hidden)), hidden, axis=0)
    pattern = chordal.BlockPattern((n0, *hidden))
    return _Lmi(n0, constant, -2.0 * a * b, a + b, -2.0, spread, tuple(layers),
                form == "neuron", pattern, pattern.mask())


def _sectors(alpha: float | np.ndarray, beta: float | np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """One ``(alpha_i, beta_i)`` per hidden neuron, checked (``alpha_i < beta_i``)."""
    a = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (m,)) if np.size(alpha) in (1, m) else None
    b = np.broadcast_to(np.asarray(beta, dtype=np.float64), (m,)) if np.size(beta) in (1, m) else None
    if a is None or b is None:
        raise InputError(f"alpha and beta must be numbers or have one entry per hidden neuron ({m})")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise InputError("alpha and beta must be finite")
    if np.ndim(alpha) == 0 and np.ndim(beta) == 0:
        if not (alpha < beta and beta > 0.0):
            raise InputError(f"the sector needs alpha < beta, beta > 0; got [{alpha}, {beta}]")
    elif np.any(a >= b):
        raise InputError(
            "per-neuron sectors need alpha_i < beta_i for every neuron: a neuron with alpha_i = beta_i "
            "is linear, its optimal multiplier is unbounded and the SDP's dual has no interior point; "
            "use formulation='structured'"
        )
    return np.array(a), np.array(b)


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
    ``s`` is ``GROWTH`` times the least for the input block (per-neuron
    sectors enter through ``diag(p)`` and ``diag(q)`` in place of ``p`` and ``q``). This costs the
    sum of the layers' cubes and starts within a small factor of the optimum
    on deep nets (Young's inequality on every cross term, used before,
    started 1e6-fold above it on ten hidden layers and spent half of the
    steps coming down). Scaling ``(s, t)`` up keeps a point feasible; a
    point that rounding leaves infeasible is scaled until it is not.
    """
    p, q, r = lmi_data.p, lmi_data.q, lmi_data.r
    last = slice(lmi_data.size - lmi_data.layers[-1][0].shape[0], lmi_data.size)
    lam = [0.0] * len(lmi_data.layers)
    complement = lmi_data.constant[last, last].copy()  # C_l = Wl' Wl
    for k in range(len(lmi_data.layers) - 1, -1, -1):
        w, rows, cols = lmi_data.layers[k]  # W_k: from layer k - 1 (cols) to hidden layer k (rows)
        lam[k] = GROWTH * _least_multiplier(complement, r)
        schur = complement + r * lam[k] * np.eye(complement.shape[0])
        coupled = q[rows][:, None] * w
        below = coupled.T @ np.linalg.solve(schur, coupled)
        quadratic = (w.T * p[rows][None, :]) @ w
        complement = lam[k] * (quadratic - lam[k] * below)
    s = GROWTH * max(float(np.linalg.eigvalsh(complement)[-1]), 0.0)
    per_neuron = np.repeat(lam, [w.shape[0] for w, _, _ in lmi_data.layers])
    x = per_neuron if lmi_data.neuron_form else np.asarray(lam)
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
    ``product`` is ``<X, Z>`` (both on the pattern).
    """

    s: float
    x: np.ndarray
    Z: np.ndarray
    factor: chordal.BlockFactor
    X: np.ndarray
    clique_factors: list[np.ndarray]
    w: np.ndarray
    product: float

    @staticmethod
    def centred(lmi_data: _Lmi, s: float, x: np.ndarray) -> _State:
        """Start on the central path's direction: ``X = theta Z^-1`` (on the pattern), ``w = theta / x``."""
        Z, factor = _strictly_feasible_slack(lmi_data, s, x)
        if factor is None:
            raise SolverError("pylip's LipSDP engine: the initial point is not strictly feasible")
        theta = s / (lmi_data.size + x.size)
        X = lmi_data.pattern.symmetric_combination([(theta, lmi_data.pattern.inverse(factor))])
        clique_factors = lmi_data.pattern.clique_factors(X)
        if clique_factors is None:
            raise SolverError("pylip's LipSDP engine: the initial point is too ill-conditioned")
        return _State(s, x, Z, factor, X, clique_factors, theta / x, lmi_data.pattern.inner(X, Z))

    @property
    def gap(self) -> float:
        """``<X, Z> + w'x``: the duality gap (``s`` minus the dual bound when the dual is feasible)."""
        return self.product + float(self.w @ self.x)


def _strictly_feasible_slack(
    lmi_data: _Lmi, s: float, x: np.ndarray
) -> tuple[np.ndarray, chordal.BlockFactor | None]:
    """``Z = -P(s, x)`` and its block Cholesky factor (``None`` if ``Z`` is not PD)."""
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
    return (lmi_data.pattern.inner(state.X, lmi_data.constant) + charged) / -pairing[-1]


def _rank_two_factors(lmi_data: _Lmi) -> tuple[np.ndarray, np.ndarray, float]:
    """``(alpha, gamma, delta)`` with ``F_i = u_i v_i' + v_i u_i'`` for every neuron.

    Here ``u_i = alpha_i a_i + e_i`` and ``v_i = gamma_i a_i + delta e_i``:
    ``F_i = p_i a_i a_i' + q_i (a_i e_i' + e_i a_i') + r e_i e_i'`` matches when
    ``delta = r / 2``, ``gamma = q - alpha r / 2`` and ``r alpha^2 - 2 q alpha + p = 0``,
    whose discriminant ``q^2 - p r = (b - a)^2`` is positive for every sector ``a < b``.
    The root of smaller magnitude is taken (0 for ``a = 0``).
    """
    p, q, r = lmi_data.p, lmi_data.q, lmi_data.r
    root = np.sqrt(np.maximum(q * q - p * r, 0.0))
    larger = q + np.copysign(root, q)  # r times the root of larger magnitude: |q| + root > 0
    alpha = p / larger  # the other root, (q -+ root) / r, without cancellation
    return alpha, q - alpha * r / 2.0, r / 2.0


def _factor_products(lmi_data: _Lmi, S: np.ndarray) -> tuple[np.ndarray, ...]:
    """``S U`` and ``S V`` (``N x m``; the columns ``u_i``, ``v_i`` of :func:`_rank_two_factors`), and
    ``U' S U``, ``U' S V``, ``V' S V``, from one product of ``S`` with ``A'`` and two with ``A``."""
    n0 = lmi_data.n0
    alpha, gamma, delta = lmi_data.factors
    SA = np.hstack([S[:, cols] @ w.T for w, _, cols in lmi_data.layers])  # S A', layer by layer
    SV = SA * gamma[None, :] + delta * S[:, n0:]
    ASV = np.vstack([w @ SV[cols] for w, _, cols in lmi_data.layers])  # A S V
    if np.any(alpha):
        SU = SA * alpha[None, :] + S[:, n0:]
        uu = alpha[:, None] * np.vstack([w @ SU[cols] for w, _, cols in lmi_data.layers]) + SU[n0:]
    else:  # alpha = 0 (a sector [0, b]): u_i = e_i
        SU = S[:, n0:]
        uu = SU[n0:]
    uv = alpha[:, None] * ASV + SV[n0:]
    vv = gamma[:, None] * ASV + delta * SV[n0:]
    return SU, SV, uu, uv, vv


def _schur(lmi_data: _Lmi, X: np.ndarray, Zinv: np.ndarray) -> np.ndarray:
    """The HKM Newton matrix ``tr(F_i X F_j Z^-1)`` over ``(t, s)`` (``F_i = dP/dy_i``).

    With ``F_i = u_i v_i' + v_i u_i'`` (:func:`_rank_two_factors`) the entry of
    neurons ``i, j`` is ``Xuv_ij Zuv_ji + Xuv_ji Zuv_ij + Xvv_ij Zuu_ij + Xuu_ij
    Zvv_ij`` (``Xuv = U' X V`` and so on): four products of ``m x m`` arrays.
    """
    n0 = lmi_data.n0
    xu, xv, xuu, xuv, xvv = _factor_products(lmi_data, X)
    zu, zv, zuu, zuv, zvv = _factor_products(lmi_data, Zinv)
    hess_t = xuv * zuv.T
    hess_t += hess_t.T
    hess_t += xvv * zuu
    hess_t += xuu * zvv
    # tr(F_i X F_s Z^-1) with F_s = -E_0: -(v_i' X E_0 Z^-1 u_i + u_i' X E_0 Z^-1 v_i)
    cross = -(np.sum(xv[:n0] * zu[:n0], axis=0) + np.sum(xu[:n0] * zv[:n0], axis=0))
    spread = lmi_data.spread
    k = spread.shape[1]
    hess = np.empty((k + 1, k + 1))
    hess[:k, :k] = hess_t if lmi_data.neuron_form else spread.T @ hess_t @ spread
    hess[:k, k] = hess[k, :k] = spread.T @ cross
    hess[k, k] = float(np.sum(X[:n0, :n0] * Zinv[:n0, :n0]))
    return hess


def _pairing(lmi_data: _Lmi, S: np.ndarray) -> np.ndarray:
    """``tr(F_i S)`` for every ``y_i`` (``S`` symmetric): ``tr(M_i U_i' S U_i)``, then ``-tr(S_00)``.

    Neuron ``i`` of layer ``k`` reads ``S`` on its clique only (``a_i`` in block ``k - 1``,
    ``e_i`` in block ``k``): ``a_i' S a_i``, ``a_i' S e_i`` and ``S_ii`` come from the
    blocks of ``S`` around ``W_k``, the sum of ``n_k n_{k-1}^2``.
    """
    p, q, r, n0 = lmi_data.p, lmi_data.q, lmi_data.r, lmi_data.n0
    parts = []
    for w, rows, cols in lmi_data.layers:
        own = slice(n0 + rows.start, n0 + rows.stop)
        aa = np.sum((w @ S[cols, cols]) * w, axis=1)
        ae = np.sum(w * S[own, cols], axis=1)
        ee = np.diag(S[own, own])
        parts.append(p[rows] * aa + 2.0 * q[rows] * ae + r * ee)
    return np.append(lmi_data.spread.T @ np.concatenate(parts), -float(np.trace(S[:n0, :n0])))


def _equilibrated_solver(matrix: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A solver for ``matrix`` (symmetric, PD in exact arithmetic), equilibrated by its diagonal.

    The solver takes one right-hand side, or several as the columns of a 2-D array.

    Near the optimum the Newton matrix's condition grows like ``1 / mu``;
    Cholesky may then fail by rounding, and an LU solve is used instead.
    """
    scale = 1.0 / np.sqrt(np.abs(np.diag(matrix)) + np.finfo(np.float64).tiny)
    scaled = matrix * scale[:, None] * scale[None, :]
    try:
        cho = scipy.linalg.cho_factor(scaled, check_finite=False)

        def once(rhs: np.ndarray) -> np.ndarray:
            column = scale.reshape(-1, *([1] * (rhs.ndim - 1)))
            return column * scipy.linalg.cho_solve(cho, column * rhs, check_finite=False)
    except np.linalg.LinAlgError:
        lu = scipy.linalg.lu_factor(scaled, check_finite=False)

        def once(rhs: np.ndarray) -> np.ndarray:
            column = scale.reshape(-1, *([1] * (rhs.ndim - 1)))
            return column * scipy.linalg.lu_solve(lu, column * rhs, check_finite=False)

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
    affine, centring = solve(-np.column_stack([objective, gradient])).T
    mu = state.gap / (n + k)

    def direction(target: float) -> _Direction:
        dy = affine + target * centring
        dZ = -(lmi_data.matrix(dy[-1], lmi_data.spread @ dy[:-1]) - lmi_data.constant)
        XdZ = pattern.product_on_pattern(completed, dZ, Zinv)
        dX = pattern.symmetric_combination([(target, Zinv), (-1.0, state.X), (-1.0, XdZ)])
        dw = target / state.x - state.w - (state.w / state.x) * dy[:k]
        return _Direction(dy, dZ, dX, dw)

    primal_step = pattern.clique_step(state.X)
    dual_step = pattern.step(state.Z, state.factor)

    def lengths(d: _Direction, accuracy: float) -> tuple[float, float]:
        primal = min(primal_step(d.dX, 1.0 / STEP, accuracy), _max_positive_step(state.w, d.dw))
        dual = min(dual_step(d.dZ, 1.0 / STEP, accuracy), _max_positive_step(state.x, d.dy[:k]))
        return min(1.0, STEP * primal), min(1.0, STEP * dual)

    predictor = direction(0.0)
    primal, dual = lengths(predictor, PREDICTOR_ACCURACY)
    inner = pattern.inner
    predicted = (state.product + dual * inner(state.X, predictor.dZ) + primal * inner(predictor.dX, state.Z)
                 + primal * dual * inner(predictor.dX, predictor.dZ))
    predicted += float((state.w + primal * predictor.dw) @ (state.x + dual * predictor.dy[:k]))
    sigma = min(1.0, max(predicted / state.gap, 0.0) ** 3)
    step = direction(sigma * mu)
    primal, dual = lengths(step, STEP_ACCURACY)
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
        X = lmi_data.pattern.symmetric_combination([(1.0, state.X), (primal, step.dX)])
        w = state.w + primal * step.dw
        clique_factors = lmi_data.pattern.clique_factors(X)
        if clique_factors is not None and np.all(w > 0.0):
            break
        primal *= 0.5
    return _State(s, x, Z, factor, X, clique_factors, w, lmi_data.pattern.inner(X, Z))
