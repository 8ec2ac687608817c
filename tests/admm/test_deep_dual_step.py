"""The multi-layer Lipschitz step's low-rank dual solver (pylip.admm.deep_dual_step)."""

from __future__ import annotations

import numpy as np
import pytest
from deep_nets import multiplier, net, step_objective, trivial_bound

from pylip.admm import deep_dual_step as dual_step
from pylip.admm.deep_dual_step import solve_deep_step_dual
from pylip.admm.deep_lmi import StepLmi
from pylip.admm.deep_step import DeepLipschitzStep, certificate_max_eigenvalue, deep_lmi_matrix
from pylip.errors import SolverError
from pylip.lipsdp import lmi, proof

RTOL_OBJECTIVE = 1e-6  # agreement with Clarabel at 1e-12 in the step's objective (reference/README.md)
RTOL_SOLVERS = 1e-8  # the dual against itself and the barrier method, both at gap 1e-9 (reference/README.md)
# the reference is Clarabel whatever solver a tox cell names in PYLIP_SOLVER: CVXOPT's point
# is 3.7e-5 above the optimum on (3, 4, 3, 6), regularize
REFERENCE_SOLVER = "CLARABEL"
RTOL_DERIVATIVE = 1e-6  # central differences of F against its gradient and Hessian (reference/README.md)


SIZES = [
    (3, 6, 5, 2),  # two hidden layers
    (4, 5, 6, 5, 3),  # three
    (2, 4, 4, 4, 4, 2),  # four
    (20, 12, 16, 4),  # input reduced to the first hidden width
    (3, 4, 3, 6),  # output reduced to the last hidden width
    (6, 24, 24, 5),
    (8, 12, 12, 12, 3),  # wider and deeper (20-40-40-5 and 64-64-64-10: test_wide_steps_agree_...)
]


@pytest.mark.parametrize("mode", ["regularize", "enforce"])
@pytest.mark.parametrize("sizes", SIZES)
def test_dual_step_matches_cvxpy_and_satisfies_lmi_7(sizes, mode):
    W = net(sizes, 3)
    t = multiplier(sizes)
    rng = np.random.default_rng(4)
    Y = [0.1 * rng.standard_normal(w.shape) for w in W]
    rho, mu = 1.5, 0.05
    L_des = 0.3 * trivial_bound(W) if mode == "enforce" else None
    ours = DeepLipschitzStep(sizes, np.diag(t), mode=mode).solve(W, Y, rho=rho, mu=mu, L_des=L_des)
    # the reference unreduced at the output: on (3, 4, 3, 6), regularize, Clarabel's reduced point
    # needed a repair (its L^2 raised by 1e-5 relative; unreduced it did not, nor either solver of pylip)
    reference = DeepLipschitzStep(
        sizes, np.diag(t), mode=mode, method="cvxpy", reduce_output=False, solver=REFERENCE_SOLVER
    ).solve(W, Y, rho=rho, mu=mu, L_des=L_des)
    f_ours = step_objective(ours, W, Y, rho, mu, mode)
    f_ref = step_objective(reference, W, Y, rho, mu, mode)
    assert abs(f_ours - f_ref) <= RTOL_OBJECTIVE * f_ref
    assert ours.status == "optimal" and not ours.fallback  # the dual solver's own answer
    # the checked W_bar satisfies LMI (7) (its block form for l layers) and Theorem 8's certificate:
    # at L_des (enforce) or at the returned bound (regularize)
    squared = L_des**2 if mode == "enforce" else ours.squared_bound
    assert lmi.max_eigenvalue(deep_lmi_matrix(ours.W_bar, t, squared)) <= 0.0
    assert certificate_max_eigenvalue(ours.W_bar, t, squared) <= 0.0
    assert proof.prove_certificate(ours.W_bar, t, np.sqrt(squared), 0.0, 1.0).holds
    if mode == "enforce":
        assert ours.squared_bound == L_des**2


def test_default_method_is_the_dual_for_deep_nets_and_cvxpy_for_one_layer():
    t2 = multiplier((3, 4, 4, 2))
    assert DeepLipschitzStep((3, 4, 4, 2), np.diag(t2)).method == "dual"
    assert DeepLipschitzStep((3, 4, 4, 2), np.diag(t2), solver="CLARABEL").method == "cvxpy"
    assert DeepLipschitzStep((3, 4, 2), np.eye(4)).method == "cvxpy"


@pytest.mark.parametrize("mode", ["regularize", "enforce"])
def test_gap_is_certified_by_the_dual_bound(mode):
    """The returned point is feasible and its objective less ``gap`` (the dual bound g(Z)) is below
    Clarabel's optimum: a wrong dual function or gap identity (*) would put it above."""
    sizes = (6, 10, 8, 3)
    W = net(sizes, 5)
    t = multiplier(sizes, 6)
    settings = {"mode": mode, "margin": 1e-9}
    if mode == "enforce":
        settings["squared_bound"] = (0.3 * trivial_bound(W)) ** 2
    else:
        settings["mu_over_rho"] = 0.05
    solution = solve_deep_step_dual(W, t, **settings)
    step = DeepLipschitzStep(
        sizes, np.diag(t), mode=mode, method="cvxpy", margin=1e-9, solver=REFERENCE_SOLVER
    )
    bound = None if mode == "regularize" else np.sqrt(settings["squared_bound"])
    reference = step.solve(W, None, rho=1.0, mu=0.05, L_des=bound)
    f_ref = step_objective(reference, W, [np.zeros_like(w) for w in W], 1.0, 0.05, mode)
    assert 0.0 <= solution.gap <= 1e-9 * solution.objective
    assert solution.objective - solution.gap <= f_ref * (1.0 + 1e-10)
    assert f_ref <= solution.objective * (1.0 + RTOL_OBJECTIVE)
    S = StepLmi(W, t, 1.0, 1e-9, settings.get("mu_over_rho"), settings.get("squared_bound"))
    assert np.linalg.eigvalsh(S.slack(solution.W_bar, solution.squared_bound))[0] >= -1e-12


@pytest.mark.parametrize("mode", ["regularize", "enforce"])
def test_a_factor_of_too_small_rank_grows_to_the_optimum(mode, monkeypatch):
    """Started with one column, ``Y`` stalls at a point whose ``S`` has negative eigenvalues; their
    eigenvectors are added (module docstring) and the solve reaches the same optimum."""
    sizes = (10, 16, 12, 3)
    W = net(sizes, 7)
    t = multiplier(sizes, 8)
    settings = {"mode": mode, "margin": 1e-9, "mu_over_rho": 0.05 if mode == "regularize" else None}
    if mode == "enforce":
        settings["squared_bound"] = (0.2 * trivial_bound(W)) ** 2
    full = solve_deep_step_dual(W, t, **settings)
    start = dual_step._initial_factor
    monkeypatch.setattr(dual_step, "_initial_factor", lambda *args: start(*args)[:, :1])
    grown = []
    grow = dual_step._grown
    monkeypatch.setattr(dual_step, "_grown", lambda *args: grown.append(1) or grow(*args))
    narrow = solve_deep_step_dual(W, t, **settings)
    assert grown and narrow.rank > 1 and full.rank > 1
    assert abs(narrow.objective - full.objective) <= RTOL_SOLVERS * full.objective


@pytest.mark.parametrize("first", [0, 1])
def test_scaled_slack_is_bipartite(first):
    """``D^-1/2 S D^-1/2 = I - [[0, C'], [C, 0]]``: its eigenvalues are ``1 +- sigma(C)`` and 1, so
    ``lambda_min = 1 - sigma_max(C)`` (``first = 1``: the hidden and output blocks alone)."""
    sizes = (5, 7, 6, 4, 3)
    W = net(sizes, 2)
    t = multiplier(sizes, 3)
    step = StepLmi(W, t, 1.0, 1e-9, None, 7.0)
    root = 1.0 / np.sqrt(step.diagonal(7.0))
    coupled = [c[:, None] * w for c, w in zip(step.coefficients, W)]
    coupling = dual_step._Coupling(step, coupled, root, first=first)
    start = step.offsets[first]
    scaled = (root[:, None] * step.slack(W, 7.0) * root[None, :])[start:, start:]
    values = np.linalg.eigvalsh(scaled)
    sigma = np.linalg.svd(coupling.matrix, compute_uv=False)
    expected = np.sort(np.concatenate([1 - sigma, 1 + sigma, np.ones(values.size - 2 * sigma.size)]))
    np.testing.assert_allclose(values, expected, atol=1e-12)
    assert coupling.smallest_eigenvalue() == pytest.approx(values[0], abs=1e-12)


@pytest.mark.parametrize("mode", ["regularize", "enforce"])
def test_gradient_and_hessian_of_the_dual_function(mode):
    """``grad F = 2 S Y`` and ``Hess F [V] = 2 S V + 2 dS Y`` against central differences of ``F``;
    regularize: on the sphere ``||Y_0||^2 = c``, the Riemannian gradient and the projected Hessian
    of the Lagrangian."""
    sizes = (4, 6, 5, 3)
    W = net(sizes, 9)
    t = multiplier(sizes, 10)
    regularize = mode == "regularize"
    step = StepLmi(W, t, 1.0, 1e-9, 0.05 if regularize else None, None if regularize else 9.0)
    dual = dual_step._DualFunction(step)
    rng = np.random.default_rng(11)
    point = dual.point(dual.retract(0.3 * rng.standard_normal((step.size, 5))))
    V = dual.tangent(point, rng.standard_normal(point.Y.shape))
    h = 1e-5

    def along(a):
        return dual.point(dual.retract(point.Y + a * V))

    slope = (along(h).value - along(-h).value) / (2 * h)
    assert float(np.vdot(point.gradient, V)) == pytest.approx(slope, rel=RTOL_DERIVATIVE)
    # the gradient's change along the curve, projected: the Hessian (regularize: of the Lagrangian)
    change = dual.tangent(point, (along(h).gradient - along(-h).gradient) / (2 * h))
    product = dual.tangent(point, dual.hessian_times(point, V))
    np.testing.assert_allclose(product, change, rtol=0, atol=RTOL_DERIVATIVE * np.abs(change).max())


def test_preconditioner_inverts_its_model():
    """``M V = 2 S~_+ V + 4 kappa V X'X + shift V`` (:class:`_Preconditioner`, ``kappa`` the median
    weight) at a point where ``S~`` is positive definite: applying it to ``M V`` gives back ``V``."""
    sizes = (4, 6, 5, 3)
    W = net(sizes, 12, gain=0.5)
    t = multiplier(sizes, 13)
    step = StepLmi(W, t, 1.0, 1e-9, None, 4.0)
    dual = dual_step._DualFunction(step)
    rng = np.random.default_rng(14)
    point = dual.point(0.05 * rng.standard_normal((step.size, 4)))
    root = dual.root(point.squared)
    preconditioner = dual_step._Preconditioner(dual, point, root, shift=0.3)
    S = root[:, None] * step.slack(point.W, point.squared) * root[None, :]
    assert np.linalg.eigvalsh(S)[0] > 0
    X = point.Y / root[:, None]
    weights = np.concatenate([
        (c2[:, None] * root[rows, None] ** 2 * root[None, cols] ** 2).ravel()
        for (rows, cols), c2 in zip(dual.pairs, dual.squares)
    ])
    V = rng.standard_normal(point.Y.shape)
    model = 2 * S @ V + 4 * np.median(weights) * V @ (X.T @ X) + 0.3 * V
    np.testing.assert_allclose(preconditioner(model), V, atol=1e-10)


def test_feasible_targets_are_returned_as_they_are():
    sizes = (3, 6, 5, 2)
    W = net(sizes, 3, gain=0.5)
    t = multiplier(sizes)
    L_des = 10.0 * trivial_bound(W) * np.sqrt(2.0 / t.min())
    solution = solve_deep_step_dual(W, t, mode="enforce", squared_bound=L_des**2, margin=1e-9)
    assert solution.objective == 0.0 and solution.rank == 0
    assert all(np.array_equal(a, b) for a, b in zip(solution.W_bar, W))


def test_above_its_size_the_barrier_method_does_not_back_the_dual_up(monkeypatch):
    """On large LMIs the barrier method takes minutes: a failing dual solver hands over to cvxpy."""
    from pylip.admm import deep_step

    def failing(*args, **kwargs):
        raise SolverError("stalled")

    def not_called(*args, **kwargs):
        raise AssertionError("the barrier method was called")

    sizes = (3, 6, 5, 2)
    W = net(sizes, 3)
    monkeypatch.setattr(deep_step, "solve_deep_step_dual", failing)
    monkeypatch.setattr(deep_step, "solve_deep_step", not_called)
    monkeypatch.setattr(deep_step, "BARRIER_FALLBACK_SIZE", sum(sizes) - 1)
    step = DeepLipschitzStep(sizes, np.diag(multiplier(sizes)), mode="enforce")
    result = step.solve(W, None, rho=1.0, L_des=1.0)
    assert result.fallback and step._problem is not None and result.max_eigenvalue <= 0.0


def test_a_failing_dual_solver_hands_over_to_the_barrier_method(monkeypatch):
    from pylip.admm import deep_step

    def failing(*args, **kwargs):
        raise SolverError("stalled")

    sizes = (3, 6, 5, 2)
    W = net(sizes, 3)
    t = multiplier(sizes)
    monkeypatch.setattr(deep_step, "solve_deep_step_dual", failing)
    result = DeepLipschitzStep(sizes, np.diag(t), mode="enforce").solve(W, None, rho=1.0, L_des=1.0)
    assert result.fallback and result.max_eigenvalue <= 0.0
    barrier = DeepLipschitzStep(sizes, np.diag(t), mode="enforce", method="structured")
    assert barrier.solve(W, None, rho=1.0, L_des=1.0).W_bar[0] == pytest.approx(result.W_bar[0])


@pytest.mark.parametrize("sizes", [(20, 40, 40, 5), (64, 64, 64, 10)])
@pytest.mark.parametrize("mode", ["regularize", "enforce"])
def test_wide_steps_agree_with_the_barrier_method(sizes, mode):
    """LMIs of size 105 and 202 (cvxpy takes a minute on the first): the dual and the barrier method
    (itself checked against cvxpy, tests/admm/test_deep_fast_step.py), both stopped at a certified
    relative gap of 1e-9."""
    from pylip.admm.deep_fast_step import solve_deep_step

    W = net(sizes, 0)
    t = np.random.default_rng(0).uniform(0.5, 2.0, sum(sizes[1:-1]))
    if mode == "enforce":
        settings = {"mode": mode, "squared_bound": (0.3 * trivial_bound(W)) ** 2}
    else:
        settings = {"mode": mode, "mu_over_rho": 0.05}
    ours = solve_deep_step_dual(W, t, margin=1e-9, **settings)
    barrier = solve_deep_step(W, t, margin=1e-9, **settings)
    assert abs(ours.objective - barrier.objective) <= RTOL_SOLVERS * barrier.objective
    assert ours.gap <= 1e-9 * ours.objective


@pytest.mark.parametrize("sizes", [(20, 20, 20, 4), (16, 24, 24, 4)])
def test_regularize_with_a_certificates_multiplier(sizes):
    """ADMM's case: ``T`` certifies the targets themselves, which are then feasible for every
    ``L^2`` above their bound. The first ``L^2`` is searched for (``tr Z_00 ~ c``), not taken from
    the trivial bound (the factor started there had rank 5 and stalled); the dual solver answers
    alone and agrees with the barrier method."""
    import pylip
    from pylip.admm.deep_fast_step import solve_deep_step
    from pylip.admm.deep_step import positive_multiplier

    W = net(sizes, 0)
    t = np.diag(positive_multiplier(pylip.certify(W).T))
    ours = solve_deep_step_dual(W, t, mode="regularize", mu_over_rho=0.05, margin=1e-9)
    barrier = solve_deep_step(W, t, mode="regularize", mu_over_rho=0.05, margin=1e-9)
    assert abs(ours.objective - barrier.objective) <= RTOL_SOLVERS * barrier.objective
    start = dual_step._first_squared_bound(dual_step._DualFunction(StepLmi(W, t, 1.0, 1e-9, 0.05, None)))
    assert 0.3 <= start / ours.squared_bound <= 10.0  # where the solve's cost was flat (module docstring)
    result = DeepLipschitzStep(sizes, np.diag(t), mode="regularize").solve(W, None, rho=1.0, mu=0.05)
    assert not result.fallback and result.max_eigenvalue <= 0.0

