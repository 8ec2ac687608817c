"""Unit tests of the certificate core (Theorem 1, eq. 5-6, and its multi-layer form)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import pylip
from pylip.lipsdp import lmi
from pylip.lipsdp.certificate import UnsoundCertificateWarning
from pylip.lipsdp.solvers import resolve_solver


def random_net(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((m, n)) / np.sqrt(n) for n, m in zip(sizes[:-1], sizes[1:])]


def test_certificate_fields_and_lmi():
    weights = random_net([2, 8, 3])
    cert = pylip.certify(weights)
    assert cert.form == "neuron" and cert.solver == resolve_solver(None) and cert.sound
    assert cert.status in ("optimal", "optimal_inaccurate")
    assert cert.T.shape == (8, 8) and np.all(np.diag(cert.T) >= 0)
    assert cert.squared_bound == cert.bound**2
    assert cert.max_eigenvalue <= 0.0
    assert cert.verify(weights) <= 0.0
    assert cert.bound <= cert.trivial_bound
    assert cert.solve_time > 0
    assert cert.layer_sizes == (2, 8, 3)


def test_lmi_of_one_hidden_layer_is_equation_5():
    rng = np.random.default_rng(1)
    W0, W1 = rng.standard_normal((4, 3)), rng.standard_normal((2, 4))
    T, rho, alpha, beta = np.diag(rng.uniform(0.5, 2, 4)), 1.7, 0.2, 0.9
    expected = np.block(
        [
            [-2 * alpha * beta * W0.T @ T @ W0 - rho * np.eye(3), (alpha + beta) * W0.T @ T],
            [(alpha + beta) * T @ W0, -2 * T + W1.T @ W1],
        ]
    )
    actual = lmi.certificate_matrix(lmi.network_structure([W0, W1]), T, rho, alpha, beta)
    np.testing.assert_allclose(actual, expected, atol=1e-14)


def test_minimal_squared_bound_is_the_exact_threshold():
    weights = random_net([3, 6, 2], seed=2)
    cert = pylip.certify(weights)
    structure = lmi.network_structure(weights)
    rho = lmi.minimal_squared_bound(structure, cert.T, 0.0, 1.0)
    assert lmi.lmi_max_eigenvalue(structure, cert.T, rho * (1 + 1e-9), 0.0, 1.0) <= 0
    assert lmi.lmi_max_eigenvalue(structure, cert.T, rho * (1 - 1e-6), 0.0, 1.0) > 0
    assert rho == pytest.approx(cert.squared_bound, rel=1e-6)


def test_a_solve_stopped_at_the_iteration_limit_is_redone_by_the_next_solver(monkeypatch):
    """SCS at max_iters returns no optimum (its dead-neuron points were 2e-4 loose): Clarabel re-solves."""
    pytest.importorskip("scs")
    from pylip.lipsdp import solvers

    weights = random_net([3, 6, 2], seed=5)
    monkeypatch.setitem(solvers.SOLVER_OPTIONS, "SCS", {"eps_abs": 1e-12, "eps_rel": 1e-12, "max_iters": 50})
    cert = pylip.certify(weights, solver="SCS")
    assert cert.solver == "CLARABEL" and not cert.iteration_limit
    assert any("SCS stopped at its iteration limit" in note for note in cert.notes)
    assert cert.bound == pylip.certify(weights, solver="CLARABEL").bound  # the same solve
    settings = {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000}
    monkeypatch.setitem(solvers.SOLVER_OPTIONS, "SCS", settings)
    unlimited = pylip.certify(weights, solver="SCS")
    assert unlimited.solver == "SCS" and not unlimited.iteration_limit


def test_solver_point_that_misses_the_lmi_is_repaired(monkeypatch):
    """Feed the checker a too-small L^2 as if a solver had returned it."""
    from pylip.lipsdp import certificate

    weights = random_net([1, 5, 1], seed=3)
    cert = pylip.certify(weights)
    structure = lmi.network_structure(weights)
    fixed = certificate._checked_certificate(
        structure, cert.T, 0.9 * cert.squared_bound, 0.0, 1.0, form="neuron", solver="X",
        status="optimal_inaccurate", solve_time=0.0, margin=0.0, weights=weights,
    )
    assert fixed.repaired
    assert fixed.solver_bound == pytest.approx(np.sqrt(0.9) * cert.bound)
    assert fixed.bound == pytest.approx(cert.bound, rel=1e-6)
    assert lmi.lmi_max_eigenvalue(structure, cert.T, fixed.bound**2, 0.0, 1.0) <= 0


def test_point_on_the_boundary_is_moved_beyond_eigenvalue_rounding():
    """At the exact minimal L^2 for T the LMI is tight: its sign is left to rounding."""
    from pylip.lipsdp import certificate

    weights = random_net([2, 12, 8, 2], seed=5)
    cert = pylip.certify(weights)
    structure = lmi.network_structure(weights)
    exact = lmi.minimal_squared_bound(structure, cert.T, 0.0, 1.0)
    tight = certificate._checked_certificate(
        structure, cert.T, exact, 0.0, 1.0, form="neuron", solver="X",
        status="optimal", solve_time=0.0, margin=0.0, weights=weights,
    )
    P = lmi.certificate_matrix(structure, tight.T, tight.squared_bound, 0.0, 1.0)
    assert tight.max_eigenvalue <= -lmi.rounding_slack(P)
    assert np.linalg.eigvalsh(P).max() <= 0.0  # another LAPACK driver agrees
    assert tight.squared_bound == pytest.approx(exact, rel=1e-10) and tight.squared_bound >= exact


def test_unrepairable_T_raises():
    from pylip.lipsdp import certificate

    weights = random_net([1, 4, 1], seed=4)
    structure = lmi.network_structure(weights)
    with pytest.raises(pylip.CertificateError, match="no Lipschitz bound"):
        certificate._checked_certificate(
            structure, np.zeros((4, 4)), 1.0, 0.0, 1.0, form="neuron", solver="X",
            status="optimal", solve_time=0.0, margin=0.0, weights=weights,
        )


def test_closed_form_equals_sdp_for_one_input_one_output():
    for seed in range(5):
        W0, W1 = random_net([1, 10, 1], seed=seed)
        W0 *= 3.0
        sdp = pylip.certify([W0, W1]).bound
        assert pylip.closed_form_bound(W0, W1) == pytest.approx(sdp, rel=1e-6)


def test_sigmoid_sector_scales_the_bound():
    weights = random_net([2, 6, 1], seed=5)
    tanh = pylip.certify(weights, activation="tanh").bound
    sigmoid = pylip.certify(weights, activation="sigmoid").bound
    assert sigmoid == pytest.approx(tanh / 4, rel=1e-5)


def test_positive_alpha_uses_general_form():
    weights = random_net([2, 6, 2], seed=6)
    zero = pylip.certify(weights, alpha=0.0, beta=1.0)
    positive = pylip.certify(weights, alpha=0.5, beta=1.0)
    assert positive.alpha == 0.5
    assert positive.bound <= zero.bound * (1 + 1e-6)  # a narrower sector can only help
    positive.verify(weights)


def test_layer_form_is_looser_than_neuron_form():
    weights = random_net([3, 7, 5, 2], seed=7)
    neuron = pylip.certify(weights, form="neuron")
    layer = pylip.certify(weights, form="layer")
    assert neuron.bound <= layer.bound * (1 + 1e-6) <= layer.trivial_bound * (1 + 1e-6)
    diag = np.diag(layer.T)
    assert np.allclose(diag[:7], diag[0]) and np.allclose(diag[7:], diag[7])


def test_network_form_needs_explicit_consent_and_warns():
    weights = random_net([1, 3, 1], seed=8)
    with pytest.raises(pylip.InputError, match="not give a valid"):
        pylip.certify(weights, form="network")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cert = pylip.certify(weights, form="network", allow_unsound=True)
    assert not cert.sound
    assert any(issubclass(w.category, UnsoundCertificateWarning) for w in caught)


def test_split_certificate_is_a_product_of_sound_bounds():
    weights = random_net([2, 5, 5, 5, 2], seed=9)
    split = pylip.certify_split(weights, layers_per_block=2)
    whole = pylip.certify(weights).bound
    assert split.bound >= whole * (1 - 1e-6)
    assert split.bound == pytest.approx(split.parts[0].bound * split.parts[1].bound)
    odd = pylip.certify_split(weights[:3], layers_per_block=2)
    assert odd.parts[1] == pytest.approx(np.linalg.norm(weights[2], 2))


def test_solver_choice_from_environment(monkeypatch):
    monkeypatch.setenv("PYLIP_SOLVER", "cvxopt")
    cert = pylip.certify(random_net([1, 4, 1]))
    assert cert.solver == "CVXOPT"


def test_original_formulation_gives_the_same_bound():
    weights = random_net([1, 10, 1], seed=11)
    default = pylip.certify(weights)
    original = pylip.certify(weights, formulation="original")
    # the certified-bound tolerance of reference/README.md: CVXOPT stops at its default relative
    # gap (1e-6; measured 3e-7 here on the reduced form), the interior-point others at ~1e-9
    assert original.bound == pytest.approx(default.bound, rel=1e-6)
    assert original.max_eigenvalue <= 0.0
    exact = pylip.closed_form_bound(*weights)  # the SDP's optimum for one input and one output
    for cert in (default, original):
        assert exact * (1 - 1e-12) <= cert.bound <= exact * (1 + 1e-6)
    with pytest.raises(pylip.InputError, match="formulation='original' is calculate_Lipschitz"):
        pylip.certify(weights, form="layer", formulation="original")
    with pytest.raises(pylip.InputError, match="formulation must be one of"):
        pylip.certify(weights, formulation="dense")


def test_a_failing_solver_hands_the_sdp_to_the_next_one(monkeypatch):
    """The SDP (6) is always feasible: one solver's failure is retried with the stated order."""
    from pylip.errors import SolverError
    from pylip.lipsdp import certificate

    real_solve = certificate.solve

    def failing_scs(problem, solver, **kwargs):
        if solver == "SCS":
            raise SolverError("SCS failed on the LipSDP-neuron certificate SDP: status 'solver_error'")
        return real_solve(problem, solver, **kwargs)

    monkeypatch.setattr(certificate, "solve", failing_scs)
    rng = np.random.default_rng(4)
    weights = [0.02 * rng.standard_normal((5, 8)), 0.02 * rng.standard_normal((2, 5))]
    fallen_back = pylip.certify(weights, activation="sigmoid", solver="SCS")
    assert fallen_back.solver == "CLARABEL" and fallen_back.verified
    assert "SCS failed" in fallen_back.notes[-1]
    direct = pylip.certify(weights, activation="sigmoid", solver="CLARABEL")
    assert fallen_back.bound == direct.bound
