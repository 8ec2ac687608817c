"""Class-pair and one-logit certificates (pylip.margins) and pairwise certified accuracy."""

from fractions import Fraction

import numpy as np
import pytest

import pylip
from pylip.lipsdp import sampling
from pylip.lipsdp.margins import certify_margins, difference_row

torch = pytest.importorskip("torch")
from pylip.experiments import robustness  # noqa: E402

SQRT2 = np.sqrt(2.0)


def _net(seed, sizes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((m, n)) / np.sqrt(n) for n, m in zip(sizes[:-1], sizes[1:])]


@pytest.mark.parametrize("sizes, method", [
    ([6, 8, 4], "sdp"), ([5, 6, 6, 3], "sdp"), ([5, 6, 6, 3], "fixed_T"), ([7, 4], "auto"),
])
def test_pair_and_logit_bounds_are_proven_and_bracketed(sizes, method):
    weights = _net(len(sizes), sizes)
    result = certify_margins(weights, method=method)
    n_out = sizes[-1]
    for i in range(n_out):
        for j in range(i + 1, n_out):
            row, residual = difference_row(weights[-1], i, j)
            net = [*weights[:-1], row]
            cert = result.certificates[(i, j)]
            if cert.layer_sizes[-1] == 1:
                assert cert.prove(net).holds
            else:  # the pair kept the cap sqrt(2) L, proven by the global certificate
                assert cert.prove(weights).holds and result.pair(i, j) >= SQRT2 * result.global_bound
            lower = pylip.sampled_lower_bound(net, n_samples=3000, scale=2.0)
            assert lower <= result.pair(i, j) <= SQRT2 * result.global_bound * (1 + 1e-15)
            assert result.pair(j, i) == result.pair(i, j)
        net = [*weights[:-1], weights[-1][i : i + 1]]
        assert result.certificates[i].prove(net).holds
        assert pylip.sampled_lower_bound(net, n_samples=3000, scale=2.0) <= result.logit_bounds[i]
        assert result.logit_bounds[i] <= result.global_bound


def test_sdp_pairs_are_no_looser_than_fixed_T():
    weights = _net(11, [5, 6, 6, 4])
    sdp = certify_margins(weights, method="sdp", logits=False)
    fixed = certify_margins(weights, method="fixed_T", logits=False)
    assert sdp.method == "sdp" and fixed.method == "fixed_T"
    assert np.all(sdp.pair_bounds <= fixed.pair_bounds * (1 + 1e-6))


def test_given_pairs_only():
    weights = _net(12, [4, 5, 4])
    result = certify_margins(weights, pairs=[(2, 0), (1, 3)], logits=False)
    finite = np.isfinite(result.pair_bounds) & ~np.eye(4, dtype=bool)
    assert sorted(zip(*np.nonzero(finite))) == [(0, 2), (1, 3), (2, 0), (3, 1)]
    assert np.all(np.isinf(result.logit_bounds))


def test_difference_row_is_exact_with_its_residual():
    last = np.array([[1.0, 0.1, 3.0], [1e-17, 0.2, -1e-300]])
    row, residual = difference_row(last, 0, 1)
    assert np.any(residual)
    for k in range(3):
        exact = Fraction(float(last[0, k])) - Fraction(float(last[1, k]))
        assert Fraction(float(row[0, k])) + Fraction(float(residual[k])) == exact


def test_rounded_difference_still_bounds_the_pair():
    rng = np.random.default_rng(13)
    W0 = rng.standard_normal((5, 4))
    W1 = np.vstack([rng.standard_normal(5), rng.standard_normal(5) * 1e-17 + 1e-16])
    result = certify_margins([W0, W1], logits=False)
    exact_net = [W0, (W1[0] - W1[1])[None, :]]
    assert pylip.sampled_lower_bound(exact_net, n_samples=3000) <= result.pair(0, 1)


@pytest.mark.parametrize("kwargs, match", [
    ({"pairs": [(0, 0)]}, "different classes"),
    ({"pairs": [(0, 9)]}, "different classes"),
    ({"pairs": [3]}, r"\(i, j\) class index pairs"),
    ({"method": "fast"}, "method must be one of"),
])
def test_bad_margin_options(kwargs, match):
    with pytest.raises(pylip.InputError, match=match):
        certify_margins(_net(0, [3, 4, 3]), **kwargs)


def test_pairwise_mask_contains_the_global_one():
    rng = np.random.default_rng(14)
    logits = torch.tensor(rng.standard_normal((400, 5)))
    labels = torch.tensor(rng.integers(0, 5, 400))
    L = 1.3
    same = np.full((5, 5), SQRT2 * L)
    np.fill_diagonal(same, 0.0)
    for eps in (0.0, 0.1, 0.4):
        glob = robustness.certified_mask(logits, labels, L, eps)
        assert torch.equal(robustness.pairwise_certified_mask(logits, labels, same, eps), glob)
        tighter = same * rng.uniform(0.3, 1.0, (5, 5))
        tighter = np.minimum(tighter, tighter.T)
        pairwise = robustness.pairwise_certified_mask(logits, labels, tighter, eps)
        assert bool((glob <= pairwise).all())
    report = robustness.certified_accuracies(logits, labels, L, tighter, [0.1, 0.4])
    assert report["pairwise"][0.4] >= report["global"][0.4]
    unbounded = np.full((5, 5), np.inf)
    correct = robustness.logit_margins(logits, labels) > 0
    assert torch.equal(robustness.pairwise_certified_mask(logits, labels, unbounded, 0.0), correct)
    assert not robustness.pairwise_certified_mask(logits, labels, unbounded, 0.1).any()
    with pytest.raises(pylip.InputError, match="pair_bounds must be 5 x 5"):
        robustness.pairwise_certified_mask(logits, labels, np.ones((4, 4)), 0.1)


def test_pairwise_certified_points_survive_the_ball():
    """Sampled points of the ball keep the class of every pairwise-certified point."""
    weights = _net(15, [6, 10, 4])
    biases = [np.zeros(10), np.zeros(4)]
    result = certify_margins(weights, logits=False)
    rng = np.random.default_rng(16)
    X = rng.standard_normal((200, 6))
    logits, _ = sampling.forward(weights, biases, X, "tanh")
    labels = logits.argmax(axis=1)
    eps = 0.05
    mask = robustness.pairwise_certified_mask(logits, labels, result.pair_bounds, eps).numpy()
    assert mask.any()
    for x, y in zip(X[mask][:40], labels[mask][:40]):
        d = rng.standard_normal((300, 6))
        d *= eps * rng.uniform(0, 1, (300, 1)) ** (1 / 6) / np.linalg.norm(d, axis=1, keepdims=True)
        out, _ = sampling.forward(weights, biases, x + d, "tanh")
        assert np.all(out.argmax(axis=1) == y)


def test_compiled_pair_problem_matches_certify():
    from pylip.lipsdp.margins import ReducedPairProblem

    weights = _net(17, [9, 6, 4])
    rng = np.random.default_rng(18)
    alpha = rng.uniform(0.0, 0.3, 6)
    beta = alpha + rng.uniform(0.1, 0.7, 6)
    compiled = ReducedPairProblem(weights[0], alpha, beta)
    for i, j in [(0, 1), (2, 3), (1, 3)]:
        row, _ = difference_row(weights[1], i, j)
        mine = compiled.certify(row)
        theirs = pylip.certify([weights[0], row], alpha=alpha, beta=beta)
        assert mine.bound == pytest.approx(theirs.bound, rel=1e-6)  # the same SDP, two compilations
        assert mine.prove([weights[0], row]).holds


def test_a_failing_solver_leaves_the_global_caps(monkeypatch):
    from pylip.lipsdp import margins

    weights = _net(19, [5, 6, 3])
    glob = pylip.certify(weights)

    def fail(*args, **kwargs):
        raise pylip.SolverError("CLARABEL failed (simulated)")

    monkeypatch.setattr(margins, "certify", fail)
    monkeypatch.setattr(margins.ReducedPairProblem, "certify", fail)
    result = certify_margins(weights, global_certificate=glob)
    cap = result.pair_bounds[np.triu_indices(3, 1)]
    assert np.all(cap >= SQRT2 * glob.bound) and np.all(cap <= SQRT2 * glob.bound * (1 + 1e-15))
    assert np.all(result.logit_bounds == glob.bound)


@pytest.mark.usefixtures("no_named_solver")
def test_auto_solves_deep_pairs_with_the_engine_and_a_named_solver_keeps_fixed_T():
    from pylip.lipsdp.certificate import ENGINE_SOLVER

    weights = _net(19, [5, 6, 6, 3])
    engine = certify_margins(weights, logits=False)
    assert engine.method == "sdp"
    assert all(cert.solver == ENGINE_SOLVER for cert in engine.certificates.values())
    named = certify_margins(weights, logits=False, solver="CLARABEL")
    assert named.method == "fixed_T"
    assert np.all(engine.pair_bounds <= named.pair_bounds * (1 + 1e-6))


@pytest.mark.usefixtures("no_named_solver")
def test_wide_single_layer_pairs_go_to_the_engine_and_match_the_compiled_problem():
    from pylip.lipsdp.certificate import ENGINE_SOLVER
    from pylip.lipsdp.margins import ReducedPairProblem

    weights = _net(20, [40, 32, 3])  # pair cone min(40, 32) + 1 = 33 >= ENGINE_CONE
    result = certify_margins(weights, method="sdp", logits=False)
    compiled = ReducedPairProblem(weights[0], 0.0, 1.0)
    for (i, j), cert in result.certificates.items():
        row, _ = difference_row(weights[-1], i, j)
        assert cert.solver == ENGINE_SOLVER and cert.prove([weights[0], row]).holds
        assert result.pair(i, j) == pytest.approx(compiled.certify(row).bound, rel=2e-6)


@pytest.mark.usefixtures("no_named_solver")
def test_a_stalling_engine_leaves_a_deep_pair_its_fixed_T_bound_without_trying_cvxpy(monkeypatch):
    from pylip.lipsdp import certificate, margins

    def stall(*args, **kwargs):
        raise pylip.SolverError("the engine stalled (simulated)")

    def no_fallback(*args, **kwargs):
        raise AssertionError("the cvxpy solvers must not be tried for a class pair")

    weights = _net(21, [5, 6, 6, 3])
    fixed = certify_margins(weights, method="fixed_T", logits=False)
    monkeypatch.setattr(margins, "_engine_only_certificate", stall)
    monkeypatch.setattr(certificate, "_fallback_certificates", no_fallback)
    stalled = certify_margins(weights, method="sdp", logits=False)
    np.testing.assert_array_equal(stalled.pair_bounds, fixed.pair_bounds)


@pytest.mark.usefixtures("no_named_solver")
def test_the_auxiliary_certificate_is_the_engine_at_its_looser_gap():
    from pylip.lipsdp.certificate import AUXILIARY_TOLERANCE, ENGINE_SOLVER
    from pylip.lipsdp.margins import auxiliary_certificate

    weights = _net(22, [6, 9, 7, 4])
    alpha = np.linspace(0.0, 0.3, 16)
    beta = np.linspace(0.5, 1.0, 16)
    aux = auxiliary_certificate(weights, alpha=alpha, beta=beta)
    full = pylip.certify(weights, alpha=alpha, beta=beta)
    assert aux.solver == full.solver == ENGINE_SOLVER and aux.prove(weights).holds
    # both are proven, so above the optimum; certify's within BOUND_GAP = 1e-7 of it, the
    # auxiliary one within its relative gap of 1e-6 on L^2
    assert full.bound * (1 - 1e-6) <= aux.bound <= full.bound * (1 + AUXILIARY_TOLERANCE)
    named = auxiliary_certificate(weights, alpha=alpha, beta=beta, solver="CLARABEL")
    assert named.solver == "CLARABEL"
