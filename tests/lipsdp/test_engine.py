"""pylip.lipsdp.engine, the LipSDP engine, against an independent cvxpy + Clarabel model of the SDP (6)."""

from __future__ import annotations

from typing import Any

import cvxpy as cp
import numpy as np
import pytest

import pylip
from pylip.errors import InputError
from pylip.lipsdp import engine

RELATIVE = 1e-6  # the engine must give the SDP's optimum to this (issue 11); reference/README.md
SECTORS = {"tanh": (0.0, 1.0), "relu": (0.0, 1.0), "sigmoid": (0.0, 0.25)}


def reference_bound(
    weights: list[np.ndarray], alpha: Any, beta: Any, form: str = "neuron", margin: float = 0.0,
    shift: Any = 0.0,
) -> float:
    """LipSDP (6) written out directly: z = [x; x1; ...; xl], P = sum of one quadratic form per layer.

    ``alpha``, ``beta``: numbers or one entry per hidden neuron. ``margin``: certify's
    relative margin, ``P <= -margin diag(L^2 I, T)``; ``shift``: a number or one entry
    per row of ``P``, ``P <= -diag(shift)`` (:func:`pylip.lipsdp.one_layer.solve_one_layer_sdp`).
    """
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights[:-1]]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    size = int(offsets[-1])
    hidden = size - sizes[0]
    low = np.broadcast_to(np.asarray(alpha, dtype=float), (hidden,))
    high = np.broadcast_to(np.asarray(beta, dtype=float), (hidden,))
    multipliers = []
    squared = cp.Variable()
    terms = []
    for k, w in enumerate(weights[:-1]):
        n = w.shape[0]
        a, b = (v[offsets[k + 1] - sizes[0] : offsets[k + 2] - sizes[0]] for v in (low, high))
        t = cp.Variable(n, nonneg=True) if form == "neuron" else cp.Variable(nonneg=True) * np.ones(n)
        multipliers.append(t)
        into = np.zeros((n, size))  # x_{k+1}
        into[:, offsets[k + 1] : offsets[k + 2]] = np.eye(n)
        pre = np.zeros((n, size))  # W_k x_k
        pre[:, offsets[k] : offsets[k + 1]] = w
        # (phi - a v)' T (b v - phi) >= 0 for v = pre z, phi = into z, as a form in z
        cross = pre.T @ cp.diag(cp.multiply(a + b, t)) @ into
        quadratic = 2 * into.T @ cp.diag(t) @ into + 2 * pre.T @ cp.diag(cp.multiply(a * b, t)) @ pre
        terms.append(cross + cross.T - quadratic)
    last = np.zeros((weights[-1].shape[0], size))
    last[:, offsets[-2] :] = weights[-1]
    select = np.zeros((size, size))
    select[: sizes[0], : sizes[0]] = np.eye(sizes[0])
    P = sum(terms) + last.T @ last - squared * select
    scale = squared * select + cp.diag(cp.hstack([np.zeros(sizes[0]), *multipliers]))
    shifted = np.diag(np.broadcast_to(np.asarray(shift, dtype=float), (size,)))
    return reference_value(
        cp.Problem(cp.Minimize(squared), [0.5 * (P + P.T) + margin * scale << -shifted]), squared
    )


def reference_value(problem: cp.Problem, squared: cp.Variable) -> float:
    """``sqrt`` of ``squared`` at the optimum found by the first reference solver reaching "optimal".

    Clarabel 0.10.0 (the minimum-version cells) stops "optimal_inaccurate" on some sector
    cases; a reference must have reached "optimal", so CVXOPT is the second reference.
    """
    for solver, settings in REFERENCE_SOLVERS:
        if solver not in cp.installed_solvers():
            continue
        try:
            problem.solve(solver=solver, **settings)
        except cp.error.SolverError:
            continue
        if problem.status == "optimal":
            return float(np.sqrt(squared.value))
    pytest.skip("no installed reference solver (Clarabel, CVXOPT) reached 'optimal' on this case")


REFERENCE_SOLVERS = (
    ("CLARABEL", {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}),
    ("CVXOPT", {"abstol": 1e-10, "reltol": 1e-10, "feastol": 1e-10}),
    ("CVXOPT", {"abstol": 1e-9, "reltol": 1e-9, "feastol": 1e-9}),
)


def random_network(rng: np.random.Generator, sizes: tuple[int, ...]) -> list[np.ndarray]:
    return [rng.standard_normal((sizes[i + 1], sizes[i])) / np.sqrt(sizes[i]) for i in range(len(sizes) - 1)]


CASES = [
    ((3, 1, 2), "tanh"),
    ((2, 32, 3), "relu"),
    ((5, 6, 4, 2), "sigmoid"),
    ((4, 16, 16, 3), "tanh"),
    ((3, 1, 1, 2), "relu"),
    ((2, 8, 8, 8, 2), "sigmoid"),
    ((3, 6, 5, 7, 4, 2), "tanh"),
    ((2, 10, 30, 20, 2), "relu"),
    # deep: many cliques in the chordal pattern, uneven widths (the completion's blocks differ)
    ((3, 6, 4, 6, 4, 6, 4, 2), "tanh"),
    ((2, *[5] * 8, 2), "relu"),
    ((4, 9, 3, 1, 3, 9, 2), "sigmoid"),
]


@pytest.mark.parametrize("sizes, activation", CASES)
@pytest.mark.parametrize("form", ["neuron", "layer"])
def test_engine_matches_the_sdp_optimum(sizes: tuple[int, ...], activation: str, form: str) -> None:
    rng = np.random.default_rng(sum(sizes) + len(activation))
    weights = random_network(rng, sizes)
    certificate = pylip.certify(weights, activation=activation, form=form, formulation="engine")
    expected = reference_bound(weights, *SECTORS[activation], form=form)
    assert certificate.solver == "PYLIP-ENGINE"
    assert certificate.verified
    certificate.prove(weights)
    assert abs(certificate.bound / expected - 1.0) <= RELATIVE


# (alpha, beta): tanh / ReLU, sigmoid, a narrower sector with alpha > 0, and alpha < 0 (a
# leaky slope of the wrong sign, e.g. SiLU's [-0.1, 1.1]; |alpha| > beta folds by |alpha|)
GENERAL_SECTORS = [(0.0, 1.0), (0.0, 0.25), (0.2, 0.9), (-0.1, 1.1), (-0.5, 0.3)]
SHAPES = [(3, 7, 2), (4, 6, 5, 2), (2, 12, 12, 3), (3, 5, 5, 5, 5, 2)]  # depth 1-4, widths 5-12


@pytest.mark.parametrize("alpha, beta", GENERAL_SECTORS)
@pytest.mark.parametrize("sizes", SHAPES)
@pytest.mark.parametrize("form", ["neuron", "layer"])
def test_engine_matches_the_sdp_optimum_in_every_sector(
    sizes: tuple[int, ...], alpha: float, beta: float, form: str
) -> None:
    rng = np.random.default_rng(len(sizes) * 100 + int(10 * alpha) + int(10 * beta))
    weights = random_network(rng, sizes)
    certificate = pylip.certify(weights, alpha=alpha, beta=beta, form=form, formulation="engine")
    assert certificate.solver == "PYLIP-ENGINE" and certificate.verified
    certificate.prove(weights)
    expected = reference_bound(weights, alpha, beta, form=form)
    assert abs(certificate.bound / expected - 1.0) <= RELATIVE


@pytest.mark.parametrize("form", ["neuron", "layer"])
def test_the_engine_honours_the_margin(form: str) -> None:
    rng = np.random.default_rng(9)
    weights = [w / np.linalg.norm(w, 2) for w in random_network(rng, (3, 6, 5, 2))]
    margin = 0.05
    plain = pylip.certify(weights, activation="relu", form=form, formulation="engine", margin=0.0)
    kept = pylip.certify(weights, activation="relu", form=form, formulation="engine", margin=margin)
    expected = reference_bound(weights, 0.0, 1.0, form=form, margin=margin)
    assert abs(kept.bound / expected - 1.0) <= RELATIVE
    assert kept.bound > plain.bound * (1.0 + 100 * RELATIVE)  # the margin changed the answer
    kept.prove(weights)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("form", ["neuron", "layer"])
def test_the_margin_is_relative_and_the_same_for_the_weights_as_given(activation: str, form: str) -> None:
    # norms far from 1 and a sigmoid's folded beta: certify rescales the weights by powers of two,
    # and its margin is P <= -margin diag(L^2 I, T) for the weights given as for the rescaled ones
    rng = np.random.default_rng(21)
    weights = random_network(rng, (3, 6, 5, 4, 2))
    weights = [8.0 * weights[0], 0.25 * weights[1], 3.0 * weights[2], 0.5 * weights[3]]
    alpha, beta = SECTORS[activation]
    margin = 0.01
    plain = pylip.certify(weights, activation=activation, form=form, formulation="engine", margin=0.0)
    kept = pylip.certify(weights, activation=activation, form=form, formulation="engine", margin=margin)
    expected = reference_bound(weights, alpha, beta, form=form, margin=margin)
    assert abs(kept.bound / expected - 1.0) <= RELATIVE
    assert kept.bound > plain.bound * (1.0 + 100 * RELATIVE)  # the margin changed the answer
    structured = pylip.certify(weights, activation=activation, form=form, formulation="structured",
                               solver="CLARABEL", margin=margin)
    assert abs(structured.bound / expected - 1.0) <= RELATIVE


@pytest.mark.parametrize("formulation", ["engine", "structured", "reduced"])
def test_the_relative_margin_of_a_one_layer_net(formulation: str) -> None:
    rng = np.random.default_rng(24)
    weights = [4.0 * w for w in random_network(rng, (4, 7, 3))]
    margin = 0.02
    kept = pylip.certify(weights, activation="sigmoid", formulation=formulation, margin=margin)
    expected = reference_bound(weights, 0.0, 0.25, margin=margin)
    assert abs(kept.bound / expected - 1.0) <= RELATIVE


@pytest.mark.parametrize("sizes, scale, activation", [
    ((4, *[6] * 12, 2), 2.0, "relu"),  # L^2 ~ 4e9 for the weights given, small rescaled
    ((4, 9, 3, 1, 3, 9, 2), 1.0, "sigmoid"),  # L^2 ~ 1e-6 for the weights given
])
def test_the_default_margin_leaves_the_bound_at_the_sdps_optimum(
    sizes: tuple[int, ...], scale: float, activation: str
) -> None:
    # an absolute margin of 1e-9 I moves L^2 by more than 1e-6 relative wherever L^2 is small in the
    # coordinates it is applied in: for the weights given (a deep sigmoid net), or rescaled (deep
    # nets of norm > 1: 1.2 % on twenty layers of 64); the relative margin does not
    weights = [scale * w for w in random_network(np.random.default_rng(22), sizes)]
    default = pylip.certify(weights, activation=activation, formulation="engine")
    plain = pylip.certify(weights, activation=activation, formulation="engine", margin=0.0)
    assert abs(default.bound / plain.bound - 1.0) <= RELATIVE


PER_NEURON_SHAPES = [(3, 5, 4), (3, 6, 5, 2), (2, 4, 6, 4, 3)]


@pytest.mark.parametrize("sizes", PER_NEURON_SHAPES)
@pytest.mark.parametrize("form", ["neuron", "layer"])
def test_per_neuron_sectors(sizes: tuple[int, ...], form: str) -> None:
    # a local bound's sectors: tanh's narrower slopes on intervals of pre-activations, some narrow
    rng = np.random.default_rng(sum(sizes))
    weights = random_network(rng, sizes)
    hidden = sum(sizes[1:-1])
    alpha = rng.uniform(0.0, 0.6, hidden)
    beta = alpha + rng.uniform(0.0, 0.5, hidden)
    narrow = rng.random(hidden) < 0.3
    beta[narrow] = alpha[narrow] + 1e-3
    certificate = pylip.certify(weights, alpha=alpha, beta=beta, form=form, formulation="engine")
    assert certificate.solver == "PYLIP-ENGINE" and certificate.verified
    certificate.prove(weights)
    expected = reference_bound(weights, alpha, beta, form=form)
    assert abs(certificate.bound / expected - 1.0) <= RELATIVE


def test_auto_uses_the_engine_for_per_neuron_sectors_of_deep_nets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYLIP_SOLVER", raising=False)
    weights = random_network(np.random.default_rng(23), (3, 5, 5, 2))
    alpha, beta = np.zeros(10), np.linspace(0.2, 1.0, 10)
    assert pylip.certify(weights, alpha=alpha, beta=beta).solver == "PYLIP-ENGINE"
    # a ReLU fixed on ([1, 1]) is linear: its multiplier is unbounded at the optimum, so the SDP
    # goes to a cvxpy solver
    alpha[3] = beta[3] = 1.0
    linear = pylip.certify(weights, alpha=alpha, beta=beta)
    assert linear.solver != "PYLIP-ENGINE" and linear.verified
    with pytest.raises(InputError, match="alpha_i = beta_i"):
        pylip.certify(weights, alpha=alpha, beta=beta, formulation="engine")


def test_zero_rows_and_rank_deficient_weights() -> None:
    rng = np.random.default_rng(7)
    weights = random_network(rng, (4, 8, 6, 3))
    weights[0][2] = 0.0  # a constant neuron
    weights[1][:, 5] = 0.0  # a neuron nobody reads
    weights[1] = weights[1][:, :3] @ rng.standard_normal((3, 8))  # rank 3
    weights[1][4] = 0.0
    certificate = pylip.certify(weights, formulation="engine")
    certificate.prove(weights)
    assert abs(certificate.bound / reference_bound(weights, 0.0, 1.0) - 1.0) <= RELATIVE


def test_wide_input_is_reduced_to_the_row_space_exactly() -> None:
    rng = np.random.default_rng(3)
    weights = random_network(rng, (40, 5, 4, 2))
    certificate = pylip.certify(weights, activation="relu", formulation="engine")
    certificate.prove(weights)
    assert abs(certificate.bound / reference_bound(weights, 0.0, 1.0) - 1.0) <= RELATIVE


def test_a_general_sector() -> None:
    rng = np.random.default_rng(5)
    weights = random_network(rng, (3, 6, 6, 2))
    certificate = pylip.certify(weights, alpha=0.2, beta=0.9, formulation="engine")
    certificate.prove(weights)
    assert abs(certificate.bound / reference_bound(weights, 0.2, 0.9) - 1.0) <= RELATIVE


def test_auto_uses_the_engine_for_deep_nets_unless_a_solver_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYLIP_SOLVER", raising=False)
    rng = np.random.default_rng(11)
    deep = random_network(rng, (3, 5, 5, 2))
    assert pylip.certify(deep).solver == "PYLIP-ENGINE"
    assert pylip.certify(deep, solver="CLARABEL").solver == "CLARABEL"
    assert pylip.certify(random_network(rng, (3, 5, 2))).solver != "PYLIP-ENGINE"
    monkeypatch.setenv("PYLIP_SOLVER", "CLARABEL")
    assert pylip.certify(deep).solver == "CLARABEL"


def test_auto_uses_the_engine_for_one_wide_hidden_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYLIP_SOLVER", raising=False)
    rng = np.random.default_rng(12)
    wide = random_network(rng, (40, 20, 10))  # the reduced form's cone: 20 + 10 rows
    narrow = random_network(rng, (10, 12, 2))  # 10 + 2 rows
    auto = pylip.certify(wide, activation="relu")
    assert auto.solver == "PYLIP-ENGINE"
    reduced = pylip.certify(wide, activation="relu", formulation="reduced")
    assert abs(auto.bound / reduced.bound - 1.0) <= RELATIVE
    assert pylip.certify(narrow).solver == "CLARABEL"
    assert pylip.certify(wide, solver="CLARABEL").solver == "CLARABEL"


def test_bad_inputs_are_refused() -> None:
    rng = np.random.default_rng(2)
    weights = random_network(rng, (3, 4, 4, 2))
    with pytest.raises(InputError, match="form"):
        pylip.certify(weights, form="network", allow_unsound=True, formulation="engine")
    with pytest.raises(InputError, match="solver"):
        pylip.certify(weights, formulation="engine", solver="SCS")
    with pytest.raises(InputError, match="hidden layer"):
        engine.solve_certificate_sdp(weights[:1], 0.0, 1.0)
    with pytest.raises(InputError, match="tol"):
        engine.solve_certificate_sdp(weights, 0.0, 1.0, tol=0.5)
    with pytest.raises(InputError, match="sector"):
        engine.solve_certificate_sdp(weights, 1.0, 0.5)
    with pytest.raises(InputError, match="alpha_i < beta_i"):
        engine.solve_certificate_sdp(weights, np.ones(8), np.zeros(8))
    with pytest.raises(InputError, match="one entry per hidden neuron"):
        engine.solve_certificate_sdp(weights, np.zeros(3), np.ones(3))
    with pytest.raises(InputError, match="margin"):
        engine.solve_certificate_sdp(weights, 0.0, 1.0, margin=-1.0)
    with pytest.raises(InputError, match="margin"):
        engine.solve_certificate_sdp(weights, 0.0, 1.0, margin=np.ones(5))
    with pytest.raises(InputError, match="zero"):
        engine.solve_certificate_sdp([weights[0], np.zeros((4, 4)), weights[2]], 0.0, 1.0)
    with pytest.raises(InputError, match="finite"):
        engine.solve_certificate_sdp([weights[0] * np.nan, weights[1], weights[2]], 0.0, 1.0)


def test_a_zero_layer_still_gives_the_structural_certificate() -> None:
    rng = np.random.default_rng(4)
    weights = random_network(rng, (3, 4, 4, 2))
    weights[1] = np.zeros((4, 4))
    certificate = pylip.certify(weights, formulation="engine")
    assert certificate.bound == 0.0 and certificate.proof_method == "structure"


def test_a_stalled_engine_hands_the_sdp_to_the_structured_formulation(monkeypatch):
    from pylip.errors import SolverError

    def stalled(*args, **kwargs):
        raise SolverError("pylip's LipSDP engine did not reach a relative gap of 1e-09 in 200 steps")

    monkeypatch.setattr(engine, "solve_certificate_sdp", stalled)
    monkeypatch.delenv("PYLIP_SOLVER", raising=False)  # auto picks the engine only with no solver named
    rng = np.random.default_rng(5)
    weights = [rng.standard_normal((6, 4)), rng.standard_normal((5, 6)), rng.standard_normal((2, 5))]
    fallen_back = pylip.certify(weights)
    assert fallen_back.solver == "CLARABEL" and fallen_back.verified
    assert "engine did not reach" in fallen_back.notes[-1]
    structured = pylip.certify(weights, formulation="structured", solver="CLARABEL")
    assert fallen_back.bound == pytest.approx(structured.bound, rel=1e-12)


def test_a_fallback_solver_is_tried_only_where_its_sdp_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    from pylip.errors import SolverError
    from pylip.lipsdp import memory

    def stalled(*args, **kwargs):
        raise SolverError("pylip's LipSDP engine did not reach a relative gap of 1e-09 in 200 steps")

    monkeypatch.setattr(engine, "solve_certificate_sdp", stalled)
    monkeypatch.delenv("PYLIP_SOLVER", raising=False)
    rng = np.random.default_rng(6)
    weights = random_network(rng, (4, 10, 10, 2))
    sizes = [4, 10, 10, 2]
    cones = memory.certificate_cone_sizes("structured", sizes)
    interior = memory.estimate("structured", cones, "CLARABEL").bytes
    first_order = memory.estimate("structured", cones, "SCS").bytes
    # room for the engine and SCS, not for an interior-point solver's structured SDP
    room = (interior + first_order) / 2
    assert memory.engine_estimate(sizes).bytes < room and first_order < room < interior
    monkeypatch.setattr(memory, "available_bytes", lambda: room / memory.FIT_FRACTION)
    fallen_back = pylip.certify(weights)
    assert fallen_back.solver == "SCS" and fallen_back.verified  # Clarabel, then CVXOPT, were skipped


@pytest.mark.skipif("CVXOPT" not in cp.installed_solvers(), reason="CVXOPT is not installed")
def test_the_structured_formulation_defaults_to_cvxopt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYLIP_SOLVER", raising=False)
    rng = np.random.default_rng(7)
    weights = random_network(rng, (3, 5, 5, 2))
    default = pylip.certify(weights, formulation="structured")
    assert default.solver == "CVXOPT" and default.verified
    assert abs(default.bound / reference_bound(weights, 0.0, 1.0) - 1.0) <= RELATIVE
    assert pylip.certify(weights, formulation="structured", solver="SCS").solver == "SCS"
    monkeypatch.setenv("PYLIP_SOLVER", "CLARABEL")
    assert pylip.certify(weights, formulation="structured").solver == "CLARABEL"


def margin_free_data(weights: list[np.ndarray], alpha: Any, beta: Any, form: str, margin: float) -> Any:
    """The deep engine's data of (6) with ``certify``'s relative margin, as the engine solves it."""
    if margin:
        alpha, beta, _ = engine._margin_free_sector(alpha, beta, margin, hidden_layers=len(weights) - 1)
    return engine._lmi_data(weights, alpha, beta, form, engine.DEFAULT_TOLERANCE)


@pytest.mark.parametrize("alpha, beta", GENERAL_SECTORS)
@pytest.mark.parametrize("form", ["neuron", "layer"])
@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_the_initial_point_is_strictly_feasible(alpha: float, beta: float, form: str, margin: float) -> None:
    rng = np.random.default_rng(5)
    for sizes in [(3, 4, 2), (2, 6, 6, 6, 2), (12, 5, 7, 3)]:
        weights = random_network(rng, sizes)
        data = margin_free_data(weights, alpha, beta, form, margin)
        s, x = engine._initial_point(weights, data)
        assert s > 0.0 and np.all(x > 0.0)
        assert engine._strictly_feasible_slack(data, s, x)[1] is not None


def test_the_initial_point_of_a_deep_net_starts_near_the_optimum() -> None:
    # ten hidden layers: Young's inequality on every cross term started 6e6 times above the
    # optimum (and spent 35 of 60 steps coming down); the Schur recursion starts within GROWTH
    # per layer, 2^11 at most, of a feasible point it tightens layer by layer
    weights = random_network(np.random.default_rng(0), (5, *[32] * 10, 3))
    data = margin_free_data(weights, 0.0, 1.0, "neuron", 0.0)
    start, _ = engine._initial_point(weights, data)
    optimum = engine.solve_certificate_sdp(weights, 0.0, 1.0).squared_bound
    assert optimum <= start <= engine.GROWTH ** 11 * optimum


@pytest.mark.parametrize(
    "alpha, beta, per_neuron", [(0.0, 1.0, False), (-0.5, 0.3, False), (-0.5, 0.5, False), (0.2, 0.9, True)]
)
@pytest.mark.parametrize("form", ["neuron", "layer"])
def test_the_newton_matrix_is_the_trace_formula(alpha: float, beta: float, per_neuron: bool, form: str
                                                 ) -> None:
    # tr(F_i X F_j Z^-1) with F_i = dP/dy_i formed densely, against the rank-two assembly
    rng = np.random.default_rng(31)
    weights = random_network(rng, (4, 5, 3, 6, 2))
    if per_neuron:
        alpha = rng.uniform(-0.2, 0.4, 14)
        beta = alpha + rng.uniform(0.1, 1.0, 14)
    data = margin_free_data(weights, alpha, beta, form, 0.0)
    n, k = data.size, data.spread.shape[1]
    basis = np.eye(k + 1)
    F = [data.matrix(basis[i, -1], data.spread @ basis[i, :-1]) - data.constant for i in range(k + 1)]
    X = rng.standard_normal((n, n))
    X = X @ X.T + n * np.eye(n)
    Zinv = rng.standard_normal((n, n))
    Zinv = Zinv @ Zinv.T + n * np.eye(n)
    dense = np.array([[np.trace(Fi @ X @ Fj @ Zinv) for Fj in F] for Fi in F])
    assert np.allclose(engine._schur(data, X, Zinv), dense, rtol=1e-12, atol=1e-12 * np.abs(dense).max())


def test_a_sector_symmetric_about_zero() -> None:
    # alpha = -beta: the sector's M has q = 0, where the rank-two factors take their other branch
    rng = np.random.default_rng(32)
    weights = random_network(rng, (3, 5, 4, 2))
    certificate = pylip.certify(weights, alpha=-0.5, beta=0.5, formulation="engine")
    certificate.prove(weights)
    assert abs(certificate.bound / reference_bound(weights, -0.5, 0.5) - 1.0) <= RELATIVE


def test_a_solve_stopped_by_rounding_returns_its_proven_point(monkeypatch: pytest.MonkeyPatch) -> None:
    # with no stopping gap the method runs until rounding stops it: it returns its point with the
    # certified gap, and certify proves it and says how far from the optimum it may be
    monkeypatch.setattr(engine, "BOUND_GAP", 0.0)
    solve = engine.solve_certificate_sdp
    monkeypatch.setattr(engine, "solve_certificate_sdp", lambda *a, **k: solve(*a, **{**k, "tol": 1e-300}))
    weights = random_network(np.random.default_rng(33), (3, 6, 6, 2))
    result = engine.solve_certificate_sdp(weights, 0.0, 1.0)
    assert not result.converged and 0.0 <= result.gap <= engine.ACCEPTABLE_GAP * result.squared_bound
    assert result.newton_steps < engine.MAX_STEPS
    expected = reference_bound(weights, 0.0, 1.0) ** 2
    assert result.squared_bound - result.gap <= expected * (1.0 + RELATIVE)
    assert abs(result.squared_bound / expected - 1.0) <= 2 * RELATIVE
    stopped = pylip.certify(weights, activation="relu", formulation="engine")
    assert stopped.status == "optimal_inaccurate" and stopped.verified
    assert "stopped at rounding" in stopped.notes[-1]
    stopped.prove(weights)


def test_a_solve_far_from_the_optimum_at_its_step_limit_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from pylip.errors import SolverError

    weights = random_network(np.random.default_rng(34), (3, 6, 6, 2))
    with pytest.raises(SolverError, match="step limit"):
        engine.solve_certificate_sdp(weights, 0.0, 1.0, max_steps=3)


@pytest.mark.parametrize("margin", [1e-9, 0.3])
def test_the_relative_margin_is_a_margin_free_sdp_in_other_sectors(margin: float) -> None:
    # P(L^2, T) + margin diag(L^2 I, T) = P'((1 - margin) L^2, T / kappa) with the mapped sectors; a
    # linear neuron (alpha_i = beta_i) keeps its sector and has no margin on its multiplier
    rng = np.random.default_rng(35)
    W0, W1 = random_network(rng, (3, 9, 2))
    alpha = np.concatenate([np.zeros(4), rng.uniform(-0.3, 0.5, 5)])
    beta = alpha + np.concatenate([np.ones(4), rng.uniform(0.1, 1.0, 5)])
    beta[5] = alpha[5]
    mapped_alpha, mapped_beta, kappa = engine._margin_free_sector(alpha, beta, margin, hidden_layers=1)
    free = alpha < beta
    assert np.all(mapped_alpha[free] < mapped_beta[free]) and np.all(mapped_alpha[:4] == 0.0)
    assert mapped_alpha[5] == mapped_beta[5] == alpha[5] and kappa[5] == 1.0
    t, squared = rng.uniform(0.5, 2.0, 9), 3.7
    P = np.block([  # eq. (5) written out, with the relative margin
        [-(1.0 - margin) * squared * np.eye(3) - 2.0 * W0.T @ np.diag(alpha * beta * t) @ W0,
         W0.T @ np.diag((alpha + beta) * t)],
        [np.diag((alpha + beta) * t) @ W0, -np.diag((2.0 - margin * free) * t) + W1.T @ W1],
    ])
    mapped_t = t / kappa
    mapped = np.block([
        [-(1.0 - margin) * squared * np.eye(3)
         - 2.0 * W0.T @ np.diag(mapped_alpha * mapped_beta * mapped_t) @ W0,
         W0.T @ np.diag((mapped_alpha + mapped_beta) * mapped_t)],
        [np.diag((mapped_alpha + mapped_beta) * mapped_t) @ W0, -2.0 * np.diag(mapped_t) + W1.T @ W1],
    ])
    assert np.allclose(mapped, P, rtol=0, atol=1e-13)


def test_linear_neurons_of_one_hidden_layer_keep_their_bound_under_the_default_margin() -> None:
    # the relative margin leaves linear neurons' multipliers free: with it on all of T, a net with 40 %
    # of its neurons fixed on ([1, 1]) rose by 4e-6 to 1.4e-5
    rng = np.random.default_rng(3)
    weights = random_network(rng, (4, 12, 3))
    alpha, beta = np.zeros(12), np.ones(12)
    alpha[rng.random(12) < 0.4] = 1.0
    default = pylip.certify(weights, alpha=alpha, beta=beta, formulation="engine")
    plain = pylip.certify(weights, alpha=alpha, beta=beta, formulation="engine", margin=0.0)
    assert abs(default.bound / plain.bound - 1.0) <= RELATIVE
