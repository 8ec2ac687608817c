"""Slope-restricted activation functions (paper eq. 2) and their sectors.

Each activation ``phi`` has slopes ``(phi(x) - phi(y)) / (x - y)`` in a sector
``[alpha, beta]``: by the mean value theorem, the range of ``phi'`` (for a
piecewise linear ``phi``, of its one-sided slopes). The LipSDP quadratic
constraint (eq. 4) holds for any ``alpha <= beta``, negative ``alpha``
included (silu, gelu, leakyrelu with a negative slope).

=============  ==========================  =========================================
name           sector ``[alpha, beta]``    where it comes from
=============  ==========================  =========================================
tanh           [0, 1]                      ``1 - tanh^2``
relu           [0, 1]                      one-sided slopes 0 and 1
sigmoid        [0, 1/4]                    ``s (1 - s)``, largest at 0
leakyrelu:a    [min(a, 1), max(a, 1)]      slopes ``a`` (default 0.01) and 1
elu:a          [0, max(a, 1)]              ``a e^x`` (x < 0) and 1; ``[0, 1]`` for a <= 1
softplus       [0, 1]                      ``phi' = sigmoid``
silu, swish    [-0.0998393..., 1.0998393...]  ``phi' = s (1 + x (1 - s))``
gelu           [-0.1289041..., 1.1289041...]  ``phi' = Phi(x) + x phi_N(x)``
hardtanh       [0, 1]                      ``clip(x, -1, 1)``
identity       [1, 1]                      linear
=============  ==========================  =========================================

The silu and gelu extremes are where ``phi'' = 0``. For gelu,
``phi'' = phi_N(x) (2 - x^2)`` vanishes at ``x = +-sqrt(2)``, so the slope range
is ``1/2 +- (1/2 erf(1) + sqrt(2) phi_N(sqrt(2)))`` with
``phi_N(sqrt(2)) = e^-1 / sqrt(2 pi)``: ``[-0.128904145185154786..,
1.128904145185154786..]``. For silu, ``phi'' = s (1 - s) (2 + x (1 - 2 s))``
vanishes where ``x tanh(x / 2) = 2``, ``x = +-2.39935728051546766..``, giving
``[-0.0998393201288669169.., 1.0998393201288669169..]`` (computed with mpmath at
40 digits; the two extremes sum to 1 because ``phi'(x) + phi'(-x) = 1``).
The sectors below are these values rounded outwards in the 14th digit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.special

from ..errors import InputError
from ..validation import as_number

Interval = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

SILU_SLOPE_MAX = 1.09983932012887  # rounded up from 1.0998393201288669169...
SILU_SLOPE_MIN = -0.09983932012887  # rounded down from -0.0998393201288669169...
SILU_SLOPE_CRITICAL = 2.3993572805154677  # x tanh(x / 2) = 2: the extremes of silu'
SILU_MINIMUM_AT = -1.2784645427610738  # silu' = 0: silu's smallest value
GELU_SLOPE_MAX = 1.12890414518516  # rounded up from 1.1289041451851547863...
GELU_SLOPE_MIN = -0.12890414518516  # rounded down from -0.1289041451851547863...
GELU_SLOPE_CRITICAL = math.sqrt(2.0)
GELU_MINIMUM_AT = -0.7517915247  # gelu' = 0: gelu's smallest value


@dataclass(frozen=True)
class Activation:
    """An activation ``phi`` with slopes in ``[alpha, beta]`` (eq. 2).

    ``slope_range(lo, hi)`` and ``value_range(lo, hi)`` give, per entry, the
    smallest and largest slope, and the smallest and largest value, of ``phi``
    on the interval ``[lo, hi]`` (for local bounds, :mod:`pylip.local`).
    """

    name: str
    alpha: float
    beta: float
    function: Callable[[np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray], np.ndarray]
    slope_range: Interval
    value_range: Interval
    piecewise_linear: bool = False  # slopes exact (no rounding), fixed neurons exactly [s, s]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _monotone_values(function: Callable[[np.ndarray], np.ndarray]) -> Interval:
    return lambda lo, hi: (function(lo), function(hi))


def _smooth_slopes(derivative: Callable[[np.ndarray], np.ndarray], critical: tuple[float, ...]) -> Interval:
    """Slope range of a smooth ``phi`` whose ``phi'`` has its extremes among ``critical``.

    Between critical points ``phi'`` is monotone, so its extremes on ``[lo, hi]``
    are at the ends or at the critical points inside.
    """

    def slopes(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ends = [derivative(lo), derivative(hi)]
        smallest, largest = np.minimum(*ends), np.maximum(*ends)
        for c in critical:
            inside = (lo <= c) & (c <= hi)
            value = float(derivative(np.asarray(c)))
            smallest = np.where(inside, np.minimum(smallest, value), smallest)
            largest = np.where(inside, np.maximum(largest, value), largest)
        return smallest, largest

    return slopes


def _dip_values(function: Callable[[np.ndarray], np.ndarray], minimum_at: float) -> Interval:
    """Value range of a function decreasing up to ``minimum_at`` and increasing after it."""

    def values(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ends = [function(lo), function(hi)]
        inside = (lo <= minimum_at) & (minimum_at <= hi)
        low = np.where(inside, np.minimum(np.minimum(*ends), function(np.asarray(minimum_at))),
                       np.minimum(*ends))
        return low, np.maximum(*ends)

    return values


def _kinked_slopes(kinks: tuple[float, ...], pieces: tuple[float, ...]) -> Interval:
    """Slope range of a piecewise linear ``phi``: ``pieces[k]`` between ``kinks[k-1]`` and ``kinks[k]``."""

    def slopes(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        edges = (-np.inf, *kinks, np.inf)
        smallest = np.full(np.shape(lo), np.inf)
        largest = np.full(np.shape(lo), -np.inf)
        for k, slope in enumerate(pieces):
            touches = (hi > edges[k]) & (lo < edges[k + 1])
            smallest = np.where(touches, np.minimum(smallest, slope), smallest)
            largest = np.where(touches, np.maximum(largest, slope), largest)
        # a point interval on a kink touches no open piece: both one-sided slopes apply
        for k, kink in enumerate(kinks):
            on = (lo == kink) & (hi == kink)
            for slope in (pieces[k], pieces[k + 1]):
                smallest = np.where(on, np.minimum(smallest, slope), smallest)
                largest = np.where(on, np.maximum(largest, slope), largest)
        return smallest, largest

    return slopes


def _piecewise_linear(name: str, kinks: tuple[float, ...], pieces: tuple[float, ...],
                      function: Callable[[np.ndarray], np.ndarray]) -> Activation:
    def derivative(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        index = np.searchsorted(np.asarray(kinks), z, side="right")
        return np.asarray(pieces, dtype=np.float64)[index]

    return Activation(name, min(pieces), max(pieces), function, derivative,
                      _kinked_slopes(kinks, pieces), _monotone_values(function) if min(pieces) >= 0
                      else _leaky_values(function), piecewise_linear=True)


def _leaky_values(function: Callable[[np.ndarray], np.ndarray]) -> Interval:
    """Value range of ``max(x, a x)`` with ``a < 0``: decreasing up to 0, then increasing."""
    return _dip_values(function, 0.0)


def _tanh_derivative(z: np.ndarray) -> np.ndarray:
    return 1.0 - np.tanh(z) ** 2


def _sigmoid_derivative(z: np.ndarray) -> np.ndarray:
    return _sigmoid(z) * (1.0 - _sigmoid(z))


def _silu(z: np.ndarray) -> np.ndarray:
    return z * _sigmoid(z)


def _silu_derivative(z: np.ndarray) -> np.ndarray:
    s = _sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


def _gelu(z: np.ndarray) -> np.ndarray:
    return z * scipy.special.ndtr(z)


def _gelu_derivative(z: np.ndarray) -> np.ndarray:
    return scipy.special.ndtr(z) + z * np.exp(-0.5 * np.square(z)) / math.sqrt(2.0 * math.pi)


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


def leaky_relu(slope: float = 0.01) -> Activation:
    """``max(x, a x)`` for ``a <= 1``, or ``x`` for ``x >= 0`` and ``a x`` below in general."""
    a = _parameter("leakyrelu", slope)

    def function(z: np.ndarray) -> np.ndarray:
        return np.where(np.asarray(z) >= 0, z, a * np.asarray(z))

    return _piecewise_linear(f"leakyrelu:{a:g}", (0.0,), (a, 1.0), function)


def elu(scale: float = 1.0) -> Activation:
    """``x`` for ``x > 0``, ``a (e^x - 1)`` below; slopes ``a e^x`` and 1 (``a >= 0``)."""
    a = _parameter("elu", scale)
    if a < 0:
        raise InputError(f"elu's parameter must be >= 0 (a monotone activation), got {a:g}")

    def function(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        return np.where(z > 0, z, a * np.expm1(np.minimum(z, 0.0)))

    def derivative(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        return np.where(z > 0, 1.0, a * np.exp(np.minimum(z, 0.0)))

    def slopes(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # a e^x rises on x < 0; the one-sided slopes at 0 are a and 1
        ends = [derivative(lo), derivative(hi)]
        crosses = (lo <= 0) & (hi > 0)
        left_of_zero = np.where(crosses, a, ends[0])
        smallest = np.minimum(np.minimum(*ends), left_of_zero)
        largest = np.maximum(np.maximum(*ends), np.where(crosses, max(a, 1.0), -np.inf))
        return smallest, largest

    return Activation(f"elu:{a:g}", 0.0, max(a, 1.0), function, derivative, slopes,
                      _monotone_values(function))


def _parameter(name: str, value: float) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise InputError(f"{name}'s parameter must be a finite number, got {value!r}")
    return number


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation("tanh", 0.0, 1.0, np.tanh, _tanh_derivative, _smooth_slopes(_tanh_derivative, (0.0,)),
                       _monotone_values(np.tanh)),
    "relu": _piecewise_linear("relu", (0.0,), (0.0, 1.0), lambda z: np.maximum(z, 0.0)),
    "sigmoid": Activation("sigmoid", 0.0, 0.25, _sigmoid, _sigmoid_derivative,
                          _smooth_slopes(_sigmoid_derivative, (0.0,)), _monotone_values(_sigmoid)),
    "leakyrelu": leaky_relu(),
    "elu": elu(),
    "softplus": Activation("softplus", 0.0, 1.0, _softplus, _sigmoid, _smooth_slopes(_sigmoid, ()),
                           _monotone_values(_softplus)),
    "silu": Activation("silu", SILU_SLOPE_MIN, SILU_SLOPE_MAX, _silu, _silu_derivative,
                       _smooth_slopes(_silu_derivative, (-SILU_SLOPE_CRITICAL, SILU_SLOPE_CRITICAL)),
                       _dip_values(_silu, SILU_MINIMUM_AT)),
    "gelu": Activation("gelu", GELU_SLOPE_MIN, GELU_SLOPE_MAX, _gelu, _gelu_derivative,
                       _smooth_slopes(_gelu_derivative, (-GELU_SLOPE_CRITICAL, GELU_SLOPE_CRITICAL)),
                       _dip_values(_gelu, GELU_MINIMUM_AT)),
    "hardtanh": _piecewise_linear("hardtanh", (-1.0, 1.0), (0.0, 1.0, 0.0),
                                  lambda z: np.clip(z, -1.0, 1.0)),
    "identity": _piecewise_linear("identity", (), (1.0,), lambda z: np.asarray(z, dtype=np.float64)),
}
ALIASES = {"swish": "silu", "leaky_relu": "leakyrelu", "linear": "identity"}
PARAMETRIZED: dict[str, Callable[[float], Activation]] = {"leakyrelu": leaky_relu, "elu": elu}


def get_activation(name: str) -> Activation:
    """Look up an activation by name; ``"leakyrelu:0.2"`` and ``"elu:0.5"`` set their parameter."""
    key = str(name).strip().lower()
    base, _, parameter = key.partition(":")
    base = ALIASES.get(base, base)
    if base not in ACTIVATIONS or (parameter and base not in PARAMETRIZED):
        raise InputError(
            f"activation must be one of {', '.join([*ACTIVATIONS, *ALIASES])} (leakyrelu:SLOPE and "
            f"elu:ALPHA set a parameter), got {name!r}; for another slope-restricted function pass "
            "alpha and beta explicitly"
        )
    if not parameter:
        return ACTIVATIONS[base]
    try:
        value = float(parameter)
    except ValueError:
        raise InputError(f"activation {name!r}: the parameter after ':' must be a number") from None
    return PARAMETRIZED[base](value)


def check_sector(alpha: float, beta: float) -> tuple[float, float]:
    """Validate a slope sector ``alpha <= beta`` (both finite; ``alpha`` may be negative)."""
    alpha, beta = as_number(alpha, "alpha"), as_number(beta, "beta")
    if alpha > beta:
        raise InputError(
            f"alpha must not exceed beta (eq. 2 needs alpha <= beta), got alpha={alpha}, beta={beta}; "
            "tanh and ReLU have [0, 1], sigmoid [0, 0.25]"
        )
    return alpha, beta
