"""pylip.lipsdp.one_layer, the one-hidden-layer engine, against independent cvxpy models of the SDP (6)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import cvxpy as cp
import numpy as np
import pytest
from test_engine import random_network, reference_bound, reference_value

import pylip
from pylip.errors import InputError
from pylip.lipsdp import engine, one_layer
from pylip.lipsdp.local import certify_local

RELATIVE = 1e-6  # the SDP's optimum to this (issue 11); reference/README.md
ROUNDING_REPAIR = 1e-9  # certify may raise the engine's L by rounding only; reference/README.md
# alpha_i = beta_i neurons: the infimum is not attained; reference/README.md
FIXED_SLOPE = 1e-5
SECTORS = [(0.0, 1.0), (0.0, 0.25), (0.2, 0.9), (-0.5, 0.3)]
# n_h > r + p (3-40-2), n_h < r + p with both reductions (20-6-10: r = p = 6), width 1, in between
SHAPES = [(3, 40, 2), (20, 6, 10), (4, 1, 3), (6, 24, 5)]


@pytest.fixture(params=["dense", "low-rank"])
def newton(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a test with each Newton solve (chosen by a flop estimate otherwise)."""
    monkeypatch.setattr(one_layer, "_low_rank_is_cheaper", lambda *args: request.param == "low-rank")
    yield request.param


def unit_norm(weights: list[np.ndarray]) -> list[np.ndarray]:
    """Weights of spectral norm one: certify's exact rescaling leaves them as they are."""
    return [w / 2.0 ** np.round(np.log2(np.linalg.norm(w, 2))) for w in weights]


def per_neuron_sector(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    alpha = rng.uniform(-0.2, 0.6, n)
    return alpha, alpha + rng.uniform(0.05, 0.8, n)


def negated_lmi(weights: list[np.ndarray], t: np.ndarray, squared: float, alpha: Any, beta: Any,
                margin: Any) -> np.ndarray:
    """``-P(L^2, diag(t)) - diag(m)`` of eq. (5) for one hidden layer, written out."""
    W0, W1 = weights
    n_x, n = W0.shape[1], W0.shape[0]
    a, b = (np.broadcast_to(np.asarray(v, dtype=float), (n,)) for v in (alpha, beta))
    P = np.zeros((n_x + n, n_x + n))
    P[:n_x, :n_x] = -squared * np.eye(n_x) - 2.0 * W0.T @ np.diag(a * b * t) @ W0
    P[:n_x, n_x:] = W0.T @ np.diag((a + b) * t)
    P[n_x:, :n_x] = P[:n_x, n_x:].T
    P[n_x:, n_x:] = -2.0 * np.diag(t) + W1.T @ W1
    return -P - np.diag(np.broadcast_to(np.asarray(margin, dtype=float), (n_x + n,)))


def fixed_slope_infimum(weights: list[np.ndarray], alpha: np.ndarray, beta: np.ndarray) -> float:
    """The infimum of (6) when some neurons have ``alpha_i = beta_i``: they are linear, so their
    multipliers tend to infinity; this is the LipSDP of the net with those neurons as a direct term
    ``D = W1_lin diag(alpha_lin) W0_lin``, the others as its hidden layer (an independent model)."""
    W0, W1 = weights
    linear = alpha == beta
    D = W1[:, linear] @ np.diag(alpha[linear]) @ W0[linear]
    A, V = W0[~linear], W1[:, ~linear]
    a, b = alpha[~linear], beta[~linear]
    n_x, k = W0.shape[1], A.shape[0]
    t = cp.Variable(k, nonneg=True)
    squared = cp.Variable()
    output = np.hstack([D, V])  # f(x) - f(x') = D dx + V dphi
    top = -2 * A.T @ cp.diag(cp.multiply(a * b, t)) @ A - squared * np.eye(n_x)
    side = A.T @ cp.diag(cp.multiply(a + b, t))
    P = output.T @ output + cp.bmat([[top, side], [side.T, -2 * cp.diag(t)]])
    return reference_value(cp.Problem(cp.Minimize(squared), [0.5 * (P + P.T) << 0]), squared)


def assert_exact(certificate: pylip.Certificate, expected: float, weights: list[np.ndarray]) -> None:
    assert certificate.solver == "PYLIP-ENGINE" and certificate.verified
    certificate.prove(weights)
    assert abs(certificate.bound / expected - 1.0) <= RELATIVE
    assert certificate.repair_change <= ROUNDING_REPAIR


@pytest.mark.parametrize("alpha, beta", SECTORS)
@pytest.mark.parametrize("sizes", SHAPES)
@pytest.mark.parametrize("form", ["neuron", "layer"])
def test_the_bound_is_the_sdp_optimum(sizes: tuple[int, ...], alpha: float, beta: float, form: str,
                                      newton: str) -> None:
    weights = random_network(np.random.default_rng(sum(sizes) + int(10 * beta)), sizes)
    certificate = pylip.certify(weights, alpha=alpha, beta=beta, form=form, formulation="engine", margin=0.0)
    assert_exact(certificate, reference_bound(weights, alpha, beta, form=form), weights)


@pytest.mark.parametrize("sizes", SHAPES)
@pytest.mark.parametrize("form", ["neuron", "layer"])
def test_per_neuron_sectors(sizes: tuple[int, ...], form: str, newton: str) -> None:
    weights = random_network(np.random.default_rng(sum(sizes)), sizes)
    alpha, beta = per_neuron_sector(sizes[1], sum(sizes))
    certificate = pylip.certify(weights, alpha=alpha, beta=beta, form=form, formulation="engine", margin=0.0)
    assert_exact(certificate, reference_bound(weights, alpha, beta, form=form), weights)


@pytest.mark.parametrize("form", ["neuron", "layer"])
@pytest.mark.parametrize("sizes", [(5, 12, 3), (9, 4, 6)])
def test_a_margin_vector_is_the_lmi_s_diagonal(sizes: tuple[int, ...], form: str, newton: str) -> None:
    weights = unit_norm(random_network(np.random.default_rng(31), sizes))
    alpha, beta = per_neuron_sector(sizes[1], 5)
    n_x, n = sizes[0], sizes[1]
    margin = np.concatenate([np.full(n_x, 0.03), np.random.default_rng(2).uniform(0.0, 0.2, n)])
    result = one_layer.solve_one_layer_sdp(weights, alpha, beta, form=form, margin=margin)
    expected = reference_bound(weights, alpha, beta, form=form, shift=margin)
    assert abs(np.sqrt(result.squared_bound) / expected - 1.0) <= RELATIVE
    plain = one_layer.solve_one_layer_sdp(weights, alpha, beta, form=form)
    assert result.squared_bound > plain.squared_bound * (1.0 + 100 * RELATIVE)  # the margin counts
    # the returned point is strictly feasible: -P - diag(m) has a Cholesky factor in float64
    np.linalg.cholesky(negated_lmi(weights, result.t, result.squared_bound, alpha, beta, margin))


def test_a_scalar_margin_is_the_vector_of_equal_entries() -> None:
    weights = unit_norm(random_network(np.random.default_rng(8), (4, 9, 3)))
    scalar = one_layer.solve_one_layer_sdp(weights, 0.0, 1.0, margin=0.01)
    vector = one_layer.solve_one_layer_sdp(weights, 0.0, 1.0, margin=np.full(13, 0.01))
    assert scalar.squared_bound == vector.squared_bound
    expected = reference_bound(weights, 0.0, 1.0, shift=0.01)
    assert abs(np.sqrt(scalar.squared_bound) / expected - 1.0) <= RELATIVE


@pytest.mark.parametrize("sizes", [(4, 12, 3), (6, 30, 4)])
def test_neurons_of_a_fixed_slope(sizes: tuple[int, ...], newton: str) -> None:
    # a_i = b_i (a ReLU fixed on, [1, 1], as local bounds give): the optimal t_i is infinite
    rng = np.random.default_rng(sum(sizes))
    weights = random_network(rng, sizes)
    n = sizes[1]
    alpha = rng.uniform(0.0, 0.5, n)
    beta = alpha + rng.uniform(0.1, 0.5, n)
    beta[: n // 3] = alpha[: n // 3]
    alpha[n // 3] = beta[n // 3] = 1.0
    certificate = pylip.certify(weights, alpha=alpha, beta=beta, formulation="engine", margin=0.0)
    assert certificate.solver == "PYLIP-ENGINE" and certificate.verified
    certificate.prove(weights)
    infimum = fixed_slope_infimum(weights, alpha, beta)
    assert infimum * (1.0 - RELATIVE) <= certificate.bound <= infimum * (1.0 + FIXED_SLOPE)
    assert certificate.repair_change <= FIXED_SLOPE


@pytest.mark.parametrize("form", ["neuron", "layer"])
def test_every_neuron_of_a_fixed_slope_is_a_linear_map(form: str) -> None:
    weights = random_network(np.random.default_rng(3), (5, 7, 3))
    slope = np.linspace(0.5, 1.5, 7)
    certificate = pylip.certify(weights, alpha=slope, beta=slope, form=form, formulation="engine", margin=0.0)
    linear = float(np.linalg.norm(weights[1] @ np.diag(slope) @ weights[0], 2))
    assert certificate.verified and linear <= certificate.bound <= linear * (1.0 + FIXED_SLOPE)


def test_dead_unread_and_rank_deficient(newton: str) -> None:
    rng = np.random.default_rng(7)
    weights = random_network(rng, (5, 9, 4))
    weights[0][2] = 0.0  # a neuron reading nothing: its t_i drops out
    weights[1][:, 5] = 0.0  # a neuron nobody reads: optimal t_i = 0 without a margin
    weights[0] = rng.standard_normal((9, 2)) @ rng.standard_normal((2, 5)) / 3  # rank 2
    weights[0][2] = 0.0
    for form in ("neuron", "layer"):
        certificate = pylip.certify(weights, formulation="engine", form=form, margin=0.0)
        assert_exact(certificate, reference_bound(weights, 0.0, 1.0, form=form), weights)


@pytest.mark.parametrize("exponent", [-40, 0, 40])
def test_scales_by_powers_of_two(exponent: int) -> None:
    # certify rescales each layer by a power of two before the engine, exactly
    weights = random_network(np.random.default_rng(4), (6, 20, 3))
    base = pylip.certify(weights, formulation="engine")
    scaled = pylip.certify([w * 2.0**exponent for w in weights], formulation="engine")
    assert scaled.verified and scaled.solver == "PYLIP-ENGINE"
    assert scaled.bound == pytest.approx(base.bound * 2.0 ** (2 * exponent), rel=1e-12)


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_unscaled_weights_given_to_the_engine(scale: float) -> None:
    # L scales by scale^2 exactly; the reference at scale 1 (its absolute tolerances do not scale)
    weights = random_network(np.random.default_rng(6), (3, 10, 2))
    result = engine.solve_certificate_sdp([w * scale for w in weights], 0.0, 1.0)
    expected = reference_bound(weights, 0.0, 1.0) * scale**2
    assert abs(np.sqrt(result.squared_bound) / expected - 1.0) <= RELATIVE


def test_the_two_newton_solves_agree() -> None:
    weights = random_network(np.random.default_rng(0), (3, 40, 2))
    for form, margin in (("neuron", 0.0), ("layer", 1e-3), ("neuron", 1e-2)):
        data, m_x = one_layer._data(weights, 0.1, 0.9, form, margin)
        state = one_layer._start(data, one_layer._initial_point(data, m_x))
        for _ in range(4):  # away from the start, where nothing is special
            state = one_layer._step(data, state, one_layer._Point.of(data, state))
        rhs = np.random.default_rng(1).standard_normal(data.size)
        dense_data, low_data = (dataclasses.replace(data, low_rank=flag) for flag in (False, True))
        dense = one_layer._dense_solver(dense_data, state, one_layer._Point.of(dense_data, state))(rhs)
        low = one_layer._low_rank_solver(low_data, state, one_layer._Point.of(low_data, state))(rhs)
        assert np.max(np.abs(dense - low)) <= 1e-9 * np.max(np.abs(dense))


def test_bad_inputs_are_refused() -> None:
    weights = random_network(np.random.default_rng(2), (3, 4, 2))
    solve = one_layer.solve_one_layer_sdp
    with pytest.raises(InputError, match="form"):
        solve(weights, 0.0, 1.0, form="network")
    with pytest.raises(InputError, match="tol"):
        solve(weights, 0.0, 1.0, tol=0.5)
    with pytest.raises(InputError, match="sector"):
        solve(weights, 1.0, 0.5)
    with pytest.raises(InputError, match="sector"):
        solve(weights, 1.0, 1.0)  # one degenerate sector for all: a linear net, not an SDP
    with pytest.raises(InputError, match="alpha must not exceed beta: neuron 1"):
        solve(weights, np.array([0.0, 0.6, 0.0, 0.0]), np.array([1.0, 0.5, 1.0, 1.0]))
    with pytest.raises(InputError, match="one entry per hidden neuron"):
        solve(weights, np.zeros(3), np.ones(3))
    with pytest.raises(InputError, match="finite"):
        solve(weights, np.array([0.0, np.nan, 0.0, 0.0]), np.ones(4))
    with pytest.raises(InputError, match="margin must be a number or a vector of n_x \\+ n_h = 7"):
        solve(weights, 0.0, 1.0, margin=np.zeros(5))
    with pytest.raises(InputError, match=">= 0"):
        solve(weights, 0.0, 1.0, margin=-1e-9)
    with pytest.raises(InputError, match="input block"):
        solve(weights, 0.0, 1.0, margin=np.array([0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0]))
    with pytest.raises(InputError, match="chain"):
        solve([weights[0], weights[1].T], 0.0, 1.0)
    with pytest.raises(InputError, match="zero weight matrix"):
        solve([weights[0], np.zeros((2, 4))], 0.0, 1.0)
    with pytest.raises(InputError, match="finite"):
        solve([weights[0] * np.inf, weights[1]], 0.0, 1.0)
    with pytest.raises(InputError, match="\\[W0, W1\\]"):
        solve(weights[:1], 0.0, 1.0)


def test_auto_routes_one_hidden_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYLIP_SOLVER", raising=False)
    rng = np.random.default_rng(12)
    wide = random_network(rng, (10, 50, 5))  # reduced cone 10 + 5 = 15: the engine
    narrow = random_network(rng, (8, 64, 4))  # 8 + 4 = 12: the reduced form
    assert pylip.certify(wide).solver == "PYLIP-ENGINE"
    assert pylip.certify(narrow).solver == "CLARABEL"
    alpha, beta = per_neuron_sector(64, 1)
    per_neuron = pylip.certify(narrow, alpha=alpha, beta=beta)  # per-neuron sectors: the engine
    assert per_neuron.solver == "PYLIP-ENGINE" and per_neuron.verified
    assert pylip.certify(wide, solver="CLARABEL").solver == "CLARABEL"
    monkeypatch.setenv("PYLIP_SOLVER", "CLARABEL")
    assert pylip.certify(narrow, alpha=alpha, beta=beta).solver == "CLARABEL"


@pytest.mark.usefixtures("no_named_solver")
def test_auto_is_the_optimum_where_its_solver_is_inexact() -> None:
    """1-500-1: a two-row reduced cone, Clarabel's by the rule above; its point has been
    ``optimal_inaccurate``, 1e-5 above the optimum, where ``auto`` must be within 1e-6 of it."""
    weights = random_network(np.random.default_rng(0), (1, 500, 1))
    optimum = pylip.certify(weights, activation="relu", formulation="engine")
    auto = pylip.certify(weights, activation="relu")
    assert auto.verified and optimum.bound * (1 - 1e-6) <= auto.bound <= optimum.bound * (1 + 1e-6)


def test_an_inexact_solver_point_is_replaced_by_the_engine_s(monkeypatch: pytest.MonkeyPatch) -> None:
    from pylip.lipsdp import certificate

    monkeypatch.delenv("PYLIP_SOLVER", raising=False)
    weights = random_network(np.random.default_rng(5), (8, 64, 4))  # the reduced form, Clarabel
    solved = certificate._solved_certificate

    def inexact(formulation: str, *args: Any) -> pylip.Certificate:
        cert = solved(formulation, *args)
        if formulation == "engine":
            return cert
        return dataclasses.replace(cert, status="optimal_inaccurate", bound=cert.bound * (1 + 1e-5))

    monkeypatch.setattr(certificate, "_solved_certificate", inexact)
    auto = pylip.certify(weights)
    assert auto.solver == "PYLIP-ENGINE" and "optimal_inaccurate" in auto.notes[-1]
    assert pylip.certify(weights, solver="CLARABEL").status == "optimal_inaccurate"  # named: kept


def test_a_local_relu_bound_uses_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYLIP_SOLVER", raising=False)
    rng = np.random.default_rng(3)
    weights = random_network(rng, (4, 30, 3))
    biases = [rng.standard_normal(30), np.zeros(3)]
    local = certify_local(weights, biases, rng.standard_normal(4), 0.05, activation="relu")
    assert local.certificate is not None and local.certificate.solver == "PYLIP-ENGINE"
    assert local.certificate.verified and np.any(local.alpha == local.beta)  # neurons fixed on or off
    assert local.bound <= pylip.certify(weights, activation="relu").bound
