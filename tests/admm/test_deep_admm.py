"""The multi-layer Lipschitz step (10b) and dual update (10c) (Remark 4); no torch needed."""

from __future__ import annotations

import numpy as np
import pytest
from deep_nets import net

import pylip
from pylip import original as compat
from pylip.admm.deep_step import (
    DeepLipschitzStep,
    certificate_max_eigenvalue,
    deep_lmi_matrix,
    feasible_shrink,
    positive_multiplier,
)
from pylip.admm.step import clear_step_cache, lmi7_matrix
from pylip.errors import InputError
from pylip.lipsdp import lmi

RTOL_CERTIFY = 1e-6  # rounding allowed in the certify SDP solve


def certified(weights):
    cert = pylip.certify(weights)
    return cert, positive_multiplier(cert.T)


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(np.linalg.norm(b), 1e-300))


# --------------------------------------------------------------------------- the LMI


@pytest.mark.parametrize("sizes", [(2, 4, 3), (3, 4, 5, 2), (2, 3, 4, 3, 2)])
def test_schur_complement_of_block_lmi_is_the_certificate_matrix(sizes):
    W = net(sizes, 1)
    n_hidden = sum(sizes[1:-1])
    t = np.linspace(0.5, 2.0, n_hidden)
    M = deep_lmi_matrix(W, t, 3.0, beta=1.0)
    n_out = sizes[-1]
    schur = M[:-n_out, :-n_out] + M[:-n_out, -n_out:] @ M[-n_out:, :-n_out]  # - B (-I)^{-1} B'
    P = lmi.certificate_matrix(lmi.network_structure(W), np.diag(t), 3.0, 0.0, 1.0)
    np.testing.assert_allclose(schur, P, atol=1e-12)
    assert certificate_max_eigenvalue(W, t, 3.0) == pytest.approx(lmi.max_eigenvalue(P))


def test_one_hidden_layer_block_lmi_is_lmi_7():
    W = net((3, 5, 2), 2)
    t = np.linspace(1, 2, 5)
    np.testing.assert_array_equal(
        deep_lmi_matrix(W, t, 2.0, 0.25), lmi7_matrix(W[0], W[1], np.diag(t), 2.0, 0.25)
    )


@pytest.mark.parametrize("sizes", [(2, 4, 3), (3, 4, 5, 2), (2, 3, 4, 3, 2)])
def test_feasible_shrink_restores_the_lmi_for_any_depth(sizes):
    """Shrinking every W_k by s scales the net by s^(l+1), yet s <= m0/(lambda + m0) keeps M <= 0."""
    W = net(sizes, 3, gain=3.0)
    t = np.full(sum(sizes[1:-1]), 0.7)
    squared = 0.5
    assert lmi.max_eigenvalue(deep_lmi_matrix(W, t, squared)) > 0  # infeasible to start with
    s = feasible_shrink(W, t, squared)
    assert 0 < s < 1
    shrunk = [s * w for w in W]
    assert lmi.max_eigenvalue(deep_lmi_matrix(shrunk, t, squared)) <= 1e-12
    assert certificate_max_eigenvalue(shrunk, t, squared) <= 1e-12
    assert feasible_shrink(shrunk, t, squared) == pytest.approx(1.0, abs=1e-9)


# --------------------------------------------------------------------------- the compiled step


def test_problem_is_dpp_and_compiled_once():
    sizes = (2, 4, 3, 2)
    W = net(sizes)
    _, T = certified(W)
    step = DeepLipschitzStep(sizes, T, mode="regularize")
    problem = step.problem
    assert problem.is_dcp(dpp=True)
    first = step.solve(W, None, rho=2.0, mu=0.01)
    second = step.solve([1.1 * w for w in W], first.Y, rho=2.0, mu=0.01)
    assert step.problem is problem
    assert not np.allclose(first.W_bar[0], second.W_bar[0])


@pytest.mark.parametrize("mode", ["regularize", "enforce"])
@pytest.mark.parametrize("dims", [(1, 6, 1), (3, 5, 2)])
def test_one_hidden_layer_matches_solve_sdp(mode, dims):
    """Same inputs as compat.solve_sdp (LipschitzStep): W_bar, Y and bound agree (measured: bit for bit)."""
    n_x, n_h, n_y = dims
    W0, W1 = net(dims, 4)
    cert, T = certified([W0, W1])
    rng = np.random.default_rng(5)
    Y0, Y1 = 0.1 * rng.standard_normal(W0.shape), 0.1 * rng.standard_normal(W1.shape)
    L_des = 0.5 * cert.bound
    parameters = {"W0": W0, "W1": W1, "Y0": Y0, "Y1": Y1}
    x = {"T": T, "rho": 2.0, "mu": 0.05, "ind_Lip": 1 if mode == "regularize" else 2, "L_des": L_des}
    clear_step_cache()
    reference = compat.solve_sdp(parameters, x)
    step = DeepLipschitzStep(dims, T, mode=mode)
    result = step.solve([W0, W1], [Y0, Y1], rho=2.0, mu=0.05, L_des=L_des if mode == "enforce" else None)
    for ours, theirs in zip(result.W_bar + result.Y, ["W0_bar", "W1_bar", "Y0", "Y1"]):
        assert rel(ours, reference[theirs]) <= 1e-6, theirs
    expected = reference["Lipschitz"]
    assert abs(result.bound - expected) <= 1e-6 * expected


@pytest.mark.parametrize("sizes", [(2, 4, 3, 2), (3, 3, 4, 3, 2)])
def test_enforce_mode_certifies_L_des_and_updates_duals(sizes):
    W = net(sizes, 6)
    cert, T = certified(W)
    L_des = cert.bound / 3
    step = DeepLipschitzStep(sizes, T, mode="enforce")
    rng = np.random.default_rng(7)
    Y = [0.05 * rng.standard_normal(w.shape) for w in W]
    result = step.solve(W, Y, rho=1.5, L_des=L_des)
    assert result.squared_bound == L_des**2
    assert result.max_eigenvalue <= 0
    assert certificate_max_eigenvalue(result.W_bar, np.diag(T), L_des**2) <= 0
    assert pylip.certify(result.W_bar).bound <= L_des * (1 + RTOL_CERTIFY)
    for y_new, y, w, wb in zip(result.Y, Y, W, result.W_bar):
        np.testing.assert_allclose(y_new, y + 1.5 * (w - wb), rtol=1e-12, atol=1e-12)
    assert not np.allclose(result.W_bar[0], W[0])  # the nominal net violates L_des: W_bar moved


def test_regularize_mode_larger_mu_gives_smaller_bound():
    sizes = (2, 4, 3, 2)
    W = net(sizes, 8)
    _, T = certified(W)
    step = DeepLipschitzStep(sizes, T, mode="regularize")
    results = [step.solve(W, None, rho=2.0, mu=mu) for mu in (1e-3, 1e-2, 1e-1)]
    bounds = [r.bound for r in results]
    assert bounds[0] > bounds[1] > bounds[2]
    for r in results:  # the step's L^2 is certified for its W_bar with T
        assert certificate_max_eigenvalue(r.W_bar, np.diag(T), r.squared_bound) <= 0
        exact = lmi.minimal_squared_bound(lmi.network_structure(r.W_bar), T, 0.0, 1.0)
        assert exact <= r.squared_bound <= exact * (1 + 1e-4)


@pytest.mark.parametrize("mode", ["regularize", "enforce"])
def test_a_point_missing_the_lmi_is_repaired(mode):
    sizes = (2, 4, 3, 2)
    W = net(sizes, 9)
    cert, T = certified(W)
    step = DeepLipschitzStep(sizes, T, mode=mode)
    L_des = cert.bound / 2
    good = step.solve(W, None, rho=1.0, mu=0.01, L_des=L_des if mode == "enforce" else None)
    bad = [1.001 * w for w in good.W_bar]  # what a solver missing by rounding might return
    assert step.max_eigenvalue(bad, good.squared_bound) > 0
    W_fixed, squared, top, repaired = step._checked(bad, good.squared_bound)
    assert repaired and top <= 0
    assert step.max_eigenvalue(W_fixed, squared) <= 0
    if mode == "enforce":
        assert squared == good.squared_bound and W_fixed[0][0, 0] != bad[0][0, 0]
    else:
        assert squared > good.squared_bound and np.array_equal(W_fixed[0], bad[0])


def run_admm(sizes, seed, iterations, L_des_fraction=1 / 3, rho=1.0, c=1.0):
    """ADMM (10) for problem (12) with the strictly convex loss c ||W - W_nom||^2 (Assumption 5).

    The W step (10a) is then closed form: W = (2c W_nom + rho W_bar - Y) / (2c + rho).
    """
    W_nom = net(sizes, seed, gain=2.5)
    cert, T = certified(W_nom)
    L_des = cert.bound * L_des_fraction
    step = DeepLipschitzStep(sizes, T, mode="enforce")
    W_bar, Y = [w.copy() for w in W_nom], [np.zeros_like(w) for w in W_nom]
    records = []
    for _ in range(iterations):
        W = [(2 * c * wn + rho * wb - y) / (2 * c + rho) for wn, wb, y in zip(W_nom, W_bar, Y)]
        result = step.solve(W, Y, rho=rho, L_des=L_des)
        W_bar, Y = result.W_bar, result.Y
        residual = np.sqrt(sum(np.sum((w - wb) ** 2) for w, wb in zip(W, W_bar)))
        records.append((result, residual))
    return T, L_des, records


@pytest.mark.parametrize("sizes", [(2, 4, 3, 2), (2, 3, 3, 3, 1)])
def test_theorem_8_for_l_layers_every_iteration(sizes):
    """Enforce mode: after every ADMM iteration W_bar satisfies the LMI at L_des with T, so L <= L_des."""
    T, L_des, records = run_admm(sizes, seed=10, iterations=6)
    for result, _ in records:
        assert result.max_eigenvalue <= 0
        assert certificate_max_eigenvalue(result.W_bar, np.diag(T), L_des**2) <= 0
        assert pylip.certify(result.W_bar).bound <= L_des * (1 + RTOL_CERTIFY)
    residuals = [r for _, r in records]
    assert residuals[-1] < residuals[0]  # ADMM on a convex loss: W and W_bar meet


def test_set_T_changes_the_constraint_without_recompiling():
    sizes = (2, 4, 3, 2)
    W = net(sizes, 11)
    cert, T = certified(W)
    step = DeepLipschitzStep(sizes, T, mode="enforce")
    problem = step.problem
    first = step.solve(W, None, rho=1.0, L_des=cert.bound / 2)
    other = np.diag(np.linspace(0.5, 2.0, 7)) * np.mean(np.diag(T))
    step.set_T(other)
    np.testing.assert_array_equal(step.T, other)
    second = step.solve(W, None, rho=1.0, L_des=cert.bound / 2)
    assert step.problem is problem
    assert certificate_max_eigenvalue(second.W_bar, np.diag(other), (cert.bound / 2) ** 2) <= 0
    assert not np.allclose(first.W_bar[1], second.W_bar[1])


def test_bad_input_names_the_field():
    sizes = (2, 4, 3, 2)
    W = net(sizes)
    T = np.eye(7)
    with pytest.raises(InputError, match="mode"):
        DeepLipschitzStep(sizes, T, mode="both")
    with pytest.raises(InputError, match="layer_sizes"):
        DeepLipschitzStep((2, 3), np.eye(3))
    with pytest.raises(InputError, match="non-positive"):
        DeepLipschitzStep(sizes, np.diag([1.0, 1, 1, 0, 1, 1, 1]))
    with pytest.raises(InputError, match="diagonal"):
        DeepLipschitzStep(sizes, np.ones((7, 7)))
    with pytest.raises(InputError, match="7 x 7"):
        DeepLipschitzStep(sizes, np.eye(6))
    step = DeepLipschitzStep(sizes, T, mode="enforce")
    with pytest.raises(InputError, match="L_des"):
        step.solve(W, None, rho=1.0)
    with pytest.raises(InputError, match="rho"):
        step.solve(W, None, rho=0.0, L_des=1.0)
    with pytest.raises(InputError, match=r"weights\[1\]"):
        step.solve([W[0], W[1].T, W[2]], None, rho=1.0, L_des=1.0)
    with pytest.raises(InputError, match="3 matrices"):
        step.solve(W[:2], None, rho=1.0, L_des=1.0)


def test_positive_multiplier_floors_zero_entries():
    T = positive_multiplier(np.diag([2.0, 0.0, 1.0]), relative_floor=1e-3)
    np.testing.assert_array_equal(np.diag(T), [2.0, 2e-3, 1.0])


def test_solver_failure_at_tight_tolerances_falls_back_to_looser_ones(monkeypatch):
    import pylip.admm.deep_step as deep_admm
    from pylip.errors import SolverError

    def failing(*args, **kwargs):
        raise SolverError("CLARABEL failed (insufficient progress)", status="solver_error")

    sizes = (2, 4, 3, 2)
    W = net(sizes, 12)
    cert, T = certified(W)
    step = DeepLipschitzStep(sizes, T, mode="enforce", solver="CLARABEL")  # its fallback is tested
    monkeypatch.setattr(deep_admm, "solve", failing)
    result = step.solve(W, None, rho=1.0, L_des=cert.bound / 2)
    assert result.fallback
    assert certificate_max_eigenvalue(result.W_bar, np.diag(T), (cert.bound / 2) ** 2) <= 0
    monkeypatch.setattr(deep_admm, "FALLBACK_OPTIONS", {})
    with pytest.raises(SolverError, match="insufficient progress"):
        step.solve(W, None, rho=1.0, L_des=cert.bound / 2)


@pytest.mark.parametrize("mode", ["regularize", "enforce"])
@pytest.mark.parametrize("sizes", [(12, 4, 2), (9, 3, 3, 2)])
def test_input_reduction_gives_the_same_step(mode, sizes):
    """n_in > n_1: solving in the row space of W0's target is exact (same W_bar, Y, bound)."""
    rng = np.random.default_rng(11)
    weights = [rng.standard_normal((m, n)) / np.sqrt(n) for n, m in zip(sizes[:-1], sizes[1:])]
    multipliers = [0.1 * rng.standard_normal(w.shape) for w in weights]
    T = np.diag(rng.uniform(0.5, 1.5, sum(sizes[1:-1])))
    kwargs = {"rho": 1.0, "mu": 0.05, "L_des": 0.3}
    # Clarabel at pylip's 1e-12 settings, whatever the default solver: the test is of the reduction
    reduced = DeepLipschitzStep(sizes, T, mode=mode, solver="CLARABEL")
    full = DeepLipschitzStep(sizes, T, mode=mode, solver="CLARABEL", reduce_input=False)
    assert reduced.reduces_input and not full.reduces_input
    a = reduced.solve(weights, multipliers, **kwargs)
    b = full.solve(weights, multipliers, **kwargs)
    for x, y in zip(a.W_bar + a.Y, b.W_bar + b.Y):
        assert np.abs(x - y).max() <= 1e-6 * max(1.0, np.abs(y).max())
    assert a.squared_bound == pytest.approx(b.squared_bound, rel=1e-6)
    assert a.max_eigenvalue <= 0.0


@pytest.mark.parametrize("mode", ["regularize", "enforce"])
@pytest.mark.parametrize("sizes", [(3, 4, 3, 6), (9, 3, 3, 5), (2, 3, 4, 2, 7)])
def test_output_reduction_gives_the_same_step(mode, sizes):
    """n_out > n_l: solving for the last layer in the column space of its target is exact (module
    docstring: the output block -I commutes with every orthogonal matrix); same W_bar, Y, bound."""
    rng = np.random.default_rng(12)
    weights = [rng.standard_normal((m, n)) / np.sqrt(n) for n, m in zip(sizes[:-1], sizes[1:])]
    multipliers = [0.1 * rng.standard_normal(w.shape) for w in weights]
    T = np.diag(rng.uniform(0.5, 1.5, sum(sizes[1:-1])))
    kwargs = {"rho": 1.0, "mu": 0.05, "L_des": 0.3}
    reduced = DeepLipschitzStep(sizes, T, mode=mode)
    full = DeepLipschitzStep(sizes, T, mode=mode, reduce_output=False)
    assert reduced.reduces_output and not full.reduces_output
    assert reduced.problem_sizes[-1] == sizes[-2]
    a = reduced.solve(weights, multipliers, **kwargs)
    b = full.solve(weights, multipliers, **kwargs)
    for x, y in zip(a.W_bar + a.Y, b.W_bar + b.Y):
        assert np.abs(x - y).max() <= 1e-6 * max(1.0, np.abs(y).max())
    assert a.squared_bound == pytest.approx(b.squared_bound, rel=1e-6)
    assert a.max_eigenvalue <= 0.0


@pytest.mark.parametrize("method", ["structured", "cvxpy"])
@pytest.mark.parametrize("mode", ["enforce", "regularize"])
@pytest.mark.parametrize("gain", [2.0**-9, 2.0**8])
def test_badly_scaled_steps_are_solved_exactly_rescaled(method, mode, gain):
    """Issue 12 step campaign: a 4-hidden-layer net at weight scale 2^-9 has L ~ 2^-45, below the
    margin 1e-9, and its certificate's T below margin/2: the step was refused. Solved in the exact
    power-of-two coordinates (StepScaling) it equals the well-scaled step mapped back, proven."""
    from pylip.admm.deep_step import StepScaling

    sizes = (3, 5, 4, 4, 5, 2)
    base = net(sizes, 7, gain=1.0)
    t = np.diag(pylip.certify(base).T) + 0.05
    L_des = 0.5 * pylip.certify(base).bound
    n = len(sizes) - 2
    scaled = [gain * w for w in base]
    scaled_t = StepScaling(int(np.log2(gain)), sizes[1:-1]).multiplier(t)
    results = []
    for weights, tt, bound in ((base, t, L_des), (scaled, scaled_t, L_des * gain ** (n + 1))):
        step = DeepLipschitzStep(sizes, np.diag(tt), mode=mode, method=method)
        mu = 0.1 * gain ** (-2 * n) if weights is scaled else 0.1
        out = step.solve(weights, None, rho=1.0, mu=mu, L_des=bound if mode == "enforce" else None)
        results.append(out)
        assert pylip.verify(out.W_bar, out.bound if mode == "regularize" else bound, np.diag(tt)).holds
    for w_base, w_scaled in zip(results[0].W_bar, results[1].W_bar):
        assert np.allclose(w_scaled / gain, w_base, rtol=1e-5, atol=1e-6 * np.abs(w_base).max())


def test_deep_step_falls_back_to_other_solvers(monkeypatch):
    """Issue 12 step campaign: Clarabel failed outright on some deep, badly scaled steps that
    CVXOPT solved; the deep step now tries the other installed solvers, and the point it
    returns is proven like any other."""
    from pylip.admm import deep_step as module
    from pylip.lipsdp.certificate import fallback_solvers

    if not fallback_solvers("CLARABEL"):
        pytest.skip("no solver besides Clarabel is installed (pip install 'pylip[solvers]')")
    real = module.solve
    tried = []

    def clarabel_fails(problem, solver, **kwargs):
        tried.append(solver)
        raise module.SolverError(f"{solver} failed", status="solver_error")

    monkeypatch.setattr(module, "solve", clarabel_fails)
    monkeypatch.setattr(module.solvers, "solve", lambda problem, solver, **kw: (
        clarabel_fails(problem, solver) if solver == "CLARABEL" else real(problem, solver, **kw)))
    sizes = (3, 5, 4, 2)
    W = net(sizes, 2)
    cert, T = certified(W)
    t = np.diag(T)
    L_des = 0.5 * cert.bound
    step = DeepLipschitzStep(sizes, np.diag(t), mode="enforce", method="cvxpy", solver="CLARABEL")
    out = step.solve(W, None, rho=1.0, L_des=L_des)
    assert tried and set(tried) == {"CLARABEL"} and out.fallback
    assert pylip.verify(out.W_bar, L_des, np.diag(t)).holds
