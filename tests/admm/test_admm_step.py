"""Unit tests of the compiled Lipschitz step (10b) and dual update (10c)."""

from __future__ import annotations

import numpy as np
import pytest

import pylip
from pylip.admm.step import LipschitzStep, lmi7_matrix
from pylip.lipsdp.proof import prove_certificate, prove_certificate_exact


def net(seed=0, n_x=1, n_h=6, n_y=1, scale=2.0):
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal((n_h, n_x)), scale * rng.standard_normal((n_y, n_h)) / np.sqrt(n_h)


def certified_T(W0, W1):
    return pylip.certify([W0, W1]).T


def test_problem_is_dpp_and_compiled_once():
    W0, W1 = net()
    step = LipschitzStep(1, 6, 1, certified_T(W0, W1))
    assert step.problem.is_dcp(dpp=True)
    problem = step.problem
    Y0, Y1 = np.zeros_like(W0), np.zeros_like(W1)
    first = step.solve(W0, W1, Y0, Y1, rho=2.0, mu=0.01)
    second = step.solve(1.1 * W0, W1, first.Y0, first.Y1, rho=2.0, mu=0.01)
    assert step.problem is problem
    assert not np.allclose(first.W0_bar, second.W0_bar)


def test_lmi7_matches_equation_5_by_schur_complement():
    W0, W1 = net(1, n_x=2, n_h=5, n_y=3)
    T = np.diag(np.linspace(1, 2, 5))
    M = lmi7_matrix(W0, W1, T, 3.0)
    P = pylip.lmi.certificate_matrix(pylip.lmi.network_structure([W0, W1]), T, 3.0, 0.0, 1.0)
    schur = M[:7, :7] + M[:7, 7:] @ M[7:, :7]  # - B (-I)^{-1} B'
    np.testing.assert_allclose(schur, P, atol=1e-12)


def test_enforce_mode_respects_L_des_and_updates_duals():
    W0, W1 = net(2)
    T = certified_T(W0, W1)
    L = pylip.certify([W0, W1]).bound
    step = LipschitzStep(1, 6, 1, T, mode="enforce")
    Y0, Y1 = np.zeros_like(W0), np.zeros_like(W1)
    result = step.solve(W0, W1, Y0, Y1, rho=2.0, L_des=0.5 * L)
    assert result.squared_bound == (0.5 * L) ** 2
    assert np.linalg.eigvalsh(lmi7_matrix(result.W0_bar, result.W1_bar, T, (0.5 * L) ** 2)).max() <= 0
    assert pylip.certify([result.W0_bar, result.W1_bar]).bound <= 0.5 * L * (1 + 1e-7)
    np.testing.assert_allclose(result.Y0, 2.0 * (W0 - result.W0_bar))
    np.testing.assert_allclose(result.Y1, 2.0 * (W1 - result.W1_bar))


def test_larger_mu_gives_smaller_bound():
    W0, W1 = net(3)
    step = LipschitzStep(1, 6, 1, certified_T(W0, W1))
    Y0, Y1 = np.zeros_like(W0), np.zeros_like(W1)
    bounds = [step.solve(W0, W1, Y0, Y1, rho=2.0, mu=mu).bound for mu in (1e-3, 1e-2, 1e-1)]
    assert bounds[0] > bounds[1] > bounds[2]


def test_step_result_bound_is_certified_for_W_bar():
    W0, W1 = net(4)
    T = certified_T(W0, W1)
    step = LipschitzStep(1, 6, 1, T)
    result = step.solve(W0, W1, np.zeros_like(W0), np.zeros_like(W1), rho=2.0, mu=0.05)
    assert step.max_eigenvalue(result.W0_bar, result.W1_bar, result.bound**2) <= 0.0


@pytest.mark.parametrize("mode", ["regularize", "enforce"])
def test_step_point_on_the_boundary_is_proven_after_a_minimal_repair(mode):
    """A solver point with LMI (7) tight, as SCS can return: its sign is left to rounding.

    The returned point is proven (floating-point safe, and again in exact
    rational arithmetic), and the repair moves it by at most 1e-10 relative.
    """
    W0, W1 = net(6)
    T = certified_T(W0, W1)
    step = LipschitzStep(1, 6, 1, T, mode=mode)
    exact = pylip.lmi.minimal_squared_bound(pylip.lmi.network_structure([W0, W1]), T, 0.0, 1.0)
    W0_bar, W1_bar, squared, top, _ = step._checked(W0, W1, exact)
    bound = pylip.lmi.sqrt_up(squared) if mode == "regularize" else pylip.lmi.sqrt_up(exact)
    assert prove_certificate_exact([W0_bar, W1_bar], np.diag(T), bound, 0.0, 1.0).holds
    assert prove_certificate([W0_bar, W1_bar], np.diag(T), bound, 0.0, 1.0).holds
    assert top < 0.0
    assert squared == pytest.approx(exact, rel=1e-10)
    assert np.linalg.norm(W0_bar - W0) <= 1e-10 * np.linalg.norm(W0)


def test_initialize_parameters_layout():
    W0, W1 = net(5)
    params = pylip.initialize_parameters([W0, W1], [np.zeros(6), np.zeros(1)])
    assert set(params) == {"W0", "W0_bar", "b0", "Y0", "Yb0", "W1", "W1_bar", "b1", "Y1", "Yb1"}
    np.testing.assert_array_equal(params["W0_bar"], W0)
    assert not params["Y1"].any() and params["Y1"].shape == W1.shape and params["Yb0"].shape == (6,)


def test_solve_SDP_bridge_equals_solve_sdp():
    W0, W1 = net(6)
    T = certified_T(W0, W1)
    params = pylip.initialize_parameters([W0, W1], [np.zeros(6), np.zeros(1)])
    # both calls solve from a cold start (the compiled steps are cached and warm-started, and a
    # first-order solver such as SCS then stops at another point within its tolerance)
    pylip.compat.clear_step_cache()
    bridge = pylip.solve_SDP(params, T, [1, 6, 1], 2.0, 0.01, 1, 1.0)
    pylip.compat.clear_step_cache()
    direct = pylip.solve_sdp(params, {"T": T, "rho": 2.0, "mu": 0.01, "ind_Lip": 1, "L_des": 1.0})
    np.testing.assert_array_equal(bridge["W0_bar"], direct["W0_bar"])


BASE_T = np.diag([1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    "T, kwargs, match",
    [
        (np.array([[1.0, 0.1, 0], [0.1, 1, 0], [0, 0, 1]]), {}, "must be diagonal"),
        (np.diag([1.0, 0.0, -1.0]), {}, r"neurons \[1, 2\]"),
        (np.eye(2), {}, r"3 x 3"),
        (BASE_T, {"mode": "sideways"}, "mode must be"),
        (np.diag([1.0, np.nan, 1.0]), {}, "NaN"),
    ],
)
def test_bad_multiplier_or_mode(T, kwargs, match):
    with pytest.raises(pylip.InputError, match=match):
        LipschitzStep(1, 3, 1, T, **kwargs)


def test_explicit_repair_of_T():
    step = LipschitzStep(1, 3, 1, np.diag([1.0, 0.0, -1.0]), repair_T=1e-3)
    np.testing.assert_array_equal(np.diag(step.T), [1.0, 1e-3, 1e-3])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rho": 0.0, "mu": 0.1}, "rho .* must be > 0"),
        ({"rho": 2.0, "mu": -0.1}, "mu .* must be >= 0"),
    ],
)
def test_bad_step_settings_regularize(kwargs, match):
    step = LipschitzStep(1, 3, 1, BASE_T)
    with pytest.raises(pylip.InputError, match=match):
        step.solve(np.ones((3, 1)), np.ones((1, 3)), np.zeros((3, 1)), np.zeros((1, 3)), **kwargs)


@pytest.mark.parametrize("L_des, match", [(None, "L_des is required"), (0.0, "L_des .* must be > 0")])
def test_bad_L_des(L_des, match):
    step = LipschitzStep(1, 3, 1, BASE_T, mode="enforce")
    with pytest.raises(pylip.InputError, match=match):
        step.solve(np.ones((3, 1)), np.ones((1, 3)), np.zeros((3, 1)), np.zeros((1, 3)), rho=2.0, L_des=L_des)


def test_shapes_that_disagree_are_named():
    step = LipschitzStep(1, 3, 1, BASE_T)
    with pytest.raises(pylip.InputError, match=r"Y1 must have shape \(1, 3\)"):
        step.solve(np.ones((3, 1)), np.ones((1, 3)), np.zeros((3, 1)), np.zeros((3, 1)), rho=2.0, mu=0.1)


def test_solve_sdp_field_errors():
    params = {"W0": np.ones((3, 1)), "W1": np.ones((1, 3)), "Y0": np.zeros((3, 1))}
    with pytest.raises(pylip.InputError, match="no field 'Y1'"):
        pylip.solve_sdp(params, {"T": BASE_T, "rho": 2, "mu": 0.1, "ind_Lip": 1})
    params["Y1"] = np.zeros((1, 3))
    with pytest.raises(pylip.InputError, match="ind_Lip must be 1"):
        pylip.solve_sdp(params, {"T": BASE_T, "rho": 2, "mu": 0.1, "ind_Lip": 3})
    with pytest.raises(pylip.InputError, match="net_dims says"):
        pylip.solve_SDP(params, BASE_T, [2, 3, 1], 2.0, 0.1, 1, 1.0)


def test_solver_failure_is_reported_with_status(monkeypatch):
    """Every L_des > 0 is feasible (W_bar = 0 meets it): only solvers fail. When every
    attempt fails (as posed, rescaled, fallback solvers), the first failure's status is
    kept and the message names what else was tried."""
    calls = []

    def failing(problem, solver, **kwargs):
        calls.append(solver)
        raise pylip.SolverError(f"{solver} failed", status="solver_error")

    monkeypatch.setattr(pylip.admm.step, "solve", failing)
    step = LipschitzStep(1, 3, 1, np.diag([1.0] * 3), mode="enforce", solver="CLARABEL")
    with pytest.raises(pylip.SolverError, match="rescaled problem") as info:
        step.solve(np.ones((3, 1)), np.ones((1, 3)), np.zeros((3, 1)), np.zeros((1, 3)), rho=2.0, L_des=1.0)
    assert info.value.status == "solver_error"
    assert calls[:2] == ["CLARABEL", "CLARABEL"] and len(calls) == 2 + len(
        pylip.certificate.fallback_solvers("CLARABEL")
    )


def test_enforce_steps_on_feasible_problems_return_proven_points():
    """Issue 17 (1): 3-5-2 nets with weights of std 20, T from calculate_Lipschitz,
    L_des = 1.5 x the certified bound (W_bar = W is feasible): every step returns, proven."""
    for seed in range(30):
        rng = np.random.default_rng(seed)
        W0, W1 = 20 * rng.standard_normal((5, 3)), 20 * rng.standard_normal((2, 5))
        params = {"W0": W0, "W1": W1, "b0": np.zeros(5), "b1": np.zeros(2)}
        result = pylip.calculate_Lipschitz(params, {"n_x": 3, "n_h": 5, "n_y": 2})
        L_des = 1.5 * result["Lipschitz"]
        step = LipschitzStep(3, 5, 2, result["T"], mode="enforce")
        out = step.solve(W0, W1, np.zeros_like(W0), np.zeros_like(W1), rho=1.0, L_des=L_des)
        assert prove_certificate([out.W0_bar, out.W1_bar], np.diag(result["T"]), L_des, 0.0, 1.0).holds
        assert np.linalg.norm(out.W0_bar - W0) <= 1e-4 * np.linalg.norm(W0)  # W itself is feasible


def test_enforce_step_with_a_tiny_bound_returns_nearly_zero_weights():
    """Issue 17 (1): L_des = 1e-3 on std-1 weights is feasible (W_bar = 0); the step returns, proven."""
    rng = np.random.default_rng(1)
    W0, W1 = rng.standard_normal((5, 3)), rng.standard_normal((2, 5))
    T = certified_T(W0, W1)
    step = LipschitzStep(3, 5, 2, T, mode="enforce")
    out = step.solve(W0, W1, np.zeros_like(W0), np.zeros_like(W1), rho=1.0, L_des=1e-3)
    assert prove_certificate([out.W0_bar, out.W1_bar], np.diag(T), 1e-3, 0.0, 1.0).holds
    assert np.linalg.norm(out.W1_bar) < np.linalg.norm(W1)


@pytest.mark.parametrize("mode", ["regularize", "enforce"])
def test_dual_step_solver_equals_the_sdp_on_a_wide_layer(mode):
    """The default for wide layers (pylip.fast_step) and the SDP of LMI (7) find the same step."""
    W0, W1 = net(5, n_x=3, n_h=60, n_y=2, scale=1.0)
    T = certified_T(W0, W1) + 1e-3 * np.eye(60)
    zeros = np.zeros_like(W0), np.zeros_like(W1)
    kwargs = {"rho": 1.0, "mu": 0.05, "L_des": 0.5 * pylip.certify([W0, W1]).bound}
    options = {"mode": mode, "solver": "CLARABEL"}  # the interior-point reference, whatever the default
    fast = LipschitzStep(3, 60, 2, T, fast=True, **options).solve(1.5 * W0, 1.5 * W1, *zeros, **kwargs)
    sdp = LipschitzStep(3, 60, 2, T, fast=False, **options).solve(1.5 * W0, 1.5 * W1, *zeros, **kwargs)
    scale = max(np.abs(sdp.W0_bar).max(), np.abs(sdp.W1_bar).max())
    assert np.abs(fast.W0_bar - sdp.W0_bar).max() <= 1e-5 * scale
    assert np.abs(fast.W1_bar - sdp.W1_bar).max() <= 1e-5 * scale
    assert fast.squared_bound == pytest.approx(sdp.squared_bound, rel=1e-6)
    assert fast.max_eigenvalue <= 0.0
    M = lmi7_matrix(fast.W0_bar, fast.W1_bar, T, fast.squared_bound)
    assert pylip.lmi.max_eigenvalue(M) <= 0.0


def test_dual_step_solver_is_chosen_by_width_unless_a_solver_is_named(monkeypatch):
    monkeypatch.delenv("PYLIP_SOLVER", raising=False)
    T60, T10 = np.eye(60), np.eye(10)
    assert LipschitzStep(3, 60, 2, T60).fast
    assert not LipschitzStep(1, 10, 1, T10).fast  # the paper's examples stay on the SDP
    assert not LipschitzStep(3, 60, 2, T60, solver="CLARABEL").fast
    monkeypatch.setenv("PYLIP_SOLVER", "CLARABEL")
    assert not LipschitzStep(3, 60, 2, T60).fast
    with pytest.raises(pylip.InputError, match="fast must be"):
        LipschitzStep(3, 60, 2, T60, fast="yes")
