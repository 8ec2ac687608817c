"""Property tests: sampled lower bound <= neuron <= layer <= trivial bound.

Each inequality holds exactly in exact arithmetic. The slack is the solver's
accuracy on (6), which acts on L^2: relative 1e-6, plus absolute 1e-8 for
Clarabel's absolute gap tolerance and the LMI margin 1e-9 (which dominate for
tiny networks); see reference/README.md.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pylip

RTOL = 1e-6
ATOL_SQUARED = 1e-8


def at_most(smaller: float, larger: float) -> bool:
    return smaller**2 <= larger**2 * (1 + RTOL) + ATOL_SQUARED

sizes = st.lists(st.integers(1, 6), min_size=3, max_size=5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    layer_sizes=sizes,
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(0.05, 20.0),
    activation=st.sampled_from(["tanh", "relu", "sigmoid"]),
)
def test_bounds_are_ordered(layer_sizes, seed, scale, activation):
    rng = np.random.default_rng(seed)
    weights = [
        scale * rng.standard_normal((m, n)) / np.sqrt(n)
        for n, m in zip(layer_sizes[:-1], layer_sizes[1:])
    ]
    biases = [rng.standard_normal(m) for m in layer_sizes[1:]]
    neuron = pylip.certify(weights, form="neuron", activation=activation)
    layer = pylip.certify(weights, form="layer", activation=activation)
    lower = pylip.sampled_lower_bound(
        weights, biases, activation=activation, n_samples=500, scale=2.0, rng=seed
    )
    assert lower <= neuron.bound  # the certificate itself must hold: no slack
    assert at_most(neuron.bound, layer.bound)
    assert at_most(layer.bound, neuron.trivial_bound)
    assert neuron.max_eigenvalue <= 0.0 and layer.max_eigenvalue <= 0.0
