"""Local Lipschitz bounds over an input ball (pylip.local)."""

import numpy as np
import pytest

import pylip
from pylip.lipsdp import sampling
from pylip.lipsdp.activations import get_activation
from pylip.lipsdp.local import certify_local, local_certified, preactivation_bounds


def _net(seed, sizes, gain=2.0):
    rng = np.random.default_rng(seed)
    weights = [gain * rng.standard_normal((m, n)) / np.sqrt(n) for n, m in zip(sizes[:-1], sizes[1:])]
    biases = [rng.standard_normal(m) for m in sizes[1:]]
    return weights, biases


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "silu", "leakyrelu:0.1", "gelu", "elu"])
@pytest.mark.parametrize("sizes", [[5, 9, 3], [5, 7, 7, 3]])
def test_local_bound_between_sampled_and_global(activation, sizes):
    weights, biases = _net(len(sizes), sizes)
    glob = pylip.certify(weights, activation=activation).bound
    rng = np.random.default_rng(7)
    for radius in (0.05, 2.0):
        x0 = rng.standard_normal(sizes[0])
        local = certify_local(weights, biases, x0, radius, activation=activation, global_bound=glob)
        lower = sampling.sampled_local_lower_bound(weights, biases, x0, radius, activation=activation,
                                                   n_samples=3000, rng=1)
        assert lower <= local.bound <= glob
        if local.certificate is not None:
            assert local.certificate.verified and local.certificate.bound >= lower


@pytest.mark.parametrize("activation", ["tanh", "relu", "silu"])
def test_intervals_contain_the_sampled_preactivations(activation):
    weights, biases = _net(3, [4, 6, 6, 2])
    x0, radius = np.array([0.3, -1.0, 0.5, 2.0]), 0.7
    intervals = preactivation_bounds(weights, biases, x0, radius, get_activation(activation))
    points = sampling.sample_ball(x0, radius, 4000, np.random.default_rng(2))
    _, pre = sampling.forward(weights, biases, points, activation)
    for (lo, hi), z in zip(intervals, pre):
        assert np.all(lo <= z.min(axis=0)) and np.all(z.max(axis=0) <= hi)
    # the first layer is exact: the row norms are attained on the sphere
    lo, hi = intervals[0]
    centre = weights[0] @ x0 + biases[0]
    np.testing.assert_allclose(hi - centre, radius * np.linalg.norm(weights[0], axis=1), rtol=1e-12)


def test_relu_neurons_fixed_on_or_off_get_exact_sectors():
    weights, biases = _net(4, [4, 12, 3])
    local = certify_local(weights, biases, np.zeros(4), 1e-3, activation="relu")
    assert set(np.unique(local.alpha)) <= {0.0, 1.0}
    np.testing.assert_array_equal(local.alpha, local.beta)
    off = int(np.sum(local.beta == 0.0))
    assert local.constant_neurons == off > 0
    # on the tiny ball the net is the linear map through the active neurons
    on = local.beta == 1.0
    jac = weights[1][:, on] @ weights[0][on]
    assert np.linalg.norm(jac, 2) <= local.bound <= np.linalg.norm(jac, 2) * (1 + 1e-4)


def test_a_layer_constant_on_the_ball_gives_zero():
    weights = [np.ones((2, 2)), np.ones((2, 2))]
    biases = [np.full(2, -10.0), np.zeros(2)]
    local = certify_local(weights, biases, np.zeros(2), 0.5, activation="relu")
    assert local.bound == 0.0 and local.certificate is None


def test_locally_certified_points_keep_their_class_on_the_ball():
    weights, biases = _net(5, [5, 10, 4], gain=1.0)
    rng = np.random.default_rng(6)
    glob = pylip.certify(weights).bound
    certified = 0
    for x0 in rng.standard_normal((30, 5)):
        out, _ = sampling.forward(weights, biases, x0[None, :], "tanh")
        y = int(out.argmax())
        margin = float(out[0, y] - np.max(np.delete(out[0], y)))
        radius = margin / (np.sqrt(2) * glob) * 1.5  # beyond the global rule's radius
        local = certify_local(weights, biases, x0, radius, global_bound=glob)
        if local_certified(margin, local):
            certified += 1
            points = sampling.sample_ball(x0, radius, 500, rng)
            outs, _ = sampling.forward(weights, biases, points, "tanh")
            assert np.all(outs.argmax(axis=1) == y)
    assert certified > 0


def test_bad_local_input():
    weights, biases = _net(0, [3, 4, 2])
    with pytest.raises(pylip.InputError, match="radius must be a finite number >= 0"):
        certify_local(weights, biases, np.zeros(3), -1.0)
    with pytest.raises(pylip.InputError, match="x0 has 2 entries"):
        certify_local(weights, biases, np.zeros(2), 1.0)
    with pytest.raises(pylip.InputError, match="one vector per layer"):
        certify_local(weights, biases[:1], np.zeros(3), 1.0)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_fixed_T_local_bound_between_sampled_sdp_and_global(activation):
    weights, biases = _net(8, [5, 7, 7, 3])
    glob = pylip.certify(weights, activation=activation)
    rng = np.random.default_rng(9)
    for radius in (0.05, 1.0):
        x0 = rng.standard_normal(5)
        fixed = certify_local(weights, biases, x0, radius, activation=activation, method="fixed_T",
                              global_certificate=glob)
        sdp = certify_local(weights, biases, x0, radius, activation=activation, global_certificate=glob)
        lower = sampling.sampled_local_lower_bound(weights, biases, x0, radius, activation=activation,
                                                   n_samples=2000, rng=2)
        assert lower <= sdp.bound <= fixed.bound * (1 + 1e-6) and fixed.bound <= glob.bound
        assert fixed.certificate.prove(weights).holds
    with pytest.raises(pylip.InputError, match="needs the global certificate"):
        certify_local(weights, biases, x0, 0.1, method="fixed_T")
    with pytest.raises(pylip.InputError, match="method must be one of"):
        certify_local(weights, biases, x0, 0.1, method="ibp")


def test_a_failing_local_solver_falls_back_to_the_global_T(monkeypatch):
    from pylip.lipsdp import margins

    weights, biases = _net(10, [4, 6, 3])
    glob = pylip.certify(weights)

    def fail(*args, **kwargs):
        raise pylip.SolverError("CLARABEL failed (simulated)")

    monkeypatch.setattr(margins, "auxiliary_certificate", fail)  # the local SDP's solver, whichever it is
    x0 = np.zeros(4)
    local = certify_local(weights, biases, x0, 0.1, global_certificate=glob)
    fixed = certify_local(weights, biases, x0, 0.1, method="fixed_T", global_certificate=glob)
    assert local.bound == fixed.bound <= glob.bound
    with pytest.raises(pylip.SolverError):
        certify_local(weights, biases, x0, 0.1)


@pytest.mark.usefixtures("no_named_solver")
def test_deep_local_sdp_by_the_engine_and_a_stall_takes_the_global_T_without_cvxpy(monkeypatch):
    from pylip.lipsdp import certificate, engine
    from pylip.lipsdp.certificate import ENGINE_SOLVER

    weights, biases = _net(11, [5, 7, 7, 3])
    glob = pylip.certify(weights)
    x0 = np.random.default_rng(12).standard_normal(5)
    solved = certify_local(weights, biases, x0, 0.3, global_certificate=glob)
    assert solved.certificate.solver == ENGINE_SOLVER and solved.certificate.prove(weights).holds
    fixed = certify_local(weights, biases, x0, 0.3, method="fixed_T", global_certificate=glob)
    assert solved.bound <= fixed.bound * (1 + 1e-6)

    def stall(*args, **kwargs):
        raise pylip.SolverError("the engine stalled (simulated)")

    def no_fallback(*args, **kwargs):
        raise AssertionError("the cvxpy solvers must not be tried for a local ball")

    monkeypatch.setattr(engine, "solve_certificate_sdp", stall)
    monkeypatch.setattr(certificate, "_fallback_certificates", no_fallback)
    stalled = certify_local(weights, biases, x0, 0.3, global_certificate=glob)
    assert stalled.bound == fixed.bound and stalled.certificate.solver == "fixed_T"
