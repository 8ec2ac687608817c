"""pylip.lipsdp.chordal: block-tridiagonal factorisation, inverse, completion and step lengths."""

from __future__ import annotations

import numpy as np
import pytest

from pylip.lipsdp.chordal import BlockPattern

PATTERNS = [(3, 5), (3, 5, 4, 6), (2, 1, 7, 1, 3)]


def _block_tridiagonal_pd(pattern: BlockPattern, rng: np.random.Generator) -> np.ndarray:
    n = pattern.size
    a = rng.standard_normal((n, n))
    matrix = (a + a.T) * pattern.mask()
    return matrix + np.diag(np.abs(matrix).sum(axis=1) + 0.1)  # diagonally dominant: PD


@pytest.mark.parametrize("sizes", PATTERNS)
def test_factor_and_inverse_match_dense_algebra(sizes: tuple[int, ...]) -> None:
    pattern = BlockPattern(sizes)
    matrix = _block_tridiagonal_pd(pattern, np.random.default_rng(0))
    factor = pattern.cholesky(matrix)
    assert factor is not None
    dense = factor.dense()
    assert np.allclose(dense, np.tril(dense)) and np.allclose(dense @ dense.T, matrix, atol=1e-12)
    assert np.allclose(pattern.inverse(factor), np.linalg.inv(matrix), atol=1e-12)


def test_an_indefinite_matrix_has_no_factor() -> None:
    pattern = BlockPattern((2, 3, 2))
    matrix = _block_tridiagonal_pd(pattern, np.random.default_rng(1))
    matrix[4, 4] = -1.0
    assert pattern.cholesky(matrix) is None


@pytest.mark.parametrize("sizes", PATTERNS)
def test_the_completion_keeps_the_pattern_and_has_a_block_tridiagonal_inverse(sizes: tuple[int, ...]) -> None:
    pattern = BlockPattern(sizes)
    rng = np.random.default_rng(2)
    full = np.linalg.inv(_block_tridiagonal_pd(pattern, rng)) + 0.1 * np.eye(pattern.size)
    partial = full * pattern.mask()
    factors = pattern.clique_factors(partial)
    assert factors is not None
    completed = pattern.completion(partial, factors)
    mask = pattern.mask()
    assert np.allclose(completed[mask], full[mask], atol=1e-14)
    assert np.linalg.eigvalsh(completed)[0] > 0.0
    # maximum determinant <=> its inverse vanishes off the pattern (one clique: nothing is off it)
    inverse = np.linalg.inv(completed)
    assert np.all(mask) or np.max(np.abs(inverse[~mask])) < 1e-10 * np.max(np.abs(inverse))


@pytest.mark.parametrize("sizes", PATTERNS)
def test_product_on_pattern(sizes: tuple[int, ...]) -> None:
    pattern = BlockPattern(sizes)
    rng = np.random.default_rng(3)
    n = pattern.size
    left, right = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    middle = rng.standard_normal((n, n)) * pattern.mask()
    expected = (left @ middle @ right) * pattern.mask()
    assert np.allclose(pattern.product_on_pattern(left, middle, right), expected, atol=1e-12)


@pytest.mark.parametrize("sizes", PATTERNS)
def test_step_lengths_reach_the_boundary_from_inside(sizes: tuple[int, ...]) -> None:
    pattern = BlockPattern(sizes)
    rng = np.random.default_rng(4)
    matrix = _block_tridiagonal_pd(pattern, rng)
    change = rng.standard_normal(matrix.shape)
    change = (change + change.T) * pattern.mask()
    root = np.linalg.cholesky(matrix)
    whitened = np.linalg.solve(root, np.linalg.solve(root, change).T)
    exact = -1.0 / np.linalg.eigvalsh(whitened)[0]
    factor = pattern.cholesky(matrix)
    assert factor is not None
    step = pattern.step(matrix, factor)(change, 1e6, 1e-2)
    assert (1.0 - 1.1e-2) * exact <= step <= exact * (1.0 + 1e-12)
    assert pattern.step(matrix, factor)(change, 0.5 * exact, 1e-2) == 0.5 * exact
    # cliques: the largest step keeping every clique block positive definite
    per_clique = []
    for k in range(pattern.cliques):
        block = pattern.clique(k)
        root_k = np.linalg.cholesky(matrix[block, block])
        w = np.linalg.solve(root_k, np.linalg.solve(root_k, change[block, block]).T)
        low = np.linalg.eigvalsh(w)[0]
        per_clique.append(-1.0 / low if low < 0 else np.inf)
    exact_cliques = min(per_clique)
    for accuracy in (1e-2, 1e-1):
        step = pattern.clique_step(matrix)(change, 1e6, accuracy)
        assert (1.0 - 1.1 * accuracy) * exact_cliques <= step <= exact_cliques * (1.0 + 1e-12)
    assert pattern.clique_step(matrix)(change, 0.5 * exact_cliques, 1e-2) == 0.5 * exact_cliques


@pytest.mark.parametrize("sizes", PATTERNS)
def test_pattern_inner_products_and_symmetric_combinations(sizes: tuple[int, ...]) -> None:
    pattern = BlockPattern(sizes)
    rng = np.random.default_rng(5)
    n, mask = pattern.size, pattern.mask()
    first, second = (rng.standard_normal((n, n)) for _ in range(2))
    first, second = first + first.T, second + second.T
    assert pattern.inner(first, second) == pytest.approx(float(np.sum(first * second * mask)), rel=1e-12)
    terms = [(0.7, rng.standard_normal((n, n))), (-2.0, rng.standard_normal((n, n)))]
    expected = sum(c * 0.5 * (m + m.T) for c, m in terms) * mask
    combined = pattern.symmetric_combination(terms)
    assert np.allclose(combined, expected, atol=1e-12) and np.array_equal(combined, combined.T)
    covered = np.zeros((n, n), dtype=bool)
    for rows, cols in pattern.lower_blocks:
        covered[rows, cols] = covered[cols, rows] = True
    assert np.array_equal(covered, mask)
