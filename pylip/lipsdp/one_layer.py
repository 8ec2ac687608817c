"""pylip's interior-point solver for the LipSDP certificate SDP (6) of ONE hidden layer.

For ``W0`` (``n x n_x``), ``W1`` (``n_y x n``), per-neuron sectors ``[a_i, b_i]`` and a
margin ``m`` (``m_x`` on the input block, ``m_i`` on neuron ``i``) the SDP is
``min L^2`` s.t. ``P(L^2, T) + diag(m) <= 0``, ``T = diag(t)``. With ``c_i = 2 t_i -
m_i > 0``, the Schur complement of LMI (7) on its hidden block ``-2T + diag(m_h)``
(:mod:`pylip.lipsdp.reduced` is the case ``m = 0``) is the ``(r + p)``-square

    G = [[(L^2 - m_x) I - U' diag(w t + h sigma + sigma^2 s) U,  -U' diag(h + sigma s) V'],
         [-V diag(h + sigma s) U',                               I - V diag(s) V'        ]] >= 0

with ``s_i = 1/c_i``, ``w = (b - a)^2 / 2``, ``h = (a + b) / 2``, ``sigma = h m_h``;
``U`` is ``W0`` with its columns reduced exactly to ``r = min(n_x, n)`` (its row
space, :func:`pylip.lipsdp.reduced.reduce_input`) and ``V`` is ``W1`` with its rows
reduced to ``p = min(n_y, n)``. ``G`` decreases in every ``s_i``, so ``s_i = 1/c_i``
relaxes exactly to the rotated cone ``[[c_i, 1], [1, s_i]] >= 0``, and neurons
sharing a multiplier and a margin (a layer of LipSDP-Layer) share one ``s``:
an SDP in ``y = (x, s, L^2)`` with one ``(r + p)``-square block and one two-by-two
block per ``s``, in which every multiplier and ``s`` enters ``G`` through rank-one
terms per neuron (``-w_i u_i u_i'`` for ``t_i``, ``-g_i g_i'`` with ``g_i = (sigma_i
u_i, v_i)`` for ``s_i``). That is exact: the bound is (6)'s.

It is solved by the HKM primal-dual interior-point method with Mehrotra's
predictor-corrector (Helmberg, Rendl, Vanderbei and Wolkowicz 1996; Kojima,
Shindoh and Hara 1997; Mehrotra 1992), started from a feasible dual
(:func:`_start`). For rank-one data the Newton matrix ``tr(B_j X B_k G^-1)`` is
``(f_j' X f_k)(f_k' G^-1 f_j)``: Hadamard products of ``U S U'``-type matrices
(``S = X`` or ``G^-1``), so a step costs ``O(r^2 n + r n^2)`` for them,
``O((r + p)^3)`` for the ``G`` block and the Newton solve (``2n + 1`` unknowns in the
neuron form, a handful in the layer form) instead of the ``O((n_x + n)^3)`` of
the whole LMI (:func:`_dense_solver`). Where ``n`` exceeds about ``(r + p)^2 / 2``
(or in the layer form) ``G``'s part of that matrix has lower rank than its size
and conjugate gradients preconditioned by Woodbury's identity solve it in
``O((r + p)^4 n)``, without ``n x n`` products (:func:`_low_rank_solver`; a flop
estimate chooses). 10 to 20 steps on the nets measured (:data:`MAX_STEPS` is far).

A neuron whose ``t_i`` does not enter ``G`` (``a_i = b_i``, or a zero row of ``W0``)
keeps only ``s_i >= 0``: its optimal ``t_i`` is infinite and the infimum is not
attained, so a second solve bounds ``s_i`` below where a finite ``t_i``'s cost in
``L^2`` balances its rounding in the proof (:func:`_floored`). One whose ``s_i`` does
not enter (a zero column of ``W1``, no margin: optimal ``t_i = m_i / 2``) keeps only
``c_i >= 0``; with neither, any ``t_i`` is optimal. Every iterate is strictly
feasible (``G`` and the cones have Cholesky factors), and the returned point is
checked once more on ``P`` itself (:func:`_strictly_feasible`): its ``L^2`` is an
upper bound. The method stops like :mod:`pylip.lipsdp.engine` (its tolerances).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from ..blas import blas_threads
from ..errors import InputError, SolverError
from .engine import (
    BOUND_GAP,
    DEFAULT_TOLERANCE,
    MAX_STEPS,
    RESIDUAL,
    STEP,
    EngineResult,
    _equilibrated_solver,
)
from .reduced import reduce_input, reduce_output

FORMS = ("neuron", "layer")
# the initial point (_initial_point): V diag(s) V' <= LOWER_SHARE I, c s = CONE_PRODUCT in each
# pair, L^2 START_GROWTH times the least; measured against (0.5, 2, 2): 784-1024-10 14 steps
# instead of 21, 784-256-10 12 instead of 16, 88 small nets 781 steps instead of 807
LOWER_SHARE, CONE_PRODUCT, START_GROWTH = 0.6, 2.0, 1.1
SPARSE_OVERHEAD = 5e6  # flops that the low-rank Newton solve's fixed cost per step stands for
# conjugate gradients of the low-rank Newton solve (_low_rank_solver): relative residual, steps
CG_TOLERANCE = 1e-14
CG_STEPS = 30
# the returned L^2 is raised (from 1e-15, by factors of 8) until -P - diag(m) has a Cholesky factor,
# by at most this (relative): more is a SolverError (measured: no raise needed on the test nets)
FEASIBILITY_RAISE = 1e-5


@dataclass(frozen=True)
class _Data:
    """The Schur form's constant data and the layout of ``y = (x, s, L^2)`` and of the cones.

    Per neuron ``i``: ``owner[i]`` its multiplier ``x`` (-1: ``t_i`` dropped),
    ``slot[i]`` its ``s`` (-1: dropped). Per ``s``: ``s_owner`` (-1: the cone
    ``s >= 0``, else ``[[2 x - m, 1], [1, s]] >= 0``) and ``s_margin``; per
    linear cone ``2 x - m >= 0`` (a multiplier without ``s``): ``c_owner``, ``c_margin``.
    """

    U: np.ndarray  # n x r
    V: np.ndarray  # p x n
    w: np.ndarray
    h: np.ndarray
    sigma: np.ndarray
    G0: np.ndarray
    m_h: np.ndarray
    owner: np.ndarray
    slot: np.ndarray
    n_x: int
    s_owner: np.ndarray
    s_margin: np.ndarray
    c_owner: np.ndarray
    c_margin: np.ndarray
    low_rank: bool  # the Newton system by _low_rank_solver, else by _dense_solver
    s_floor: np.ndarray  # per s: its cone is s >= s_floor where only s is kept (_floored)

    @property
    def r(self) -> int:
        return self.U.shape[1]

    @property
    def n_s(self) -> int:
        return self.s_owner.size

    @property
    def size(self) -> int:
        return self.n_x + self.n_s + 1

    @property
    def pairs(self) -> np.ndarray:
        return np.flatnonzero(self.s_owner >= 0)

    @property
    def s_only(self) -> np.ndarray:
        return np.flatnonzero(self.s_owner < 0)

    def parts(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """``x``, ``s`` and ``L^2`` of ``y``."""
        return y[: self.n_x], y[self.n_x : -1], float(y[-1])

    def per_neuron(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each neuron's ``t`` and ``s`` at ``y`` (0 where dropped)."""
        x, s, _ = self.parts(y)
        return np.append(x, 0.0)[self.owner], np.append(s, 0.0)[self.slot]  # index -1: the 0 appended

    def g_part(self, y: np.ndarray) -> np.ndarray:
        """The linear part ``G(y) - G0``."""
        U, V, r = self.U, self.V, self.r
        t, s = self.per_neuron(y)
        across = self.sigma * s
        result = np.empty_like(self.G0)
        result[:r, :r] = -(U.T * (self.w * t + self.sigma * across)) @ U + y[-1] * np.eye(r)
        result[:r, r:] = -(U.T * across) @ V.T
        result[r:, :r] = result[:r, r:].T
        result[r:, r:] = -(V * s) @ V.T
        return result

    def cones(self, y: np.ndarray, constant: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The two-by-two blocks ``[[2 x - m, 1], [1, s]]`` and the linear cones ``(2 x - m, s)`` at ``y``.

        ``constant=False``: their linear part (a direction's).
        """
        x, s, _ = self.parts(y)
        on = 1.0 if constant else 0.0
        pairs = self.pairs
        blocks = np.empty((pairs.size, 2, 2))
        blocks[:, 0, 0] = 2.0 * x[self.s_owner[pairs]] - on * self.s_margin[pairs]
        blocks[:, 0, 1] = blocks[:, 1, 0] = on
        blocks[:, 1, 1] = s[pairs]
        s_only = self.s_only
        multipliers = 2.0 * x[self.c_owner] - on * self.c_margin
        linear = np.concatenate([multipliers, s[s_only] - on * self.s_floor[s_only]])
        return blocks, linear


def _data(weights: Sequence[Any], alpha: Any, beta: Any, form: str, margin: Any) -> tuple[_Data, float]:
    """The Schur form of ``weights`` and ``m_x``, validated (module docstring)."""
    if form not in FORMS:
        raise InputError(f"the engine solves form 'neuron' or 'layer', got {form!r}")
    W0, W1 = (np.asarray(w, dtype=np.float64) for w in weights)
    n = W0.shape[0]
    a, b = _sector(alpha, beta, n)
    m_x, m_h = _margin(margin, W0.shape[1], n)
    U = np.ascontiguousarray(reduce_input(W0))
    V = reduce_output(W1)
    r, p = U.shape[1], V.shape[0]
    w, h = 0.5 * (b - a) ** 2, 0.5 * (a + b)
    sigma = h * m_h
    G0 = np.zeros((r + p, r + p))
    G0[:r, :r] = -(U.T * (h * sigma)) @ U - m_x * np.eye(r)
    G0[:r, r:] = -(U.T * h) @ V.T
    G0[r:, :r] = G0[:r, r:].T
    G0[r:, r:] = np.eye(p)
    reads_input = np.any(U != 0.0, axis=1)
    with_t = (w > 0.0) & reads_input
    with_s = np.any(V != 0.0, axis=0) | ((sigma != 0.0) & reads_input)
    if form == "neuron":
        owner = np.where(with_t, np.cumsum(with_t) - 1, -1)
    else:
        owner = np.where(np.any(with_t), np.zeros(n, dtype=np.intp), -1)
    slot, s_owner, s_margin = _groups(owner, m_h, with_s)
    _, c_owner, c_margin = _groups(owner, m_h, (owner >= 0) & ~with_s)
    n_x = int(owner.max(initial=-1)) + 1
    low_rank = _low_rank_is_cheaper(n, r + p, n_x + s_owner.size + 1)
    data = _Data(U, V, w, h, sigma, G0, m_h, owner, slot, n_x, s_owner, s_margin, c_owner, c_margin, low_rank,
                 np.zeros(s_owner.size))
    return data, m_x


def _low_rank_is_cheaper(n: int, d: int, unknowns: int) -> bool:
    """Whether a step costs fewer flops with :func:`_low_rank_solver` than with :func:`_dense_solver`.

    Dense: the ``n x n`` products and their Hadamard products (``n^2 (4 d + 30)``)
    and the Newton solve (``m^3 / 3`` for ``m`` unknowns); low-rank: ``2 m D^2 + D^3``
    for ``D = d (d + 1) / 2``, plus :data:`SPARSE_OVERHEAD` (its sparse factorisation's
    setup, measured: a 1-10-1 net took 30 ms low-rank and 13 ms dense).
    """
    rank = d * (d + 1) // 2
    low_rank = 2.0 * unknowns * rank**2 + float(rank) ** 3 + SPARSE_OVERHEAD
    return low_rank < n * n * (4.0 * d + 30.0) + unknowns**3 / 3.0


def _groups(owner: np.ndarray, margin: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, ...]:
    """Group ``members`` by (``owner``, ``margin``): each neuron's group (-1: none), each group's keys."""
    keys = np.stack([owner[members].astype(np.float64), margin[members]])
    unique, inverse = np.unique(keys, axis=1, return_inverse=True)
    group = np.full(owner.size, -1, dtype=np.intp)
    group[members] = inverse.reshape(-1)
    return group, unique[0].astype(np.intp), unique[1].copy()


def _sector(alpha: Any, beta: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron ``a``, ``b``: from numbers ``alpha < beta``, ``beta > 0``, or vectors ``a_i <= b_i``."""
    vectors = []
    for value, name in ((alpha, "alpha"), (beta, "beta")):
        try:
            vector = np.asarray(value, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise InputError(f"{name} must be a number or one number per hidden neuron: {value!r}") from None
        if vector.size not in (1, n) or np.ndim(value) > 1:
            raise InputError(f"{name} must be a number or a vector of one entry per hidden neuron ({n})")
        if not np.all(np.isfinite(vector)):
            raise InputError(f"{name} must be finite in every entry")
        vectors.append(np.broadcast_to(vector, (n,)).copy())
    a, b = vectors
    if np.ndim(alpha) == 0 and np.ndim(beta) == 0 and not (a[0] < b[0] and b[0] > 0.0):
        raise InputError(f"the sector needs alpha < beta, beta > 0; got [{alpha}, {beta}]")
    if np.any(a > b):
        first = int(np.argmax(a > b))
        raise InputError(f"alpha must not exceed beta: neuron {first} has [{a[first]}, {b[first]}]")
    return a, b


def _margin(margin: Any, n_x: int, n: int) -> tuple[float, np.ndarray]:
    """``m_x`` and ``m_h`` from a number or a vector of ``n_x + n`` entries whose first ``n_x`` are equal."""
    values = np.asarray(margin, dtype=np.float64)
    if values.ndim == 0:
        values = np.full(n_x + n, float(values))
    if values.shape != (n_x + n,):
        raise InputError(f"margin must be a number or a vector of n_x + n_h = {n_x + n} entries (the LMI's "
                         f"size), got shape {values.shape}")
    if not (np.all(np.isfinite(values)) and np.all(values >= 0.0)):
        raise InputError("margin must be finite and >= 0 in every entry")
    if np.any(values[:n_x] != values[0]):
        raise InputError("margin's first n_x entries (the input block's) must be equal")
    return float(values[0]), values[n_x:].copy()


def solve_one_layer_sdp(
    weights: Sequence[Any],
    alpha: Any,
    beta: Any,
    *,
    form: str = "neuron",
    tol: float = DEFAULT_TOLERANCE,
    max_steps: int = MAX_STEPS,
    margin: Any = 0.0,
) -> EngineResult:
    """Solve the LipSDP SDP (6) of a one-hidden-layer net ``[W0, W1]`` on its Schur form (module docstring).

    Args:
        weights: ``[W0, W1]``, best of about unit spectral norm (``pylip.certify``
            scales them exactly by powers of two first).
        alpha, beta: the slope sector (eq. 2): numbers ``alpha < beta``, ``beta > 0``,
            or one entry per hidden neuron with ``alpha_i <= beta_i``.
        form: ``"neuron"`` (diagonal ``T``) or ``"layer"`` (``T = lambda I``).
        tol: the relative duality gap at which the method stops.
        max_steps: at most this many interior-point steps.
        margin: ``m >= 0``, a number or ``n_x + n_h`` entries whose first ``n_x`` are
            equal: the SDP solved is ``P(L^2, T) + diag(m) <= 0``.

    Raises:
        InputError: bad weights, sector, form, tolerance or margin.
        SolverError: the method stalled before reaching ``tol``.
    """
    start = time.perf_counter()
    matrices = _weights(weights)
    if not (0.0 < tol < 1e-2):
        raise InputError(f"tol must be in (0, 1e-2), got {tol}")
    data, m_x = _data(matrices, alpha, beta, form, margin)
    size = sum(w.shape[1] for w in matrices)
    with blas_threads():
        state, point, lower, steps = _interior_point(data, m_x, tol, max_steps)
        floored = _floored(data, state, point, size)
        allowance = 0.0
        if floored is not None:  # alpha_i = beta_i neurons: their multipliers made finite
            data, rounding = floored
            state, point, _, more = _interior_point(data, m_x, tol, max_steps)
            steps += more
            only_s = (data.owner < 0) & (data.slot >= 0)
            allowance = float(rounding @ _multipliers(data, state.y)[only_s])
        t = _multipliers(data, state.y)
        squared = _strictly_feasible(data, m_x, float(state.y[-1]) + allowance, t)
    return EngineResult(t, squared, squared - lower, steps, time.perf_counter() - start)


def _interior_point(data: _Data, m_x: float, tol: float, max_steps: int) -> tuple[_State, _Point, float, int]:
    """The last iterate, its point, the best dual bound and the steps taken; stops as the deep engine."""
    state = _start(data, _initial_point(data, m_x))
    lower, ell = -np.inf, float(state.y[-1])
    for step in range(max_steps + 1):
        point = _Point.of(data, state)
        ell = float(state.y[-1])
        lower = max(lower, point.dual_bound(data, state))
        converged = state.gap <= tol * ell and point.dual_infeasibility() <= RESIDUAL
        if converged or ell - lower <= BOUND_GAP * ell:
            return state, point, lower, step
        if step < max_steps:
            state = _step(data, state, point)
    raise SolverError(
        f"pylip's one-layer LipSDP engine did not reach a relative gap of {tol:g} in {max_steps} steps "
        f"(gap to the dual bound {(ell - lower) / ell:.1e}); use formulation='structured'"
    )


def _weights(weights: Sequence[Any]) -> list[np.ndarray]:
    matrices = [np.asarray(w, dtype=np.float64) for w in weights]
    if len(matrices) != 2:
        raise InputError(f"the one-layer engine takes [W0, W1], got {len(matrices)} weight matrices")
    if any(w.ndim != 2 or w.size == 0 or not np.all(np.isfinite(w)) for w in matrices):
        raise InputError("every weight matrix must be a finite, non-empty 2-D array")
    if matrices[1].shape[1] != matrices[0].shape[0]:
        raise InputError(f"weights do not chain: W0 {matrices[0].shape}, W1 {matrices[1].shape}")
    if any(not np.any(w) for w in matrices):
        raise InputError("a zero weight matrix makes the network constant (L = 0): no SDP to solve")
    return matrices


def _multipliers(data: _Data, y: np.ndarray) -> np.ndarray:
    """``t`` per neuron: its multiplier, ``(1/s + m_i)/2`` where only ``s`` is kept, else ``(1 + m_i)/2``."""
    t, s = data.per_neuron(y)
    only_s = (data.owner < 0) & (data.slot >= 0)
    neither = (data.owner < 0) & (data.slot < 0)
    t[only_s] = 0.5 * (1.0 / s[only_s] + data.m_h[only_s])
    t[neither] = 0.5 * (1.0 + data.m_h[neither])
    return t


def _floored(data: _Data, state: _State, point: _Point, size: int) -> tuple[_Data, np.ndarray] | None:
    """The SDP again with ``s >= s_floor`` where only ``s`` is kept, and each such neuron's rounding ``R_i``.

    Where only ``s_i`` is kept (``a_i = b_i``, say) the optimum has ``s_i -> 0``,
    ``t_i -> infinity``: the SDP's infimum is not attained. A finite ``t_i`` costs
    about ``K_i / (2 t_i)`` in ``L^2`` (``K_i = g_i' X g_i``, the dual's price of ``s_i``
    at the first solve), and proving ``P`` with it about ``R_i t_i``, its rounding:
    ``(N + 1) eps`` times the neuron's entries of ``P`` (measured within a factor
    0.6-2.6 of the proof's repair, :mod:`pylip.lipsdp.proof`). The floor of a
    shared ``s`` balances the two, ``sqrt(sum R_i / (2 sum K_i))``, capped at half
    the initial point's ``s``; the SDP is then solved again with it, so that the
    other multipliers follow (making ``t_i`` finite afterwards alone broke ``G``
    where the output block was nearly singular at the optimum: 19-642-8 with 190
    such neurons), and ``sum R_i t_i`` is added to ``L^2``: what the proof is expected
    to need, so that certify's repair stays within its tolerance (without it a
    784-50-10 net with 17 such neurons needed 1.3e-6 and was re-solved by cvxpy for
    minutes, to a bound 4e-5 higher). ``None`` when no neuron has only ``s``.
    """
    only_s = (data.owner < 0) & (data.slot >= 0)
    if not np.any(only_s):
        return None
    norms = np.linalg.norm(data.U, axis=1)
    times, plus = data.h**2 - 0.5 * data.w, 2.0 * np.abs(data.h)
    rounding = (size + 1) * np.finfo(np.float64).eps * 2.0 * (1.0 + np.abs(times) * norms**2 + plus * norms)
    price = np.maximum(-point.dual_parts[1] / point.dual_parts[2], 0.0)
    total_rounding = _onto(data.slot, data.n_s, np.where(only_s, rounding, 0.0))
    total_price = _onto(data.slot, data.n_s, np.where(only_s, price, 0.0))
    cap = 0.5 * LOWER_SHARE / max(float(np.linalg.norm(data.V, 2)) ** 2, np.finfo(np.float64).tiny)
    floor = np.zeros(data.n_s)
    groups = data.s_only
    floor[groups] = np.minimum(np.sqrt(total_rounding[groups] / (2.0 * total_price[groups] + 1e-300)), cap)
    return dataclasses.replace(data, s_floor=floor), rounding[only_s]


def _strictly_feasible(data: _Data, m_x: float, squared: float, t: np.ndarray) -> float:
    """``L^2``, raised by the least step of a short ladder (at most :data:`FEASIBILITY_RAISE`, relative)
    that gives ``-P(L^2, T) - diag(m)`` a Cholesky factor in float64.

    ``P`` is taken with ``W0`` reduced to ``U`` (an orthogonal change of the input
    coordinates: the rest of ``P`` is ``-(L^2 - m_x) I``); ``G > 0`` proves the Schur
    form strictly feasible, this checks the point on ``P`` itself, where the
    elimination's rounding or a large ``t_i`` could still tip it.
    """
    U, V, r = data.U, data.V, data.r
    ab = data.h**2 - 0.5 * data.w
    negated = np.empty((r + t.size, r + t.size))
    negated[:r, :r] = (U.T * (2.0 * ab * t)) @ U - m_x * np.eye(r)
    negated[:r, r:] = -(U.T * (2.0 * data.h * t))
    negated[r:, :r] = negated[:r, r:].T
    negated[r:, r:] = np.diag(2.0 * t - data.m_h) - V.T @ V
    relative = 0.0
    while relative <= FEASIBILITY_RAISE:
        raised = squared * (1.0 + relative)
        trial = negated.copy()
        trial[np.arange(r), np.arange(r)] += raised
        if _cholesky(trial) is not None:
            return raised
        relative = max(8.0 * relative, 1e-15)
    raise SolverError(
        f"pylip's one-layer LipSDP engine: its point is not strictly feasible for P in float64 "
        f"within {FEASIBILITY_RAISE:g} (relative) of L^2; use formulation='structured'"
    )


def _initial_point(data: _Data, m_x: float) -> np.ndarray:
    """``V diag(s) V' <= LOWER_SHARE I``, ``c s = CONE_PRODUCT``, ``L^2`` above the least for ``G > 0``."""
    V, r = data.V, data.r
    s0 = LOWER_SHARE / max(float(np.linalg.norm(V, 2)) ** 2, np.finfo(np.float64).tiny)
    y = np.zeros(data.size)
    kept = data.owner >= 0
    np.maximum.at(y, data.owner[kept], 0.5 * (CONE_PRODUCT / s0 + data.m_h[kept]))
    pairs = data.pairs
    c = 2.0 * y[data.s_owner[pairs]] - data.s_margin[pairs]
    y[data.n_x + pairs] = CONE_PRODUCT / c
    y[data.n_x + data.s_only] = s0
    G = data.G0 + data.g_part(y)
    schur = -G[:r, :r] + G[:r, r:] @ np.linalg.solve(G[r:, r:], G[r:, :r])
    least = float(np.linalg.eigvalsh(0.5 * (schur + schur.T))[-1])
    y[-1] = START_GROWTH * max(least, 0.0) + 1e-3 * abs(least) + np.finfo(np.float64).tiny
    return y


# ---- iterates


@dataclass(frozen=True)
class _State:
    """An iterate: ``y`` strictly feasible, its slacks ``(G, Zp, Zl)``; the dual ``(XG, Xp, Xl)``, PD.

    ``G_factor`` and ``X_factor`` are Cholesky factors of ``G`` and ``XG``.
    """

    y: np.ndarray
    G: np.ndarray
    G_factor: np.ndarray
    Zp: np.ndarray  # two-by-two blocks
    Zl: np.ndarray  # linear cones
    XG: np.ndarray
    X_factor: np.ndarray
    Xp: np.ndarray
    Xl: np.ndarray

    @property
    def gap(self) -> float:
        """``<X, Z>``: the duality gap (the dual is kept feasible up to the steps' rounding)."""
        return float(np.sum(self.XG * self.G) + np.sum(self.Xp * self.Zp) + self.Xl @ self.Zl)

    @property
    def degree(self) -> int:
        return self.G.shape[0] + 2 * self.Zp.shape[0] + self.Zl.size


def _slacks(data: _Data, y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """``G(y)``, its Cholesky factor and the cones at ``y``; the factor is ``None`` if any is not PD."""
    G = data.G0 + data.g_part(y)
    G = 0.5 * (G + G.T)
    Zp, Zl = data.cones(y)
    factor = _cholesky(G) if _pairs_positive(Zp) and np.all(Zl > 0.0) else None
    return G, factor, Zp, Zl


def _cholesky(matrix: np.ndarray) -> np.ndarray | None:
    """The lower Cholesky factor, or ``None`` if ``matrix`` is not positive definite."""
    factor, info = scipy.linalg.lapack.dpotrf(matrix, lower=1, clean=1)
    return factor if info == 0 else None


def _inverse(factor: np.ndarray) -> np.ndarray:
    """``(L L')^-1`` from the lower Cholesky factor ``L``."""
    inverse, info = scipy.linalg.lapack.dpotri(factor, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("a singular Cholesky factor")
    return np.tril(inverse) + np.tril(inverse, -1).T


def _determinants(blocks: np.ndarray) -> np.ndarray:
    return blocks[:, 0, 0] * blocks[:, 1, 1] - blocks[:, 0, 1] * blocks[:, 1, 0]


def _pair_inverse(blocks: np.ndarray) -> np.ndarray:
    inverse = np.empty_like(blocks)
    inverse[:, 0, 0], inverse[:, 1, 1] = blocks[:, 1, 1], blocks[:, 0, 0]
    inverse[:, 0, 1], inverse[:, 1, 0] = -blocks[:, 0, 1], -blocks[:, 1, 0]
    return inverse / _determinants(blocks)[:, None, None]


def _pairs_positive(blocks: np.ndarray) -> bool:
    return bool(np.all(blocks[:, 0, 0] > 0.0) and np.all(_determinants(blocks) > 0.0))


def _start(data: _Data, y: np.ndarray) -> _State:
    """The first iterate: ``y`` (``L^2`` doubled until rounding leaves it strictly feasible), a feasible dual.

    ``XG = G^-1 / tr((G^-1)_xx)`` meets the dual's equation of ``L^2``; the cones'
    blocks then meet those of the multipliers and the ``s`` exactly: ``X_22 =
    sum g_i' XG g_i`` over the ``s``'s neurons, ``X_11`` an equal share of
    ``sum w_i u_i' XG u_i / 2`` over the multiplier's, and ``X_12`` the geometric
    mean of ``-X_11 / s`` and ``-X_22 / c`` (central where they agree). Starting
    dual-infeasible from ``theta Z^-1`` took 10 to 40 % more steps.
    """
    for _ in range(60):
        G, G_factor, Zp, Zl = _slacks(data, y)
        if G_factor is not None:
            break
        y = y.copy()
        y[-1] = 2.0 * y[-1]
    else:
        raise SolverError("pylip's one-layer LipSDP engine found no strictly feasible initial point")
    XG = _inverse(G_factor)
    XG /= float(np.trace(XG[: data.r, : data.r]))
    X_factor = _cholesky(XG)
    if X_factor is None:
        raise SolverError("pylip's one-layer LipSDP engine: the initial point is too ill-conditioned")
    t_pairing, s_pairing, _ = _g_pairing(data, XG)
    per_x = _onto(data.owner, data.n_x, -0.5 * t_pairing)
    shares = np.bincount(np.concatenate([data.s_owner[data.pairs], data.c_owner]), minlength=data.n_x)
    per_x /= np.maximum(shares, 1)
    pairs = data.pairs
    Xp = np.empty_like(Zp)
    Xp[:, 0, 0] = per_x[data.s_owner[pairs]]
    Xp[:, 1, 1] = _onto(data.slot, data.n_s, -s_pairing)[pairs]
    Xp[:, 0, 1] = Xp[:, 1, 0] = -np.sqrt(Xp[:, 0, 0] * Xp[:, 1, 1] / (Zp[:, 0, 0] * Zp[:, 1, 1]))
    Xl = np.concatenate([per_x[data.c_owner], _onto(data.slot, data.n_s, -s_pairing)[data.s_only]])
    return _State(y, G, G_factor, Zp, Zl, XG, X_factor, Xp, Xl)


def _onto(index: np.ndarray, count: int, rows: np.ndarray) -> np.ndarray:
    """Rows per neuron summed into rows per variable (``index[i]``: neuron ``i``'s, -1: none)."""
    kept = np.flatnonzero(index >= 0)
    if kept.size == count:  # one neuron per variable (each variable has one at least)
        result = np.empty((count, *rows.shape[1:]))
        result[index[kept]] = rows[kept]
        return result
    indicator = scipy.sparse.csr_matrix((np.ones(kept.size), (index[kept], kept)), shape=(count, index.size))
    return np.asarray(indicator @ rows)


def _g_pairing(data: _Data, S: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``tr(B S)`` of ``G``'s part: ``-w_i u_i' S u_i`` (``t_i``), ``-g_i' S g_i`` (``s_i``), ``tr(S_xx)``."""
    U, V, r, sigma = data.U, data.V, data.r, data.sigma
    uu = np.sum((U @ S[:r, :r]) * U, axis=1)
    uv = np.sum((U @ S[:r, r:]) * V.T, axis=1)
    vv = np.sum((V.T @ S[r:, r:]) * V.T, axis=1)
    return -data.w * uu, -(sigma**2 * uu + 2.0 * sigma * uv + vv), float(np.trace(S[:r, :r]))


def _pairing(data: _Data, per_neuron: tuple[np.ndarray, np.ndarray, float], Sp: np.ndarray,
             Sl: np.ndarray) -> np.ndarray:
    """``tr(B_j S)`` for every variable ``y_j``: ``G``'s part (per neuron, :func:`_g_pairing`), the cones'."""
    t_part, s_part, ell_part = per_neuron
    n_x, n_s, pairs = data.n_x, data.n_s, data.pairs
    result = np.concatenate([_onto(data.owner, n_x, t_part), _onto(data.slot, n_s, s_part), [ell_part]])
    np.add.at(result, data.s_owner[pairs], 2.0 * Sp[:, 0, 0])
    result[n_x + pairs] += Sp[:, 1, 1]
    c_count = data.c_owner.size
    np.add.at(result, data.c_owner, 2.0 * Sl[:c_count])
    result[n_x + data.s_only] += Sl[c_count:]
    return result


@dataclass(frozen=True)
class _Products:
    """One symmetric ``S`` (``XG`` or ``G^-1``) against the neurons' rank-one data ``u_i`` and ``g_i``."""

    A: np.ndarray  # u_i' S_xx u_j
    M: np.ndarray  # u_i' S_x. g_j
    N: np.ndarray  # g_i' S g_j
    Su: np.ndarray  # rows (S_xx u_i)'
    Sg: np.ndarray  # rows ((S g_i)_x)'

    @staticmethod
    def of(data: _Data, S: np.ndarray) -> _Products:
        U, V, r, sigma = data.U, data.V, data.r, data.sigma
        Su = U @ S[:r, :r]
        A = Su @ U.T
        C = (U @ S[:r, r:]) @ V  # u_i' S_xy v_j
        D = V.T @ (S[r:, r:] @ V)  # v_i' S_yy v_j
        M = A * sigma[None, :] + C
        N = sigma[:, None] * M + C.T * sigma[None, :] + D
        Sg = sigma[:, None] * Su + V.T @ S[r:, :r]
        return _Products(A, M, N, Su, Sg)

    def pairing(self, data: _Data) -> tuple[np.ndarray, np.ndarray]:
        """:func:`_g_pairing`'s per-neuron parts, from the products' diagonals."""
        return -data.w * np.diag(self.A), -np.diag(self.N)


@dataclass(frozen=True)
class _Point:
    """What the stop test and a step need at an iterate: ``G^-1``, the cones' inverses, ``tr(B_j S)``.

    ``dual_parts`` and ``gradient_parts`` are :func:`_g_pairing` of ``XG`` and
    ``G^-1`` (per neuron); ``products`` serve the dense Newton matrix only.
    """

    G_inverse: np.ndarray
    Zp_inverse: np.ndarray
    dual_parts: tuple[np.ndarray, np.ndarray, float]
    gradient_parts: tuple[np.ndarray, np.ndarray, float]
    dual_pairing: np.ndarray  # tr(B_j X), the dual's equations' left sides
    products: tuple[_Products, _Products] | None

    @staticmethod
    def of(data: _Data, state: _State) -> _Point:
        G_inverse = _inverse(state.G_factor)
        r = data.r
        if data.low_rank:
            products = None
            dual_parts, gradient_parts = _g_pairing(data, state.XG), _g_pairing(data, G_inverse)
        else:
            products = (_Products.of(data, state.XG), _Products.of(data, G_inverse))
            dual_parts = (*products[0].pairing(data), float(np.trace(state.XG[:r, :r])))
            gradient_parts = (*products[1].pairing(data), float(np.trace(G_inverse[:r, :r])))
        dual_pairing = _pairing(data, dual_parts, state.Xp, state.Xl)
        return _Point(G_inverse, _pair_inverse(state.Zp), dual_parts, gradient_parts, dual_pairing, products)

    def dual_bound(self, data: _Data, state: _State) -> float:
        """A lower bound on the optimum from the dual ``X >= 0`` (weak duality).

        For every feasible ``y``: ``0 <= <X, Z(y)> = <X, Z0> + sum_j y_j tr(B_j X)``
        with ``tr(B_{L^2} X) = tr(XG_xx) > 0`` and every other ``y_j >= 0``, so
        ``L^2 >= -<X, Z0> / tr(XG_xx)`` when every other ``tr(B_j X) <= 0`` (0 at
        a feasible dual); positive ones (rounding) are charged at the current ``y``.
        """
        pairs = data.pairs
        constant = float(np.sum(state.XG * data.G0))
        constant += float(2.0 * np.sum(state.Xp[:, 0, 1]) - state.Xp[:, 0, 0] @ data.s_margin[pairs])
        c_count = data.c_owner.size
        constant -= float(state.Xl[:c_count] @ data.c_margin + state.Xl[c_count:] @ data.s_floor[data.s_only])
        charged = float(np.maximum(self.dual_pairing[:-1], 0.0) @ state.y[:-1])
        return (-constant - charged) / self.dual_pairing[-1]

    def dual_infeasibility(self) -> float:
        """The largest violation of the dual's equations ``tr(B_j X) = [j is L^2]``."""
        residual = self.dual_pairing.copy()
        residual[-1] -= 1.0
        return float(np.max(np.abs(residual)))


# ---- one step


def _cone_part(data: _Data, state: _State, point: _Point) -> scipy.sparse.csr_matrix:
    """The cones' part of the Newton matrix ``tr(B_j X B_k Z^-1)``: two-by-two per pair, diagonal else."""
    n_x, pairs, c_count = data.n_x, data.pairs, data.c_owner.size
    on_x, on_s = data.s_owner[pairs], n_x + pairs
    Xp, Zi = state.Xp, point.Zp_inverse
    across = 2.0 * Xp[:, 0, 1] * Zi[:, 0, 1]
    rows = np.concatenate([on_x, on_x, on_s, on_s, data.c_owner, n_x + data.s_only])
    cols = np.concatenate([on_x, on_s, on_x, on_s, data.c_owner, n_x + data.s_only])
    values = np.concatenate([
        4.0 * Xp[:, 0, 0] * Zi[:, 0, 0], across, across, Xp[:, 1, 1] * Zi[:, 1, 1],  # d(2x - m)/dx = 2
        4.0 * state.Xl[:c_count] / state.Zl[:c_count], state.Xl[c_count:] / state.Zl[c_count:],
    ])
    return scipy.sparse.coo_matrix((values, (rows, cols)), shape=(data.size, data.size)).tocsr()


def _dense_solver(data: _Data, state: _State, point: _Point) -> Callable[[np.ndarray], np.ndarray]:
    """Solves with the Newton matrix, assembled densely: ``G``'s part is ``(f_j' X f_k)(f_k' G^-1 f_j)``.

    That is, per pair of neurons (rank-one data), Hadamard products of the
    :class:`_Products` summed onto the variables; symmetric.
    """
    assert point.products is not None
    X, Z = point.products
    n_x, n_s, w, r = data.n_x, data.n_s, data.w, data.r
    xs = slice(n_x, n_x + n_s)
    H = np.empty((data.size, data.size))

    def onto_x(rows: np.ndarray) -> np.ndarray:
        return _onto(data.owner, n_x, rows)

    def onto_s(rows: np.ndarray) -> np.ndarray:
        return _onto(data.slot, n_s, rows)

    H[:n_x, :n_x] = onto_x(onto_x(np.outer(w, w) * X.A * Z.A).T)
    H[:n_x, xs] = onto_x(onto_s((w[:, None] * X.M * Z.M).T).T)
    H[xs, xs] = onto_s(onto_s(X.N * Z.N).T)
    H[:n_x, -1] = onto_x(-w * np.sum(X.Su * Z.Su, axis=1))
    H[xs, -1] = onto_s(-np.sum(X.Sg * Z.Sg, axis=1))
    H[-1, -1] = float(np.sum(state.XG[:r, :r] * point.G_inverse[:r, :r]))
    H[xs, :n_x] = H[:n_x, xs].T
    H[-1, :-1] = H[:-1, -1]
    cones = _cone_part(data, state, point).tocoo()
    np.add.at(H, (cones.row, cones.col), cones.data)
    return _equilibrated_solver(H)


def _low_rank_solver(data: _Data, state: _State, point: _Point) -> Callable[[np.ndarray], np.ndarray]:
    """Solves with the Newton matrix ``C + Phi' K Phi`` by conjugate gradients, preconditioned by Woodbury.

    ``G``'s part is ``tr(B_j X B_k G^-1) = Phi_j' K Phi_k`` with ``Phi_j = svec(B_j)``
    (``D = (r + p)(r + p + 1)/2`` entries) and ``K`` the symmetrised Kronecker
    product of ``X`` and ``G^-1``: rank ``D`` at most. With ``K = R R'`` and ``W =
    R' Phi`` the matrix is ``C + W'W``, ``C`` the cones' part (sparse, positive
    definite on the multipliers and ``s``), so Woodbury's identity (``L^2``
    bordered) solves it in ``O(D^2 m + D^3)`` for ``m`` unknowns instead of
    ``O(m^3)``, without ``n x n`` products. Near the optimum ``C`` spans many
    decades and that solve loses digits (2-800-2: the dual's residual grew from
    1e-13 to 1e-2 in five steps with two refinements), so it preconditions
    conjugate gradients on ``C + Phi' K Phi`` itself, to :data:`CG_TOLERANCE`;
    where they do not get there in :data:`CG_STEPS`, the matrix is formed and
    solved densely.
    """
    d = state.XG.shape[0]
    iu, ju = np.triu_indices(d)
    K = _symmetric_kronecker(state.XG, point.G_inverse, iu, ju)
    Phi = _svec_columns(data, iu, ju)
    W = _square_root(K).T @ Phi
    cones = _cone_part(data, state, point)
    scale = 1.0 / np.sqrt(cones.diagonal() + np.sum(W * W, axis=0) + np.finfo(np.float64).tiny)
    D = scipy.sparse.diags(scale)
    scaled_cones = (D @ cones @ D).tocsc()
    Ws = W * scale[None, :]
    Wz, w_ell = Ws[:, :-1], Ws[:, -1]
    lu = scipy.sparse.linalg.splu(scaled_cones[:-1, :-1].tocsc())
    CW = lu.solve(np.ascontiguousarray(Wz.T))
    capacitance = scipy.linalg.cho_factor(np.eye(W.shape[0]) + Wz @ CW, check_finite=False)

    def block_solve(v: np.ndarray) -> np.ndarray:
        Cv = lu.solve(v)
        return Cv - CW @ scipy.linalg.cho_solve(capacitance, Wz @ Cv, check_finite=False)

    border = Wz.T @ w_ell
    solved_border = block_solve(border)
    pivot = float(w_ell @ w_ell - border @ solved_border)

    def woodbury(rhs: np.ndarray) -> np.ndarray:
        rhs = scale * rhs
        solved = block_solve(rhs[:-1])
        ell = (rhs[-1] - border @ solved) / pivot
        return scale * np.append(solved - solved_border * ell, ell)

    def product(v: np.ndarray) -> np.ndarray:
        return cones @ v + Phi.T @ (K @ (Phi @ v))

    def solve(rhs: np.ndarray) -> np.ndarray:
        solution = _conjugate_gradients(product, woodbury, rhs)
        if solution is not None:
            return solution
        dense = cones.toarray() + Phi.T @ K @ Phi
        return _equilibrated_solver(0.5 * (dense + dense.T))(rhs)

    return solve


def _conjugate_gradients(
    product: Callable[[np.ndarray], np.ndarray], preconditioner: Callable[[np.ndarray], np.ndarray],
    rhs: np.ndarray,
) -> np.ndarray | None:
    """``x`` with ``||A x - rhs|| <= CG_TOLERANCE ||rhs||`` (``A`` SPD, given by ``product``), or ``None``."""
    x = preconditioner(rhs)
    residual = rhs - product(x)
    goal = CG_TOLERANCE * float(np.linalg.norm(rhs))
    z = preconditioner(residual)
    direction, rz = z, float(residual @ z)
    for _ in range(CG_STEPS):
        if float(np.linalg.norm(residual)) <= goal:
            return x
        along = product(direction)
        curvature = float(direction @ along)
        if not curvature > 0.0:
            return None
        x = x + (rz / curvature) * direction
        residual = residual - (rz / curvature) * along
        z = preconditioner(residual)
        rz, previous = float(residual @ z), rz
        direction = z + (rz / previous) * direction
    return x if float(np.linalg.norm(rhs - product(x))) <= goal else None


def _symmetric_kronecker(X: np.ndarray, Y: np.ndarray, iu: np.ndarray, ju: np.ndarray) -> np.ndarray:
    """``K_pq = tr(E_p X E_q Y)`` (symmetrised) for the orthonormal basis ``E_p`` of symmetric matrices."""
    weight = np.where(iu == ju, 0.5, np.sqrt(0.5))
    a, b, c, e = iu[:, None], ju[:, None], iu[None, :], ju[None, :]
    K = X[b, c] * Y[e, a] + X[b, e] * Y[c, a] + X[a, c] * Y[e, b] + X[a, e] * Y[c, b]
    K *= weight[:, None] * weight[None, :]
    return 0.5 * (K + K.T)


def _square_root(K: np.ndarray) -> np.ndarray:
    """``R`` with ``R R' = K`` (PSD): Cholesky, or the clipped eigen-decomposition where rounding fails it."""
    factor = _cholesky(K)
    if factor is not None:
        return factor
    values, vectors = np.linalg.eigh(K)
    return vectors * np.sqrt(np.maximum(values, 0.0))[None, :]


def _svec_columns(data: _Data, iu: np.ndarray, ju: np.ndarray) -> np.ndarray:
    """``svec(B_j)`` of every variable: ``-w_i u_i u_i'``, ``-g_i g_i'`` summed per variable, and ``E``."""
    r, U, V = data.r, data.U, data.V
    scale = np.where(iu == ju, 1.0, np.sqrt(2.0))[:, None]
    inputs = np.zeros((data.G0.shape[0], U.shape[0]))
    inputs[:r] = U.T
    reads = np.vstack([data.sigma[None, :] * U.T, V])
    t_columns = -data.w[None, :] * scale * inputs[iu] * inputs[ju]
    s_columns = -scale * reads[iu] * reads[ju]
    ell = ((iu == ju) & (iu < r)).astype(np.float64)[:, None]
    t_part, s_part = _onto(data.owner, data.n_x, t_columns.T).T, _onto(data.slot, data.n_s, s_columns.T).T
    return np.hstack([t_part, s_part, ell])


@dataclass(frozen=True)
class _Direction:
    """A step of ``y`` (with its slacks' change) and of the dual ``X``, block by block."""

    dy: np.ndarray
    dG: np.ndarray
    dZp: np.ndarray
    dZl: np.ndarray
    dXG: np.ndarray
    dXp: np.ndarray
    dXl: np.ndarray


@dataclass(frozen=True)
class _Correction:
    """Mehrotra's second-order term of a predictor ``a``: ``sym(dX_a dZ_a Z^-1)``, block by block."""

    G: np.ndarray
    pairs: np.ndarray
    linear: np.ndarray

    @staticmethod
    def of(state: _State, point: _Point, predictor: _Direction) -> _Correction:
        product = predictor.dXG @ predictor.dG @ point.G_inverse
        pairs = predictor.dXp @ predictor.dZp @ point.Zp_inverse
        return _Correction(0.5 * (product + product.T), 0.5 * (pairs + np.transpose(pairs, (0, 2, 1))),
                           predictor.dXl * predictor.dZl / state.Zl)

    def pairing(self, data: _Data) -> np.ndarray:
        """``tr(B_j C)`` for every variable: the corrector's change of the Newton equations."""
        return _pairing(data, _g_pairing(data, self.G), self.pairs, self.linear)


def _direction(data: _Data, state: _State, point: _Point, dy: np.ndarray, target: float,
               correction: _Correction | None = None) -> _Direction:
    """The HKM direction of ``dy``: ``dZ = sum_j dy_j B_j``, ``dX = target Z^-1 - X - sym(X dZ Z^-1) - C``.

    ``C`` is the predictor's second-order term (:class:`_Correction`; none for the predictor).
    """
    dG = data.g_part(dy)
    dZp, dZl = data.cones(dy, constant=False)
    product = state.XG @ dG @ point.G_inverse
    pairs = state.Xp @ dZp @ point.Zp_inverse
    dXG = target * point.G_inverse - state.XG - 0.5 * (product + product.T)
    dXp = target * point.Zp_inverse - state.Xp - 0.5 * (pairs + np.transpose(pairs, (0, 2, 1)))
    dXl = (target - state.Xl * dZl) / state.Zl - state.Xl
    if correction is not None:
        dXG, dXp, dXl = dXG - correction.G, dXp - correction.pairs, dXl - correction.linear
    return _Direction(dy, dG, dZp, dZl, dXG, dXp, dXl)


def _max_step(matrix: np.ndarray, change: np.ndarray) -> float:
    """``min(1 / STEP, h)`` for the largest ``h`` with ``matrix + h change >= 0`` (``matrix`` PD).

    A step that ``STEP`` would cut to 1 or more is only checked (one factorisation);
    else ``h`` is the reciprocal of the lowest eigenvalue of the pencil ``(change, matrix)``.
    """
    if _cholesky(matrix + change / STEP) is not None:
        return 1.0 / STEP
    low = float(scipy.linalg.eigh(change, matrix, eigvals_only=True, subset_by_index=[0, 0],
                                  check_finite=False)[0])
    return -1.0 / low if low < 0.0 else 1.0 / STEP


def _max_pair_step(blocks: np.ndarray, change: np.ndarray) -> float:
    """The largest ``h`` keeping every two-by-two block of ``blocks + h change`` PSD (``blocks`` PD)."""
    if blocks.shape[0] == 0:
        return np.inf
    product = _pair_inverse(blocks) @ change  # its eigenvalues are the pencil's (real)
    half_trace = 0.5 * (product[:, 0, 0] + product[:, 1, 1])
    low = half_trace - np.sqrt(np.maximum(half_trace**2 - _determinants(product), 0.0))
    return float(np.min(-1.0 / low[low < 0.0])) if np.any(low < 0.0) else np.inf


def _max_linear_step(values: np.ndarray, change: np.ndarray) -> float:
    falling = change < 0.0
    return float(np.min(-values[falling] / change[falling])) if np.any(falling) else np.inf


def _lengths(state: _State, d: _Direction) -> tuple[float, float]:
    """Step lengths of ``y`` and of ``X``: ``STEP`` times the way to their cones' boundary, at most 1."""
    along = min(_max_step(state.G, d.dG), _max_pair_step(state.Zp, d.dZp), _max_linear_step(state.Zl, d.dZl))
    dual = min(_max_step(state.XG, d.dXG), _max_pair_step(state.Xp, d.dXp), _max_linear_step(state.Xl, d.dXl))
    return min(1.0, STEP * along), min(1.0, STEP * dual)


def _step(data: _Data, state: _State, point: _Point) -> _State:
    """One Mehrotra predictor-corrector step.

    The HKM equations for the target ``mu`` are ``H dy = mu g - e_{L^2} - q`` with
    ``g_j = tr(B_j Z^-1)`` and ``q`` the corrector's second-order term (none for
    the predictor); the centring weight is ``(predicted gap / gap)^3``. (Without
    the corrector 784-256-10 took 32 steps instead of 16.)
    """
    gradient = _pairing(data, point.gradient_parts, point.Zp_inverse, 1.0 / state.Zl)
    objective = np.zeros(data.size)
    objective[-1] = 1.0
    solve = (_low_rank_solver if point.products is None else _dense_solver)(data, state, point)
    predictor = _direction(data, state, point, solve(-objective), 0.0)
    along, dual = _lengths(state, predictor)
    predicted = float(np.sum((state.XG + dual * predictor.dXG) * (state.G + along * predictor.dG)))
    predicted += float(np.sum((state.Xp + dual * predictor.dXp) * (state.Zp + along * predictor.dZp)))
    predicted += float((state.Xl + dual * predictor.dXl) @ (state.Zl + along * predictor.dZl))
    target = min(1.0, max(predicted / state.gap, 0.0) ** 3) * state.gap / state.degree
    correction = _Correction.of(state, point, predictor)
    rhs = target * gradient - objective - correction.pairing(data)
    corrector = _direction(data, state, point, solve(rhs), target, correction)
    along, dual = _lengths(state, corrector)
    return _next_state(data, state, corrector, along, dual)


def _next_state(data: _Data, state: _State, d: _Direction, along: float, dual: float) -> _State:
    """Take the steps, halving each until its point is strictly inside its cones (rounding at the edge)."""
    while True:
        y = state.y + along * d.dy
        G, G_factor, Zp, Zl = _slacks(data, y)
        if G_factor is not None:
            break
        along *= 0.5
    while True:
        XG = state.XG + dual * d.dXG
        XG = 0.5 * (XG + XG.T)
        Xp, Xl = state.Xp + dual * d.dXp, state.Xl + dual * d.dXl
        X_factor = _cholesky(XG) if _pairs_positive(Xp) and np.all(Xl > 0.0) else None
        if X_factor is not None:
            break
        dual *= 0.5
    return _State(y, G, G_factor, Zp, Zl, XG, X_factor, Xp, Xl)
