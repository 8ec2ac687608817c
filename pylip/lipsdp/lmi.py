"""The LipSDP matrix inequality of Theorem 1 (eq. 5), for one or many hidden layers.

For weights ``W0, ..., Wl`` (hidden sizes ``n_1 .. n_l``, ``N`` hidden neurons in
all) stack the input and all hidden activations into ``z = [x; x^1; ...; x^l]``
and let ``A = [blkdiag(W0, ..., W_{l-1}), 0]`` and ``B = [0, I_N]``. With a
multiplier ``T`` (N x N) the certificate matrix is

    P(L^2, T) = [A; B]' [[-2 ab T, (a + b) T], [(a + b) T, -2T]] [A; B]
                + blkdiag(-L^2 I_{n0}, 0, ..., 0, Wl' Wl),

which for one hidden layer is exactly eq. (5) of the paper. ``P <= 0`` proves
that ``L`` bounds the network's Lipschitz constant, provided ``T`` is in the
class the slope restriction (4) holds for (diagonal, non-negative).

The slope restriction (4) behind it, ``(phi(x) - phi(y) - a (x - y)) (b (x - y) -
(phi(x) - phi(y))) >= 0``, holds for any sector ``a <= b``: negative ``a``
(silu, gelu, leakyrelu with a negative slope) and ``a = b`` included. With one
sector per neuron, ``(a + b) T`` and ``ab T`` become ``diag(a + b) T`` and
``diag(ab) T`` (``T`` diagonal, so they commute).

The same formula serves numpy arrays (to *check* a certificate in float64) and
cvxpy expressions (to *find* one); only ``T`` and ``L^2`` change type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg


@dataclass(frozen=True)
class NetworkStructure:
    """The constant matrices of the LipSDP inequality for fixed weights."""

    A: np.ndarray  # N x (n0 + N)
    B: np.ndarray  # N x (n0 + N)
    output_gram: np.ndarray  # (n0 + N) x (n0 + N), Wl' Wl in the last block
    output_map: np.ndarray  # n_out x (n0 + N), [0, ..., 0, Wl]
    input_selector: np.ndarray  # (n0 + N) x (n0 + N), I_{n0} in the first block
    n_in: int
    hidden_sizes: tuple[int, ...]

    @property
    def n_hidden(self) -> int:
        return int(sum(self.hidden_sizes))


def network_structure(weights: Sequence[np.ndarray]) -> NetworkStructure:
    """Build ``A``, ``B`` and the constant blocks for weights ``[W0, ..., Wl]``."""
    hidden = tuple(w.shape[0] for w in weights[:-1])
    n_in = weights[0].shape[1]
    n_hidden = int(sum(hidden))
    size = n_in + n_hidden
    A = np.zeros((n_hidden, size))
    row, col = 0, 0
    for w in weights[:-1]:
        A[row : row + w.shape[0], col : col + w.shape[1]] = w
        row += w.shape[0]
        col += w.shape[1]
    B = np.hstack([np.zeros((n_hidden, n_in)), np.eye(n_hidden)])
    last = weights[-1]
    output_map = np.zeros((last.shape[0], size))
    output_map[:, size - last.shape[1] :] = last
    output_gram = output_map.T @ output_map
    input_selector = np.zeros((size, size))
    input_selector[:n_in, :n_in] = np.eye(n_in)
    return NetworkStructure(A, B, output_gram, output_map, input_selector, n_in, hidden)


def certificate_matrix(
    structure: NetworkStructure,
    T: Any,
    squared_bound: Any,
    alpha: Any,
    beta: Any,
    *,
    with_output: bool = True,
) -> Any:
    """``P(L^2, T)`` of eq. (5); numpy in, numpy out, or cvxpy in, cvxpy out.

    ``with_output=False`` leaves out the output term ``Wl' Wl``.
    """
    if isinstance(T, np.ndarray) and T.ndim == 2 and not np.any(T - np.diag(np.diag(T))):
        t = np.diag(T)
        return _diagonal_certificate_matrix(structure, t, float(squared_bound), alpha, beta, with_output)
    A, B = structure.A, structure.B
    if np.ndim(alpha) or np.ndim(beta):
        # one sector per neuron: diag(a + b) and diag(a b) commute with a diagonal T
        plus = np.diag(np.broadcast_to(np.asarray(alpha) + np.asarray(beta), (structure.n_hidden,)))
        times = np.broadcast_to(np.asarray(alpha) * np.asarray(beta), (structure.n_hidden,))
        cross = A.T @ T @ plus @ B
        P = cross + cross.T - 2.0 * (B.T @ T @ B) - squared_bound * structure.input_selector
        if np.any(times != 0.0):
            P = P + (-2.0 * A.T) @ T @ np.diag(times) @ A
        return P + structure.output_gram if with_output else P
    cross = A.T @ T @ B
    P = (alpha + beta) * (cross + cross.T) - 2.0 * (B.T @ T @ B) - squared_bound * structure.input_selector
    if alpha != 0.0:
        P = P + (-2.0 * alpha * beta) * (A.T @ T @ A)
    return P + structure.output_gram if with_output else P


def _diagonal_certificate_matrix(
    structure: NetworkStructure,
    t: np.ndarray,
    squared_bound: float,
    alpha: Any,
    beta: Any,
    with_output: bool,
) -> np.ndarray:
    """``P(L^2, diag(t))`` in float64 without ``N x N`` matrix products (``B = [0, I]``)."""
    n0 = structure.n_in
    plus = np.broadcast_to(np.asarray(alpha, dtype=np.float64) + np.asarray(beta, dtype=np.float64), t.shape)
    times = np.broadcast_to(np.asarray(alpha, dtype=np.float64) * np.asarray(beta, dtype=np.float64), t.shape)
    AtT = structure.A.T * t[None, :]  # A' T, (n0 + N) x N
    P = np.zeros((structure.A.shape[1],) * 2)
    P[:, n0:] += AtT * plus[None, :]
    P[n0:, :] += (AtT * plus[None, :]).T
    P[n0:, n0:] -= 2.0 * np.diag(t)
    P[:n0, :n0] -= squared_bound * np.eye(n0)
    if np.any(times != 0.0):
        P -= 2.0 * ((AtT * times[None, :]) @ structure.A)
    return P + structure.output_gram if with_output else P


def sparse_certificate_matrix(
    structure: NetworkStructure, T: Any, squared_bound: Any, alpha: Any, beta: Any
) -> Any:
    """``P`` with its output term as a Schur complement: ``[[P - Wl'Wl, C'], [C, -I]]``.

    ``P <= 0`` iff this matrix is ``<= 0`` (``-I < 0``), as LMI (7) is to (5).
    It is larger by ``n_out`` but keeps the network's block-banded sparsity
    (``Wl' Wl`` fills the last hidden block densely), which solvers with
    chordal decomposition (Clarabel) exploit.
    """
    import cvxpy as cp

    inner = certificate_matrix(structure, T, squared_bound, alpha, beta, with_output=False)
    C = structure.output_map
    return cp.bmat([[inner, C.T], [C, -np.eye(C.shape[0])]])


def max_eigenvalue(matrix: np.ndarray) -> float:
    """Largest eigenvalue of a symmetric matrix, in float64."""
    sym = 0.5 * (matrix + matrix.T)
    return float(scipy.linalg.eigvalsh(sym, subset_by_index=[sym.shape[0] - 1, sym.shape[0] - 1])[0])


def rounding_slack(matrix: np.ndarray) -> float:
    """How far float64 eigenvalue routines may place an eigenvalue of ``matrix``.

    Backward-stable symmetric eigensolvers return each eigenvalue within about
    ``n * eps * ||matrix||`` of the exact one, so two LAPACK drivers can disagree
    on the sign of an eigenvalue closer to zero than this. ``n * eps`` times the
    Frobenius norm (>= the spectral norm) is a safe upper estimate.
    """
    return float(matrix.shape[0] * np.finfo(np.float64).eps * np.linalg.norm(matrix))


def lmi_max_eigenvalue(
    structure: NetworkStructure, T: np.ndarray, squared_bound: float, alpha: Any, beta: Any
) -> float:
    """Largest eigenvalue of ``P(L^2, T)``: the certificate holds iff it is <= 0."""
    return max_eigenvalue(certificate_matrix(structure, T, squared_bound, alpha, beta))


def minimal_squared_bound(
    structure: NetworkStructure, T: np.ndarray, alpha: Any, beta: Any
) -> float:
    """The smallest ``L^2`` with ``P(L^2, T) <= 0`` for this fixed ``T``.

    ``L^2`` only enters the input block, so by the Schur complement, with
    ``P(0, T) = [[K, R'], [R, C]]`` and ``C < 0``, the answer is
    ``lambda_max(K - R' C^{-1} R)``. Returns ``inf`` when ``C`` is not negative
    definite (then no finite ``L^2`` is certified through this formula).
    """
    P0 = certificate_matrix(structure, T, 0.0, alpha, beta)
    n = structure.n_in
    K, R, C = P0[:n, :n], P0[n:, :n], P0[n:, n:]
    try:
        factor = scipy.linalg.cho_factor(-0.5 * (C + C.T))
    except np.linalg.LinAlgError:
        return float("inf")
    schur = K + R.T @ scipy.linalg.cho_solve(factor, R)
    return max(max_eigenvalue(schur), 0.0)


def sqrt_up(value: float) -> float:
    """The smallest float whose square is >= ``value``: a bound ``L`` with ``L**2 >= L^2``."""
    root = float(np.sqrt(value))
    while root * root < value:
        root = float(np.nextafter(root, np.inf))
    return root


def trivial_bound(weights: Sequence[np.ndarray], beta: Any = 1.0, alpha: Any = 0.0) -> float:
    """Product of the weights' spectral norms times each hidden layer's largest ``|slope|``.

    ``alpha`` and ``beta`` are scalars or one value per hidden neuron.
    """
    norms = [np.linalg.norm(w, 2) for w in weights]
    return float(np.prod(norms) * np.prod(layer_slope_bounds(weights, alpha, beta)))


def layer_slope_bounds(weights: Sequence[np.ndarray], alpha: Any, beta: Any) -> list[float]:
    """Per hidden layer, the largest ``max(|alpha_i|, |beta_i|)`` of its neurons."""
    sizes = [w.shape[0] for w in weights[:-1]]
    n_hidden = int(sum(sizes))
    steepest = np.maximum(np.abs(np.broadcast_to(np.asarray(alpha, dtype=np.float64), (n_hidden,))),
                          np.abs(np.broadcast_to(np.asarray(beta, dtype=np.float64), (n_hidden,))))
    edges = np.cumsum([0, *sizes])
    return [float(np.max(steepest[edges[k]:edges[k + 1]])) for k in range(len(sizes))]
