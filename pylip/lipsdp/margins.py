"""Class-pair (margin) and one-logit Lipschitz certificates.

A classifier is certified at ``x`` (class ``y``) on the l2 ball of radius
``eps`` when ``f_y - f_j`` stays positive there for every ``j != y``. With
``L_yj`` a Lipschitz bound of the scalar map ``f_y - f_j`` this holds when
``f_y(x) - f_j(x) > L_yj eps`` for all ``j`` (Tsuzuku et al. 2018's margin
argument with one constant per pair; :func:`pylip.robustness.pairwise_certified_mask`).
``f_i - f_j`` is the network with the last layer ``(e_i - e_j)' W_l``, so
``L_ij`` is a LipSDP certificate (eq. 5-6) of that one-output network. The
global bound ``L`` of the logit map gives ``L_ij <= sqrt(2) L`` (the factor of
the global rule), and each pair bound is capped there.

Two ways to get ``L_ij`` (``method``):

* ``"sdp"``: the SDP (6) for each pair network; tight, one solve per pair.
  Where :func:`pylip.certify` would take the engine (deep nets, and one hidden
  layer whose pair cone ``min(n_x, n_h) + 1`` has at least 30 rows, no solver
  named), each pair is solved by the engine alone (:func:`auxiliary_certificate`;
  a pair on which it stalls gets the ``"fixed_T"`` bound). Otherwise one hidden
  layer uses the reduced formulation, compiled once for all pairs with the row
  as a cvxpy parameter (:class:`ReducedPairProblem`), and deeper nets solve with
  ``W0`` reduced to its row space (:func:`certify_reduced_input`).
* ``"fixed_T"``: the global certificate's multiplier ``T`` with each pair's
  own smallest ``L^2`` for it, a Schur complement
  (:func:`pylip.lmi.minimal_squared_bound`) and no SDP. Since
  ``c c' <= 2 W_l' W_l`` for ``c' = (e_i - e_j)' W_l``, this is never above
  ``sqrt(2) L``; cheaper by the number of pairs, looser than ``"sdp"``.
* ``"auto"`` (default): ``"sdp"`` for one hidden layer, and for deeper nets
  where the engine solves the pair SDPs; ``"fixed_T"`` for deeper nets with a
  named solver (cvxpy: 10 x the global bound's time at 64-16-16-10). With the
  engine, the 45 pairs of the digits example's nominal and L2 nets (CPU
  seconds; ``bench/margins.py`` measures random nets) took 2.5 s at
  64-16-16-10 (mean ``L_ij / (sqrt(2) L)`` 0.58 against 0.73 with
  ``"fixed_T"``, 0.16 s), 23 s at 64-64-64-10 (0.57-0.63
  against 0.81-0.83, 0.6-0.8 s) and 122 s at 64-128-128-10 (0.67 against 0.88,
  1.8 s): about 45 times the global bound, for bounds a quarter tighter.

Every bound is proven for the weights as given (:func:`pylip.certify`'s proof
and repair). The difference row ``W_l[i] - W_l[j]`` is formed in float64; if
that rounds (it does not for float32-trained weights, whose differences are
exact in float64) the rounding error ``delta`` (exact, by Knuth's TwoSum) adds
``||delta||_2`` times a proven bound of the hidden map (product of proven
spectral norms and steepest slopes).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CertificateError, InputError, SolverError
from ..validation import as_certificate_of, as_flag, as_weight_list
from . import lmi, proof
from .certificate import (
    REPAIR_TOLERANCE,
    Certificate,
    _checked_certificate,
    _engine_only_certificate,
    _engine_solves,
    _repair_size,
    certify,
    slope_sector,
)

METHODS = ("auto", "sdp", "fixed_T")
UNIT = 2.0**-53


@dataclass(frozen=True)
class MarginBounds:
    """Proven Lipschitz bounds of the logit differences ``f_i - f_j`` and of single logits ``f_i``.

    Attributes:
        pair_bounds: ``n_out x n_out``, symmetric, ``L_ij`` (``inf`` where not
            computed, 0 on the diagonal).
        logit_bounds: ``n_out`` bounds of ``f_i`` (``inf`` where not computed).
        global_bound: the proven bound ``L`` of the whole logit map.
        method: ``"sdp"`` or ``"fixed_T"`` (what ``"auto"`` chose).
        certificates: the proven certificate of each pair ``(i, j)``, ``i < j``, and logit ``i``
            (the global certificate itself where a pair keeps the cap ``sqrt(2) L``).
        solve_time: seconds for all pair and logit bounds (not the global one).
    """

    pair_bounds: np.ndarray
    logit_bounds: np.ndarray
    global_bound: float
    method: str
    certificates: dict[Any, Certificate] = field(repr=False)
    solve_time: float = 0.0

    def pair(self, i: int, j: int) -> float:
        """``L_ij``, the bound of ``f_i - f_j``."""
        return float(self.pair_bounds[i, j])


def certify_margins(
    weights: Sequence[Any],
    *,
    pairs: Iterable[tuple[int, int]] | None = None,
    logits: bool = True,
    activation: str = "tanh",
    alpha: Any = None,
    beta: Any = None,
    solver: str | None = None,
    method: str = "auto",
    global_certificate: Certificate | None = None,
) -> MarginBounds:
    """Proven bounds ``L_ij`` of ``f_i - f_j`` for every pair (or ``pairs``), and of each logit ``f_i``.

    Args:
        weights: ``[W0, ..., Wl]`` of the logit map (``Wl`` has one row per class).
        pairs: class pairs ``(i, j)``, ``i != j``; ``None``: all pairs.
        logits: also bound each logit ``f_i`` (the net with last layer ``e_i' W_l``).
        activation, alpha, beta, solver: as in :func:`pylip.certify` (per-neuron sectors too).
        method: ``"auto"``, ``"sdp"`` or ``"fixed_T"`` (module docstring).
        global_certificate: the proven certificate of the whole net, if already
            computed (else it is computed here): it caps every pair at
            ``sqrt(2) L`` and gives ``"fixed_T"`` its ``T``.

    Returns:
        A :class:`MarginBounds`.
    """
    matrices = as_weight_list(weights, min_layers=1)
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    n_out = matrices[-1].shape[0]
    if n_out < 2:
        raise InputError(f"margin certificates need at least 2 outputs (classes), the net has {n_out}")
    chosen = _pairs(pairs, n_out)
    logits = as_flag(logits, "logits")
    options = dict(activation=activation, alpha=alpha, beta=beta, solver=solver)
    if global_certificate is not None:
        global_certificate = as_certificate_of(global_certificate, "global_certificate", matrices)
    glob = global_certificate or certify(matrices, **options)
    if method == "auto":
        method = "sdp" if len(matrices) <= 2 or _engine_solves_pairs(matrices, options) else "fixed_T"
    start = time.perf_counter()
    cap = _sqrt2_times(glob.bound)
    pair_bounds = np.full((n_out, n_out), np.inf)
    np.fill_diagonal(pair_bounds, 0.0)
    logit_bounds = np.full(n_out, np.inf)
    certificates: dict[Any, Certificate] = {}
    compiled = _compiled_pair_problem(matrices, method, options)
    for i, j in chosen:
        row, residual = difference_row(matrices[-1], i, j)
        cert = _one_output_certificate(matrices, row, glob, method, options, compiled)
        bound = cap if cert is glob else cert.bound + _rounding_correction(matrices, residual, cert.alpha,
                                                                          cert.beta)
        certificates[(i, j)] = cert
        pair_bounds[i, j] = pair_bounds[j, i] = min(bound, cap)
    if logits:
        for i in range(n_out):
            cert = _one_output_certificate(matrices, matrices[-1][i : i + 1], glob, method, options, compiled)
            certificates[i] = cert
            logit_bounds[i] = min(cert.bound, glob.bound)  # |f_i(x) - f_i(y)| <= ||f(x) - f(y)||
    return MarginBounds(pair_bounds, logit_bounds, glob.bound, method, certificates,
                        time.perf_counter() - start)


def _class_index(value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(value)
    return int(value)


def _pairs(pairs: Iterable[tuple[int, int]] | None, n_out: int) -> list[tuple[int, int]]:
    if pairs is None:
        return [(i, j) for i in range(n_out) for j in range(i + 1, n_out)]
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Iterable):
        raise InputError(f"pairs must be a list of (i, j) class index pairs or None, got {pairs!r}")
    chosen = []
    for item in pairs:
        try:
            i, j = (_class_index(v) for v in item)
        except (TypeError, ValueError):
            raise InputError(f"pairs must hold (i, j) class index pairs of integers, got {item!r}") from None
        if not (0 <= i < n_out and 0 <= j < n_out) or i == j:
            raise InputError(f"pair {item!r}: i and j must be different classes in 0 .. {n_out - 1}")
        chosen.append((min(i, j), max(i, j)))
    return sorted(set(chosen))


def difference_row(last: np.ndarray, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    """``fl(W_l[i] - W_l[j])`` as a ``1 x n`` matrix, and the exact rounding error (TwoSum)."""
    a, b = last[i], -last[j]
    s = a + b
    bb = s - a
    residual = (a - (s - bb)) + (b - bb)
    return s[None, :], residual


def _rounding_correction(matrices: list[np.ndarray], residual: np.ndarray, alpha: Any, beta: Any) -> float:
    """``||delta||_2`` times a proven bound of the hidden map, rounded up (0 when ``delta = 0``)."""
    if not np.any(residual):
        return 0.0
    hidden = 1.0
    for w, g in zip(matrices[:-1], lmi.layer_slope_bounds(matrices, alpha, beta)):
        norm, _ = proof.proven_spectral_norm(w)
        hidden *= norm * g
    size = float(np.sqrt(np.sum(residual * residual)))
    return size * hidden * (1.0 + 8 * (len(matrices) + residual.size) * UNIT)


def _sqrt2_times(bound: float) -> float:
    """``sqrt(2) L`` rounded up: the global rule's bound of every ``f_i - f_j``."""
    return float(np.nextafter(math.sqrt(2.0) * bound * (1.0 + 4 * UNIT), np.inf))


def _engine_solves_pairs(matrices: list[np.ndarray], options: dict[str, Any]) -> bool:
    """Whether :func:`pylip.certify` would solve a pair network ``[W0, ..., c']`` with the engine."""
    pair_net = [*matrices[:-1], np.ones((1, matrices[-1].shape[1]))]
    alpha, beta = options["alpha"], options["beta"]
    return _engine_solves(pair_net, alpha, beta, options["activation"], options["solver"])


def _compiled_pair_problem(
    matrices: list[np.ndarray], method: str, options: dict[str, Any]
) -> ReducedPairProblem | None:
    """One hidden layer, ``"sdp"``, pair cones too small for the engine: the pair SDP compiled once.

    Where :func:`pylip.certify` would take the engine for the pair network (a
    reduced cone ``min(n_x, n_h) + 1`` of at least ``ENGINE_CONE`` rows, no
    solver named) each pair is solved by the engine instead: for 45 pairs
    (``bench/margins.py``, CPU time) 64-16-10 compiled 1.05 s against the engine
    1.54 s, but 64-32-10 15.7 s against 2.9 s and 64-128-10 157 s against 35 s.
    """
    if method != "sdp" or len(matrices) != 2 or _engine_solves_pairs(matrices, options):
        return None
    a, b = slope_sector(options["activation"], options["alpha"], options["beta"], [matrices[0].shape[0]])
    return ReducedPairProblem(matrices[0], a, b, solver=options["solver"])


def _one_output_certificate(
    matrices: list[np.ndarray],
    row: np.ndarray,
    glob: Certificate,
    method: str,
    options: dict[str, Any],
    compiled: ReducedPairProblem | None = None,
) -> Certificate:
    """The proven certificate of the network ``[W0, ..., W_{l-1}, row]``.

    ``glob`` itself when no better bound could be proven (the solver failed):
    the pair then keeps the cap ``sqrt(2) L``, the logit ``L``.
    """
    try:
        return _solved_one_output(matrices, row, glob, method, options, compiled)
    except (SolverError, CertificateError):
        return glob


def _solved_one_output(
    matrices: list[np.ndarray],
    row: np.ndarray,
    glob: Certificate,
    method: str,
    options: dict[str, Any],
    compiled: ReducedPairProblem | None,
) -> Certificate:
    net = [*matrices[:-1], row]
    if len(matrices) == 1:
        return certify(net)
    if compiled is not None and np.any(row):
        try:
            cert = compiled.certify(row)
        except (SolverError, CertificateError):
            cert = None
        # a poor solver point (large repair) goes to certify, which re-solves with the next solver
        if cert is not None and _repair_size(cert) <= REPAIR_TOLERANCE:
            return cert
        return certify(net, **options)
    if method == "sdp" or not np.any(row):
        try:
            return auxiliary_certificate(net, **options)
        except (SolverError, CertificateError):
            if not np.any(row):
                raise
            # the engine stalled on this pair: the global T with the pair's own L, as "fixed_T"
    structure = lmi.network_structure(net)
    T = glob.T
    a, b = slope_sector(options["activation"], options["alpha"], options["beta"],
                        [w.shape[0] for w in matrices[:-1]])
    squared = lmi.minimal_squared_bound(structure, T, a, b)
    if not np.isfinite(squared):
        # the global T leaves this pair's hidden block indefinite: start from the cap and let
        # the repair scale T; failing that, the pair keeps the cap sqrt(2) L (the global proof)
        squared = 2.0 * glob.bound**2
    try:
        return _checked_certificate(
            structure, T, squared * (1.0 + 1e-12), a, b, form=glob.form, solver="fixed_T",
            status="global T", solve_time=0.0, margin=glob.margin, weights=net,
        )
    except CertificateError:
        return glob


def auxiliary_certificate(weights: list[np.ndarray], **options: Any) -> Certificate:
    """The proven certificate of one of many SDPs that sharpen a global bound (class pairs, local balls).

    Where :func:`pylip.certify` would solve it with the engine, the engine alone
    at a relative gap of ``AUXILIARY_TOLERANCE`` (1e-6; the bound is proven as
    always): a stall raises :class:`SolverError` at once, and the caller takes
    the global certificate's ``T`` instead of waiting for the cvxpy solvers
    (minutes on a 64-128-128-10 ball). Elsewhere :func:`certify_reduced_input`.
    ``options``: ``activation``, ``alpha``, ``beta``, ``solver`` of :func:`pylip.certify`.
    """
    activation, alpha, beta = options.get("activation", "tanh"), options.get("alpha"), options.get("beta")
    if _engine_solves(weights, alpha, beta, activation, options.get("solver")):
        return _engine_only_certificate(weights, alpha, beta, activation)
    return certify_reduced_input(weights, **options)


def certify_reduced_input(weights: list[np.ndarray], **options: Any) -> Certificate:
    """:func:`pylip.certify`, with ``W0`` replaced by ``R'`` of ``W0' = Q R`` for the solve when deep.

    The input block of (5) is ``L^2 I`` on the complement of ``W0``'s row space,
    so the reduced SDP has the same optimum and its ``T`` (one entry per hidden
    neuron, unchanged) certifies the same ``L`` for the original weights: the
    point is proven (and repaired if need be) for ``weights`` as given. One
    hidden layer: :func:`pylip.certify`'s reduced formulation does this already.
    """
    if len(weights) <= 2 or weights[0].shape[1] <= weights[0].shape[0]:
        return certify(weights, **options)
    from .reduced import reduce_input

    solved = certify([reduce_input(weights[0]), *weights[1:]], **options)
    return _checked_certificate(
        lmi.network_structure(weights), solved.T, solved.solver_bound**2, solved.alpha, solved.beta,
        form=solved.form, solver=solved.solver, status=solved.status, solve_time=solved.solve_time,
        margin=solved.margin, weights=weights,
    )


class ReducedPairProblem:
    """The reduced SDP (:mod:`pylip.reduced`) of ``[W0, c']`` for any row ``c``, compiled once.

    For one hidden layer and one output the reduced matrix is
    ``G = [[L^2 I - U' diag(c1 t) U, -(c2 v U)'], [-(c2 v U), 1 - 1/2 sum_k v_k^2 s_k]]``
    with ``U`` the reduced ``W0`` and ``v`` the (scaled) row: affine in the
    parameters ``v`` and ``v^2``, so cvxpy compiles the problem once (DPP) and
    each pair only re-solves. The solution is proven like every certificate
    (:func:`pylip.certificate._checked_certificate`).
    """

    def __init__(self, W0: np.ndarray, alpha: Any, beta: Any, *, margin: float = 1e-9,
                 solver: str | None = None) -> None:
        import cvxpy as cp

        from .certificate import _Normalization
        from .reduced import reduce_input
        from .solvers import resolve_solver

        self.W0, self.alpha, self.beta, self.margin = W0, alpha, beta, margin
        self.solver = resolve_solver(solver)
        steepest = np.maximum(np.abs(alpha), np.abs(beta))
        probe = _Normalization([W0, np.ones((1, W0.shape[0]))], fold_beta=steepest)
        a, b = probe.sector(alpha, beta)
        n_h = W0.shape[0]
        U = reduce_input(probe.weights[0])
        r = U.shape[1]
        c1 = np.broadcast_to(0.5 * (np.asarray(b) - np.asarray(a)) ** 2, (n_h,)).astype(np.float64)
        c2 = np.broadcast_to(0.5 * (np.asarray(a) + np.asarray(b)), (n_h,)).astype(np.float64)
        self.row = cp.Parameter(n_h, name="row")
        self.row_squared = cp.Parameter(n_h, nonneg=True, name="row_squared")
        self.squared = cp.Variable(name="L2")
        self.t = cp.Variable(n_h, name="t")
        self.s = cp.Variable(n_h, name="s")
        top = self.squared * np.eye(r) - U.T @ cp.diag(cp.multiply(c1, self.t)) @ U
        cross = cp.reshape(-(cp.multiply(self.row, c2) @ U), (1, r), order="F")
        corner = cp.reshape(1.0 - 0.5 * (self.row_squared @ self.s), (1, 1), order="F")
        G = cp.bmat([[top, cross.T], [cross, corner]])
        self.problem = cp.Problem(cp.Minimize(self.squared), [
            0.5 * (G + G.T) >> margin * np.eye(r + 1),
            cp.SOC(self.s + self.t, cp.vstack([2.0 * np.ones((1, n_h)), cp.reshape(self.s - self.t, (1, n_h),
                                                                                 order="F")]), axis=0),
        ])

    def certify(self, row: np.ndarray) -> Certificate:
        """The proven certificate of ``[W0, row]`` (``row``: ``1 x n_h``)."""
        from .certificate import _Normalization
        from .solvers import solve, value_of

        weights = [self.W0, np.asarray(row, dtype=np.float64).reshape(1, -1)]
        steepest = np.maximum(np.abs(self.alpha), np.abs(self.beta))
        scaling = _Normalization(weights, fold_beta=steepest)
        v = scaling.weights[1][0]
        self.row.value = v
        self.row_squared.value = v * v
        info = solve(self.problem, self.solver, what="class-pair certificate SDP")
        T = scaling.multiplier(np.diag(np.maximum(value_of(self.t), 0.0)))
        squared = scaling.squared_bound(float(value_of(self.squared)))
        return _checked_certificate(
            lmi.network_structure(weights), T, squared, self.alpha, self.beta, form="neuron",
            solver=info.solver, status=info.status, solve_time=info.solve_time, margin=self.margin,
            weights=weights,
        )
