"""Block-tridiagonal (chordal) linear algebra for the LipSDP engine.

The LMI matrix ``P`` of the SDP (6) couples only neighbouring layers: over the
blocks ``x_0, x_1, ..., x_l`` (input, then each hidden layer) it is block
tridiagonal. Its sparsity pattern is chordal, with cliques ``C_k = (block k,
block k + 1)`` and separators the blocks between them (Vandenberghe and
Andersen, *Chordal graphs and semidefinite optimization*, 2015). That gives

* a Cholesky factor with the same block pattern (no fill): factorising and
  solving cost the sum of the blocks' cubes, not ``N^3``;
* the inverse as ``N`` block solves, ``O(N^2 n_max)`` instead of ``O(N^3)``;
* for a dual matrix known only on the pattern, a positive definite completion
  exists exactly when every clique's principal block is positive definite;
  the one of maximum determinant has a block-tridiagonal inverse.

A :class:`BlockPattern` holds the block sizes; matrices are plain dense
``N x N`` arrays of which only the pattern's blocks are read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

# one clique (one hidden layer): above this size the step's lowest eigenvalue is found by Lanczos
# (ARPACK), below it by LAPACK on the whole matrix: with one BLAS thread LAPACK was faster at
# N = 325 and 522 (2.3 s vs 4.9 s, 6.2 s vs 8.0 s per solve) and Lanczos at N = 1034 (1.1 s vs
# 1.5 s per step; issue 11, the dense engine)
LANCZOS_SIZE = 800
LANCZOS_TOLERANCE = 1e-6


@dataclass(frozen=True)
class BlockFactor:
    """The block Cholesky factor ``L`` of a block-tridiagonal matrix: diagonal and sub-diagonal blocks."""

    diagonal: tuple[np.ndarray, ...]  # L_kk, lower triangular
    below: tuple[np.ndarray, ...]  # L_{k+1,k}

    def dense(self) -> np.ndarray:
        """``L`` as one dense lower-triangular matrix."""
        sizes = [d.shape[0] for d in self.diagonal]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        factor = np.zeros((offsets[-1], offsets[-1]))
        for k, diagonal in enumerate(self.diagonal):
            factor[offsets[k] : offsets[k + 1], offsets[k] : offsets[k + 1]] = diagonal
            if k < len(self.below):
                factor[offsets[k + 1] : offsets[k + 2], offsets[k] : offsets[k + 1]] = self.below[k]
        return factor


@dataclass(frozen=True)
class BlockPattern:
    """The block sizes of a block-tridiagonal pattern (at least two blocks)."""

    sizes: tuple[int, ...]

    @functools.cached_property
    def offsets(self) -> tuple[int, ...]:
        return tuple(int(o) for o in np.concatenate([[0], np.cumsum(self.sizes)]))

    @property
    def size(self) -> int:
        return self.offsets[-1]

    def block(self, k: int) -> slice:
        return slice(self.offsets[k], self.offsets[k + 1])

    def clique(self, k: int) -> slice:
        """Blocks ``k`` and ``k + 1``."""
        return slice(self.offsets[k], self.offsets[k + 2])

    @property
    def cliques(self) -> int:
        return len(self.sizes) - 1

    @functools.cached_property
    def lower_blocks(self) -> tuple[tuple[slice, slice], ...]:
        """``(rows, columns)`` of the blocks on and below the diagonal: ``(k, k)`` and ``(k + 1, k)``."""
        blocks = [(self.block(k), self.block(k)) for k in range(len(self.sizes))]
        blocks += [(self.block(k + 1), self.block(k)) for k in range(self.cliques)]
        return tuple(blocks)

    def inner(self, first: np.ndarray, second: np.ndarray) -> float:
        """``<first, second>`` over the pattern, for symmetric matrices (only their lower blocks are read)."""
        total = 0.0
        for rows, cols in self.lower_blocks:
            weight = 1.0 if rows == cols else 2.0
            total += weight * float(np.sum(first[rows, cols] * second[rows, cols]))
        return total

    def symmetric_combination(self, terms: list[tuple[float, np.ndarray]]) -> np.ndarray:
        """``sum_i c_i sym(M_i)`` on the pattern (zero elsewhere), ``sym(M) = (M + M') / 2``.

        Formed block by block: the pattern is a small share of ``N x N`` on deep nets.
        """
        result = np.zeros((self.size, self.size))
        for rows, cols in self.lower_blocks:
            block = sum(0.5 * c * (m[rows, cols] + m[cols, rows].T) for c, m in terms)
            result[rows, cols] = block
            if rows != cols:
                result[cols, rows] = np.transpose(block)
        return result

    def mask(self) -> np.ndarray:
        """``True`` on the pattern's blocks."""
        mask = np.zeros((self.size, self.size), dtype=bool)
        for k in range(self.cliques):
            mask[self.clique(k), self.clique(k)] = True
        return mask

    # ---- factorisation and solves

    def cholesky(
        self, matrix: np.ndarray, change: np.ndarray | None = None, step: float = 0.0
    ) -> BlockFactor | None:
        """The block Cholesky factor of ``matrix + step change`` (pattern part); ``None`` if not PD.

        The sum is formed block by block: the step-length bisection tries
        many steps, and forming the whole ``N x N`` sum each time cost as much
        as the factorisation.
        """
        def part(rows: slice, cols: slice) -> np.ndarray:
            if change is None:
                return matrix[rows, cols]
            return matrix[rows, cols] + step * change[rows, cols]

        diagonal: list[np.ndarray] = []
        below: list[np.ndarray] = []
        for k in range(len(self.sizes)):
            rows = self.block(k)
            pivot = part(rows, rows)
            if below:
                pivot = pivot - below[-1] @ below[-1].T
            factor = _dense_cholesky(pivot)
            if factor is None:
                return None
            diagonal.append(factor)
            if k + 1 < len(self.sizes):
                coupling = part(self.block(k + 1), rows)  # B = M[k+1, k]; L_{k+1,k} = B L_kk^-T
                below.append(_trsm(factor, coupling, side=1, trans_a=1))
        return BlockFactor(tuple(diagonal), tuple(below))

    def inverse(self, factor: BlockFactor) -> np.ndarray:
        """``(L L')^-1`` as a dense matrix, by block forward and backward substitution."""
        n, blocks = self.size, len(self.sizes)
        offsets = self.offsets
        forward: list[np.ndarray] = []  # block rows of L^-1 (columns up to the block's own)
        for k in range(blocks):
            width = int(offsets[k + 1])
            rhs = np.zeros((self.sizes[k], width))
            rhs[:, offsets[k] : width] = np.eye(self.sizes[k])
            if k:
                rhs[:, : offsets[k]] -= factor.below[k - 1] @ forward[k - 1]
            forward.append(_trsm(factor.diagonal[k], rhs))
        result = np.zeros((n, n))
        for k in range(blocks - 1, -1, -1):
            rhs = np.zeros((self.sizes[k], n))
            rhs[:, : offsets[k + 1]] = forward[k]
            if k + 1 < blocks:
                rhs -= factor.below[k].T @ result[self.block(k + 1)]
            result[self.block(k)] = _trsm(factor.diagonal[k], rhs, trans_a=1)
        return 0.5 * (result + result.T)

    # ---- the dual matrix, known on the pattern

    def clique_factors(self, matrix: np.ndarray) -> list[np.ndarray] | None:
        """Cholesky factors of every clique block (``None`` if one is not positive definite)."""
        factors = []
        for k in range(self.cliques):
            factor = _dense_cholesky(matrix[self.clique(k), self.clique(k)])
            if factor is None:
                return None
            factors.append(factor)
        return factors

    def completion(self, matrix: np.ndarray, factors: list[np.ndarray]) -> np.ndarray:
        """The maximum-determinant positive definite completion of ``matrix``'s pattern part (dense).

        Its blocks off the pattern follow block by block: ``X[i, j] = X[i, j-1]
        X[j-1, j-1]^-1 X[j-1, j]`` for ``j > i + 1`` (the covariance of a
        Gauss-Markov chain over the layers, whose inverse is block tridiagonal).
        ``factors`` are the cliques' Cholesky factors; the leading block of
        clique ``j - 1``'s is the separator's. (Forming the inverse as cliques'
        inverses minus separators' cancels badly near the optimum, where ``X``
        is nearly singular.)
        """
        result = 0.5 * (matrix + matrix.T)
        for j in range(2, len(self.sizes)):
            separator, block = self.block(j - 1), self.block(j)
            size = self.sizes[j - 1]
            leading = np.ascontiguousarray(factors[j - 1][:size, :size])
            gain = _trsm(leading, _trsm(leading, result[separator, block]), trans_a=1)
            earlier = slice(0, separator.start)
            result[earlier, block] = result[earlier, separator] @ gain
            result[block, earlier] = result[earlier, block].T
        return result

    def product_on_pattern(self, left: np.ndarray, middle: np.ndarray, right: np.ndarray) -> np.ndarray:
        """``left @ middle @ right`` on the pattern (zero elsewhere); ``middle`` is block tridiagonal."""
        n, blocks = self.size, len(self.sizes)
        left_middle = np.zeros((n, n))
        for j in range(blocks):
            near = slice(self.block(max(j - 1, 0)).start, self.block(min(j + 1, blocks - 1)).stop)
            left_middle[:, self.block(j)] = left[:, near] @ middle[near, self.block(j)]
        result = np.zeros((n, n))
        for k in range(self.cliques):
            rows = self.block(k)
            result[rows, self.clique(k)] = left_middle[rows] @ right[:, self.clique(k)]
            result[self.block(k + 1), rows] = left_middle[self.block(k + 1)] @ right[:, rows]
        last = self.block(blocks - 1)
        result[last, last] = left_middle[last] @ right[:, last]
        return result

    # ---- step lengths: the largest h keeping a matrix + h change positive definite, by bisection
    # on Cholesky factorisations (each point serves two directions, predictor and corrector)

    def clique_step(self, matrix: np.ndarray) -> Callable[[np.ndarray, float, float], float]:
        """``h(change, cap, accuracy)``: ``min(cap, h)`` for the largest ``h`` keeping every clique
        block of ``matrix + h change`` positive definite, to relative ``accuracy`` from below.

        ``matrix``'s clique blocks must be positive definite. Each trial factorises the
        clique blocks, the one that failed last first (a failure ends the trial): the sum
        of the cliques' cubes at most, against two triangular products and an eigenvalue
        of every clique for the exact step.
        """
        order = list(range(self.cliques))

        def feasible(change: np.ndarray, h: float) -> bool:
            for position, k in enumerate(order):
                block = self.clique(k)
                if _dense_cholesky(matrix[block, block] + h * change[block, block]) is None:
                    order.insert(0, order.pop(position))
                    return False
            return True

        return lambda change, cap, accuracy: _bisection(lambda h: feasible(change, h), cap, accuracy)

    def step(self, matrix: np.ndarray, factor: BlockFactor) -> Callable[[np.ndarray, float, float], float]:
        """``h(change, cap, accuracy)``: ``min(cap, h)`` for the largest ``h`` with ``matrix + h change > 0``.

        ``matrix`` must be positive definite, ``factor`` its block Cholesky
        factor. One clique: exactly, from the whitened change's lowest
        eigenvalue; more: by bisection on block Cholesky factorisations (each
        the sum of the blocks' cubes) to relative ``accuracy``. The value
        returned is feasible or within that accuracy of the boundary; callers
        take a fraction of it and check the new point.
        """
        if self.cliques == 1:
            inverse = _triangular_inverse(factor.dense())
            return lambda change, cap, accuracy: min(cap, _max_step(inverse, change))

        def step(change: np.ndarray, cap: float, accuracy: float) -> float:
            return _bisection(lambda h: self.cholesky(matrix, change, h) is not None, cap, accuracy)

        return step


def _bisection(feasible: Callable[[float], bool], cap: float, accuracy: float) -> float:
    """The largest ``h`` in ``[0, cap]`` with ``feasible(h)``, to relative ``accuracy`` from below.

    ``feasible`` must hold on an interval ``[0, h*)`` (a convex set's step). A first trial
    at a quarter of ``cap`` suits the engine's steps, which end well inside ``cap``.
    """
    if feasible(cap):
        return cap
    low, high = 0.0, cap
    while high - low > accuracy * high:
        middle = 0.5 * (low + high) if low > 0.0 else 0.25 * high
        if feasible(middle):
            low = middle
        else:
            high = middle
        if high < 1e-14 * cap:
            break
    return low


# LAPACK and BLAS are called directly: these are many small calls, and scipy.linalg's checking
# wrappers took more time than the arithmetic on ten layers of 32

def _dense_cholesky(matrix: np.ndarray) -> np.ndarray | None:
    """The lower Cholesky factor (from ``matrix``'s lower triangle), or ``None`` if it is not PD."""
    factor, info = scipy.linalg.lapack.dpotrf(matrix, lower=1, clean=1)
    return factor if info == 0 else None


def _trsm(factor: np.ndarray, rhs: np.ndarray, side: int = 0, trans_a: int = 0) -> np.ndarray:
    """``op(L)^-1 rhs`` (``side=0``) or ``rhs op(L)^-1`` (``side=1``) for lower triangular ``L``."""
    return scipy.linalg.blas.dtrsm(1.0, factor, rhs, side=side, lower=1, trans_a=trans_a)


def _triangular_inverse(factor: np.ndarray) -> np.ndarray:
    inverse, info = scipy.linalg.lapack.dtrtri(factor, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("a singular Cholesky factor")
    return np.tril(inverse)


def _max_step(inverse_factor: np.ndarray, change: np.ndarray) -> float:
    """The largest ``h`` with ``L L' + h change >= 0`` (``inf`` if every ``h >= 0`` is); ``L^-1`` given."""
    trmm = scipy.linalg.blas.dtrmm  # products with the triangular L^-1: half a general product's work
    left = trmm(1.0, inverse_factor, change, side=0, lower=1)
    whitened = trmm(1.0, inverse_factor, left, side=1, lower=1, trans_a=1)
    low = _lowest_eigenvalue(0.5 * (whitened + whitened.T))
    return -1.0 / low if low < 0.0 else np.inf


def _lowest_eigenvalue(symmetric: np.ndarray) -> float:
    """The smallest eigenvalue; by Lanczos (ARPACK) above :data:`LANCZOS_SIZE`, where it is faster.

    Lanczos approaches the lowest eigenvalue from above, so a step computed
    from it may overshoot the cone slightly: the engine checks every new
    iterate by a Cholesky factorisation and shortens the step if it fails.
    """
    if symmetric.shape[0] > LANCZOS_SIZE:
        try:
            values = scipy.sparse.linalg.eigsh(symmetric, k=1, which="SA", tol=LANCZOS_TOLERANCE,
                                               return_eigenvectors=False)
            return float(values[0])
        except scipy.sparse.linalg.ArpackNoConvergence:
            pass
    return float(scipy.linalg.eigvalsh(symmetric, subset_by_index=[0, 0], check_finite=False)[0])
