"""Slope-restricted activation functions (paper eq. 2) and their sectors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .validation import as_number


@dataclass(frozen=True)
class Activation:
    """An activation ``phi`` with slopes in ``[alpha, beta]`` (eq. 2)."""

    name: str
    alpha: float
    beta: float
    function: Callable[[np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray], np.ndarray]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation("tanh", 0.0, 1.0, np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "relu": Activation("relu", 0.0, 1.0, lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float)),
    "sigmoid": Activation(
        "sigmoid", 0.0, 0.25, _sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))
    ),
}


def get_activation(name: str) -> Activation:
    """Look up an activation by name (``tanh``, ``relu`` or ``sigmoid``)."""
    key = str(name).lower()
    if key not in ACTIVATIONS:
        raise InputError(
            f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}; for another "
            "slope-restricted function pass alpha and beta explicitly"
        )
    return ACTIVATIONS[key]


def check_sector(alpha: float, beta: float) -> tuple[float, float]:
    """Validate a slope sector ``0 <= alpha < beta < inf``."""
    alpha, beta = as_number(alpha, "alpha"), as_number(beta, "beta")
    if alpha < 0:
        raise InputError(f"alpha must be >= 0 (eq. 2 needs 0 <= alpha < beta), got alpha={alpha}")
    if alpha >= beta:
        raise InputError(
            f"alpha must be smaller than beta (eq. 2 needs 0 <= alpha < beta), got "
            f"alpha={alpha}, beta={beta}; tanh and ReLU have [0, 1], sigmoid [0, 0.25]"
        )
    return alpha, beta
