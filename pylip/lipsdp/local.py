"""Local Lipschitz bounds over an input ball ``||x - x0||_2 <= r``.

On the ball every pre-activation ``z_i`` of the network stays in an interval
``[l_i, u_i]``, so its neuron's slopes ``(phi(z) - phi(z')) / (z - z')`` lie in
the narrower sector ``[alpha_i, beta_i]`` of ``phi'`` on that interval (tanh,
sigmoid: the smallest and largest derivative there; ReLU: ``[1, 1]`` for a
neuron fixed on, ``[0, 0]`` for one fixed off). The slope restriction (4)
with these per-neuron sectors holds for all pairs of points of the ball, so
LipSDP with them (:func:`pylip.certify`, per-neuron ``alpha`` and ``beta``)
bounds the Lipschitz constant of the network on the ball: ``L(x0, r)``.

Intervals (interval bound propagation, done outward-rounded):

* first layer exactly: ``z = W0 x + b0`` ranges over
  ``W0 x0 + b0 +- r ||w_i||_2`` (Cauchy-Schwarz, attained);
* then intervals: ``h = phi(z)`` in ``[min phi, max phi]`` on ``[l, u]``
  (:attr:`pylip.activations.Activation.value_range`), and
  ``W h + b`` in ``W m + b +- |W| d`` for ``h`` in ``m +- d``.

Each computed end is moved outwards by ``(n + 4) 2u`` times the magnitudes
it was computed from (Higham's bound for an ``n``-term dot product, ``u =
2^-53``) and each smooth activation's value and slope ends by ``PAD`` (their
libm rounding), so the float intervals and sectors contain the exact ones.

A neuron with sector ``[0, 0]`` is constant on the ball: it is removed
(its row of ``W_k`` and column of ``W_{k+1}``) before the SDP, which is
exact for the network restricted to the ball; a layer with every neuron
constant makes the network constant there (``L = 0``).

``method="sdp"`` solves LipSDP with the local sectors, by the engine where
:func:`pylip.certify` would take it (deep nets, wide single layers; per-neuron
sectors): by the engine alone at a relative gap of 1e-6, falling back on the
global ``T`` where it stalls (:func:`pylip.margins.auxiliary_certificate`). One
ball took 0.1 s (CPU) at 64-16-16-10, 0.7-1.0 s at 64-64-64-10 and 3.2-4.5 s at
64-128-128-10. ``method="fixed_T"`` keeps the global certificate's ``T``
instead of solving (the smallest ``L`` that ``T`` proves with the local
sectors): no SDP, 0.01-0.04 s per ball there, looser (mean ``L(x0, 0.1) / L``
0.53-0.94 against 0.45-0.70 with the SDP on the digits example's nominal and L2
nets of those sizes).

A point of class ``y`` is certified at radius ``r`` when its logit margin
exceeds ``sqrt(2) L(x0, r) r``: the global rule with the local constant
(:func:`local_certified`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CertificateError, InputError, SolverError
from ..validation import as_certificate_of, as_nonnegative, as_number, as_vector, as_weight_list
from .activations import Activation, get_activation
from .certificate import Certificate, certify

UNIT = 2.0**-53
PAD = 1e-13  # outward, relative to the activation's slope scale: its libm rounding (a few ulp)
SQRT2_UP = float(np.nextafter(math.sqrt(2.0), np.inf))
LOCAL_METHODS = ("sdp", "fixed_T")


@dataclass(frozen=True)
class LocalBound:
    """A proven Lipschitz bound of the network on the ball ``||x - x0|| <= r``.

    Attributes:
        bound: ``L(x0, r)``: the per-neuron-sector certificate, capped by the
            global bound when one was given (both are proven bounds on the ball).
        radius: ``r``.
        alpha, beta: the per-neuron sectors on the ball (all hidden neurons).
        intervals: per hidden layer, the pre-activation interval ends ``(l, u)``.
        constant_neurons: how many neurons are constant on the ball (removed for the SDP).
        certificate: the certificate of the (pruned) network with those sectors,
            ``None`` when the network is constant on the ball.
    """

    bound: float
    radius: float
    alpha: np.ndarray
    beta: np.ndarray
    intervals: list[tuple[np.ndarray, np.ndarray]] = field(repr=False)
    constant_neurons: int = 0
    certificate: Certificate | None = field(default=None, repr=False)


def _outward(low: np.ndarray, high: np.ndarray, magnitude: np.ndarray, terms: int) -> tuple[
    np.ndarray, np.ndarray
]:
    slack = (terms + 4) * 2.0 * UNIT * magnitude + 2.0**-1000
    return low - slack, high + slack


def preactivation_bounds(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    x0: np.ndarray,
    radius: float,
    activation: Activation,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Outward-rounded intervals of every hidden pre-activation on the ball (module docstring)."""
    W0, b0 = weights[0], biases[0]
    center = W0 @ x0 + b0
    spread = radius * np.sqrt(np.sum(W0 * W0, axis=1))
    magnitude = np.abs(W0) @ np.abs(x0) + np.abs(b0) + spread
    intervals = [_outward(center - spread, center + spread, magnitude, W0.shape[1])]
    for W, b in zip(weights[1:-1], biases[1:-1]):
        lo, hi = intervals[-1]
        h_lo, h_hi = activation.value_range(lo, hi)
        if not activation.piecewise_linear:
            scale = np.maximum(np.abs(h_lo), np.abs(h_hi))
            h_lo, h_hi = h_lo - PAD * scale - 2.0**-1000, h_hi + PAD * scale + 2.0**-1000
        middle = 0.5 * (h_lo + h_hi)
        half = np.nextafter(np.maximum(h_hi - middle, middle - h_lo), np.inf)
        center = W @ middle + b
        spread = np.abs(W) @ half
        magnitude = np.abs(W) @ np.abs(middle) + np.abs(b) + spread
        intervals.append(_outward(center - spread, center + spread, magnitude, 2 * W.shape[1]))
    return intervals


def local_sectors(
    intervals: Sequence[tuple[np.ndarray, np.ndarray]], activation: Activation
) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron slope sectors on the intervals, outward-rounded and within the global sector."""
    lows, highs = [], []
    for lo, hi in intervals:
        a, b = activation.slope_range(lo, hi)
        if not activation.piecewise_linear:
            scale = max(abs(activation.alpha), abs(activation.beta))
            a, b = a - PAD * scale, b + PAD * scale
        lows.append(np.clip(a, activation.alpha, activation.beta))
        highs.append(np.clip(b, activation.alpha, activation.beta))
    return np.concatenate(lows), np.concatenate(highs)


def certify_local(
    weights: Sequence[Any],
    biases: Sequence[Any] | None,
    x0: Any,
    radius: float,
    *,
    activation: str = "tanh",
    solver: str | None = None,
    global_bound: float | None = None,
    method: str = "sdp",
    global_certificate: Certificate | None = None,
) -> LocalBound:
    """A proven bound ``L(x0, r)`` of the network's l2 Lipschitz constant on ``||x - x0|| <= r``.

    Args:
        weights, biases: ``[W0, ..., Wl]`` and ``[b0, ..., bl]`` (``None``: zero biases).
        x0: the ball's centre (``n0`` entries).
        radius: ``r >= 0``.
        activation: a name of :mod:`pylip.activations`.
        solver: the SDP solver, as in :func:`pylip.certify`.
        global_bound: a proven global bound to cap the local one with (so
            ``L(x0, r) <= L`` always, also at the solver's accuracy).
        method: ``"sdp"``: solve LipSDP with the local sectors; ``"fixed_T"``:
            keep the global certificate's multiplier ``T`` (``global_certificate``
            needed) and take the smallest ``L`` it proves with the local sectors (a
            Schur complement, no SDP: far cheaper for deep nets, looser).
        global_certificate: the network's proven global certificate (its bound
            caps the local one, as ``global_bound``; and if the solver fails on the
            local SDP, ``"fixed_T"`` is used instead).
    """
    from .margins import auxiliary_certificate

    matrices = as_weight_list(weights, min_layers=1)
    vectors = _biases(matrices, biases)
    center = as_vector(x0, "x0", matrices[0].shape[1])
    r = _radius(radius)
    if global_bound is not None:
        global_bound = as_nonnegative(global_bound, "global_bound", "a proven global Lipschitz bound")
    if global_certificate is not None:
        global_certificate = as_certificate_of(global_certificate, "global_certificate", matrices)
    act = get_activation(activation)
    if method not in LOCAL_METHODS:
        raise InputError(f"method must be one of {', '.join(LOCAL_METHODS)}, got {method!r}")
    if method == "fixed_T" and (global_certificate is None or global_certificate.T.shape[0] == 0):
        raise InputError("method='fixed_T' needs the global certificate of a net with hidden layers "
                         "(global_certificate=pylip.certify(weights, ...))")
    if global_certificate is not None:
        cap = global_certificate.bound
        global_bound = cap if global_bound is None else min(float(global_bound), cap)
    if len(matrices) == 1:
        cert = certify(matrices)
        return LocalBound(cert.bound, r, np.zeros(0), np.zeros(0), [], 0, cert)
    intervals = preactivation_bounds(matrices, vectors, center, r, act)
    alpha, beta = local_sectors(intervals, act)
    pruned, a, b, constant = _without_constant_neurons(matrices, alpha, beta)
    if pruned is None:
        return LocalBound(0.0, r, alpha, beta, intervals, constant, None)
    if method == "fixed_T" and global_certificate is not None:
        fixed = _fixed_T_certificate(matrices, global_certificate, alpha, beta)
        if fixed is not None:
            bound = fixed.bound if global_bound is None else min(fixed.bound, float(global_bound))
            return LocalBound(bound, r, alpha, beta, intervals, constant, fixed)
        return LocalBound(min(global_certificate.bound, float(global_bound or global_certificate.bound)), r,
                          alpha, beta, intervals, constant, global_certificate)
    try:
        cert = auxiliary_certificate(pruned, activation=activation, alpha=a, beta=b, solver=solver)
    except (SolverError, CertificateError):
        if global_certificate is None:
            raise
        # the solver failed (or gave no provable point): the global T with the local sectors
        return certify_local(matrices, vectors, center, r, activation=activation, method="fixed_T",
                             global_bound=global_bound, global_certificate=global_certificate)
    bound = cert.bound if global_bound is None else min(cert.bound, float(global_bound))
    return LocalBound(bound, r, alpha, beta, intervals, constant, cert)


def _radius(radius: Any) -> float:
    finite = isinstance(radius, (int, float, np.integer, np.floating)) and not isinstance(radius, bool)
    if not (finite and math.isfinite(radius) and radius >= 0):
        raise InputError(f"radius must be a finite number >= 0 (the l2 radius around x0), got {radius!r}")
    return float(radius)


def _fixed_T_certificate(
    matrices: list[np.ndarray], glob: Certificate, alpha: np.ndarray, beta: np.ndarray
) -> Certificate | None:
    """The global ``T`` with the local sectors: the smallest ``L^2`` it allows, proven (``None``: none)."""
    from ..errors import CertificateError
    from . import lmi
    from .certificate import _checked_certificate

    structure = lmi.network_structure(matrices)
    squared = lmi.minimal_squared_bound(structure, glob.T, alpha, beta)
    if not np.isfinite(squared):
        return None
    try:
        return _checked_certificate(
            structure, glob.T, squared * (1.0 + 1e-12), alpha, beta, form=glob.form, solver="fixed_T",
            status="global T", solve_time=0.0, margin=glob.margin, weights=matrices,
        )
    except CertificateError:
        return None


def _without_constant_neurons(
    matrices: list[np.ndarray], alpha: np.ndarray, beta: np.ndarray
) -> tuple[list[np.ndarray] | None, np.ndarray, np.ndarray, int]:
    """Drop neurons with sector ``[0, 0]``; ``None`` when a whole layer is constant."""
    keep_all = (alpha != 0.0) | (beta != 0.0)
    sizes = [w.shape[0] for w in matrices[:-1]]
    edges = np.cumsum([0, *sizes])
    pruned = [m.copy() for m in matrices]
    for k in range(len(sizes)):
        keep = keep_all[edges[k] : edges[k + 1]]
        if not keep.any():
            return None, alpha, beta, int((~keep_all).sum())
        pruned[k] = pruned[k][keep]
        pruned[k + 1] = pruned[k + 1][:, keep]
    return pruned, alpha[keep_all], beta[keep_all], int((~keep_all).sum())


def _biases(matrices: list[np.ndarray], biases: Sequence[Any] | None) -> list[np.ndarray]:
    if biases is None:
        return [np.zeros(w.shape[0]) for w in matrices]
    if len(biases) != len(matrices):
        raise InputError(f"biases must have one vector per layer ({len(matrices)}), got {len(biases)}")
    return [as_vector(b, f"biases[{i}]", w.shape[0]) for i, (w, b) in enumerate(zip(matrices, biases))]


def local_certified(margin: float, local: LocalBound) -> bool:
    """True when the logit margin exceeds ``sqrt(2) L(x0, r) r`` (rounded to err towards False)."""
    if not isinstance(local, LocalBound):
        raise InputError(f"local must be a LocalBound (from certify_local), got {type(local).__name__}")
    margin = as_number(margin, "margin")
    need = SQRT2_UP * local.bound * local.radius
    return bool(margin > float(np.nextafter(need, np.inf)))
