"""Rigorous proofs that a LipSDP certificate holds for the weights as stored.

A Lipschitz bound ``L`` with multiplier ``T = diag(t)`` is proven when the
matrix ``P(L^2, T)`` of eq. (5) (:mod:`pylip.lmi`), formed *exactly* from the
float values of the weights, the sector, ``t`` and ``L``, is negative
semidefinite. A float64 eigenvalue is not a proof: ``P`` itself is rounded
when formed, and an eigensolver's answer is only within ``n eps ||P||`` of the
truth. Two proofs are offered.

:func:`prove_certificate` (method ``"rump"``) is floating-point safe:

1. **Forming P.** Every entry of ``P`` is a sum of at most ``K`` products of
   three floats, so (Higham, *Accuracy and Stability of Numerical Algorithms*,
   2002, eq. 3.5 and Lemma 3.1) the computed ``fl(P)`` satisfies
   ``|fl(P) - P| <= gamma_K |P|_abs`` entrywise, where ``|P|_abs`` is the same
   formula with every factor replaced by its absolute value and ``gamma_K =
   K u / (1 - K u)``, ``u = 2^-53``. Hence ``||fl(P) - P||_2 <= e`` with ``e``
   the Frobenius norm of that bound (rounded up).
2. **Rump's test** (S. M. Rump, "Verification of positive definiteness", BIT
   Numerical Mathematics 46, 433-452, 2006, Theorem 2.3 with Demmel's
   Cholesky error bound, Higham Theorem 10.5): for a symmetric float matrix
   ``A`` of size ``n``, if floating-point Cholesky of ``A - c I`` (its diagonal
   rounded *down*, so the shift is at least ``c``) runs to completion with

       c >= gamma_{n+1} / (1 - gamma_{n+1}) * trace(A) + 4 (n + 1) (2 (n + 1) + max_i A_ii) eta,

   in rounding to nearest (``eta = 2^-1074``, the underflow unit), then ``A``
   is positive definite. The bound holds for any order of evaluation of the
   inner products, so for LAPACK's blocked ``dpotrf`` over an ordinary (not
   Strassen-like) BLAS.
3. Applied to ``A = -fl(P)`` with ``c`` enlarged by ``e``: ``lambda_min(-P) >=
   c - e - (the bound of 2.) > 0``, so ``P < 0`` for the exact ``P``.

Weights are first rescaled by powers of two per layer (exact in binary
floating point): with ``W_k = 2^{e_k} V_k``, ``P_W(L^2, T)`` and
``P_V(L^2 / S^2, Delta T Delta / S^2)`` are congruent (see
``certificate._Normalization``), so a proof for the scaled data is a proof for
the original, and weights of any magnitude stay inside float64's range.

:func:`prove_certificate_exact` (method ``"exact"``) forms ``P`` in rational
arithmetic from the same floats (every float is a rational number) and checks
``-P >= 0`` by symmetric Gaussian elimination (an exact LDL' test): an
independent second proof, practical for a few dozen neurons, used by the tests.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import scipy.linalg

UNIT_ROUNDOFF = 2.0**-53
UNDERFLOW_UNIT = 2.0**-1074
# A few units of roundoff beyond what the bounds need: absorbs the rounding of
# the bounds' own float computation (each a handful of operations).
SAFETY = 1.0 + 64 * UNIT_ROUNDOFF


@dataclass(frozen=True)
class Proof:
    """The outcome of a proof that ``P(L^2, T) <= 0``.

    Attributes:
        holds: True if ``P(L^2, T) <= 0`` is proven for the exact values.
        method: ``"rump"`` (floating-point safe), ``"rump-equilibrated"`` (the
            same test on ``-D P D`` for a power-of-two diagonal ``D``, tried
            where the plain one fails) or ``"exact"`` (rational).
        margin: when ``holds``, a proven lower bound on ``lambda_min(-P)`` in
            the power-of-two scaled coordinates (``>= 0``); otherwise the shift
            the Cholesky test failed at (``rump``) or ``nan`` (``exact``).
        required_shift: the shift ``c`` the test needs (``rump``), so a caller
            can repair a point by making ``-P`` at least this definite.
        matrix: the float ``P`` in the scaled coordinates that the test
            factorised (``D P D`` for ``"rump-equilibrated"``), when the
            caller asked to keep it (:func:`prove_certificate`), else None.
    """

    holds: bool
    method: str
    margin: float
    required_shift: float = 0.0
    matrix: np.ndarray | None = field(default=None, repr=False, compare=False)

    def max_eigenvalue(self) -> float:
        """Largest float64 eigenvalue of the kept ``P`` (see :func:`scaled_max_eigenvalue`)."""
        if self.matrix is None:
            raise ValueError("this proof kept no matrix: call prove_certificate(..., keep_matrix=True)")
        return largest_eigenvalue(self.matrix)


def gamma(k: int) -> float:
    """``gamma_k = k u / (1 - k u)`` (Higham's constant), rounded up."""
    ku = k * UNIT_ROUNDOFF
    if ku >= 0.5:
        raise ValueError(f"gamma_{k} is undefined for float64 (k u >= 1/2)")
    return ku / (1.0 - ku) * SAFETY


def power_of_two_scale(matrix: np.ndarray) -> float:
    """A power of two ``s`` with ``max |matrix / s|`` in ``[1/2, 1)`` (1 for a zero matrix)."""
    top = float(np.max(np.abs(matrix))) if matrix.size else 0.0
    if top == 0.0:
        return 1.0
    return math.ldexp(1.0, math.frexp(top)[1])


def power_of_two_scale_near_norm(matrix: np.ndarray) -> float:
    """The power of two nearest ``||matrix||_2`` (1 for a zero matrix): an exact divisor."""
    norm = float(np.linalg.norm(matrix, 2)) if matrix.size else 0.0
    if norm == 0.0 or not np.isfinite(norm):
        return 1.0
    return math.ldexp(1.0, round(math.log2(norm)))


@dataclass(frozen=True)
class ScaledProblem:
    """The certificate data rescaled exactly by powers of two (see the module docstring)."""

    weights: list[np.ndarray]
    t: np.ndarray
    bound: float
    alpha: np.ndarray
    beta: np.ndarray


def scaled_problem(
    weights: Sequence[np.ndarray], t: np.ndarray, bound: float, alpha: Any, beta: Any
) -> ScaledProblem:
    """Rescale weights, ``t`` and ``L`` by powers of two so that every weight is of order one.

    Exact: each operation multiplies a float by a power of two (unless it
    underflows to subnormals, which is checked: such data raise ``ValueError``).
    """
    scales = [power_of_two_scale(w) for w in weights]
    scaled = [w / s for w, s in zip(weights, scales)]
    total = math.prod(scales)
    prefix = np.cumprod(scales[:-1])  # d_1 .. d_l
    hidden = np.repeat(prefix, [w.shape[0] for w in weights[:-1]])
    # T_V = Delta T_W Delta / S^2: t_V = t_W * (d_k / S)^2, applied factor by factor (exact)
    ratio = hidden / total
    t_scaled = np.asarray(t, dtype=np.float64) * ratio * ratio
    bound_scaled = bound / total
    n_hidden = sum(w.shape[0] for w in weights[:-1])
    if np.any((t_scaled != 0) & (np.abs(t_scaled) < np.finfo(np.float64).tiny)) or (
        bound != 0 and abs(bound_scaled) < np.finfo(np.float64).tiny
    ):
        raise ValueError("the multiplier or bound underflows when the weights are rescaled")
    return ScaledProblem(
        weights=scaled,
        t=t_scaled,
        bound=bound_scaled,
        alpha=np.broadcast_to(np.asarray(alpha, dtype=np.float64), (n_hidden,)),
        beta=np.broadcast_to(np.asarray(beta, dtype=np.float64), (n_hidden,)),
    )


def _stacked_hidden_map(weights: Sequence[np.ndarray]) -> np.ndarray:
    """``A = [blkdiag(W0, ..., W_{l-1}), 0]`` of :mod:`pylip.lmi`, from the given floats."""
    n_in = weights[0].shape[1]
    n_hidden = sum(w.shape[0] for w in weights[:-1])
    A = np.zeros((n_hidden, n_in + n_hidden))
    row = col = 0
    for w in weights[:-1]:
        A[row : row + w.shape[0], col : col + w.shape[1]] = w
        row += w.shape[0]
        col += w.shape[1]
    return A


def _certificate_terms(
    weights: Sequence[np.ndarray],
    t: np.ndarray,
    squared_bound: float,
    plus: np.ndarray,
    times: np.ndarray,
    *,
    absolute: bool = False,
) -> np.ndarray:
    """``P = sym(A' diag(t (a + b)) B) - 2 B' T B - 2 A' diag(t a b) A - L^2 E_in + Wl' Wl``.

    ``plus`` and ``times`` are the per-neuron ``a + b`` and ``a b``. With
    ``absolute=True`` every factor is replaced by its absolute value and every
    ``-`` by ``+``: the matrix ``|P|_abs`` that bounds the rounding of ``fl(P)``.
    """
    sign = 1.0 if absolute else -1.0
    if absolute:
        weights = [np.abs(w) for w in weights]
        t, plus, times = np.abs(t), np.abs(plus), np.abs(times)
    n_in = weights[0].shape[1]
    A = _stacked_hidden_map(weights)
    size = A.shape[1]
    P = np.zeros((size, size))
    cross = A.T * (t * plus)[None, :]  # (n0 + N) x N
    P[:, n_in:] += cross
    P[n_in:, :] += cross.T
    P[n_in:, n_in:] += np.diag(sign * 2.0 * t)
    if np.any(times != 0.0):
        P += (A.T * (sign * 2.0 * t * times)[None, :]) @ A
    P[:n_in, :n_in] += np.diag(np.full(n_in, sign * squared_bound))
    last = weights[-1]
    tail = size - last.shape[1]
    P[tail:, tail:] += last.T @ last
    # BLAS need not return A' D A exactly symmetric: mirror the upper triangle
    # (each entry stays one valid evaluation of the exact entry)
    return np.triu(P) + np.triu(P, 1).T


def certificate_matrix_enclosure(problem: ScaledProblem) -> tuple[np.ndarray, float]:
    """``fl(P)`` and a rigorous upper bound ``e`` on ``||fl(P) - P||_2`` for the exact ``P``."""
    P, rounding = _enclosure(problem)
    return P, rounding.error()


@dataclass(frozen=True)
class _Rounding:
    """What bounds the rounding of ``fl(P)`` entrywise: ``|P|_abs``, a factor on it, and underflow."""

    absolute: np.ndarray
    entry_bound: float
    underflow: float

    def error(self) -> float:
        """A rigorous upper bound on ``||fl(P) - P||_2`` (its entrywise bound's Frobenius norm)."""
        size = self.absolute.shape[0]
        frobenius = float(np.sqrt(np.sum(self.absolute * self.absolute))) * (1.0 + gamma(size * size + 1))
        return (self.entry_bound * frobenius + self.underflow) * SAFETY

    def scaled(self, d: np.ndarray) -> _Rounding | None:
        """The bound for ``D P D``, ``D = diag(d)`` of powers of two; ``None`` off the normal range.

        ``fl(D P D) = D fl(P) D`` exactly, so the entrywise bound scales the
        same way; each underflow's ``eta`` grows at most by ``max(d)^2``.
        """
        absolute = self.absolute * d[:, None] * d[None, :]
        if _left_normal_range(self.absolute, absolute):
            return None
        largest = float(np.max(d))
        return _Rounding(absolute, self.entry_bound, self.underflow * largest * largest)


def _left_normal_range(original: np.ndarray, image: np.ndarray) -> bool:
    """Whether a nonzero entry of ``original`` became subnormal, zero or not finite in ``image``."""
    tiny = np.finfo(np.float64).tiny
    return bool(np.any((original != 0.0) & ((np.abs(image) < tiny) | ~np.isfinite(image))))


def _enclosure(problem: ScaledProblem) -> tuple[np.ndarray, _Rounding]:
    """``fl(P)`` and what bounds its rounding."""
    weights, t = problem.weights, problem.t
    # sector sums and products in float; their rounding (one operation each) is
    # covered by the gamma below, as one more factor of each product
    plus = problem.alpha + problem.beta
    times = problem.alpha * problem.beta
    squared = problem.bound * problem.bound
    P = _certificate_terms(weights, t, squared, plus, times)
    absolute = _certificate_terms(
        weights, t, squared, np.abs(problem.alpha) + np.abs(problem.beta), times, absolute=True
    )
    # each entry: products of <= 5 factors (2 t a b w w, one rounding each), inner
    # products of length <= max(N, n_out), then <= 6 terms added into the entry
    k = max(t.size, weights[-1].shape[0]) + 12
    # |P|_abs itself is computed in float: it may be low by a factor (1 + gamma_k)
    entry_bound = gamma(k) * (1.0 + gamma(k))
    # gradual underflow adds at most eta per operation: k per entry
    underflow = P.shape[0] * k * 8 * UNDERFLOW_UNIT
    return P, _Rounding(absolute, entry_bound, underflow)


def rump_shift(matrix: np.ndarray) -> float:
    """The shift ``c`` of Rump's theorem (module docstring, 2.) for a symmetric float matrix."""
    n = matrix.shape[0]
    diagonal = np.diag(matrix)
    trace_up = float(np.sum(np.maximum(diagonal, 0.0))) * (1.0 + gamma(n)) * SAFETY
    g = gamma(n + 1)
    top = float(np.max(diagonal)) if n else 0.0
    underflow = 4.0 * (n + 1) * (2.0 * (n + 1) + max(top, 0.0)) * UNDERFLOW_UNIT
    return (g / (1.0 - g) * trace_up + underflow) * SAFETY


def prove_positive_definite(matrix: np.ndarray, perturbation: float = 0.0) -> Proof:
    """Prove ``lambda_min(A) > 0`` for every symmetric ``A`` with ``||A - matrix||_2 <= perturbation``.

    Rump's test (module docstring): one Cholesky factorisation of ``matrix - c I``.
    """
    if not np.all(np.isfinite(matrix)):
        return Proof(holds=False, method="rump", margin=float("nan"))
    symmetric = np.array(matrix, dtype=np.float64)
    if np.any(symmetric != symmetric.T):
        raise ValueError("prove_positive_definite needs an exactly symmetric matrix")
    need = rump_shift(symmetric) + perturbation * SAFETY
    # a little above the need, so a success proves strict definiteness by that much
    shift = need * (1.0 + 2.0**-20) + 2.0**-1000
    shifted = symmetric.copy()
    lowered = np.nextafter(np.diag(symmetric) - shift, -np.inf)
    if np.any(lowered <= 0.0):
        return Proof(holds=False, method="rump", margin=shift, required_shift=need)
    np.fill_diagonal(shifted, lowered)
    try:
        scipy.linalg.cholesky(shifted, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return Proof(holds=False, method="rump", margin=shift, required_shift=need)
    # lambda_min >= shift - need, computed rounding down
    return Proof(holds=True, method="rump", margin=max((shift - need) * (1 - 4 * UNIT_ROUNDOFF), 0.0),
                 required_shift=need)


def prove_certificate(
    weights: Sequence[np.ndarray],
    t: np.ndarray,
    bound: float,
    alpha: Any,
    beta: Any,
    *,
    keep_matrix: bool = False,
) -> Proof:
    """Prove ``P(bound^2, diag(t)) <= 0`` for these exact float values (floating-point safe).

    Args:
        weights: ``[W0, ..., Wl]`` as float64 arrays (the values the model stores).
        t: the diagonal of ``T`` (``N`` entries).
        bound: ``L``; the proof is for ``L^2`` exactly (the real square of the float).
        alpha, beta: the slope sector, scalars or one value per hidden neuron.
        keep_matrix: keep the scaled float ``P`` in :attr:`Proof.matrix`, so
            its largest eigenvalue costs no second assembly.

    Returns:
        A :class:`Proof`; ``holds`` is False when the test cannot prove it
        (the point may still be feasible, but no bound is proven).
    """
    P, rounding = _enclosure(scaled_problem(weights, t, bound, alpha, beta))
    result = prove_positive_definite(-P, rounding.error())
    if not result.holds:
        result = _equilibrated_proof(P, rounding) or result
    if not keep_matrix:
        return dataclasses.replace(result, matrix=None)
    return result if result.matrix is not None else dataclasses.replace(result, matrix=P)


def _equilibrated_proof(P: np.ndarray, rounding: _Rounding) -> Proof | None:
    """The proof of ``-D P D > 0`` for a power-of-two diagonal ``D`` that brings ``diag(-P)`` near 1.

    ``D P D < 0`` exactly when ``P < 0``, and multiplying by powers of two is
    exact, so ``fl(D P D) = D fl(P) D`` and the entrywise rounding bound scales
    the same way. Where ``T`` spans many decades (deep nets: the multipliers
    of the first and last hidden layers differed 1e4-fold on 10-128x8-10) the
    normwise error bound of ``P`` is set by its largest blocks and swamps the
    smallest eigenvalue, which lives in the smallest; in the equilibrated
    matrix every block has unit scale. ``None`` where ``D`` cannot be applied
    exactly (a non-positive diagonal, or an entry that would leave the normal
    range). The margin is returned in ``P``'s coordinates: ``lambda_min(-P) >=
    lambda_min(-D P D) / max(D)^2``.
    """
    diagonal = -np.diag(P)
    if np.any(diagonal <= 0.0) or not np.all(np.isfinite(diagonal)):
        return None
    d = np.ldexp(1.0, -np.round(0.5 * np.log2(diagonal)).astype(int))
    scaled = -P * d[:, None] * d[None, :]
    scaled_rounding = rounding.scaled(d)
    if scaled_rounding is None or _left_normal_range(P, scaled):
        return None
    largest = float(np.max(d))
    result = prove_positive_definite(scaled, scaled_rounding.error())
    if not result.holds:
        return None
    margin = result.margin * (1.0 - 4 * UNIT_ROUNDOFF) / (largest * largest)
    # the kept matrix is D P D: its float eigenvalues have P's signs at unit scale, where P's own
    # are rounding noise (+1.6e-17 on a 1-1-1-1-1 chain proven at the trivial bound)
    return dataclasses.replace(result, margin=margin, method="rump-equilibrated", matrix=-scaled)


def largest_eigenvalue(matrix: np.ndarray) -> float:
    """The largest float64 eigenvalue of a symmetric matrix."""
    n = matrix.shape[0]
    return float(scipy.linalg.eigvalsh(matrix, subset_by_index=[n - 1, n - 1])[0])


def scaled_max_eigenvalue(
    weights: Sequence[np.ndarray], t: np.ndarray, bound: float, alpha: Any, beta: Any
) -> float:
    """Largest float64 eigenvalue of ``P`` in the power-of-two scaled coordinates.

    That matrix is congruent to ``P(bound^2, diag(t))`` (same inertia, so the
    same sign of the largest eigenvalue) and well scaled, so its float64
    eigenvalue is meaningful where the original one, for weights of very
    different scales, is rounding noise. Informative only: the proof decides.
    """
    problem = scaled_problem(weights, t, bound, alpha, beta)
    P, _ = certificate_matrix_enclosure(problem)
    return largest_eigenvalue(P)


def proof_requirement(
    weights: Sequence[np.ndarray], t: np.ndarray, bound: float, alpha: Any, beta: Any
) -> tuple[float, float]:
    """``(total scale S, shift)``: ``-P_V`` exceeding ``shift`` (in scaled units) is proven.

    A repair makes the scaled certificate matrix at least this definite.
    """
    problem = scaled_problem(weights, t, bound, alpha, beta)
    P, error = certificate_matrix_enclosure(problem)
    total = math.prod(power_of_two_scale(w) for w in weights)
    return total, rump_shift(-P) + error * SAFETY


def prove_certificate_exact(
    weights: Sequence[np.ndarray], t: np.ndarray, bound: float, alpha: Any, beta: Any
) -> Proof:
    """Prove ``P(bound^2, diag(t)) <= 0`` in exact rational arithmetic (small networks).

    Every float is a rational number, so ``P`` is formed without rounding and
    ``-P >= 0`` is decided exactly by symmetric elimination: all pivots
    ``>= 0``, and a zero pivot only with a zero remaining row. Cost grows as
    ``n^3`` operations on growing rationals: meant for ``n <~ 60``.
    """
    n_in = weights[0].shape[1]
    sizes = [w.shape[0] for w in weights[:-1]]
    n_hidden = sum(sizes)
    size = n_in + n_hidden
    a = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (n_hidden,))
    b = np.broadcast_to(np.asarray(beta, dtype=np.float64), (n_hidden,))
    A = _stacked_hidden_map(weights)
    F = [[Fraction(float(v)) for v in row] for row in A]
    tq = [Fraction(float(v)) for v in np.asarray(t, dtype=np.float64)]
    plus = [Fraction(float(x)) + Fraction(float(y)) for x, y in zip(a, b)]
    times = [Fraction(float(x)) * Fraction(float(y)) for x, y in zip(a, b)]
    P = [[Fraction(0)] * size for _ in range(size)]
    for j in range(n_hidden):
        hidden = n_in + j
        weight = tq[j] * plus[j]
        for i in range(size):
            if F[j][i]:
                P[i][hidden] += F[j][i] * weight
                P[hidden][i] += F[j][i] * weight
        P[hidden][hidden] -= 2 * tq[j]
        if times[j]:
            coefficient = 2 * tq[j] * times[j]
            support = [i for i in range(size) if F[j][i]]
            for p in support:
                for q in support:
                    P[p][q] -= coefficient * F[j][p] * F[j][q]
    L = Fraction(float(bound))
    for i in range(n_in):
        P[i][i] -= L * L
    last = weights[-1]
    tail = size - last.shape[1]
    Wl = [[Fraction(float(v)) for v in row] for row in last]
    for p in range(last.shape[1]):
        for q in range(last.shape[1]):
            P[tail + p][tail + q] += sum((row[p] * row[q] for row in Wl), Fraction(0))
    negated = [[-entry for entry in row] for row in P]
    holds = _exactly_positive_semidefinite(negated)
    return Proof(holds=holds, method="exact", margin=0.0 if holds else float("nan"))


def _exactly_positive_semidefinite(matrix: list[list[Fraction]]) -> bool:
    """Exact test of ``matrix >= 0`` (symmetric, rational) by elimination without pivoting."""
    M = [row[:] for row in matrix]
    n = len(M)
    for k in range(n):
        pivot = M[k][k]
        if pivot < 0:
            return False
        if pivot == 0:
            if any(M[k][j] != 0 for j in range(k + 1, n)):
                return False
            continue
        for i in range(k + 1, n):
            factor = M[i][k] / pivot
            if factor:
                row_k, row_i = M[k], M[i]
                for j in range(k + 1, n):
                    row_i[j] -= factor * row_k[j]
    return True


def prove_spectral_norm(weight: np.ndarray, bound: float) -> Proof:
    """Prove ``||W||_2 < bound`` for the exact float values of ``W``: ``bound^2 I - W'W > 0``.

    The certificate of a single-layer net (a linear map). After an exact
    power-of-two rescaling ``W = s V``, ``A = fl(b^2) I - fl(V'V)`` (``b = bound / s``)
    differs from the exact matrix entrywise by at most ``gamma_{m+2} (|V|'|V| + b^2 I)``
    (``m`` rows: each entry of ``V'V`` is a sum of ``m`` products, Higham eq. 3.5;
    two more roundings on the diagonal), and Rump's test proves ``A`` definite
    beyond that perturbation (module docstring, 2.-3.).
    """
    scale = power_of_two_scale(weight)
    V = np.asarray(weight, dtype=np.float64) / scale
    b = float(bound) / scale
    if bound != 0 and abs(b) < np.finfo(np.float64).tiny:
        raise ValueError("the bound underflows when the weight is rescaled")
    m, n = V.shape
    gram = V.T @ V
    A = -gram
    A[np.diag_indices(n)] += b * b
    A = 0.5 * (A + A.T)  # exactly symmetric (the error bound covers both triangles)
    absolute = np.abs(V).T @ np.abs(V) + (b * b) * np.eye(n)
    entry_bound = gamma(m + 4) * (1.0 + gamma(m + 4))  # + the symmetrisation's rounding
    frobenius = float(np.sqrt(np.sum(absolute * absolute))) * (1.0 + gamma(n * n + 1))
    underflow = n * (m + 2) * 8 * UNDERFLOW_UNIT
    return prove_positive_definite(A, (entry_bound * frobenius + underflow) * SAFETY)


def prove_spectral_norm_exact(weight: np.ndarray, bound: float) -> Proof:
    """Prove ``bound^2 I - W'W >= 0`` in exact rational arithmetic (small matrices)."""
    rows = [[Fraction(float(v)) for v in row] for row in np.asarray(weight, dtype=np.float64)]
    n = len(rows[0])
    L = Fraction(float(bound))
    M = [[(L * L if i == j else Fraction(0)) - sum((row[i] * row[j] for row in rows), Fraction(0))
          for j in range(n)] for i in range(n)]
    holds = _exactly_positive_semidefinite(M)
    return Proof(holds=holds, method="exact", margin=0.0 if holds else float("nan"))


def proven_spectral_norm(weight: np.ndarray) -> tuple[float, Proof]:
    """The least float ``L`` of a ladder just above ``||W||_2`` with ``||W||_2 <= L`` proven."""
    norm = float(np.linalg.norm(weight, 2))
    if norm == 0.0:
        return 0.0, Proof(holds=True, method="structure", margin=0.0)
    for relative in (1e-15, 1e-14, 1e-13, 1e-12, 1e-10, 1e-8):
        candidate = norm * (1.0 + relative)
        result = prove_spectral_norm(weight, candidate)
        if result.holds:
            return candidate, result
    raise ValueError("||W||_2 could not be proven within 1e-8 (relative) of its float64 value")


def verify(
    weights: Sequence[Any],
    L: float,
    T: Any,
    *,
    activation: str = "tanh",
    alpha: Any = None,
    beta: Any = None,
    exact: bool = False,
) -> Proof:
    """Prove that ``L`` bounds the Lipschitz constant of a network, given a multiplier ``T``.

    Independent of how ``L`` and ``T`` were found (pylip, LipSDP, the original
    MATLAB code): proves ``P(L^2, T) <= 0`` (eq. 5 / LipSDP-Neuron) for the
    weights as given, with Rump's floating-point-safe test, or with
    ``exact=True`` in rational arithmetic (small networks).

    Args:
        weights: ``[W0, ..., Wl]``.
        L: the bound to prove.
        T: the multiplier, diagonal ``N x N`` or its diagonal (``N`` hidden
            neurons); non-negative.
        activation, alpha, beta: the slope sector, as in :func:`pylip.certify`
            (per-neuron vectors included).
        exact: prove in exact rational arithmetic instead.

    Returns:
        A :class:`Proof` (``holds`` False: not proven).

    Raises:
        InputError: for malformed weights, ``L`` or ``T``.
    """
    from ..errors import InputError
    from ..validation import as_flag, as_number, as_weight_list
    from .certificate import slope_sector

    matrices = as_weight_list(weights)
    bound = as_number(L, "L")
    if not bound >= 0 or not math.isfinite(bound):
        raise InputError(f"L must be a finite number >= 0, got {L!r}")
    if not math.isfinite(bound * bound):  # P(L^2, T) holds L^2: it must be a float64 number
        raise InputError(f"L = {bound:g} is too large: L^2 overflows float64; give L below 1e150")
    exact = as_flag(exact, "exact")
    n_hidden = sum(w.shape[0] for w in matrices[:-1])
    t = multiplier_diagonal(T, n_hidden)
    a, b = slope_sector(activation, alpha, beta, [w.shape[0] for w in matrices[:-1]])
    prover = prove_certificate_exact if exact else prove_certificate
    return prover(matrices, t, bound, a, b)


def multiplier_diagonal(T: Any, n_hidden: int) -> np.ndarray:
    """The diagonal of a multiplier given as a diagonal matrix or a vector, checked."""
    from ..errors import InputError

    try:
        if np.iscomplexobj(np.asarray(T)):
            raise TypeError("complex")
        array = np.array(T, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"T must be a matrix or vector of real numbers, got {type(T).__name__}") from None
    if array.ndim == 2:
        if array.shape != (n_hidden, n_hidden):
            raise InputError(
                f"T must be {n_hidden} x {n_hidden} (one row per hidden neuron), got {array.shape}"
            )
        if np.any(array - np.diag(np.diag(array))):
            raise InputError(
                "T must be diagonal (LipSDP-Neuron or -Layer); a coupled T (LipSDP-Network) "
                "gives no valid bound (Pauli et al. 2020, Section II-C)"
            )
        array = np.diag(array).copy()
    elif array.ndim != 1 or array.size != n_hidden:
        raise InputError(
            f"T must have {n_hidden} diagonal entries (one per hidden neuron), got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise InputError("T must be finite and non-negative (the slope restriction's multipliers)")
    return array
