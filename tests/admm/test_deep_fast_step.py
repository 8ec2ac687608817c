"""The multi-layer Lipschitz step's structured barrier solver (pylip.admm.deep_fast_step) against cvxpy."""

from __future__ import annotations

import numpy as np
import pytest

from pylip.admm.deep_fast_step import solve_deep_step
from pylip.admm.deep_step import DeepLipschitzStep
from pylip.errors import InputError
from pylip.lipsdp import proof

RTOL_OBJECTIVE = 1e-6  # agreement with Clarabel at 1e-12 in the step's objective (reference/README.md)


def net(sizes, seed=0, gain=2.0):
    rng = np.random.default_rng(seed)
    return [
        gain * rng.standard_normal((sizes[k + 1], sizes[k])) / np.sqrt(sizes[k])
        for k in range(len(sizes) - 1)
    ]


def multiplier(sizes, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.3, 2.0, sum(sizes[1:-1]))


def step_objective(result, W, Y, rho, mu, mode):
    """``(mu/rho) L^2 + 1/2 sum ||W_bar - (W + Y/rho)||^2``: the objective both methods minimise."""
    proximity = 0.5 * sum(float(np.sum((wb - w - y / rho) ** 2)) for wb, w, y in zip(result.W_bar, W, Y))
    return proximity + (mu / rho * result.squared_bound if mode == "regularize" else 0.0)


SIZES = [
    (3, 6, 5, 2),  # two hidden layers
    (4, 5, 6, 5, 3),  # three
    (2, 4, 4, 4, 4, 2),  # four
    (10, 16, 12, 3),  # wider, no input reduction (10 < 16)
    (20, 12, 16, 4),  # input reduced to the first hidden width
    (6, 24, 24, 5),  # wider than the old 16-neuron limit
]


@pytest.mark.parametrize("mode", ["regularize", "enforce"])
@pytest.mark.parametrize("sizes", SIZES)
def test_structured_step_matches_cvxpy_and_is_proven(sizes, mode):
    W = net(sizes, 3)
    t = multiplier(sizes)
    rng = np.random.default_rng(4)
    Y = [0.1 * rng.standard_normal(w.shape) for w in W]
    rho, mu = 1.5, 0.05
    L_des = 0.3 * float(np.prod([np.linalg.norm(w, 2) for w in W])) if mode == "enforce" else None
    results = {}
    for method in ("structured", "cvxpy"):
        step = DeepLipschitzStep(sizes, np.diag(t), mode=mode, method=method)
        results[method] = step.solve(W, Y, rho=rho, mu=mu, L_des=L_des)
    ours, reference = results["structured"], results["cvxpy"]
    f_ours = step_objective(ours, W, Y, rho, mu, mode)
    f_ref = step_objective(reference, W, Y, rho, mu, mode)
    assert abs(f_ours - f_ref) <= RTOL_OBJECTIVE * f_ref
    assert ours.status == "optimal"
    # every returned W_bar is proven: Theorem 8 at L_des (enforce) or at the returned bound
    bound = L_des if mode == "enforce" else ours.bound
    assert ours.max_eigenvalue <= 0
    assert proof.prove_certificate(ours.W_bar, t, bound, 0.0, 1.0).holds
    if mode == "enforce":
        assert ours.squared_bound == L_des**2


def test_default_method_is_structured_for_deep_nets_and_cvxpy_for_one_layer():
    t2 = multiplier((3, 4, 4, 2))
    assert DeepLipschitzStep((3, 4, 4, 2), np.diag(t2)).method == "structured"
    assert DeepLipschitzStep((3, 4, 4, 2), np.diag(t2), solver="CLARABEL").method == "cvxpy"
    assert DeepLipschitzStep((3, 4, 2), np.eye(4)).method == "cvxpy"
    with pytest.raises(InputError, match="method"):
        DeepLipschitzStep((3, 4, 4, 2), np.diag(t2), method="newton")


def test_regularize_with_mu_zero_hands_over_to_cvxpy():
    sizes = (3, 4, 4, 2)
    W = net(sizes, 5)
    step = DeepLipschitzStep(sizes, np.diag(multiplier(sizes)), mode="regularize")
    result = step.solve(W, None, rho=1.0, mu=0.0)
    assert step._problem is not None  # the cvxpy problem was built and solved
    assert result.max_eigenvalue <= 0


def test_bad_input_names_the_field():
    W = net((3, 4, 4, 2))
    t = multiplier((3, 4, 4, 2))
    with pytest.raises(InputError, match="mode"):
        solve_deep_step(W, t, mode="both")
    with pytest.raises(InputError, match="squared_bound"):
        solve_deep_step(W, t, mode="enforce")
    with pytest.raises(InputError, match="mu_over_rho"):
        solve_deep_step(W, t, mode="regularize", mu_over_rho=0.0)
    with pytest.raises(InputError, match="t must"):
        solve_deep_step(W, t[:-1], mode="enforce", squared_bound=1.0)
