"""Random networks, multipliers and the step's objective for the multi-layer step tests."""

from __future__ import annotations

import numpy as np


def net(sizes, seed=0, gain=2.0):
    """Weights ``W_k ~ gain N(0, 1 / n_k)`` of a network with layer sizes ``sizes``."""
    rng = np.random.default_rng(seed)
    return [
        gain * rng.standard_normal((sizes[k + 1], sizes[k])) / np.sqrt(sizes[k])
        for k in range(len(sizes) - 1)
    ]


def multiplier(sizes, seed=1):
    """A diagonal ``t`` uniform in ``[0.3, 2]``, one entry per hidden neuron."""
    return np.random.default_rng(seed).uniform(0.3, 2.0, sum(sizes[1:-1]))


def trivial_bound(W):
    """The product of the layers' spectral norms."""
    return float(np.prod([np.linalg.norm(w, 2) for w in W]))


def step_objective(result, W, Y, rho, mu, mode):
    """``(mu/rho) L^2 + 1/2 sum ||W_bar - (W + Y/rho)||^2``: the objective every method minimises."""
    proximity = 0.5 * sum(float(np.sum((wb - w - y / rho) ** 2)) for wb, w, y in zip(result.W_bar, W, Y))
    return proximity + (mu / rho * result.squared_bound if mode == "regularize" else 0.0)
