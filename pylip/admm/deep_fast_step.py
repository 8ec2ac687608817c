"""A structured barrier solver for the multi-layer Lipschitz step (10b) with a fixed diagonal ``T``.

The step of :class:`pylip.deep_admm.DeepLipschitzStep` (divided by ``rho``)

    min  c L^2 + 1/2 sum_k ||W_k - G_k||^2   s.t.  S(L^2, W) := -M(L^2, W) - eps I  >= 0,

with ``G_k = W_k + Y_k/rho``, ``c = mu/rho`` (regularize, eq. 9) or ``L^2 = L_des^2`` fixed
(enforce, eq. 12), has an LMI that is affine in ``W`` and block-tridiagonal across layers:
``W_k`` only enters the block ``(k+1, k)`` of ``M``, entry ``(i, j)`` with the coefficient
``beta t_{k+1, i}`` (1 for the output layer). The log-det barrier method (Boyd and
Vandenberghe, Section 11.3) on ``t_b f(W) - log det S`` uses exactly that:

* gradient: ``t_b (W_k - G_k) + 2 coef_k * R[k+1, k]`` with ``R = S^{-1}``;
* Hessian-vector product: ``t_b dW_k + 2 coef_k * (R dM R)[k+1, k]``, where only the
  ``(k+1, k)`` blocks of ``R dM R`` are formed (``O(N n_W)`` flops, ``N`` the LMI size and
  ``n_W`` the number of weights), never a Hessian of the ``n_W`` weights;
* Newton steps by conjugate gradients, preconditioned (:class:`_Preconditioner`) with the
  Hessian's exact diagonal ``t_b + 2 coef^2 (R_pq^2 + R_pp R_qq)`` plus, by the Woodbury
  identity, its dominant low-rank part on the eigenvectors of ``S`` whose eigenvalues go to 0
  (the active part of the LMI); a backtracking line search that keeps ``S`` positive definite
  (a Cholesky factorisation); after each centring the barrier weight ``t_b`` is multiplied by
  ``GROWTH`` and the point moved along the central path's tangent (:func:`_predict`, which
  reuses the centred point's ``S^{-1}`` and preconditioner);
* regularize: the method starts at the central ``L^2`` of the initial weights
  (:func:`_central_bound`, a 1-D root), not at ``L^2 = 1``;
* one BLAS thread (``blas_threads``): the matrices have a few hundred rows and a second
  OpenBLAS thread on 2 cores made the solve many times slower.

Stop: after centring at ``t_b``, the duality gap of the central point is ``N / t_b``
(``N`` the LMI size); the solver stops when it is ``<= tol`` times the objective, so the
agreement with an exact solve is relative in the objective. Every iterate is strictly inside
the LMI; the caller still proves the point in float64 (``DeepLipschitzStep._checked``).
Measured (``bench/deep_step.py``): fast while few eigenvalues of ``S`` are active; when many
are (a strongly enforced bound on wide layers) the CG steps grow and the method slows down:
on 784-256-256-10 (enforce, 0.3 times the trivial bound) the preconditioner is full (62
active eigenvectors, ``MAX_ACTIVE``) from barrier weight 1e6 on, CG stops at ``MAX_CG`` and
one Newton step takes about 10 s (no answer in 7 minutes); in regularize (``mu/rho = 0.05``)
the same from barrier weight 7e4 on. So :class:`~pylip.deep_admm.DeepLipschitzStep` solves the
step in its low-rank dual by default (:mod:`pylip.admm.deep_dual_step`, 784-256-256-10 in a few
seconds) and falls back to this method (``method="structured"`` asks for it directly).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize

from .. import blas
from ..errors import SolverError
from .deep_lmi import StepLmi

GROWTH = 100.0  # barrier weight factor per centring
CENTRED = 1e-4  # a centring ends when half the squared Newton decrement is below this
ROUNDING = 1e-11  # ... or below this fraction of the barrier function (its rounding level)
ARMIJO = 0.25  # sufficient decrease of the line search
CG_TOLERANCE = 1e-3  # relative residual of the Newton system (inexact Newton)
MAX_CG = 400  # conjugate-gradient steps per Newton step
ACTIVE = 10.0
PRECONDITIONER_PAIRS = 2000  # at most this many eigenvector pairs in it (the most active first)
# ... so at most this many active eigenvectors: the largest r with r (r + 1) / 2 <= PRECONDITIONER_PAIRS
MAX_ACTIVE = int((np.sqrt(8 * PRECONDITIONER_PAIRS + 1) - 1) // 2)
SUBSET_EIGH_ABOVE = 300  # LMI size above which only the MAX_ACTIVE smallest eigenpairs are computed


@dataclass(frozen=True)
class DeepStepSolution:
    """Result of :func:`solve_deep_step`: the step's ``W_bar``, its ``L^2`` and the solve's statistics."""

    W_bar: list[np.ndarray]
    squared_bound: float
    objective: float
    newton_steps: int
    cg_steps: int
    gap: float
    solve_time: float


class _Barrier(StepLmi):
    """The step's LMI (:class:`~pylip.admm.deep_lmi.StepLmi`) and the barrier's derivatives in the weights."""

    def inverse_slack(self, W: Sequence[np.ndarray], squared: float) -> tuple[np.ndarray, float] | None:
        """``(S^{-1}, log det S)``, or None outside the LMI's interior."""
        try:
            factor = scipy.linalg.cho_factor(self.slack(W, squared), lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return None
        logdet = 2.0 * float(np.sum(np.log(np.diag(factor[0]))))
        inverse = scipy.linalg.cho_solve(factor, np.eye(self.size), check_finite=False)
        return 0.5 * (inverse + inverse.T), logdet

    # -- barrier derivatives -------------------------------------------------------------

    def barrier_gradient(self, R: np.ndarray) -> tuple[list[np.ndarray], float]:
        """``d(-log det S)``: per weight ``2 coef R[k+1, k]``; in ``L^2``: ``-tr R_00``."""
        gradient = [
            2.0 * c[:, None] * R[self.blocks[k + 1], self.blocks[k]] for k, c in enumerate(self.coefficients)
        ]
        return gradient, -float(np.trace(R[self.blocks[0], self.blocks[0]]))

    def barrier_diagonal(self, R: np.ndarray) -> tuple[list[np.ndarray], float]:
        """The diagonal of the barrier's Hessian: ``2 coef^2 (R_pq^2 + R_pp R_qq)``; ``||R_00||_F^2``."""
        d = np.diag(R)
        diagonal = []
        for k, c in enumerate(self.coefficients):
            rows, cols = self.blocks[k + 1], self.blocks[k]
            diagonal.append(2.0 * (c**2)[:, None] * (R[rows, cols] ** 2 + np.outer(d[rows], d[cols])))
        return diagonal, float(np.sum(R[self.blocks[0], self.blocks[0]] ** 2))

    def barrier_product(
        self, R: np.ndarray, dW: Sequence[np.ndarray], d_squared: float
    ) -> tuple[list[np.ndarray], float]:
        """The barrier's Hessian times ``(dW, dL^2)``: blocks ``(k+1, k)`` and ``(0, 0)`` of ``R dM R``."""
        # P = dM R, row block by row block: dM has (k+1, k) blocks coef dW_k, their transposes, -dL^2 I_00
        P = np.zeros((self.size, self.size))
        if d_squared != 0.0:
            P[self.blocks[0]] = -d_squared * R[self.blocks[0]]
        for k, c in enumerate(self.coefficients):
            block = c[:, None] * dW[k]
            P[self.blocks[k + 1]] += block @ R[self.blocks[k]]
            P[self.blocks[k]] += block.T @ R[self.blocks[k + 1]]
        product = [
            2.0 * c[:, None] * (R[self.blocks[k + 1]] @ P[:, self.blocks[k]])
            for k, c in enumerate(self.coefficients)
        ]
        return product, -float(np.trace(R[self.blocks[0]] @ P[:, self.blocks[0]]))


def solve_deep_step(
    targets: Sequence[np.ndarray],
    t: np.ndarray,
    *,
    mode: str,
    beta: float = 1.0,
    mu_over_rho: float | None = None,
    squared_bound: float | None = None,
    margin: float = 0.0,
    tol: float = 1e-9,
    max_newton_steps: int = 400,
    blas_threads: int | None = 1,
) -> DeepStepSolution:
    """Solve the multi-layer Lipschitz step (10b) with ``T = diag(t)`` fixed by the barrier method.

    ``targets`` are ``G_k = W_k + Y_k/rho`` (``n_{k+1} x n_k``), ``t`` the diagonal of ``T``
    over all hidden neurons. ``mode="enforce"`` (eq. 12) fixes ``L^2 = squared_bound``;
    ``mode="regularize"`` (eq. 9) minimises ``mu_over_rho L^2 + 1/2 ||W_bar - G||^2``
    (``mu_over_rho > 0``). Stops when the central path's gap ``N / t_b`` is ``<= tol`` times the
    objective; raises :class:`SolverError` if ``max_newton_steps`` are used up first.
    ``blas_threads`` caps BLAS threads during the solve (``None`` leaves them alone): on 2 cores
    a second OpenBLAS thread made 64-32-32-10 (regularize) 17.4 s instead of 0.42 s.
    """
    start = time.perf_counter()
    problem = _Barrier.checked(targets, t, mode, beta, mu_over_rho, squared_bound, margin)
    with blas.at_most(blas_threads):
        return _solve(problem, tol, max_newton_steps, start)


def _solve(problem: _Barrier, tol: float, max_newton_steps: int, start: float) -> DeepStepSolution:
    """The barrier method of :func:`solve_deep_step` on a validated problem."""
    fixed = problem.squared_bound
    if fixed is not None and problem.inverse_slack(problem.targets, fixed) is not None:
        # the targets already satisfy the LMI (with its margin): they are the projection itself
        return DeepStepSolution(
            W_bar=[np.array(g, dtype=np.float64) for g in problem.targets],
            squared_bound=float(fixed),
            objective=0.0,
            newton_steps=0,
            cg_steps=0,
            gap=0.0,
            solve_time=time.perf_counter() - start,
        )
    W, squared = _initial_point(problem)
    weight = _initial_weight(problem, W, squared)
    if problem.cap is not None:
        squared = _central_bound(problem, W, weight, squared)
    newton = cg_total = 0
    inverse = problem.inverse_slack(W, squared)
    assert inverse is not None
    while True:
        W, squared, steps, cg_steps, centred = _centre(
            problem, W, squared, weight, max_newton_steps - newton, inverse
        )
        newton += steps
        cg_total += cg_steps
        objective = problem.objective(W, squared)
        gap = problem.size / weight
        if gap <= tol * objective:
            break
        W, squared, cg_steps, inverse = _predict(problem, W, squared, weight, GROWTH * weight, centred)
        cg_total += cg_steps
        weight *= GROWTH
    return DeepStepSolution(
        W_bar=W,
        squared_bound=float(squared),
        objective=objective,
        newton_steps=newton,
        cg_steps=cg_total,
        gap=gap,
        solve_time=time.perf_counter() - start,
    )


def _initial_point(problem: _Barrier) -> tuple[list[np.ndarray], float]:
    """Half the targets' largest strictly feasible multiple (``W = 0`` is strictly feasible)."""
    if problem.cap is None:
        squared = float(problem.squared_bound)  # type: ignore[arg-type]
    else:
        squared = 1.0 + problem.margin
    zero = [np.zeros_like(g) for g in problem.targets]
    base = problem.slack(zero, squared)
    root = 1.0 / np.sqrt(np.diag(base))
    coupling = base - problem.slack(problem.targets, squared)  # = M(G) off-diagonal, scaled below
    top = float(np.max(np.abs(np.linalg.eigvalsh(root[:, None] * coupling * root[None, :]))))
    scale = 1.0 if top <= 0 else min(1.0, 0.5 / top)
    return [scale * g for g in problem.targets], squared


def _central_bound(problem: _Barrier, W: list[np.ndarray], weight: float, current: float) -> float:
    """The ``L^2`` minimising ``weight c L^2 - log det S(W, L^2)`` at fixed ``W`` (regularize, eq. 9).

    ``L^2`` enters only the input block ``S_00 = (L^2 - eps) I``, so by the Schur complement
    ``log det S = const + sum_i log(L^2 - eps - m_i)`` with ``m_i`` the eigenvalues of
    ``B' S_rest^{-1} B`` (``B`` the coupling block of the first layer). Starting the barrier
    method there spares the damped Newton steps that otherwise raise ``L^2`` from 1 a few
    per cent at a time (about 110 of 155 on 64-64-64-10). Keeps ``current`` if rounding puts
    the root on the LMI's boundary.
    """
    S = problem.slack(W, problem.margin)  # S_00 = 0: only the other blocks are used
    n = problem.n_in
    factor = scipy.linalg.cho_factor(S[n:, n:], lower=True, check_finite=False)
    coupling = S[n:, :n]
    schur = coupling.T @ scipy.linalg.cho_solve(factor, coupling, check_finite=False)
    poles = problem.margin + np.linalg.eigvalsh(0.5 * (schur + schur.T))  # log det S -> -inf there
    target = weight * float(problem.cap)  # type: ignore[arg-type]

    def excess(x: float) -> float:  # d/dL^2 of the barrier part less the objective's: decreasing
        return float(np.sum(1.0 / (x - poles))) - target

    # 1/(x - top) <= sum_i 1/(x - poles_i) <= n/(x - top): excess > 0 at the lower bracket and
    # < 0 at the upper one, strictly (so also for n = 1)
    top = float(poles[-1])
    central = float(scipy.optimize.brentq(excess, top + 0.5 / target, top + 2.0 * n / target))
    return central if problem.inverse_slack(W, central) is not None else current


def _initial_weight(problem: _Barrier, W: list[np.ndarray], squared: float) -> float:
    """A barrier weight balancing the objective's and the barrier's gradients at the start."""
    R, _ = problem.inverse_slack(W, squared)  # type: ignore[misc]
    gradient, g_squared = problem.barrier_gradient(R)
    barrier = np.sqrt(sum(float(np.sum(g**2)) for g in gradient) + g_squared**2)
    own = [w - g for w, g in zip(W, problem.targets)]
    objective = np.sqrt(sum(float(np.sum(g**2)) for g in own) + (problem.cap or 0.0) ** 2)
    start = problem.size / max(problem.objective(W, squared), 1e-300)
    return float(max(barrier / max(objective, 1e-300), start))


def _newton_system(
    problem: _Barrier, W: list[np.ndarray], squared: float, weight: float, R: np.ndarray
) -> tuple[list[np.ndarray], float, _Preconditioner]:
    """The gradient of ``weight f - log det S`` at ``(W, L^2)`` and a preconditioner of its Hessian."""
    free_bound = problem.cap is not None
    g_W, g_s = problem.barrier_gradient(R)
    gradient = [weight * (w - g) + b for w, g, b in zip(W, problem.targets, g_W)]
    g_squared = weight * problem.cap + g_s if free_bound else 0.0  # type: ignore[operator]
    d_W, d_s = problem.barrier_diagonal(R)
    diagonal = np.concatenate([(weight + d).ravel() for d in d_W] + ([np.array([d_s])] if free_bound else []))
    return gradient, g_squared, _Preconditioner(problem, W, squared, weight, diagonal, free_bound)


def _predict(
    problem: _Barrier,
    W: list[np.ndarray],
    squared: float,
    weight: float,
    new_weight: float,
    centred: tuple[tuple[np.ndarray, float], _Preconditioner],
) -> tuple[list[np.ndarray], float, int, tuple[np.ndarray, float]]:
    """Follow the central path's tangent ``dx/dt_b = -H^{-1} grad f`` from ``weight`` to ``new_weight``.

    Differentiating ``t_b grad f + grad(-log det S) = 0`` gives the tangent; the step is halved
    until ``S`` stays positive definite (the centring then starts close to the new central point).
    ``centred`` is ``((S^{-1}, log det S), preconditioner)`` at ``(W, L^2)`` from :func:`_centre`;
    returns the new point, the CG steps and its ``(S^{-1}, log det S)``.
    """
    free_bound = problem.cap is not None
    current, precondition = centred
    own = [w - g for w, g in zip(W, problem.targets)]
    tangent, tangent_squared, used = _conjugate_gradient(
        problem, current[0], weight, own, problem.cap or 0.0, precondition, free_bound
    )
    length = new_weight - weight
    for _ in range(30):
        trial_W = [w + length * d for w, d in zip(W, tangent)]
        trial_squared = squared + length * tangent_squared
        trial = problem.inverse_slack(trial_W, trial_squared)
        if trial is not None:
            return trial_W, trial_squared, used, trial
        length *= 0.5
    return W, squared, used, current


def _centre(
    problem: _Barrier,
    W: list[np.ndarray],
    squared: float,
    weight: float,
    budget: int,
    current: tuple[np.ndarray, float],
) -> tuple[list[np.ndarray], float, int, int, tuple[tuple[np.ndarray, float], _Preconditioner]]:
    """Minimise ``weight f - log det S`` by inexact Newton steps from a strictly feasible point.

    ``current`` is ``(S^{-1}, log det S)`` at the start. Also returns it and the preconditioner
    at the centred point, which :func:`_predict` reuses (the same point and weight).
    """
    steps = cg_steps = 0
    free_bound = problem.cap is not None
    while True:
        if steps >= budget:
            raise SolverError(f"the deep step solver used up its Newton steps (barrier weight {weight:.3e})")
        R, logdet = current
        value = weight * problem.objective(W, squared) - logdet
        gradient, g_squared, precondition = _newton_system(problem, W, squared, weight, R)
        step, step_squared, used = _conjugate_gradient(
            problem, R, weight, gradient, g_squared, precondition, free_bound
        )
        steps += 1
        cg_steps += used
        decrement = -(sum(float(np.sum(g * s)) for g, s in zip(gradient, step)) + g_squared * step_squared)
        if decrement <= 2.0 * max(CENTRED, ROUNDING * abs(value)):
            return W, squared, steps, cg_steps, (current, precondition)
        alpha = 1.0
        while alpha > 1e-14:
            trial_W = [w + alpha * s for w, s in zip(W, step)]
            trial_squared = squared + alpha * step_squared
            trial = problem.inverse_slack(trial_W, trial_squared)
            if trial is not None:
                trial_value = weight * problem.objective(trial_W, trial_squared) - trial[1]
                if trial_value <= value - ARMIJO * alpha * decrement:
                    break
            alpha *= 0.5
        else:
            return W, squared, steps, cg_steps, (current, precondition)  # rounding floor: no decrease left
        W, squared, current = trial_W, trial_squared, trial


def _smallest_eigenpairs(S: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """At least the ``count`` smallest eigenpairs of ``S`` (ascending); all of them for small ``S``.

    Only the smallest can be active (``S > 0``). LAPACK's subset driver (evr) computed the 62
    smallest of a size-778 ``S`` in half the time of a full ``eigh``, but was slower below
    about 300 (one BLAS thread, measured at issue 11).
    """
    if S.shape[0] <= SUBSET_EIGH_ABOVE:
        return np.linalg.eigh(S)
    return scipy.linalg.eigh(S, subset_by_index=[0, count - 1], driver="evr", check_finite=False)


GRAM_ROWS = 128  # pairs per row block of _pair_gram (its temporaries stay in cache)


def _pair_gram(layer_grams: list[tuple[np.ndarray, np.ndarray]], f: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``J J'`` of :class:`_Preconditioner` on the pairs ``a = (f_a, s_a)``, from ``(A, B)`` per layer.

    Entry ``((i, j), (k, l))`` is ``sum A_ik B_jl + A_il B_jk + A_jk B_il + A_jl B_ik`` over the
    layers. Built ``GRAM_ROWS`` rows at a time: the whole-matrix products streamed every
    temporary through memory and took 2.2 times the CPU time at 62 active eigenvectors
    (1953 pairs; measured at issue 11).
    """
    pairs = f.size
    gram = np.empty((pairs, pairs))
    columns = [(A[:, f], A[:, s], B[:, f], B[:, s]) for A, B in layer_grams]  # r x pairs each
    for start in range(0, pairs, GRAM_ROWS):
        i, j = f[start : start + GRAM_ROWS], s[start : start + GRAM_ROWS]
        block = np.zeros((i.size, pairs))
        for A_k, A_l, B_k, B_l in columns:  # A_k[i] is A_ik over the columns (k, l), and so on
            block += A_k[i] * B_l[j]
            block += A_l[i] * B_k[j]
            block += A_k[j] * B_l[i]
            block += A_l[j] * B_k[i]
        gram[start : start + GRAM_ROWS] = block
    return gram


class _Preconditioner:
    """``(D + J' K J)^{-1}`` by Woodbury: the barrier Hessian's part on the LMI's active eigenvectors.

    With ``S = V diag(lam) V'`` and ``V_a`` the eigenvectors of the small ``lam``, the barrier's
    curvature ``tr(R dM R dM)`` is dominated by ``sum_ij (V_a' dM V_a)_ij^2 / (lam_i lam_j)``:
    ``J`` maps ``(dW, dL^2)`` to the entries ``i <= j`` of ``V_a' dM V_a`` and ``K`` weighs them;
    ``D`` is ``t_b`` (the objective's curvature) on the weights and, on ``L^2``, the barrier's
    curvature less its active part. ``J`` is never formed: it is applied through
    ``V_a`` and ``J J'`` comes from the ``r x r`` Gram matrices of ``V_a``'s layer blocks.
    Without active eigenvalues it is the Jacobi preconditioner (``diagonal``).
    """

    def __init__(
        self,
        problem: _Barrier,
        W: list[np.ndarray],
        squared: float,
        weight: float,
        diagonal: np.ndarray,
        free_bound: bool,
    ) -> None:
        self.problem = problem
        self.shapes = [w.shape for w in W]
        self.free_bound = free_bound
        self.weight = weight
        values, vectors = _smallest_eigenpairs(problem.slack(W, squared), MAX_ACTIVE)
        active = min(int(np.sum(values**2 * weight * ACTIVE <= 1.0)), MAX_ACTIVE)
        self.active = active
        self.diagonal = diagonal
        if active == 0:
            return
        self.V, lam = vectors[:, :active], values[:active]
        self.first, self.second = np.triu_indices(active)
        f, s = self.first, self.second
        layer_grams = []
        for k, c in enumerate(problem.coefficients):
            VP, VQ = self.V[problem.blocks[k + 1]], self.V[problem.blocks[k]]
            layer_grams.append((VP.T @ ((c**2)[:, None] * VP), VQ.T @ VQ))
        gram = _pair_gram(layer_grams, f, s)
        K = np.where(f == s, 1.0, 2.0) / (lam[f] * lam[s])
        capacitance = np.diag(1.0 / K) + gram / weight
        self.d_squared = 1.0
        if free_bound:  # L^2 has no curvature in f: its own is the barrier's less the active part
            V0 = self.V[problem.blocks[0]]
            self.g = -(V0.T @ V0)[f, s]
            self.d_squared = max(float(diagonal[-1] - np.sum(K * self.g**2)), 1e-12 * float(diagonal[-1]))
            capacitance += np.outer(self.g, self.g) / self.d_squared
        try:
            self.factor = scipy.linalg.cho_factor(0.5 * (capacitance + capacitance.T), check_finite=False)
        except np.linalg.LinAlgError:
            raise SolverError(
                "the barrier solver's preconditioner lost definiteness (rounding on a badly scaled step)",
                status="numerical_error",
            ) from None

    def _apply_J(self, x: list[np.ndarray], x_s: float) -> np.ndarray:
        """``J x``: the entries ``i <= j`` of ``V_a' dM(x) V_a``."""
        problem = self.problem
        dMV = np.zeros_like(self.V)
        for k, c in enumerate(problem.coefficients):
            block = c[:, None] * x[k]
            dMV[problem.blocks[k + 1]] += block @ self.V[problem.blocks[k]]
            dMV[problem.blocks[k]] += block.T @ self.V[problem.blocks[k + 1]]
        X = self.V.T @ dMV
        out = X[self.first, self.second]
        if self.free_bound:
            out = out + x_s * self.g
        return out

    def _apply_J_transpose(self, y: np.ndarray) -> tuple[list[np.ndarray], float]:
        """``J' y``: ``coef * (V_P Y V_Q')`` per layer with ``Y`` symmetric, diagonal ``2 y_ii``."""
        problem = self.problem
        Y = np.zeros((self.active, self.active))
        Y[self.first, self.second] = y
        Y[self.second, self.first] = y
        Y[np.diag_indices(self.active)] *= 2.0
        out = [
            c[:, None] * (self.V[problem.blocks[k + 1]] @ Y @ self.V[problem.blocks[k]].T)
            for k, c in enumerate(problem.coefficients)
        ]
        return out, (float(self.g @ y) if self.free_bound else 0.0)

    def __call__(self, r: list[np.ndarray], r_s: float) -> tuple[list[np.ndarray], float]:
        if self.active == 0:
            flat = np.concatenate([x.ravel() for x in r] + ([np.array([r_s])] if self.free_bound else []))
            z = flat / self.diagonal
            out, start = [], 0
            for shape in self.shapes:
                size = shape[0] * shape[1]
                out.append(z[start : start + size].reshape(shape))
                start += size
            return out, (float(z[-1]) if self.free_bound else 0.0)
        u = [ri / self.weight for ri in r]
        u_s = r_s / self.d_squared
        y = scipy.linalg.cho_solve(self.factor, self._apply_J(u, u_s), check_finite=False)
        correction, c_s = self._apply_J_transpose(y)
        return [ui - ci / self.weight for ui, ci in zip(u, correction)], u_s - c_s / self.d_squared

def _conjugate_gradient(
    problem: _Barrier,
    R: np.ndarray,
    weight: float,
    gradient: list[np.ndarray],
    g_squared: float,
    precondition: _Preconditioner,
    free_bound: bool,
) -> tuple[list[np.ndarray], float, int]:
    """Solve ``H (dW, dL^2) = -gradient`` by preconditioned CG (``dL^2 = 0`` when ``L^2`` is fixed)."""

    def apply(x: list[np.ndarray], x_squared: float) -> tuple[list[np.ndarray], float]:
        product, p_squared = problem.barrier_product(R, x, x_squared if free_bound else 0.0)
        return [weight * xi + p for xi, p in zip(x, product)], (p_squared if free_bound else 0.0)

    def dot(a: list[np.ndarray], a_s: float, b: list[np.ndarray], b_s: float) -> float:
        return sum(float(np.sum(x * y)) for x, y in zip(a, b)) + a_s * b_s

    x = [np.zeros_like(g) for g in gradient]
    x_s = 0.0
    r = [-g for g in gradient]
    r_s = -g_squared
    z, z_s = precondition(r, r_s)
    p, p_s = [zi.copy() for zi in z], z_s
    rz = dot(r, r_s, z, z_s)
    threshold = (CG_TOLERANCE**2) * dot(r, r_s, r, r_s)
    for used in range(1, MAX_CG + 1):
        Ap, Ap_s = apply(p, p_s)
        curvature = dot(p, p_s, Ap, Ap_s)
        if curvature <= 0:
            return x, x_s, used
        a = rz / curvature
        x = [xi + a * pi for xi, pi in zip(x, p)]
        x_s += a * p_s
        r = [ri - a * api for ri, api in zip(r, Ap)]
        r_s -= a * Ap_s
        if dot(r, r_s, r, r_s) <= threshold:
            return x, x_s, used
        z, z_s = precondition(r, r_s)
        rz_new = dot(r, r_s, z, z_s)
        p = [zi + (rz_new / rz) * pi for zi, pi in zip(z, p)]
        p_s = z_s + (rz_new / rz) * p_s
        rz = rz_new
    return x, x_s, MAX_CG


__all__ = ["DeepStepSolution", "solve_deep_step"]
