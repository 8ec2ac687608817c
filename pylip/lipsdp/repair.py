"""Check a LipSDP point, repair it minimally if it cannot be proven, and prove it.

One helper for every place pylip returns a bound: certificates
(:func:`pylip.certify`), the regularize-mode Lipschitz steps (problem 9) and the
enforce-mode steps (problem 12), for one or many hidden layers. A solver's
point ``(W, T, L)`` is first proven as it is (:func:`pylip.proof.prove_certificate`).
If that fails (the point misses the LMI ``P(L^2, T) <= 0`` of eq. (5) by
rounding, or holds too tightly for a floating-point proof), it is repaired by
the smallest change of one kind, then proven again:

* :func:`secure_bound` keeps the weights and raises ``L`` to the exact minimum
  for the given ``T`` plus the definiteness the proof needs (a Schur
  complement); when ``T`` itself leaves the hidden block indefinite, ``T`` is
  scaled up by the smallest factor that restores it (certificates only);
* :func:`secure_weights` keeps ``L`` and ``T`` (a desired bound, eq. 12) and
  shrinks the weights ``W -> s W`` by the largest ``s <= 1`` that can be
  proven. For ``s -> 0`` the matrix tends to ``blkdiag(-L^2 I, -2T, ...) < 0``,
  so a proven ``s > 0`` exists whenever ``L > 0`` and ``T > 0``.

A point that cannot be proven raises :class:`~pylip.errors.CertificateError`:
pylip never returns an unproven bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

from ..errors import CertificateError
from .lmi import sqrt_up
from .proof import (
    Proof,
    _certificate_terms,
    power_of_two_scale,
    proof_requirement,
    prove_certificate,
    scaled_problem,
)


@dataclass(frozen=True)
class ProvenPoint:
    """A point ``(weights, t, bound)`` with ``P(bound^2, diag(t)) <= 0`` proven.

    Attributes:
        weights, t, bound: the proven point (weights shrunk and ``t`` scaled
            only if ``repair`` says so).
        proof: the :class:`~pylip.proof.Proof`.
        repair: ``""`` if the given point was proven as it was, else what was
            changed and by how much, in words.
        change: relative size of the repair (``bound / given - 1``, ``1 - s``
            of a shrink), 0 when none.
    """

    weights: list[np.ndarray]
    t: np.ndarray
    bound: float
    proof: Proof
    repair: str = ""
    change: float = 0.0

    @property
    def repaired(self) -> bool:
        return bool(self.repair)


def secure_bound(
    weights: Sequence[np.ndarray],
    t: np.ndarray,
    bound: float,
    alpha: Any,
    beta: Any,
    *,
    scale_multiplier: bool = True,
    what: str = "certificate",
) -> ProvenPoint:
    """Prove ``L = bound`` for ``(weights, t)``, raising ``L`` (and scaling ``t``) minimally if needed.

    Raises:
        CertificateError: if no bound can be proven for this ``t`` (hidden
            block indefinite and ``scale_multiplier=False``, or no scaling helps).
    """
    weights = list(weights)
    t = np.asarray(t, dtype=np.float64)
    proof = prove_certificate(weights, t, bound, alpha, beta)
    if proof.holds:
        return ProvenPoint(weights, t, bound, proof)
    total, shift = proof_requirement(weights, t, bound, alpha, beta)
    for _ in range(12):
        shift *= 2.0
        found = _minimal_bound_with_shift(weights, t, alpha, beta, shift, scale_multiplier)
        if found is None:
            break
        factor, scaled_squared = found
        candidate_t = t * factor
        new_bound = sqrt_up(scaled_squared * (1 + 1e-13)) * total
        proof = prove_certificate(weights, candidate_t, new_bound, alpha, beta)
        if proof.holds:
            change = new_bound / bound - 1.0 if bound > 0 else math.inf
            words = f"L {'raised' if change >= 0 else 'lowered'} by {abs(change):.2e} (relative)"
            if factor != 1.0:
                words += f", T scaled by 1 + {factor - 1.0:.1e}"
            return ProvenPoint(weights, candidate_t, new_bound, proof, words, change)
    hint = "" if scale_multiplier else " with this T"
    raise CertificateError(
        f"the {what} cannot be proven{hint}: the LMI P(L^2, T) <= 0 (eq. 5) fails at L = {bound:.6g} "
        "and no larger L makes it provable (the multiplier T leaves the hidden-layer block of P "
        "indefinite); try another solver"
    )


def secure_weights(
    weights: Sequence[np.ndarray],
    t: np.ndarray,
    bound: float,
    alpha: Any,
    beta: Any,
    *,
    what: str = "Lipschitz step",
) -> ProvenPoint:
    """Prove ``L = bound`` for ``(s W, t)`` with the largest provable ``s <= 1`` (found by bisection)."""
    weights = list(weights)
    t = np.asarray(t, dtype=np.float64)
    proof = prove_certificate(weights, t, bound, alpha, beta)
    if proof.holds:
        return ProvenPoint(weights, t, bound, proof)
    if not (bound > 0 and np.all(t > 0)):
        raise CertificateError(
            f"the {what} cannot be proven: L = {bound:.6g} and T must be positive for shrinking the "
            "weights to reach a provable point"
        )
    failing, proven, proven_proof = 1.0, None, None
    for exponent in range(-15, 1):  # s = 1 - 10^-15, ..., 1 - 10^-1, 0
        s = 1.0 - 10.0**exponent if exponent < 0 else 0.0
        candidate = prove_certificate([s * w for w in weights], t, bound, alpha, beta)
        if candidate.holds:
            proven, proven_proof = s, candidate
            break
        failing = s
    if proven is None or proven_proof is None:
        raise CertificateError(
            f"the {what} cannot be proven even with the weights shrunk to zero (L = {bound:.6g}); "
            "the multiplier T or the bound is degenerate"
        )
    for _ in range(30):  # bisect for the largest proven s, to 1e-9 of the interval
        if failing - proven <= 1e-9 * max(1.0 - proven, 1e-15):
            break
        middle = 0.5 * (failing + proven)
        candidate = prove_certificate([middle * w for w in weights], t, bound, alpha, beta)
        if candidate.holds:
            proven, proven_proof = middle, candidate
        else:
            failing = middle
    shrunk = [proven * w for w in weights]
    words = f"weights shrunk by a factor 1 - {1.0 - proven:.2e}"
    return ProvenPoint(shrunk, t, bound, proven_proof, words, 1.0 - proven)


def _minimal_bound_with_shift(
    weights: list[np.ndarray],
    t: np.ndarray,
    alpha: Any,
    beta: Any,
    shift: float,
    scale_multiplier: bool,
) -> tuple[float, float] | None:
    """``(kappa, L_V^2)``: the smallest ``L_V^2`` with ``P_V(L_V^2, kappa T_V) + shift I <= 0``.

    In the power-of-two scaled coordinates of :mod:`pylip.proof`. With
    ``P_V(0, T) = [[K, R'], [R, C]]`` the condition is ``C + shift I < 0`` and
    ``L^2 >= shift + lambda_max(K + R' (-(C + shift I))^{-1} R)``. ``kappa >= 1``
    is the smallest of a geometric ladder that makes ``C + shift I < 0``.
    """
    factors = [1.0]
    if scale_multiplier:
        factors += [1.0 + 10.0**e for e in range(-12, 1)] + [4.0, 16.0, 256.0]
    for factor in factors:
        problem = scaled_problem(weights, t * factor, 0.0, alpha, beta)
        P0 = _certificate_terms(
            problem.weights, problem.t, 0.0, problem.alpha + problem.beta, problem.alpha * problem.beta
        )
        n = weights[0].shape[1]
        K, R, C = P0[:n, :n], P0[n:, :n], P0[n:, n:]
        hidden = -(0.5 * (C + C.T)) - shift * np.eye(C.shape[0])
        try:
            factor_chol = scipy.linalg.cho_factor(hidden, check_finite=False)
        except np.linalg.LinAlgError:
            continue
        schur = 0.5 * (K + K.T) + R.T @ scipy.linalg.cho_solve(factor_chol, R)
        top = float(scipy.linalg.eigvalsh(schur, subset_by_index=[n - 1, n - 1])[0])
        return factor, max(top, 0.0) + shift
    return None


def scale_of(weights: Sequence[np.ndarray]) -> float:
    """The power-of-two scale ``S`` of a network (product of per-layer scales)."""
    return math.prod(power_of_two_scale(w) for w in weights)
