"""Per-neuron slope sectors in certify, the proofs, the repair and the trivial cap."""

import numpy as np
import pytest

import pylip
from pylip.lipsdp import lmi, proof
from pylip.lipsdp.certificate import trivial_certificate_point

# reduced and structured solve the same SDP; Clarabel's default accuracy
FORMULATION_AGREEMENT = 1e-6
# a sector [a, a] (a dead or linear neuron) is reached only as its multiplier t -> inf;
# the solver stops at a finite t (measured: 5e-6 relative for [0, 0], 3e-5 for [1, 1])
FIXED_SLOPE_LIMIT = 1e-4


def _net(seed, sizes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((m, n)) / np.sqrt(n) for n, m in zip(sizes[:-1], sizes[1:])]


def test_equal_entries_are_the_scalar_sector():
    weights = _net(0, [4, 6, 3])
    scalar = pylip.certify(weights, alpha=0.0, beta=1.0)
    vector = pylip.certify(weights, alpha=np.zeros(6), beta=np.ones(6))
    assert vector.bound == scalar.bound and vector.alpha == 0.0


@pytest.mark.parametrize("form", ["neuron", "layer"])
def test_reduced_and_structured_agree_with_per_neuron_sectors(form):
    weights = _net(1, [5, 7, 2])
    rng = np.random.default_rng(2)
    alpha = rng.uniform(-0.2, 0.3, 7)
    beta = alpha + rng.uniform(0.0, 0.8, 7)
    reduced = pylip.certify(weights, alpha=alpha, beta=beta, form=form, formulation="reduced")
    structured = pylip.certify(weights, alpha=alpha, beta=beta, form=form, formulation="structured")
    assert reduced.bound == pytest.approx(structured.bound, rel=FORMULATION_AGREEMENT)
    for cert in (reduced, structured):
        np.testing.assert_array_equal(cert.alpha, alpha)
        assert cert.prove(weights).holds
        assert proof.prove_certificate_exact(weights, np.diag(cert.T), cert.bound, alpha, beta).holds


def test_dead_and_linear_neurons():
    """[0, 0] removes a neuron; [1, 1] everywhere makes the net linear: L = ||W1 W0||."""
    weights = _net(3, [4, 5, 3])
    beta = np.ones(5)
    beta[[1, 3]] = 0.0
    dead = pylip.certify(weights, alpha=0.0, beta=beta)
    keep = [0, 2, 4]
    pruned = pylip.certify([weights[0][keep], weights[1][:, keep]], activation="relu")
    assert pruned.bound * (1 - FORMULATION_AGREEMENT) <= dead.bound <= pruned.bound * (1 + FIXED_SLOPE_LIMIT)
    linear = pylip.certify(weights, alpha=np.ones(5), beta=np.ones(5))
    product = np.linalg.norm(weights[1] @ weights[0], 2)
    assert product <= linear.bound <= product * (1 + FIXED_SLOPE_LIMIT)


def test_per_layer_lists_and_narrower_sectors_give_smaller_bounds():
    weights = _net(4, [4, 6, 5, 3])
    full = pylip.certify(weights, activation="tanh")
    narrow = pylip.certify(weights, alpha=[0.2, np.full(5, 0.1)], beta=[np.linspace(0.4, 0.9, 6), 0.8])
    assert narrow.bound <= full.bound * (1 + FORMULATION_AGREEMENT)
    assert narrow.alpha.shape == (11,) and narrow.beta[6] == 0.8
    assert narrow.prove(weights).holds


def test_negative_alpha_per_neuron_is_a_valid_bound():
    weights = _net(5, [3, 8, 2])
    alpha = np.full(8, -0.3)
    cert = pylip.certify(weights, alpha=alpha, beta=1.0, formulation="structured")
    # a leaky relu with slope -0.3 has this sector everywhere
    lower = pylip.sampled_lower_bound(weights, activation="leakyrelu:-0.3", n_samples=5000)
    assert lower <= cert.bound
    again = pylip.certify(weights, activation="leakyrelu:-0.3")
    assert cert.bound == pytest.approx(again.bound, rel=FORMULATION_AGREEMENT)


def test_trivial_cap_and_verify_accept_vectors():
    weights = _net(6, [3, 5, 4, 2])
    alpha = np.zeros(9)
    beta = np.linspace(0.2, 1.0, 9)
    point = trivial_certificate_point(weights, alpha, beta)
    assert point is not None
    assert point.bound <= lmi.trivial_bound(weights, beta, alpha) * (1 + 1e-8)
    assert pylip.verify(weights, point.bound, point.t, alpha=alpha, beta=beta).holds
    assert pylip.verify(weights, point.bound, point.t, alpha=alpha, beta=beta, exact=True).holds
    # the trivial bound uses each layer's steepest |slope|, negative alpha included
    assert lmi.trivial_bound(weights, 0.5, -2.0) == pytest.approx(lmi.trivial_bound(weights, 2.0))


def test_network_form_and_original_refuse_vectors():
    weights = _net(7, [3, 4, 2])
    with pytest.raises(pylip.InputError, match="diagonal T"):
        pylip.certify(weights, alpha=np.zeros(4), beta=np.linspace(0.5, 1, 4), form="network",
                      allow_unsound=True)
    with pytest.raises(pylip.InputError, match="original"):
        pylip.certify(weights, alpha=np.linspace(0, 0.1, 4), beta=1.0, formulation="original")


def test_repair_with_per_neuron_sectors():
    from pylip.lipsdp import repair

    weights = _net(8, [4, 6, 3])
    alpha, beta = np.linspace(-0.1, 0.2, 6), np.linspace(0.5, 1.0, 6)
    cert = pylip.certify(weights, alpha=alpha, beta=beta)
    t = np.diag(cert.T)
    low = cert.bound * (1 - 1e-3)  # below the minimum for this T: must be raised
    assert not proof.prove_certificate(weights, t, low, alpha, beta).holds
    point = repair.secure_bound(weights, t, low, alpha, beta)
    assert point.repair and point.bound > low
    assert proof.prove_certificate_exact(weights, point.t, point.bound, alpha, beta).holds
    shrunk = repair.secure_weights(weights, t, low, alpha, beta)
    assert proof.prove_certificate_exact(shrunk.weights, t, low, alpha, beta).holds


def test_verify_command_with_per_neuron_sectors(tmp_path, capsys):
    from pylip.cli import main
    from pylip.io import save_certificate

    weights = _net(9, [3, 5, 2])
    alpha, beta = np.linspace(0.0, 0.2, 5), np.linspace(0.4, 1.0, 5)
    cert = pylip.certify(weights, alpha=alpha, beta=beta)
    path = save_certificate(cert, weights, tmp_path / "cert.json")
    assert main(["verify", str(path)]) == 0
    assert "proven" in capsys.readouterr().out
    # the same L and T do not hold for the wider sector [0, 1]
    assert main(["verify", str(path), "--activation", "tanh"]) == 1
