"""Small exact reformulations of the one-hidden-layer LipSDP problems, for wide networks.

Certificate (Theorem 1, eq. 5-6). For one hidden layer, sector ``[a, b]`` and
a diagonal ``T > 0``, LMI (7) in its 3 x 3 block form

    M = [[-L^2 I - 2ab W0'TW0, (a+b) W0'T, 0], [(a+b) T W0, -2T, W1'], [0, W1, -I]] <= 0

holds iff (Schur complement of the middle block ``-2T < 0``) the
``(n_x + n_y)``-square matrix

    G = [[L^2 I - c1 W0'TW0, -c2 W0'W1'], [-c2 W1W0, I - 1/2 W1 T^-1 W1']] >= 0,

``c1 = (b - a)^2 / 2``, ``c2 = (a + b) / 2`` (for per-neuron sectors ``c1 T`` and
``c2 I`` become ``diag(c1) T`` and ``diag(c2)``: the same elimination, neuron by
neuron). ``W1 T^-1 W1' = sum_k w1_k w1_k' / t_k``
and ``G`` only gets harder as that term grows, so replacing ``1/t_k`` by a
variable ``s_k`` with ``s_k t_k >= 1`` (a rotated second-order cone) is exact:

    min L^2  s.t.  G(L^2, t, s) >= 0,  s_k t_k >= 1,

one PSD cone of size ``n_x + n_y`` plus ``n_h`` three-dimensional cones instead
of one of size ``n_x + n_h (+ n_y)``. The infimum over ``T > 0`` equals that of
(6) over ``T >= 0`` (the closure).

Margin. ``certify``'s relative margin ``P <= -eps diag(L^2 I, T)`` turns the
blocks ``-L^2 I`` and ``-2T`` of ``M`` into ``-(1 - eps) L^2 I`` and ``-k T``,
``k = 2 - eps``; the same elimination gives ``G`` with ``(1 - eps) L^2``,
``c1 = (a+b)^2 / k - 2ab``, ``c2 = (a+b) / k`` and ``W1 T^-1 W1' / k`` (for
``eps = 0`` the values above; ``k = 2`` for a linear neuron, ``a = b``, whose multiplier
has no margin).

Input and output reduction. With a thin QR factorization ``W0' = Q R`` (``Q``:
``n_x x r``, ``r <= n_h``) the input block acts on ``range(Q)`` only; on its
orthogonal complement ``G`` is ``L^2 I >= 0``. So ``W0`` may be replaced by
``R'`` (``n_h x r``) exactly; likewise ``W1 = Q R`` by ``R`` when ``n_y > n_h``.
LipSDP's 784-50-10 MNIST net thus becomes a 50 + 10 problem.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cvxpy as cp
import numpy as np

from ..errors import InputError
from .solvers import value_of

REDUCED_FORMS = ("neuron", "layer")


def reduce_input(W0: np.ndarray) -> np.ndarray:
    """``R'`` of a thin QR ``W0' = Q R`` when ``n_x > n_h``, else ``W0``: same LipSDP bound, exactly."""
    n_h, n_x = W0.shape
    if n_x <= n_h:
        return W0
    _, R = np.linalg.qr(W0.T, mode="reduced")  # W0' = Q R, R: n_h x n_h
    return np.ascontiguousarray(R.T)


def reduce_output(W1: np.ndarray) -> np.ndarray:
    """``R`` of a thin QR ``W1 = Q R`` when ``n_y > n_h``, else ``W1``: same LipSDP bound, exactly."""
    n_y, n_h = W1.shape
    if n_y <= n_h:
        return W1
    _, R = np.linalg.qr(W1, mode="reduced")
    return R


def reduced_certificate_problem(
    W0: np.ndarray,
    W1: np.ndarray,
    *,
    form: str,
    alpha: Any,
    beta: Any,
    margin: float,
) -> tuple[cp.Problem, cp.Variable, Callable[[], np.ndarray]]:
    """The SDP (6) of a one-hidden-layer net as ``G >= 0`` plus rotated cones.

    ``margin``: the relative margin ``P <= -margin diag(L^2 I, T)`` (module docstring).

    Returns the problem, its ``L^2`` variable and a function giving the
    solved multiplier ``T`` (``n_h x n_h`` diagonal) of ``[W0, W1]``.
    ``form="layer"`` uses one ``t`` (and one ``s``) for all neurons.
    """
    if form not in REDUCED_FORMS:
        raise InputError(
            f"the reduced formulation needs a diagonal T: form must be one of {', '.join(REDUCED_FORMS)}, "
            f"got {form!r}; use formulation='structured'"
        )
    if W0.ndim != 2 or W1.ndim != 2 or W1.shape[1] != W0.shape[0]:
        raise InputError(f"weights do not chain: W0 {W0.shape}, W1 {W1.shape}")
    n_h = W0.shape[0]
    U = reduce_input(W0)  # n_h x r
    V = reduce_output(W1)  # p x n_h
    r, p = U.shape[1], V.shape[0]
    m = r + p
    # per-neuron sectors: c1 and c2 become diagonal weights on the neurons; a linear neuron
    # (alpha_i = beta_i) has no margin on its multiplier (pylip.lipsdp.engine._margin_free_sector)
    a, b = (np.broadcast_to(np.asarray(v, dtype=np.float64), (n_h,)) for v in (alpha, beta))
    kappa = 2.0 - margin * (a != b)
    c1 = (a + b) ** 2 / kappa - 2.0 * a * b
    c2 = (a + b) / kappa
    # vec(G) (column-major) = g0 + (1 - margin) e_L L^2 - K_t (c1 t) - K_s (s / kappa)
    G0 = np.zeros((m, m))
    cross = -((V * c2[None, :]) @ U)  # p x r
    G0[r:, :r] = cross
    G0[:r, r:] = cross.T
    G0[r:, r:] = np.eye(p)
    E = np.zeros((m, m))
    E[:r, :r] = (1.0 - margin) * np.eye(r)
    K_t = np.zeros((m, m, n_h))
    K_t[:r, :r, :] = np.einsum("ki,kj,k->ijk", U, U, c1)
    K_s = np.zeros((m, m, n_h))
    K_s[r:, r:, :] = np.einsum("ik,jk,k->ijk", V, V, 1.0 / kappa)
    if form == "neuron":
        spread = np.eye(n_h)
    else:
        spread = np.ones((n_h, 1))
    K_t = K_t.reshape(m * m, n_h, order="F") @ spread
    K_s = K_s.reshape(m * m, n_h, order="F") @ spread
    groups = spread.shape[1]
    squared = cp.Variable(name="L2")
    t = cp.Variable(groups, name="t")
    s = cp.Variable(groups, name="s")
    g = G0.reshape(-1, order="F") + E.reshape(-1, order="F") * squared - K_t @ t - K_s @ s
    G = cp.reshape(g, (m, m), order="F")
    constraints = [
        0.5 * (G + G.T) >> 0,
        # s t >= 1, s, t >= 0  <=>  ||(2, s - t)|| <= s + t
        cp.SOC(s + t, cp.vstack([2.0 * np.ones((1, groups)), cp.reshape(s - t, (1, groups), order="F")]),
               axis=0),
    ]
    problem = cp.Problem(cp.Minimize(squared), constraints)

    def multiplier() -> np.ndarray:
        return np.diag(spread @ np.maximum(value_of(t), 0.0))

    return problem, squared, multiplier
