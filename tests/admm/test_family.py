"""One interface for the Lipschitz steps of one and many hidden layers (pylip.admm.family); no torch."""

from __future__ import annotations

import numpy as np
import pytest

import pylip
from pylip.admm import LayerStepResult, SupportsLipschitzStep, lipschitz_step
from pylip.admm.deep_step import DeepLipschitzStep, positive_multiplier
from pylip.admm.step import LipschitzStep
from pylip.errors import InputError

# One hidden layer, the two classes on the same inputs: 1e-6 relative on W_bar, Y and the
# bound, the tolerance of the one-layer agreement row in reference/README.md (same problem,
# same solver; measured identical to the last bit).
RTOL_ONE_LAYER = 1e-6


def net(sizes, seed=0, gain=2.0):
    rng = np.random.default_rng(seed)
    return [
        gain * rng.standard_normal((sizes[k + 1], sizes[k])) / np.sqrt(sizes[k])
        for k in range(len(sizes) - 1)
    ]


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(np.linalg.norm(b), 1e-300))


def multiplier(weights):
    return positive_multiplier(pylip.certify(weights).T)


@pytest.mark.parametrize("sizes", [(3, 5, 2), (2, 4, 3, 2)])
def test_both_classes_satisfy_the_interface(sizes):
    W = net(sizes)
    T = multiplier(W)
    steps = [DeepLipschitzStep(sizes, T)]
    if len(sizes) == 3:
        steps.append(LipschitzStep(*sizes, T))
    for step in steps:
        assert isinstance(step, SupportsLipschitzStep)
        assert tuple(step.layer_sizes) == sizes
        assert step.mode == "regularize" and step.beta == 1.0
        np.testing.assert_array_equal(step.T, T)
        result = step.solve_layers(W, None, rho=2.0, mu=0.05)
        assert isinstance(result, LayerStepResult)
        assert [w.shape for w in result.W_bar] == [w.shape for w in W] == [y.shape for y in result.Y]
        assert result.max_eigenvalue <= 0 and result.bound > 0
    assert not isinstance(object(), SupportsLipschitzStep)


def test_the_factory_chooses_the_class():
    one, two = (3, 5, 2), (3, 4, 4, 2)
    T1, T2 = multiplier(net(one)), multiplier(net(two))
    assert type(lipschitz_step(one, T1)) is LipschitzStep  # "auto": the original's formulation
    assert type(lipschitz_step(one, T1, formulation="original")) is LipschitzStep
    assert type(lipschitz_step(one, T1, formulation="layers")) is DeepLipschitzStep
    assert type(lipschitz_step(two, T2)) is DeepLipschitzStep
    step = lipschitz_step(two, T2, mode="enforce", beta=0.25, margin=0.0)
    assert (step.mode, step.beta, step.margin) == ("enforce", 0.25, 0.0)
    with pytest.raises(InputError, match="formulation='original' is LMI \\(7\\) of one hidden layer"):
        lipschitz_step(two, T2, formulation="original")
    with pytest.raises(InputError, match="formulation must be one of"):
        lipschitz_step(one, T1, formulation="dense")


@pytest.mark.parametrize("mode", ["regularize", "enforce"])
@pytest.mark.parametrize("dims", [(1, 6, 1), (3, 5, 2)])
def test_one_hidden_layer_both_classes_agree(mode, dims):
    W = net(dims, 4)
    cert = pylip.certify(W)
    T = positive_multiplier(cert.T)
    rng = np.random.default_rng(5)
    Y = [0.1 * rng.standard_normal(w.shape) for w in W]
    L_des = 0.5 * cert.bound if mode == "enforce" else None
    results = [
        lipschitz_step(dims, T, mode=mode, formulation=formulation).solve_layers(
            W, Y, rho=2.0, mu=0.05, L_des=L_des
        )
        for formulation in ("original", "layers")
    ]
    original, layers = results
    for ours, theirs in zip(layers.W_bar + layers.Y, original.W_bar + original.Y):
        assert rel(ours, theirs) <= RTOL_ONE_LAYER
    assert abs(layers.bound - original.bound) <= RTOL_ONE_LAYER * original.bound
    assert not np.allclose(original.W_bar[0], W[0])  # the step moved W_bar: the comparison can fail


def test_solve_layers_is_solve_for_the_one_layer_step():
    dims = (3, 5, 2)
    W = net(dims, 6)
    step = LipschitzStep(*dims, multiplier(W))
    rng = np.random.default_rng(7)
    Y = [0.1 * rng.standard_normal(w.shape) for w in W]
    direct = step.solve(W[0], W[1], Y[0], Y[1], rho=1.5, mu=0.02)
    layers = step.solve_layers(W, Y, rho=1.5, mu=0.02)
    for a, b in zip(direct.W_bar + direct.Y, layers.W_bar + layers.Y):
        np.testing.assert_array_equal(a, b)
    assert (direct.squared_bound, direct.bound) == (layers.squared_bound, layers.bound)
    zeros = step.solve_layers(W, None, rho=1.5, mu=0.02)
    explicit = step.solve_layers(W, [0 * y for y in Y], rho=1.5, mu=0.02)
    np.testing.assert_array_equal(zeros.W_bar[0], explicit.W_bar[0])


def test_set_T_of_the_one_layer_step_is_a_step_built_with_that_T():
    dims = (3, 5, 2)
    W = net(dims, 8)
    T = multiplier(W)
    step = LipschitzStep(*dims, T)
    first = step.solve_layers(W, None, rho=2.0, mu=0.05)
    step.set_T(3.0 * T)
    np.testing.assert_array_equal(step.T, 3.0 * T)
    moved = step.solve_layers(W, None, rho=2.0, mu=0.05)
    fresh = LipschitzStep(*dims, 3.0 * T).solve_layers(W, None, rho=2.0, mu=0.05)
    assert rel(moved.W_bar[0], fresh.W_bar[0]) <= RTOL_ONE_LAYER
    assert abs(moved.bound - fresh.bound) <= RTOL_ONE_LAYER * fresh.bound
    assert rel(moved.W_bar[0], first.W_bar[0]) > 1e-3  # T matters: the comparison can fail
    with pytest.raises(InputError, match="must be diagonal"):
        step.set_T(np.ones((5, 5)))


@pytest.mark.parametrize("formulation", ["original", "layers"])
def test_a_malformed_layer_list_names_the_field(formulation):
    dims = (3, 5, 2)
    W = net(dims)
    step = lipschitz_step(dims, multiplier(W), formulation=formulation)
    with pytest.raises(InputError, match=r"weights must be a list of 2 matrices .* of length 3"):
        step.solve_layers([*W, W[0]], None, rho=1.0, mu=0.1)
    with pytest.raises(InputError, match=r"multipliers\[1\] must have shape \(2, 5\)"):
        step.solve_layers(W, [np.zeros((5, 3)), np.zeros((5, 2))], rho=1.0, mu=0.1)
    with pytest.raises(InputError, match="weights must be a list of 2 matrices"):
        step.solve_layers(np.zeros((5, 3)), None, rho=1.0, mu=0.1)
