"""The multi-layer Lipschitz step's structured barrier solver (pylip.admm.deep_fast_step) against cvxpy."""

from __future__ import annotations

import numpy as np
import pytest
from deep_nets import multiplier, net, step_objective

from pylip.admm.deep_dual_step import solve_deep_step_dual
from pylip.admm.deep_fast_step import solve_deep_step
from pylip.admm.deep_step import DeepLipschitzStep
from pylip.admm.fast_step import solve_step_dual
from pylip.errors import InputError
from pylip.lipsdp import proof

RTOL_OBJECTIVE = 1e-6  # agreement with Clarabel at 1e-12 in the step's objective (reference/README.md)


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


def test_unknown_method_is_refused():
    with pytest.raises(InputError, match="method"):
        DeepLipschitzStep((3, 4, 4, 2), np.diag(multiplier((3, 4, 4, 2))), method="newton")


def test_regularize_with_mu_zero_hands_over_to_cvxpy():
    sizes = (3, 4, 4, 2)
    W = net(sizes, 5)
    step = DeepLipschitzStep(sizes, np.diag(multiplier(sizes)), mode="regularize")
    result = step.solve(W, None, rho=1.0, mu=0.0)
    assert step._problem is not None  # the cvxpy problem was built and solved
    assert result.max_eigenvalue <= 0


@pytest.mark.parametrize("solver", [solve_deep_step, solve_deep_step_dual])
def test_bad_input_names_the_field(solver):
    W = net((3, 4, 4, 2))
    t = multiplier((3, 4, 4, 2))
    with pytest.raises(InputError, match="mode"):
        solver(W, t, mode="both")
    with pytest.raises(InputError, match="squared_bound"):
        solver(W, t, mode="enforce")
    with pytest.raises(InputError, match="mu_over_rho"):
        solver(W, t, mode="regularize", mu_over_rho=0.0)
    with pytest.raises(InputError, match="t must"):
        solver(W, t[:-1], mode="enforce", squared_bound=1.0)


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"mode": "enforce", "squared_bound": 1.0, "margin": 1.0}, r"margin must be in \[0, 1\)"),
        ({"mode": "enforce", "squared_bound": 1.0, "beta": 0.0}, "beta must be > 0"),
        ({"mode": "enforce", "squared_bound": float("inf")}, "squared_bound .* finite number > margin"),
        ({"mode": "regularize", "mu_over_rho": -1.0}, "mu_over_rho must be a finite number > 0"),
        ({"mode": "both"}, "mode must be 'regularize' or 'enforce'"),
    ],
)
def test_both_step_solvers_check_their_settings_alike(settings, match):
    """The one-layer dual solver and the deep ones share their input checks (pylip.validation)."""
    W = net((3, 4, 2))
    t = multiplier((3, 4, 2))
    with pytest.raises(InputError, match=match):
        solve_step_dual(W[0], W[1], t, **settings)
    with pytest.raises(InputError, match=match):
        solve_deep_step(W, t, **settings)
    with pytest.raises(InputError, match=match):
        solve_deep_step_dual(W, t, **settings)


def test_both_step_solvers_read_a_diagonal_T_and_refuse_a_coupled_one():
    W = net((3, 4, 2))
    t = multiplier((3, 4, 2))
    settings = {"mode": "enforce", "squared_bound": 4.0}
    deep = solve_deep_step(W, np.diag(t), **settings)
    np.testing.assert_array_equal(deep.W_bar[0], solve_deep_step(W, t, **settings).W_bar[0])
    coupled = np.diag(t) + 0.1
    with pytest.raises(InputError, match="T must be diagonal"):
        solve_step_dual(W[0], W[1], coupled, **settings)
    with pytest.raises(InputError, match="T must be diagonal"):
        solve_deep_step(W, coupled, **settings)
    with pytest.raises(InputError, match=r"t must be > margin/2 .* at neurons \[0\]"):
        solve_step_dual(W[0], W[1], np.concatenate([[0.0], t[1:]]), **settings)


def test_enforce_step_with_feasible_targets_returns_them_exactly():
    """A non-binding L_des (targets already inside the LMI): the projection is the targets
    themselves; the barrier method used to chase a zero objective until its weight overflowed."""
    sizes = (3, 6, 5, 2)
    W = net(sizes, 3, gain=0.5)
    t = multiplier(sizes)
    L_des = 10.0 * float(np.prod([np.linalg.norm(w, 2) for w in W])) * np.sqrt(2.0 / t.min())
    solution = solve_deep_step(W, t, mode="enforce", squared_bound=L_des**2, margin=1e-9)
    assert solution.newton_steps == 0 and solution.objective == 0.0
    assert all(np.array_equal(a, b) for a, b in zip(solution.W_bar, W))
    step = DeepLipschitzStep(sizes, np.diag(t), mode="enforce", method="structured")
    out = step.solve(W, None, rho=1.0, L_des=L_des)
    assert all(np.array_equal(a, b) for a, b in zip(out.W_bar, W)) and not out.repaired


RTOL_CENTRAL = 1e-8  # the 1-D centring's root against tr(S^{-1})_00 from a full inverse (reference/README.md)


@pytest.mark.parametrize("sizes", [(3, 6, 5, 2), (20, 12, 16, 4), (1, 8, 8, 1)])
def test_regularize_starts_at_the_central_bound_of_its_initial_weights(sizes):
    """At ``_central_bound``'s ``L^2`` the barrier's derivative in ``L^2`` meets the objective's:
    ``weight c = tr(S^{-1})_00``, and ``S`` stays positive definite."""
    from pylip.admm import deep_fast_step as d

    W = net(sizes, 3)
    problem = d._Barrier.checked(W, multiplier(sizes), "regularize", 1.0, 0.05, None, 1e-3)
    start, squared = d._initial_point(problem)
    weight = d._initial_weight(problem, start, squared)
    central = d._central_bound(problem, start, weight, squared)
    inverse = problem.inverse_slack(start, central)
    assert inverse is not None
    n = problem.n_in
    trace = float(np.trace(inverse[0][:n, :n]))
    assert abs(trace - weight * 0.05) <= RTOL_CENTRAL * weight * 0.05
    assert abs(central - squared) > 1e-3 * squared  # it did move L^2 (not the fallback)
