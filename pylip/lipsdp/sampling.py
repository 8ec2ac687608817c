"""Sampled evidence about a network's Lipschitz constant.

A certificate is an *upper* bound; the largest Jacobian norm over sampled
inputs is a *lower* bound. Both together bracket the true constant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from ..validation import as_count, as_number, as_seed, as_vector, as_weight_list
from .activations import get_activation

CHUNK = 2000  # sampled points per batch of Jacobians
MAX_SAMPLES = 10**8


def as_generator(rng: np.random.Generator | int | None, default_seed: int = 0) -> np.random.Generator:
    """A numpy Generator from a Generator, a seed, or ``None`` (a fixed default seed)."""
    return as_seed(default_seed if rng is None else rng)


def forward(
    weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], x: np.ndarray, activation: str
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Network outputs for a batch ``x`` (m x n0) and the pre-activations of each layer."""
    phi = get_activation(activation).function
    pre_activations = []
    h = x
    for w, b in zip(weights[:-1], biases[:-1]):
        z = h @ w.T + b
        pre_activations.append(z)
        h = phi(z)
    return h @ weights[-1].T + biases[-1], pre_activations


def jacobian_norms(
    weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], x: np.ndarray, activation: str
) -> np.ndarray:
    """Spectral norm of the network's Jacobian at each row of ``x``."""
    slope = get_activation(activation).derivative
    _, pre_activations = forward(weights, biases, x, activation)
    jac = np.broadcast_to(weights[0], (x.shape[0], *weights[0].shape))
    for w, z in zip(weights[1:], pre_activations):
        jac = np.einsum("ij,mj,mjk->mik", w, slope(z), jac)
    return np.linalg.norm(jac, ord=2, axis=(1, 2))


def sampled_lower_bound(
    weights: Sequence[Any],
    biases: Sequence[Any] | None = None,
    *,
    activation: str = "tanh",
    n_samples: int = 10_000,
    scale: float = 1.0,
    rng: np.random.Generator | int | None = None,
) -> float:
    """Largest Jacobian spectral norm over Gaussian inputs: a lower bound on ``L*``.

    Inputs are drawn from ``N(0, scale^2 I)``; missing biases count as zero.
    """
    matrices = as_weight_list(weights, min_layers=1)
    vectors = _biases(matrices, biases)
    n_samples = as_count(n_samples, "n_samples", 1)
    if n_samples > MAX_SAMPLES:
        raise InputError(
            f"n_samples = {n_samples} is more than {MAX_SAMPLES:.0e} points (hours of Jacobians for a "
            f"lower bound that grows only slowly with more points): use at most {MAX_SAMPLES:.0e}"
        )
    if not as_number(scale, "scale") > 0:
        raise InputError(f"scale (the inputs' standard deviation) must be > 0, got {scale}")
    generator = as_generator(rng)
    largest = 0.0
    for start in range(0, n_samples, CHUNK):  # chunks: memory stays flat whatever n_samples
        x = scale * generator.standard_normal((min(CHUNK, n_samples - start), matrices[0].shape[1]))
        largest = max(largest, float(jacobian_norms(matrices, vectors, x, activation).max()))
    return largest


def _biases(weights: Sequence[np.ndarray], biases: Sequence[Any] | None) -> list[np.ndarray]:
    if biases is None:
        return [np.zeros(w.shape[0]) for w in weights]
    if isinstance(biases, (str, bytes, dict)) or len(biases) != len(weights):
        count = len(biases) if isinstance(biases, Sequence) and not isinstance(biases, str) else biases
        raise InputError(f"biases must have one vector per layer ({len(weights)}), got {count!r}")
    return [as_vector(b, f"biases[{i}]", w.shape[0]) for i, (w, b) in enumerate(zip(weights, biases))]


def sample_ball(center: np.ndarray, radius: float, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """``n_samples`` points uniform in the l2 ball ``||x - center|| <= radius``."""
    d = center.shape[0]
    direction = rng.standard_normal((n_samples, d))
    direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-300)
    return center + direction * (radius * rng.uniform(0.0, 1.0, (n_samples, 1)) ** (1.0 / d))


def sampled_local_lower_bound(
    weights: Sequence[Any],
    biases: Sequence[Any] | None,
    center: Any,
    radius: float,
    *,
    activation: str = "tanh",
    n_samples: int = 2000,
    rng: np.random.Generator | int | None = None,
) -> float:
    """Largest Jacobian spectral norm over points of the ball (and its centre): a lower bound on ``L(x0, r)``.

    Half the points are uniform in the ball, half on its sphere (where the
    slopes differ most from the centre's).
    """
    matrices = as_weight_list(weights, min_layers=1)
    vectors = _biases(matrices, biases)
    x0 = as_vector(center, "center", matrices[0].shape[1])
    generator = as_generator(rng)
    inside = sample_ball(x0, radius, n_samples - n_samples // 2, generator)
    on_sphere = sample_ball(x0, radius, n_samples // 2, generator)
    on_sphere = x0 + (on_sphere - x0) * (
        radius / np.maximum(np.linalg.norm(on_sphere - x0, axis=1, keepdims=True), 1e-300)
    )
    points = np.vstack([x0[None, :], inside, on_sphere])
    return float(jacobian_norms(matrices, vectors, points, activation).max())
