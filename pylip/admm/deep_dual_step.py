"""A low-rank dual solver for the multi-layer Lipschitz step (10b) with a fixed diagonal ``T``.

The step (notation of :mod:`pylip.admm.deep_lmi`)

    (P)  min  c s + 1/2 sum_k ||W_k - G_k||^2   s.t.  S(s, W) = D(s) - A(W) >= 0,

``A(W)`` the symmetric block-tridiagonal matrix with blocks ``(k+1, k)`` equal to
``coef_k * W_k`` (rows scaled), ``s = L^2`` (regularize, eq. 9, ``c = mu/rho``) or ``s = L_des^2``
fixed (enforce, eq. 12, no ``c s``).

Dual. For ``Z >= 0`` (``N x N``) the Lagrangian ``c s + 1/2 ||W - G||^2 - <Z, S(s, W)>`` is
least at ``W(Z) = G - A*(Z)``, ``A*(Z)_k = 2 coef_k * Z_{k+1,k}``, and bounded below in ``s``
only if ``tr Z_00 = c`` (regularize). So every such ``Z`` gives the lower bound

    g(Z) = <Z, A(G) - D(s)> - 1/2 ||A*(Z)||^2        (regularize: D(0) and tr Z_00 = c)

on (P) (weak duality), and for any ``s`` (regularize: with ``c s`` in the objective)

    objective(W(Z), s) - g(Z) = <Z, S(s, W(Z))>,                               (*)

since ``objective(W(Z), s) = c s + 1/2 ||A*(Z)||^2`` and ``c s = s tr Z_00``.

Low rank. At the optimum ``Z S = 0``, so ``rank Z <= dim ker S``. Scaled by ``D^{-1/2}`` on
both sides, ``S`` is ``I - B`` with ``B`` zero between blocks of equal parity (layers
``0, 2, ...`` and ``1, 3, ...``): with ``C`` its odd-by-even part, ``B`` has the eigenvalues
``+-sigma_i(C)`` (eigenvectors ``(q_i; +-p_i)``, ``C q_i = sigma_i p_i``) and 0, so
``dim ker S <= min(n_even, n_odd)`` (:class:`_Coupling`; it also gives ``lambda_min(S)`` from
the smaller Gram matrix of ``C``). The solver writes ``Z = Y Y'`` with ``Y`` ``N x p``
(Burer and Monteiro) and minimises ``F(Y) = -g(Y Y')``:

    F(Y)   = sum_i d_i ||y_i||^2 + sum_k (2 ||coef_k * X_k||^2 - 2 <coef_k * X_k, G_k>),
    grad F = 2 S(s, W) Y,               X_k = Y_{k+1} Y_k',  W = W(Y Y') = G - 2 coef * X,
    Hess F [V] = 2 S(s, W) V + 2 dS Y,  dS_{k+1,k} = 2 coef_k^2 * (V_{k+1} Y_k' + Y_{k+1} V_k'),

in ``O(n_W p)`` flops each (``n_W`` weights). ``F`` is not convex in ``Y``; the answer is
checked, not assumed: (*) at a feasible point is a certified gap, a stationary ``Y``
(``S Y = 0``) with ``S >= 0`` is optimal (the KKT conditions hold), and if ``S`` has negative
eigenvalues at a stationary point, their eigenvectors added as columns descend
(``F([Y, a u]) = F(Y) + a^2 u'Su + O(a^4)``, :func:`_grown`).

Regularize: ``||Y_0||_F^2 = tr Z_00 = c`` is kept by renormalising the input rows after every
step; ``s`` is the constraint's multiplier, ``s = eps + <coef_0 * W_0, X_0> / c``, which makes
``2 S(s, W) Y`` tangent to that sphere (and Newton's Hessian the Lagrangian's, projected).

Method: (1) start from the eigenvectors of the negative eigenvalues of ``D^{-1/2} S(s, G)
D^{-1/2}`` (the directions the targets violate), weighted by ``sqrt(-lambda)`` and scaled by
the exact minimiser of the quartic ``F(a Y)``; ``p`` is their number plus ``EXTRA_RANK`` (on
the benchmark networks their number was the optimum's rank); regularize at an ``L^2`` searched
for (:func:`_first_squared_bound`); (2) L-BFGS (Nocedal and Wright, Algorithm 7.4) in the rows
scaled by ``sqrt(d_i)`` until the certified relative gap is below ``SWITCH``; (3) Newton steps
by truncated conjugate gradients in a trust region (Steihaug), with the Hessian shifted by
``SHIFT ||grad||`` (the minimisers are not isolated: ``Y Q`` for orthogonal ``Q``) and
preconditioned by :class:`_Preconditioner`, until it is below ``tol``; (4) if progress stops at
an infeasible ``W(Z)``, the factor grows (:func:`_grown`) and (2) and (3) run again.
The primal point of the gap: enforce, ``W(Z)`` shrunk toward ``W = 0`` by the exact factor
``1 / (1 - lambda_min)`` if ``lambda_min(D^-1/2 S D^-1/2) < 0`` (``S(theta W) = theta S(W) +
(1 - theta) D``); regularize, ``W(Z)`` with the least feasible ``L^2`` (Schur complement on the
input block). That point is returned; the caller still proves it in float64
(``DeepLipschitzStep._checked``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from .. import blas
from ..errors import SolverError
from .deep_lmi import StepLmi

SWITCH = 1e-3  # certified relative gap at which L-BFGS hands over to Newton
MEMORY = 10  # L-BFGS pairs
CHECK_EVERY = 10  # L-BFGS steps between gap checks
ARMIJO = 1e-4
EXTRA_RANK = 4  # columns beyond the targets' violated directions
MAX_QUASI_NEWTON = 3000
MAX_CG = 300  # conjugate-gradient steps per Newton step
CG_FORCING = 0.1  # a Newton step's CG stops at this relative residual (or the gap's square root)
SHIFT = 1.0  # Newton's Hessian plus SHIFT ||grad|| I (Levenberg and Marquardt)
STALLED = 1e-4  # stationary for its rank: ||grad|| <= STALLED |lambda_min| ||Y||, lambda_min < 0
ACCEPT = 1e3  # a solve that stops improving is returned if its relative gap is <= ACCEPT * tol
PATIENCE = 4  # ... after this many Newton steps halving neither the gap nor the gradient
MAX_ROUNDS = 8  # rounds of L-BFGS and Newton, the factor grown between them
SEARCH_STEPS = 12  # regularize: evaluations per stage of the search for a first L^2


@dataclass(frozen=True)
class DeepDualSolution:
    """Result of :func:`solve_deep_step_dual`: the step's ``W_bar``, its ``L^2`` and the statistics."""

    W_bar: list[np.ndarray]
    squared_bound: float
    objective: float
    gap: float
    rank: int
    quasi_newton_steps: int
    newton_steps: int
    cg_steps: int
    solve_time: float


@dataclass
class _Point:
    """A dual factor ``Y`` with ``W(Y Y')``, ``coef * W``, the multiplier ``s``, ``F`` and ``grad F``."""

    Y: np.ndarray
    W: list[np.ndarray]
    coupled: list[np.ndarray]  # coef_k * W_k: the blocks of A(W)
    squared: float
    value: float
    gradient: np.ndarray


@dataclass(frozen=True)
class _Primal:
    """A feasible primal point and its certified gap (*)."""

    W: list[np.ndarray]
    squared: float
    objective: float
    gap: float
    smallest: float  # lambda_min of the scaled S(s, W(Z))

    @property
    def relative_gap(self) -> float:
        """``gap / objective`` (``inf`` if either is not finite: an overflow is never converged)."""
        if not (np.isfinite(self.gap) and np.isfinite(self.objective)):
            return float("inf")
        return self.gap / max(self.objective, 1e-300)


class _Coupling:
    """``D^-1/2 S(s, W) D^-1/2 = I - [[0, C'], [C, 0]]`` over the even and odd blocks: ``C``.

    ``root`` is ``D^-1/2``; ``first = 1`` leaves the input block out (the hidden and output
    blocks of ``S`` alone).
    """

    def __init__(self, lmi: StepLmi, coupled: Sequence[np.ndarray], root: np.ndarray, first: int = 0) -> None:
        blocks = range(first, len(lmi.sizes))
        rows = {parity: [b for b in blocks if b % 2 == parity] for parity in (0, 1)}
        self.even, self.odd = (
            np.concatenate([np.arange(lmi.offsets[b], lmi.offsets[b + 1]) for b in rows[parity]])
            for parity in (0, 1)
        )
        place = {}
        for parity in (0, 1):
            start = 0
            for b in rows[parity]:
                place[b] = slice(start, start + lmi.sizes[b])
                start += lmi.sizes[b]
        self.matrix = np.zeros((self.odd.size, self.even.size))
        for k in range(first, len(coupled)):
            block = root[lmi.blocks[k + 1], None] * coupled[k] * root[None, lmi.blocks[k]]
            if k % 2 == 0:
                self.matrix[place[k + 1], place[k]] = block
            else:
                self.matrix[place[k], place[k + 1]] = block.T

    def smallest_eigenvalue(self) -> float:
        """``lambda_min(I - [[0, C'], [C, 0]]) = 1 - sigma_max(C)``, from the smaller Gram matrix."""
        C = self.matrix
        gram = C @ C.T if C.shape[0] <= C.shape[1] else C.T @ C
        last = gram.shape[0] - 1
        top = scipy.linalg.eigh(gram, eigvals_only=True, subset_by_index=[last, last], check_finite=False)
        return 1.0 - float(np.sqrt(max(float(top[0]), 0.0)))

    def singular_triplets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(P, sigma, Q)`` with ``C = P diag(sigma) Q'`` (thin)."""
        P, sigma, Qt = np.linalg.svd(self.matrix, full_matrices=False)
        return P, sigma, Qt.T


class _DualFunction:
    """``F(Y) = -g(Y Y')`` and its derivatives for one step."""

    def __init__(self, lmi: StepLmi) -> None:
        self.lmi = lmi
        self.regularize = lmi.cap is not None
        self.cap = 0.0 if lmi.cap is None else float(lmi.cap)  # c = mu/rho
        self.fixed_squared = 0.0 if lmi.squared_bound is None else float(lmi.squared_bound)
        self.squares = [c**2 for c in lmi.coefficients]
        self.pairs = [(lmi.blocks[k + 1], lmi.blocks[k]) for k in range(len(lmi.targets))]
        self.inputs = lmi.blocks[0]
        self.target_blocks = [c[:, None] * g for c, g in zip(lmi.coefficients, lmi.targets)]  # A(G)

    def point(self, Y: np.ndarray) -> _Point:
        lmi = self.lmi
        value = float(np.einsum("i,ij,ij->", lmi.diagonal(self.fixed_squared), Y, Y))
        W, coupled = [], []
        for (rows, cols), g, c in zip(self.pairs, lmi.targets, lmi.coefficients):
            scaled = c[:, None] * (Y[rows] @ Y[cols].T)  # coef_k * X_k
            value += 2.0 * float(np.vdot(scaled, scaled - g))
            W.append(g - 2.0 * scaled)
            coupled.append(c[:, None] * W[-1])
        squared = self.multiplier(Y, coupled) if self.regularize else self.fixed_squared
        return _Point(Y, W, coupled, squared, value, 2.0 * self.slack_times(coupled, squared, Y))

    def multiplier(self, Y: np.ndarray, coupled: Sequence[np.ndarray]) -> float:
        """Regularize: ``s = eps + <coef_0 * W_0, Y_1 Y_0'> / c``, the sphere's multiplier."""
        rows, cols = self.pairs[0]
        coupling = float(np.vdot(coupled[0] @ Y[cols], Y[rows]))
        return self.lmi.margin + coupling / self.cap

    def slack_times(self, coupled: Sequence[np.ndarray], squared: float, V: np.ndarray) -> np.ndarray:
        """``S(s, W) V`` from the blocks (``O(n_W p)``)."""
        out = self.lmi.diagonal(squared)[:, None] * V
        for (rows, cols), block in zip(self.pairs, coupled):
            out[rows] -= block @ V[cols]
            out[cols] -= block.T @ V[rows]
        return out

    def hessian_times(self, point: _Point, V: np.ndarray) -> np.ndarray:
        """``Hess F [V] = 2 S V + 2 dS Y`` (regularize: the Lagrangian's, at the multiplier)."""
        Y = point.Y
        out = 2.0 * self.slack_times(point.coupled, point.squared, V)
        for (rows, cols), c2 in zip(self.pairs, self.squares):
            change = (4.0 * c2)[:, None] * (np.hstack([V[rows], Y[rows]]) @ np.hstack([Y[cols], V[cols]]).T)
            out[rows] += change @ Y[cols]
            out[cols] += change.T @ Y[rows]
        return out

    def tangent(self, point: _Point, V: np.ndarray) -> np.ndarray:
        """Regularize: ``V`` less its input rows' component along ``Y_0`` (the sphere's tangent space)."""
        if not self.regularize:
            return V
        Y0 = point.Y[self.inputs]
        V = V.copy()
        V[self.inputs] -= (float(np.vdot(V[self.inputs], Y0)) / float(np.vdot(Y0, Y0))) * Y0
        return V

    def retract(self, Y: np.ndarray) -> np.ndarray:
        """Regularize: the input rows rescaled to ``||Y_0||_F^2 = c``."""
        if not self.regularize:
            return Y
        norm = float(np.linalg.norm(Y[self.inputs]))
        if not norm > 0.0:
            raise SolverError(
                "the dual deep step solver lost its input rows (Y_0 = 0)", status="numerical_error"
            )
        Y = Y.copy()
        Y[self.inputs] *= np.sqrt(self.cap) / norm
        return Y

    def root(self, squared: float) -> np.ndarray:
        """``D(s)^-1/2``; regularize: the input block's entry floored where the multiplier ``s`` is
        not above the margin (:meth:`primal` then evaluates the point at the floored ``s``)."""
        diagonal = self.lmi.diagonal(squared)
        if self.regularize:
            diagonal[self.inputs] = max(float(diagonal[0]), 1e-6 * float(np.max(self.lmi.fixed_diagonal)))
        return 1.0 / np.sqrt(diagonal)

    # -- the primal point and the gap ------------------------------------------------------

    def primal(self, point: _Point) -> _Primal:
        """A feasible primal point near ``W(Y Y')`` and its certified gap (*) (module docstring).

        ``W(Z)`` shrunk toward 0 by ``1 / (1 - lambda)`` if ``lambda``, the least eigenvalue of
        the scaled ``S(s, W(Z))``, is negative (``S(s, theta W) = theta S(s, W) + (1 - theta) D(s)``);
        regularize: at the multiplier ``s`` (floored as in :meth:`root`), lowered to the least
        feasible ``L^2`` of the shrunk weights where that is computable.
        """
        lmi = self.lmi
        root = self.root(point.squared)
        squared = lmi.margin + 1.0 / float(root[0]) ** 2 if self.regularize else point.squared
        smallest = _Coupling(lmi, point.coupled, root).smallest_eigenvalue()
        W = point.W if smallest >= 0.0 else [w / (1.0 - smallest) for w in point.W]
        proximity = lmi.objective(W, 0.0)
        # (*) at W(Z), then the change of the objective to the feasible point
        gap = 0.5 * float(np.vdot(point.Y, point.gradient)) + proximity - lmi.objective(point.W, 0.0)
        if not self.regularize:
            return _Primal(W, squared, proximity, gap, smallest)
        squared = min(squared, self.least_squared_bound(W))
        gap += (squared - point.squared) * self.cap
        return _Primal(W, squared, proximity + self.cap * squared, gap, smallest)

    def least_squared_bound(self, W: Sequence[np.ndarray]) -> float:
        """Regularize: the least ``L^2`` with ``S(L^2, W) >= 0`` (``inf`` if none is found).

        ``eps + lambda_max(B' S_rest^{-1} B)``, ``S_rest`` the hidden and output blocks of ``S``
        (free of ``L^2``), ``B`` the input block's coupling (Schur complement); ``inf`` if
        ``S_rest`` is not positive definite in floating point.
        """
        lmi = self.lmi
        n = lmi.n_in
        S = lmi.slack(W, lmi.margin)
        try:
            factor = scipy.linalg.cho_factor(S[n:, n:], lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return float("inf")
        coupling = S[n:, :n]
        schur = coupling.T @ scipy.linalg.cho_solve(factor, coupling, check_finite=False)
        top = scipy.linalg.eigh(0.5 * (schur + schur.T), eigvals_only=True, subset_by_index=[n - 1, n - 1])
        return lmi.margin + max(float(top[0]), 0.0)


class _Preconditioner:
    """``M^-1`` for Newton's system in the scaled rows: ``M V = 2 S~_+ V + 4 kappa V X'X + shift V``.

    ``S~ = I - [[0, C'], [C, 0]]`` (:class:`_Coupling`) is the scaled ``2 S V`` term exactly
    (negative eigenvalues clipped); ``4 kappa V X'X`` stands for ``2 dS Y``, which acts on the
    directions in the span of ``Y`` (there ``S~ ~ 0``): ``dS`` keeps only the blocks of
    neighbouring layers, each entry weighted by ``coef_i^2 / (d_i d_j)``, replaced by their median
    ``kappa`` (a certificate's ``T`` can span many orders of magnitude: on the proof campaign's
    nets the dual answered 12 of 24 steps it had given up with the mean, none before).
    ``M`` is diagonal in the eigenvectors ``(q_i; +-p_i) / sqrt(2)`` of ``S~`` on the left and
    those of ``X'X`` on the right: one SVD of ``C`` per Newton step, ``O(N min(n_even, n_odd) p)``
    flops per application. Measured on 784-256-256-10 (enforce): 20 to 30 CG steps per Newton
    step instead of 130 to 230 without it.
    """

    def __init__(self, dual: _DualFunction, point: _Point, root: np.ndarray, shift: float) -> None:
        lmi = dual.lmi
        coupling = _Coupling(lmi, point.coupled, root)
        self.even, self.odd = coupling.even, coupling.odd
        self.P, sigma, self.Q = coupling.singular_triplets()
        X = point.Y / root[:, None]
        weights = np.concatenate([
            (c2[:, None] * (root[rows, None] ** 2) * (root[None, cols] ** 2)).ravel()
            for (rows, cols), c2 in zip(dual.pairs, dual.squares)
        ])
        gram_values, self.rotation = np.linalg.eigh(X.T @ X)
        right = 4.0 * float(np.median(weights)) * np.maximum(gram_values, 0.0)[None, :] + shift
        self.plus = 2.0 * np.maximum(1.0 - sigma, 0.0)[:, None] + right
        self.minus = 2.0 * (1.0 + sigma)[:, None] + right
        self.rest = 2.0 + right

    def __call__(self, R: np.ndarray) -> np.ndarray:
        R = R @ self.rotation
        even, odd = R[self.even], R[self.odd]
        a, b = self.Q.T @ even, self.P.T @ odd
        plus = (a + b) / (2.0 * self.plus)  # the 1/sqrt(2) of both changes of basis
        minus = (a - b) / (2.0 * self.minus)
        out = np.empty_like(R)
        out[self.even] = (even - self.Q @ a) / self.rest + self.Q @ (plus + minus)
        out[self.odd] = (odd - self.P @ b) / self.rest + self.P @ (plus - minus)
        return out @ self.rotation.T


def solve_deep_step_dual(
    targets: Sequence[np.ndarray],
    t: np.ndarray,
    *,
    mode: str,
    beta: float = 1.0,
    mu_over_rho: float | None = None,
    squared_bound: float | None = None,
    margin: float = 0.0,
    tol: float = 1e-9,
    max_newton_steps: int = 100,
    blas_threads: int | None = 1,
) -> DeepDualSolution:
    """Solve the multi-layer Lipschitz step (10b) with ``T = diag(t)`` fixed, in its low-rank dual.

    The arguments are those of :func:`pylip.admm.deep_fast_step.solve_deep_step`. Stops when the
    certified gap (*) of the returned point is ``<= tol`` times its objective (or, once the gap
    stops falling, ``<= ACCEPT * tol``); raises :class:`SolverError` if ``max_newton_steps``
    Newton steps do not get there.
    """
    start = time.perf_counter()
    lmi = StepLmi.checked(targets, t, mode, beta, mu_over_rho, squared_bound, margin)
    with blas.at_most(blas_threads):
        try:
            return _solve(_DualFunction(lmi), tol, max_newton_steps, start)
        except (np.linalg.LinAlgError, ValueError) as exc:  # an SVD or eigensolver on overflowed values
            raise SolverError(
                f"the dual deep step solver's linear algebra failed ({exc})", status="numerical_error"
            ) from exc


def _solve(dual: _DualFunction, tol: float, max_newton_steps: int, start: float) -> DeepDualSolution:
    lmi = dual.lmi
    statistics = {"quasi_newton": 0, "newton": 0, "cg": 0}

    def solution(primal: _Primal, rank: int) -> DeepDualSolution:
        return DeepDualSolution(
            W_bar=primal.W,
            squared_bound=primal.squared,
            objective=primal.objective,
            gap=primal.gap,
            rank=rank,
            quasi_newton_steps=statistics["quasi_newton"],
            newton_steps=statistics["newton"],
            cg_steps=statistics["cg"],
            solve_time=time.perf_counter() - start,
        )

    squared = dual.fixed_squared if not dual.regularize else _first_squared_bound(dual)
    targets = _Coupling(lmi, dual.target_blocks, dual.root(squared))
    if not dual.regularize and targets.smallest_eigenvalue() > 0.0:
        # the targets satisfy the LMI: they are the projection itself (Z = 0)
        return solution(_Primal([g.copy() for g in lmi.targets], squared, 0.0, 0.0, 1.0), 0)
    point = dual.point(dual.retract(_initial_factor(dual, targets, squared)))
    best = None
    for _ in range(MAX_ROUNDS):
        point, primal = _quasi_newton(dual, point, 1.0 / dual.root(squared)[:, None], statistics)
        point, primal, stalled = _newton(dual, point, primal, tol, max_newton_steps, statistics)
        best = primal if best is None else min(best, primal, key=lambda p: p.relative_gap)
        if best.relative_gap <= tol or (not stalled and best.relative_gap <= ACCEPT * tol):
            return solution(best, point.Y.shape[1])
        if statistics["newton"] >= max_newton_steps or not primal.smallest < 0.0:
            break
        point = _grown(dual, point)  # progress stopped at an infeasible W(Z): add its violated directions
        squared = point.squared if dual.regularize else squared
    raise SolverError(
        f"the dual deep step solver stopped at relative gap {best.relative_gap:.1e} "  # type: ignore[union-attr]
        f"({statistics['newton']} Newton steps, rank {point.Y.shape[1]})"
    )


def _first_squared_bound(dual: _DualFunction) -> float:
    """Regularize: an ``L^2`` at which the first factor (:func:`_initial_factor`) has ``tr Z_00 ~ c``.

    ``tr Z_00`` of that factor falls as ``L^2`` grows (fewer and weaker violated directions);
    the search brackets ``c`` from the targets' trivial bound down by factors of 100, then
    interpolates ``log tr Z_00`` linearly in ``log L^2`` until within a factor 2 of ``c``. The
    starting ``L^2`` sets the first factor (its rank: the violated directions there) and the
    rows' scaling; the solve's cost was flat for starts from 0.3 to 10 times the optimum's
    ``L^2`` (784-256-256-10, 64-128-128-10). Measured: 0.5 to 0.8 times it with a certificate's
    ``T`` (the ADMM case), where the trivial bound, used before, started at 5 to 60 times it with
    no violated direction (the factor had rank 5; L-BFGS stalled).
    """
    lmi = dual.lmi

    def trace(squared: float) -> float:
        Y = _initial_factor(dual, _Coupling(lmi, dual.target_blocks, dual.root(squared)), squared)
        return float(np.sum(Y[dual.inputs] ** 2))

    high = lmi.margin + max(_trivial_squared_bound(lmi), 1e-12)
    trace_high = trace(high)
    low, trace_low = high, trace_high
    for _ in range(SEARCH_STEPS):
        if trace_low >= dual.cap:
            break
        high, trace_high = low, trace_low
        low = lmi.margin + (low - lmi.margin) / 100.0
        trace_low = trace(low)
    else:
        return low
    for _ in range(SEARCH_STEPS):
        if trace_low <= 2.0 * dual.cap or trace_high >= 0.5 * dual.cap or high <= low:
            break
        if trace_high > 0.0:  # log-log interpolation, kept inside the bracket
            fraction = np.log(trace_low / dual.cap) / np.log(trace_low / trace_high)
            fraction = min(max(fraction, 0.1), 0.9)
        else:
            fraction = 0.5
        middle = float(np.exp(np.log(low) + fraction * (np.log(high) - np.log(low))))
        trace_middle = trace(middle)
        if trace_middle >= dual.cap:
            low, trace_low = middle, trace_middle
        else:
            high, trace_high = middle, trace_middle
    low_is_closer = abs(np.log(trace_low / dual.cap)) <= abs(np.log(max(trace_high, 1e-300) / dual.cap))
    return low if low_is_closer else high


def _trivial_squared_bound(lmi: StepLmi) -> float:
    """Regularize: a first ``L^2``, the square of the targets' trivial bound (product of spectral norms)."""
    product = float(np.prod([np.linalg.norm(g, 2) for g in lmi.targets])) * lmi.beta ** (len(lmi.sizes) - 2)
    return lmi.margin + max(product**2, 1e-12)


def _initial_factor(dual: _DualFunction, targets: _Coupling, squared: float) -> np.ndarray:
    """``Y``: the violated eigenvectors ``(q_i; p_i)`` of the targets' scaled ``S``, weighted, scaled best."""
    P, sigma, Q = targets.singular_triplets()
    violated = int(np.sum(sigma > 1.0))
    rank = min(sigma.size, max(violated, 1) + EXTRA_RANK)
    floor = 1e-2 * max(float(sigma[0]) - 1.0, 1e-8)
    weights = np.sqrt(np.maximum(sigma[:rank] - 1.0, floor))
    Y = np.zeros((dual.lmi.size, rank))
    Y[targets.even] = Q[:, :rank] * weights
    Y[targets.odd] = P[:, :rank] * weights
    Y *= dual.root(squared)[:, None]
    return Y * np.sqrt(_best_factor(dual, Y, squared, dual.target_blocks))


def _best_factor(dual: _DualFunction, V: np.ndarray, squared: float, coupled: Sequence[np.ndarray]) -> float:
    """The ``b = a^2 > 0`` minimising ``F([Y, a V])``, ``coupled`` the blocks ``coef * W`` at ``Y``.

    ``F([Y, a V]) = F(Y) + b <V, S(s, W) V> + 2 b^2 sum_k ||coef_k * V_{k+1} V_k'||^2`` (``D(s)``
    with the ``s`` given): a quadratic in ``b``.
    """
    linear = float(np.vdot(V, dual.slack_times(coupled, squared, V)))
    quadratic = 0.0
    for (rows, cols), c in zip(dual.pairs, dual.lmi.coefficients):
        product = c[:, None] * (V[rows] @ V[cols].T)
        quadratic += 2.0 * float(np.vdot(product, product))
    if linear >= 0.0 or quadratic <= 0.0:
        return 1e-6
    return -linear / (2.0 * quadratic)


def _quasi_newton(
    dual: _DualFunction, point: _Point, scale: np.ndarray, statistics: dict[str, int]
) -> tuple[_Point, _Primal]:
    """L-BFGS in the scaled rows ``scale * Y`` until the relative gap is ``<= SWITCH`` or stops falling."""
    steps: list[np.ndarray] = []
    changes: list[np.ndarray] = []
    gradient = point.gradient / scale
    primal = dual.primal(point)
    best, checks_without_progress = primal.relative_gap, 0
    while statistics["quasi_newton"] < MAX_QUASI_NEWTON and primal.relative_gap > SWITCH:
        direction = -_two_loop(gradient, steps, changes)
        if not steps:  # a first step of 1 % of the point's size
            size = float(np.linalg.norm(point.Y * scale))
            direction *= 1e-2 * size / max(float(np.linalg.norm(direction)), 1e-300)
        slope = float(np.vdot(gradient, direction))
        if slope >= 0.0:  # not a descent direction: restart from the gradient
            steps.clear()
            changes.clear()
            continue
        length = 1.0
        while True:
            trial = dual.point(dual.retract(point.Y + length * direction / scale))
            if trial.value <= point.value + ARMIJO * length * slope:
                break
            length *= 0.5
            if length < 1e-12:
                return point, primal  # no descent left at this precision
        trial_gradient = trial.gradient / scale
        step, change = (trial.Y - point.Y) * scale, trial_gradient - gradient
        if float(np.vdot(step, change)) > 1e-12 * float(np.vdot(step, step)):
            steps.append(step)
            changes.append(change)
            if len(steps) > MEMORY:
                steps.pop(0)
                changes.pop(0)
        point, gradient = trial, trial_gradient
        statistics["quasi_newton"] += 1
        if statistics["quasi_newton"] % CHECK_EVERY == 0:
            primal = dual.primal(point)
            if primal.relative_gap < 0.5 * best:
                best, checks_without_progress = primal.relative_gap, 0
            else:
                checks_without_progress += 1
                if checks_without_progress >= 10:
                    break
    return point, primal


def _two_loop(gradient: np.ndarray, steps: list[np.ndarray], changes: list[np.ndarray]) -> np.ndarray:
    """The L-BFGS product ``H gradient`` (Nocedal and Wright, Algorithm 7.4)."""
    q = gradient.copy()
    alphas = []
    for s, y in zip(reversed(steps), reversed(changes)):
        alpha = float(np.vdot(s, q)) / float(np.vdot(s, y))
        q -= alpha * y
        alphas.append(alpha)
    if steps:
        q *= float(np.vdot(steps[-1], changes[-1])) / float(np.vdot(changes[-1], changes[-1]))
    for s, y, alpha in zip(steps, changes, reversed(alphas)):
        q += (alpha - float(np.vdot(y, q)) / float(np.vdot(s, y))) * s
    return q


def _newton(
    dual: _DualFunction,
    point: _Point,
    primal: _Primal,
    tol: float,
    max_newton_steps: int,
    statistics: dict[str, int],
) -> tuple[_Point, _Primal, bool]:
    """Trust-region Newton steps until the relative gap is ``<= tol``.

    Returns early, ``stalled``, at a stationary point whose ``S`` is not positive semidefinite
    (the rank is too small) or whose trust region has collapsed; also returns (not stalled) after
    ``PATIENCE`` steps without halving the gap or the gradient (the rounding floor).
    """
    radius = float("inf")
    best = (primal.relative_gap, float(np.linalg.norm(point.gradient * dual.root(point.squared)[:, None])))
    patience = 0
    while primal.relative_gap > tol and statistics["newton"] < max_newton_steps:
        root = dual.root(point.squared)
        scale = 1.0 / root[:, None]
        gradient = point.gradient / scale
        size = float(np.linalg.norm(point.Y * scale))
        if primal.smallest < 0.0 and np.linalg.norm(gradient) <= STALLED * -primal.smallest * size:
            return point, primal, True
        model = _NewtonModel(dual, point, root, SHIFT * float(np.linalg.norm(gradient)))
        radius = min(radius, size)
        forcing = min(CG_FORCING, float(np.sqrt(primal.relative_gap)))
        step, predicted, used = _steihaug(model.hessian, model.precondition, gradient, radius, forcing)
        statistics["newton"] += 1
        statistics["cg"] += used
        trial = dual.point(dual.retract(point.Y + step / scale))
        rounding = 1e-13 * (abs(point.value) + float(np.vdot(point.Y * scale, point.Y * scale)))
        ratio = 1.0 if predicted <= rounding else (point.value - trial.value) / predicted
        if not np.isfinite(trial.value):
            ratio = -1.0
        length = float(np.linalg.norm(step))
        if ratio < 0.25:
            radius = 0.25 * length
        elif ratio > 0.75 and length >= 0.99 * radius:
            radius = 2.0 * radius
        if ratio <= 0.0:
            if radius < 1e-14 * size:
                return point, primal, True
            continue
        point, primal = trial, dual.primal(trial)
        norm = float(np.linalg.norm(point.gradient * dual.root(point.squared)[:, None]))
        if primal.relative_gap < 0.5 * best[0] or norm < 0.5 * best[1]:  # the gap or the gradient halved
            best, patience = (min(best[0], primal.relative_gap), min(best[1], norm)), 0
        else:
            patience += 1
            if patience >= PATIENCE:
                break
    return point, primal, False


class _NewtonModel:
    """Newton's system at a point in the rows scaled by ``D^1/2``: its Hessian and preconditioner.

    The Hessian is shifted by ``shift I`` (Levenberg and Marquardt); regularize: both act on the
    sphere's tangent space.
    """

    def __init__(self, dual: _DualFunction, point: _Point, root: np.ndarray, shift: float) -> None:
        self.dual, self.point, self.root, self.shift = dual, point, root[:, None], shift
        self.preconditioner = _Preconditioner(dual, point, root, shift)

    def hessian(self, v: np.ndarray) -> np.ndarray:
        product = self.dual.hessian_times(self.point, v * self.root)
        return self.dual.tangent(self.point, product) * self.root + self.shift * v

    def precondition(self, r: np.ndarray) -> np.ndarray:
        return self.dual.tangent(self.point, self.preconditioner(self.dual.tangent(self.point, r)))


def _steihaug(
    hessian: Callable[[np.ndarray], np.ndarray],
    precondition: Callable[[np.ndarray], np.ndarray],
    gradient: np.ndarray,
    radius: float,
    forcing: float,
) -> tuple[np.ndarray, float, int]:
    """Preconditioned truncated CG for ``min g'z + 1/2 z'Hz``, ``||z|| <= radius`` (Steihaug).

    Returns ``(z, predicted decrease, Hessian products)``. On negative curvature it takes the
    first direction to the boundary, and later stops at the point so far (near the optimum the
    Hessian is indefinite only by the slightly negative eigenvalues of ``S``: not worth following).
    """
    z = np.zeros_like(gradient)
    r = gradient.copy()
    y = precondition(r)
    d = -y
    ry = float(np.vdot(r, y))
    threshold = (forcing**2) * float(np.vdot(r, r))
    used = 0
    while used < MAX_CG:
        used += 1
        Hd = hessian(d)
        curvature = float(np.vdot(d, Hd))
        if curvature <= 0.0:
            if used == 1:
                z = _to_boundary(z, d, radius) * d
            break
        alpha = ry / curvature
        if float(np.linalg.norm(z + alpha * d)) >= radius:
            z = z + _to_boundary(z, d, radius) * d
            break
        z = z + alpha * d
        r = r + alpha * Hd
        if float(np.vdot(r, r)) <= threshold:
            break
        y = precondition(r)
        ry_new = float(np.vdot(r, y))
        d = -y + (ry_new / ry) * d
        ry = ry_new
    predicted = -(float(np.vdot(gradient, z)) + 0.5 * float(np.vdot(z, hessian(z))))
    return z, predicted, used + 1


def _to_boundary(z: np.ndarray, d: np.ndarray, radius: float) -> float:
    """The ``tau >= 0`` with ``||z + tau d|| = radius``."""
    a, b, c = float(np.vdot(d, d)), 2.0 * float(np.vdot(z, d)), float(np.vdot(z, z)) - radius**2
    return (-b + np.sqrt(max(b * b - 4.0 * a * c, 0.0))) / (2.0 * a)


def _grown(dual: _DualFunction, point: _Point) -> _Point:
    """``Y`` with the eigenvectors of the negative eigenvalues of the scaled ``S`` added as columns."""
    root = dual.root(point.squared)
    coupling = _Coupling(dual.lmi, point.coupled, root)
    P, sigma, Q = coupling.singular_triplets()
    violated = sigma > 1.0
    if not np.any(violated):
        raise SolverError(
            "the dual deep step solver stalled at a point it cannot improve", status="numerical_error"
        )
    V = np.zeros((dual.lmi.size, int(np.sum(violated))))
    V[coupling.even] = Q[:, violated] * np.sqrt(sigma[violated] - 1.0)
    V[coupling.odd] = P[:, violated] * np.sqrt(sigma[violated] - 1.0)
    V *= root[:, None]
    V *= np.sqrt(_best_factor(dual, V, point.squared, point.coupled))
    return dual.point(dual.retract(np.hstack([point.Y, V])))


__all__ = ["DeepDualSolution", "solve_deep_step_dual"]
