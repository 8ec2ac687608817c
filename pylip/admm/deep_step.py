"""The ADMM Lipschitz step (10b) and dual update (10c) for networks with several hidden layers.

Remark 4 of the paper: for ``alpha = 0`` the multi-layer LipSDP-Neuron
inequality is linear in all weight matrices ``W = (W0, ..., Wl)`` and ``L^2``
once the diagonal multiplier ``T = blkdiag(T_1, ..., T_l)`` is fixed. With the
output term ``Wl' Wl`` taken out as a Schur complement, as LMI (7) does for one
hidden layer, the inequality reads, in blocks (input, hidden layers 1..l, output)

    M(L^2, W) = [[-L^2 I,   beta W0'T_1,                          0  ],
                 [beta T_1 W0, -2 T_1, beta W1'T_2,                 0  ],
                 [        beta T_2 W1, -2 T_2,  ...                     ],
                 [                      ...  beta T_l W_{l-1}, -2 T_l, Wl'],
                 [0,                                          Wl,    -I ]]  <= 0,

and ``M <= 0`` iff the certificate matrix ``P(L^2, T)`` of :mod:`pylip.lmi`
(eq. 5 for one hidden layer) is ``<= 0``. For one hidden layer ``M`` is LMI (7).

:class:`DeepLipschitzStep` compiles the Lipschitz step

    min  mu L^2 + rho/2 sum_k ||W_k - W_bar_k||^2 + tr(Y_k'(W_k - W_bar_k))
    s.t. M(L^2, W_bar) <= -eps I                                      (10b)

once as a DPP cvxpy problem (divided by ``rho``: ``(mu/rho) L^2 + 1/2 sum_k
||W_bar_k - (W_k + Y_k/rho)||^2``, the same minimiser) in the parameters
``W_k + Y_k/rho``, ``mu/rho``, ``L_des^2`` and the diagonal ``t`` of ``T``, and
re-solves it at every ADMM iteration, followed by the dual update
``Y_k <- Y_k + rho (W_k - W_bar_k)`` (10c). Mode ``"regularize"`` keeps ``L^2`` a
variable (problem 9); ``"enforce"`` fixes ``L^2 = L_des^2`` (problem 12).

With two or more hidden layers the step is solved by default in its low-rank dual
(:mod:`pylip.admm.deep_dual_step`, ``method="dual"``), with the structured barrier method of
:mod:`pylip.admm.deep_fast_step` (``method="structured"``) as its fallback; neither forms a PSD
cone of the network's size. ``method="cvxpy"`` keeps the compiled cvxpy problem (the reference).

Exact reductions. The feasible set of (10b) is invariant under ``W0_bar -> W0_bar U`` for every
orthogonal ``U``: the congruence with ``blkdiag(U, I, ..., I)`` maps ``M(L^2, W_bar)`` to
``M(L^2, (W0_bar U, W1_bar, ...))`` (the input block ``-L^2 I`` commutes with ``U``) and keeps
``M <= -eps I``. Let ``Q`` (``n_in x n_1``, thin QR of the target ``G0 = W0 + Y0/rho``, so
``G0 Q Q' = G0``) and ``U = 2 Q Q' - I`` (a reflection): ``G0 U = G0``, so
``||W0_bar U - G0|| = ||W0_bar - G0||`` and the whole step is invariant under ``U``. Its
minimiser is unique (the objective is strictly convex in ``W_bar``, and with ``W_bar`` fixed
``mu L^2`` fixes ``L^2``), hence ``W0_bar* = W0_bar* U``, i.e. ``W0_bar* = X Q'`` with
``X = W0_bar* Q``. For such ``W0_bar`` the congruence with ``blkdiag([Q, Q_perp], I, ...)``
splits ``M`` into ``M(L^2, (X, W1_bar, ...))`` and ``-L^2 I``, and ``||X Q' - G0|| =
||X - G0 Q||``: the step with input size ``n_1`` and target ``G0 Q = R'`` is the same problem
(``reduce_input``, when ``n_in > n_1``). The output block ``-I`` commutes with every orthogonal
``V`` in the same way: with ``G_l = Q R`` (thin QR, ``n_y > n_l``) the last layer is
``W_l_bar* = Q X``, solved for with the target ``R`` (``reduce_output``).

Every returned ``W_bar`` is checked in float64 (largest eigenvalue of
``P(L^2, T)`` at the returned ``L^2``, <= 0) and repaired if the solver missed
by rounding. In the enforce mode the repair shrinks every ``W_bar_k`` by one
factor ``s < 1``. That scales the network by ``s^(l+1)`` but, more to the
point, ``M`` is affine in ``W`` and ``M(L^2, 0) = blkdiag(-L^2 I, -2T, -I) < 0``,
so ``M(L^2, s W) = s M(L^2, W) + (1 - s) M(L^2, 0)`` and

    lambda_max(M(L^2, s W)) <= s lambda + (1 - s) (-m0),
    lambda = lambda_max(M(L^2, W)),  m0 = min(L^2, 2 min t, 1),

which is <= 0 for every ``s <= m0 / (lambda + m0)`` (:func:`feasible_shrink`):
the feasible set is convex and contains ``W = 0`` strictly, whatever the depth.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np

from ..errors import InputError, SolverError
from ..lipsdp import lmi, memory, solvers
from ..lipsdp.certificate import DEFAULT_MARGIN, fallback_solvers
from ..lipsdp.repair import secure_step
from ..lipsdp.solvers import SolveInfo, resolve_solver, solve, value_of
from ..validation import as_layer_list, as_matrix, as_scalar
from .deep_dual_step import solve_deep_step_dual
from .deep_fast_step import solve_deep_step
from .result import LayerStepResult
from .step import checked_step_settings, step_objective

logger = logging.getLogger(__name__)

MODES = ("regularize", "enforce")
METHODS = ("auto", "dual", "structured", "cvxpy")
# the barrier method backs the dual solver up to this LMI size: 64-128-128-10 (330) took it 9 s, and
# 784-256-256-10 (778) gave no answer in 7 minutes (bench/deep_step.py)
BARRIER_FALLBACK_SIZE = 400
# Looser settings tried in turn when a solver fails at pylip's default tolerances.
FALLBACK_OPTIONS: dict[str, list[dict[str, float]]] = {
    "CLARABEL": [
        {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10},
        {"tol_gap_abs": 1e-8, "tol_gap_rel": 1e-8, "tol_feas": 1e-8},
    ],
}


#: The multi-layer step's result is the family's one result type (:mod:`pylip.admm.result`).
DeepStepResult = LayerStepResult


def check_layer_sizes(layer_sizes: Sequence[Any]) -> tuple[int, ...]:
    """``(n0, n1, ..., n_l, n_out)`` with at least one hidden layer, all positive integers."""
    try:
        sizes = tuple(int(n) for n in layer_sizes)
    except (TypeError, ValueError):
        raise InputError(
            f"layer_sizes must be a sequence of positive integers, got {layer_sizes!r}"
        ) from None
    if (
        len(sizes) < 3
        or any(n < 1 for n in sizes)
        or any(
            float(a) != int(a)
            for a in layer_sizes  # 2.5 is not a size
        )
    ):
        raise InputError(
            f"layer_sizes must be (n_in, n_1, ..., n_l, n_out) with at least one hidden layer and "
            f"positive integer sizes, got {tuple(layer_sizes)!r}"
        )
    return sizes


def multiplier_vector(T: Any, n_hidden: int, *, name: str = "T", allow_zero: bool = False) -> np.ndarray:
    """The positive diagonal ``t`` of a fixed multiplier ``T`` (``N x N`` diagonal, or a length-N vector).

    ``allow_zero=True`` accepts zero entries (a certificate's ``T`` is only
    ``>= 0``; floor them with :func:`positive_multiplier` before use), but not
    an all-zero ``T``.
    """
    array = np.array(T, dtype=np.float64)
    if array.ndim == 1:
        t = array
    else:
        matrix = as_matrix(array, name)
        if matrix.shape != (n_hidden, n_hidden):
            raise InputError(
                f"{name} must be {n_hidden} x {n_hidden} (all hidden neurons), got {matrix.shape}"
            )
        if np.any(matrix - np.diag(np.diag(matrix)) != 0):
            raise InputError(
                f"{name} must be diagonal (LipSDP-Neuron: T in D_n; a coupled T is unsound, Section II-C); "
                "take the T of pylip.certify(weights, form='neuron')"
            )
        t = np.diag(matrix).copy()
    if t.shape != (n_hidden,):
        raise InputError(
            f"{name} must have {n_hidden} diagonal entries (one per hidden neuron), got {t.shape}"
        )
    if not np.all(np.isfinite(t)):
        raise InputError(f"{name} contains NaN or inf")
    bad = np.flatnonzero(t < 0 if allow_zero and np.any(t > 0) else t <= 0)
    if bad.size:
        raise InputError(
            f"{name} has non-positive diagonal entries at neurons {bad.tolist()}: the LMI then asks "
            "-2 T <= -eps I and the Lipschitz step is infeasible; floor them with "
            "pylip.deep_admm.positive_multiplier(T)"
        )
    return t


def positive_multiplier(T: Any, relative_floor: float = 1e-6) -> np.ndarray:
    """``T`` as a diagonal matrix with entries below ``relative_floor * max(t)`` raised to that floor.

    A certificate's ``T`` (:func:`pylip.certify`) is only ``>= 0``; a neuron with
    ``t_i = 0`` would make the fixed-``T`` step infeasible (``-2 t_i <= -eps``).
    """
    array = np.array(T, dtype=np.float64)
    t = np.diag(array).copy() if array.ndim == 2 else array.copy()
    top = float(np.max(t)) if t.size else 0.0
    floor = relative_floor * top if top > 0 else 1.0
    return np.diag(np.maximum(t, floor))


def deep_lmi_matrix(
    W_bar: Sequence[np.ndarray], t: np.ndarray, squared_bound: float, beta: float = 1.0
) -> np.ndarray:
    """``M(L^2, W_bar)`` in float64: the block matrix of the module docstring (LMI (7) for l = 1)."""
    hidden = [w.shape[0] for w in W_bar[:-1]]
    sizes = [W_bar[0].shape[1], *hidden, W_bar[-1].shape[0]]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    M = np.zeros((offsets[-1], offsets[-1]))
    M[: sizes[0], : sizes[0]] = -squared_bound * np.eye(sizes[0])
    start = 0
    for k, w in enumerate(W_bar[:-1], start=1):
        t_k = t[start : start + w.shape[0]]
        start += w.shape[0]
        rows = slice(offsets[k], offsets[k + 1])
        cols = slice(offsets[k - 1], offsets[k])
        block = beta * t_k[:, None] * w
        M[rows, cols] = block
        M[cols, rows] = block.T
        M[rows, rows] = -2.0 * np.diag(t_k)
    last = W_bar[-1]
    out = slice(offsets[-2], offsets[-1])
    prev = slice(offsets[-3], offsets[-2])
    M[out, prev] = last
    M[prev, out] = last.T
    M[out, out] = -np.eye(sizes[-1])
    return M


def certificate_max_eigenvalue(
    W_bar: Sequence[np.ndarray], t: np.ndarray, squared_bound: float, beta: float = 1.0
) -> float:
    """Largest eigenvalue of the full certificate matrix ``P(L^2, T)`` (eq. 5, LipSDP-Neuron) in float64."""
    structure = lmi.network_structure(list(W_bar))
    return lmi.lmi_max_eigenvalue(structure, np.diag(t), squared_bound, 0.0, beta)


def feasible_shrink(
    W_bar: Sequence[np.ndarray], t: np.ndarray, squared_bound: float, beta: float = 1.0
) -> float:
    """The largest ``s`` that the convexity argument of the module docstring guarantees.

    ``M(L^2, s W) <= 0`` for all ``s <= m0 / (lambda + m0)`` with ``lambda =
    lambda_max(M(L^2, W))`` and ``m0 = min(L^2, 2 min t, 1)``; returns 1 if
    ``lambda <= 0``.
    """
    top = lmi.max_eigenvalue(deep_lmi_matrix(W_bar, t, squared_bound, beta))
    if top <= 0.0:
        return 1.0
    m0 = min(float(squared_bound), 2.0 * float(np.min(t)), 1.0)
    if m0 <= 0.0:
        return 0.0
    return m0 / (top + m0)


@dataclass(frozen=True)
class StepScaling:
    """An exact power-of-two change of variables that makes a badly scaled step well posed.

    With ``x_k = r^(l+1-k) y_k`` in the quadratic form of ``P`` (a congruence, so
    the LMI's sign is unchanged), the step for ``(W, T, L)`` is the step for
    ``W' = r W``, ``t'_k = r^(2(l+1-k)) t_k`` (hidden layer ``k = 1..l``),
    ``L' = r^(l+1) L``, and its objective is ``r^-2`` times the one with
    ``mu' = mu r^(-2l)``: the same minimiser, mapped back exactly (``r = 2^e``).
    ``e`` is the power of two that brings the logarithms of the targets'
    spectral norms, of each layer's ``t`` (geometric mean) and of ``L_des``
    closest to 0 (least squares); the problem is solved as posed while
    ``|e| < MIN_EXPONENT`` (moderately scaled steps, the paper's examples).
    """

    exponent: int
    hidden_sizes: tuple[int, ...]

    MIN_EXPONENT = 2

    @classmethod
    def for_step(
        cls, targets: Sequence[np.ndarray], t: np.ndarray, hidden_sizes: Sequence[int], L_des: float | None
    ) -> StepScaling:
        hidden_sizes = tuple(int(n) for n in hidden_sizes)
        n_layers = len(hidden_sizes)
        logs, powers = [], []  # log2 of each magnitude, and how many factors r it gains
        for g in targets:
            norm = float(np.linalg.norm(g, 2))
            if norm > 0 and np.isfinite(norm):
                logs.append(np.log2(norm))
                powers.append(1)
        for k, t_k in enumerate(np.split(t, np.cumsum(hidden_sizes)[:-1]), start=1):
            if t_k.size and np.all(t_k > 0):
                logs.append(float(np.mean(np.log2(t_k))))
                powers.append(2 * (n_layers + 1 - k))
        if L_des is not None and L_des > 0:
            logs.append(float(np.log2(L_des)))
            powers.append(n_layers + 1)
        a, p = np.array(logs), np.array(powers, dtype=float)
        exponent = -float(a @ p) / float(p @ p) if p.size else 0.0
        return cls(int(round(exponent)) if abs(exponent) >= cls.MIN_EXPONENT else 0, hidden_sizes)

    @property
    def factor(self) -> float:
        return float(np.ldexp(1.0, self.exponent))

    def multiplier(self, t: np.ndarray) -> np.ndarray:
        """``t'``: hidden layer ``k`` (1-based) of ``l`` scaled by ``r^(2(l+1-k))``."""
        if self.exponent == 0:
            return t
        n_layers = len(self.hidden_sizes)
        powers = np.repeat([2 * (n_layers + 1 - k) for k in range(1, n_layers + 1)], self.hidden_sizes)
        return np.ldexp(t, self.exponent * powers)

    def bound(self, L: float) -> float:
        return float(np.ldexp(L, self.exponent * (len(self.hidden_sizes) + 1)))

    def bound_weight(self, mu_over_rho: float) -> float:
        return float(np.ldexp(mu_over_rho, -2 * self.exponent * len(self.hidden_sizes)))

    def unscaled_squared_bound(self, squared: float) -> float:
        return float(np.ldexp(squared, -2 * self.exponent * (len(self.hidden_sizes) + 1)))

    @staticmethod
    def margin(margin: float, t: np.ndarray, L_des: float | None) -> float:
        """The solver's margin, lowered below ``min t`` and ``L_des^2 / 2`` where they are smaller.

        ``M <= -margin I`` needs ``2 t_i > margin`` and ``L_des^2 > margin``; the
        margin only keeps the solver's point strictly inside, the proof that
        follows decides, so a smaller one where the problem needs it is sound.
        """
        limits = [margin, float(np.min(t)) if t.size else margin]
        if L_des is not None:
            limits.append(0.5 * L_des * L_des)
        return min(limits)


class DeepLipschitzStep:
    """The compiled Lipschitz step (10b) for an ``l``-hidden-layer network and one mode.

    Args:
        layer_sizes: ``(n_in, n_1, ..., n_l, n_out)``.
        T: the fixed multiplier, ``N x N`` diagonal with positive entries (or
            its diagonal), ``N = n_1 + ... + n_l``; change it later with
            :meth:`set_T` (only a parameter value changes: no recompilation).
        mode: ``"regularize"`` (problem 9, ``L^2`` a variable weighted by ``mu``)
            or ``"enforce"`` (problem 12, ``L^2 = L_des^2``).
        beta: the activations' largest slope (1 for tanh and ReLU, 1/4 for sigmoid).
        solver: SDP solver (default Clarabel, see :mod:`pylip.solvers`).
        margin: the LMI is imposed as ``M <= -margin I`` (lowered below ``min t`` and
            ``L_des^2 / 2`` where they are smaller, :meth:`StepScaling.margin`; the proof decides).
        reduce_input: when ``n_in > n_1``, solve for ``W0_bar`` in the row space
            of its target ``W0 + Y0/rho`` (``n_1`` columns instead of ``n_in``;
            exact, see the module docstring), as :mod:`pylip.reduced` does for certificates.
        reduce_output: likewise, when ``n_out > n_l``, for the last layer in the column
            space of its target (``n_l`` rows instead of ``n_out``).
        method: ``"dual"`` solves the step in its low-rank dual
            (:mod:`pylip.admm.deep_dual_step`) and, if that gives up, with the barrier
            method (LMIs up to ``BARRIER_FALLBACK_SIZE``); ``"structured"`` with the barrier method of
            :mod:`pylip.admm.deep_fast_step` (block-tridiagonal LMI, matrix-free Newton);
            ``"cvxpy"`` with the compiled cvxpy problem and ``solver``; ``"auto"``
            (default) takes ``"dual"`` for two or more hidden layers unless a
            ``solver`` is named, and ``"cvxpy"`` otherwise (one hidden layer: the
            paper's formulation). pylip's solvers hand over to cvxpy when ``mu = 0``
            (no weight on ``L^2``) or when they give up.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        T: Any,
        *,
        mode: str = "regularize",
        beta: float = 1.0,
        solver: str | None = None,
        margin: float = DEFAULT_MARGIN,
        reduce_input: bool = True,
        reduce_output: bool = True,
        method: str = "auto",
    ) -> None:
        if mode not in MODES:
            raise InputError(f"mode must be 'regularize' (eq. 9) or 'enforce' (eq. 12), got {mode!r}")
        beta = as_scalar(beta, "beta")
        if not beta > 0:
            raise InputError(f"beta must be > 0 (the activation's largest slope), got {beta}")
        margin = as_scalar(margin, "margin")
        if margin < 0:
            raise InputError(f"margin must be >= 0, got {margin}")
        self.layer_sizes = check_layer_sizes(layer_sizes)
        self.hidden_sizes = self.layer_sizes[1:-1]
        self.n_hidden = int(sum(self.hidden_sizes))
        self.shapes = [
            (self.layer_sizes[k + 1], self.layer_sizes[k]) for k in range(len(self.layer_sizes) - 1)
        ]
        # the exact reductions of the module docstring
        self.reduces_input = bool(reduce_input) and self.layer_sizes[0] > self.layer_sizes[1]
        self.reduces_output = bool(reduce_output) and self.layer_sizes[-1] > self.layer_sizes[-2]
        n_input = self.layer_sizes[1] if self.reduces_input else self.layer_sizes[0]
        n_output = self.layer_sizes[-2] if self.reduces_output else self.layer_sizes[-1]
        self.problem_sizes = (n_input, *self.layer_sizes[1:-1], n_output)
        self.problem_shapes = [
            (self.problem_sizes[k + 1], self.problem_sizes[k]) for k in range(len(self.problem_sizes) - 1)
        ]
        self.mode = mode
        self.beta = float(beta)
        self.method = _chosen_method(method, solver, len(self.hidden_sizes))
        self.solver = resolve_solver(solver)
        self.margin = float(margin)
        self._t = multiplier_vector(T, self.n_hidden)
        self._problem: cp.Problem | None = None
        if self.method == "cvxpy":
            self._build()

    # -- the multiplier -------------------------------------------------------------

    @property
    def T(self) -> np.ndarray:  # noqa: N802
        """The fixed multiplier in use, as an ``N x N`` diagonal matrix."""
        return np.diag(self._t)

    @property
    def t(self) -> np.ndarray:
        """The diagonal of :attr:`T`."""
        return self._t.copy()

    def set_T(self, T: Any) -> None:  # noqa: N802
        """Use another fixed multiplier from now on (Remark 3); the compiled problem is kept."""
        self._t = multiplier_vector(T, self.n_hidden)
        if self._problem is not None:
            self.t_param.value = self._t.copy()

    # -- the problem ----------------------------------------------------------------

    @property
    def problem(self) -> cp.Problem:
        """The compiled cvxpy problem of the step (built on first use with pylip's own solvers)."""
        if self._problem is None:
            self._build()
        assert self._problem is not None
        return self._problem

    def _build(self) -> None:
        what = f"multi-layer Lipschitz step (10b, {self.mode}) SDP"
        memory.require_step_fits(what, self.problem_sizes, self.solver, fast_available=False)
        shapes = self.problem_shapes
        self.W_bar_vars = [cp.Variable(shape, name=f"W{k}_bar") for k, shape in enumerate(shapes)]
        self.targets = [
            cp.Parameter(shape, name=f"W{k}_plus_Y{k}_over_rho") for k, shape in enumerate(shapes)
        ]
        self.t_param = cp.Parameter(self.n_hidden, nonneg=True, name="t")
        self.t_param.value = self._t.copy()
        proximity = 0.5 * sum(
            (cp.sum_squares(w - target) for w, target in zip(self.W_bar_vars, self.targets)),
            start=cp.Constant(0.0),
        )
        self.squared, self.mu_over_rho, objective = step_objective(self.mode, proximity)
        sizes = self.problem_sizes
        n_blocks = len(sizes)
        blocks: list[list[Any]] = [
            [np.zeros((sizes[i], sizes[j])) for j in range(n_blocks)] for i in range(n_blocks)
        ]
        blocks[0][0] = -self.squared * np.eye(sizes[0])
        start = 0
        for k in range(1, n_blocks - 1):  # hidden layer k, fed by W_{k-1}
            n_k = sizes[k]
            t_k = self.t_param[start : start + n_k]
            start += n_k
            TW = self.beta * cp.multiply(cp.reshape(t_k, (n_k, 1), order="F"), self.W_bar_vars[k - 1])
            blocks[k][k - 1] = TW
            blocks[k - 1][k] = TW.T
            blocks[k][k] = -2.0 * cp.diag(t_k)
        last = self.W_bar_vars[-1]
        blocks[-1][-2] = last
        blocks[-2][-1] = last.T
        blocks[-1][-1] = -np.eye(sizes[-1])
        M = cp.bmat(blocks)
        size = int(sum(sizes))
        self.margin_param = cp.Parameter(nonneg=True, name="margin", value=self.margin)
        self._problem = cp.Problem(cp.Minimize(objective), [M << -self.margin_param * np.eye(size)])
        if not self._problem.is_dcp(dpp=True):  # type: ignore[call-arg]  # pragma: no cover
            raise RuntimeError("the Lipschitz step is not DPP: it would be recompiled every call")

    def solve(
        self,
        weights: Sequence[Any],
        multipliers: Sequence[Any] | None,
        *,
        rho: float,
        mu: float = 0.0,
        L_des: float | None = None,
    ) -> DeepStepResult:
        """One Lipschitz step (10b) at weights ``W`` and multipliers ``Y`` (``None``: zeros), then (10c)."""
        W = self._shaped(weights, "weights")
        Y = (
            [np.zeros(s) for s in self.shapes]
            if multipliers is None
            else self._shaped(multipliers, "multipliers")
        )
        rho, mu, L_des = checked_step_settings(self.mode, rho, mu, L_des)
        targets = [w + y / rho for w, y in zip(W, Y)]
        basis = output_basis = None
        if self.reduces_input:
            basis, R = np.linalg.qr(targets[0].T, mode="reduced")  # target0 = R' basis'
            targets[0] = R.T
        if self.reduces_output:
            output_basis, targets[-1] = np.linalg.qr(targets[-1], mode="reduced")  # target_l = basis R
        scaling = StepScaling.for_step(targets, self._t, self.hidden_sizes, L_des)
        scaled_targets = [scaling.factor * g for g in targets]
        scaled_t = scaling.multiplier(self._t)
        scaled_L_des = None if L_des is None else scaling.bound(L_des)
        mu_over_rho = scaling.bound_weight(mu / rho)
        margin = scaling.margin(self.margin, scaled_t, scaled_L_des)
        dedicated = None
        if self._dedicated_applies(mu):
            dedicated = self._solve_dedicated(scaled_targets, scaled_t, mu_over_rho, scaled_L_des, margin)
        if dedicated is not None:
            W_bar, squared, info, fallback = dedicated
        else:
            W_bar, squared, info, fallback = self._solve_cvxpy(
                scaled_targets, scaled_t, mu_over_rho, scaled_L_des, margin
            )
            fallback = fallback or self._dedicated_applies(mu)  # pylip's own solvers gave up
        W_bar = [w / scaling.factor for w in W_bar]
        squared = scaling.unscaled_squared_bound(squared)
        if basis is not None:
            W_bar[0] = W_bar[0] @ basis.T
        if output_basis is not None:
            W_bar[-1] = output_basis @ W_bar[-1]
        W_bar, squared, top, repaired = self._checked(W_bar, squared, L_des)
        return DeepStepResult(
            W_bar=W_bar,
            Y=[y + rho * (w - wb) for y, w, wb in zip(Y, W, W_bar)],
            squared_bound=squared,
            status=info.status,
            solve_time=info.solve_time,
            max_eigenvalue=top,
            repaired=repaired,
            fallback=fallback,
        )

    def solve_layers(self, *args: Any, **kwargs: Any) -> LayerStepResult:
        """:meth:`solve` (its arguments), under the step family's name (:mod:`pylip.admm.family`)."""
        return self.solve(*args, **kwargs)

    def _dedicated_applies(self, mu: float) -> bool:
        return self.method in ("dual", "structured") and (self.mode == "enforce" or mu > 0)

    def _solve_dedicated(
        self, targets: list[np.ndarray], t: np.ndarray, mu_over_rho: float, L_des: float | None,
        margin: float,
    ) -> tuple[list[np.ndarray], float, SolveInfo, bool] | None:
        """The step by pylip's solvers: the low-rank dual (``method="dual"``), then the barrier
        method (:mod:`pylip.admm.deep_fast_step`; after the dual only up to an LMI of size
        ``BARRIER_FALLBACK_SIZE``); ``None`` if they give up. The flag says whether the first
        one gave up."""
        solvers: list[tuple[str, Callable[..., Any]]] = [("pylip-barrier", solve_deep_step)]
        if self.method == "dual":
            solvers.insert(0, ("pylip-dual", solve_deep_step_dual))
            if sum(self.problem_sizes) > BARRIER_FALLBACK_SIZE:
                solvers.pop()
        for attempt, (name, solver) in enumerate(solvers):
            try:
                solution = solver(
                    targets,
                    t,
                    mode=self.mode,
                    beta=self.beta,
                    margin=margin,
                    mu_over_rho=mu_over_rho if self.mode == "regularize" else None,
                    squared_bound=L_des**2 if self.mode == "enforce" and L_des is not None else None,
                )
            except SolverError as exc:
                logger.info("the deep step solver %s gave up (%s)", name, exc)
                continue
            info = SolveInfo(solver=name, status="optimal", solve_time=solution.solve_time)
            return solution.W_bar, solution.squared_bound, info, attempt > 0
        return None

    def _solve_cvxpy(
        self, targets: list[np.ndarray], t: np.ndarray, mu_over_rho: float, L_des: float | None,
        margin: float,
    ) -> tuple[list[np.ndarray], float, SolveInfo, bool]:
        if self._problem is None:
            self._build()
        for parameter, value in zip(self.targets, targets):
            parameter.value = value
        self.t_param.value = t.copy()
        self.margin_param.value = margin
        if self.mu_over_rho is not None:  # regularize (eq. 9)
            self.mu_over_rho.value = mu_over_rho
        elif L_des is not None:  # enforce (eq. 12)
            self.squared.value = L_des**2
        info, fallback = self._solve()
        W_bar = [value_of(v) for v in self.W_bar_vars]
        return W_bar, float(value_of(self.squared)), info, fallback

    def _solve(self) -> tuple[SolveInfo, bool]:
        """Solve at pylip's tolerances; if the solver gives up, retry looser, then with other solvers.

        Clarabel at gap and feasibility 1e-12 (:data:`pylip.solvers.SOLVER_OPTIONS`)
        sometimes stops with "insufficient progress" near the optimum, which
        cvxpy reports as a failure. The retry's point is checked (and if need
        be repaired) in float64 like any other, so the certificate is not weakened.
        """
        what = f"multi-layer Lipschitz step (10b, {self.mode})"
        try:
            return solve(self.problem, self.solver, what=what), False
        except SolverError as exc:
            if exc.status != "solver_error" or self.solver not in FALLBACK_OPTIONS:
                raise
            failure = exc
        for options in FALLBACK_OPTIONS[self.solver]:
            try:
                info = solvers.solve(self.problem, self.solver, what=what, options=options)
            except SolverError:
                continue
            logger.info("%s: %s failed at its default tolerances, solved at %s", what, self.solver, options)
            return info, True
        for other in fallback_solvers(self.solver):
            try:
                memory.require_step_fits(what, self.problem_sizes, other, fast_available=False)
                info = solvers.solve(self.problem, other, what=what)
            except (SolverError, InputError):
                continue
            logger.info("%s: %s failed, solved with %s", what, self.solver, other)
            return info, True
        raise failure

    def max_eigenvalue(self, W_bar: Sequence[np.ndarray], squared_bound: float) -> float:
        """Largest eigenvalue of ``P(L^2, T)`` for ``W_bar`` with this step's ``T``, in float64."""
        return certificate_max_eigenvalue(W_bar, self._t, squared_bound, self.beta)

    # -- proof and minimal repair --------------------------------------------------------

    def _checked(
        self, W_bar: list[np.ndarray], squared: float, L_des: float | None = None
    ) -> tuple[list[np.ndarray], float, float, bool]:
        """Prove ``P(L^2, T) <= 0`` (eq. 5) at the returned point, repairing it minimally first if need be.

        Regularize: raise ``L`` to the smallest provable value for ``W_bar``
        and ``T``; enforce: shrink every ``W_bar_k`` by the largest provable
        ``s <= 1`` (:mod:`pylip.repair`; the convexity argument of the module
        docstring guarantees that some ``s > 0`` works).
        """
        what = f"multi-layer Lipschitz step (10b, {self.mode})"
        point = secure_step(W_bar, self._t, squared, self.beta, mode=self.mode, L_des=L_des, what=what)
        top = point.max_eigenvalue()
        squared_out = squared if self.mode == "enforce" else point.bound * point.bound
        return list(point.weights), squared_out, top, point.repaired

    def _shaped(self, values: Sequence[Any], name: str) -> list[np.ndarray]:
        return as_layer_list(values, name, self.shapes)


def _chosen_method(method: str, solver: str | None, n_layers: int) -> str:
    """``"dual"``, ``"structured"`` or ``"cvxpy"`` for :class:`DeepLipschitzStep` (see its ``method``)."""
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}, got {method!r}")
    if method != "auto":
        return method
    return "dual" if solver is None and n_layers >= 2 else "cvxpy"


__all__ = [
    "DeepLipschitzStep",
    "DeepStepResult",
    "certificate_max_eigenvalue",
    "deep_lmi_matrix",
    "feasible_shrink",
    "multiplier_vector",
    "positive_multiplier",
]
