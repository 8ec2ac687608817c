"""The certificate against the authors' calculate_Lipschitz.m and LipSDP's published values.

Tolerances and their reasons: reference/README.md. They are the same for every
solver (the tox cells set it through PYLIP_SOLVER): SCS, a first-order method,
meets them with its settings in pylip.solvers (measured there, "Solvers").
"""

from __future__ import annotations

import numpy as np
import pytest

import pylip
from pylip.io import load_networks
from pylip.lipsdp import lmi

from .reference import REFERENCE, case_ids, certificate_output, load_json, unit_cases

BOUND_RTOL = 1e-6
PUBLISHED_ATOL = 5e-4  # LipSDP prints three decimals


@pytest.fixture(scope="module", params=unit_cases(), ids=case_ids())
def case_and_result(request):
    case = request.param
    parameters = {k: case["inputs"][k] for k in ("W0", "W1", "b0", "b1")}
    result = pylip.calculate_Lipschitz(parameters, case["dims"])
    return case, result


def test_bound_matches_original(case_and_result):
    case, result = case_and_result
    expected = certificate_output(case)["Lipschitz"]
    assert result["Lipschitz"] == pytest.approx(expected, rel=BOUND_RTOL)


def test_ok_flags_match_original_for_one_input(case_and_result):
    case, result = case_and_result
    if case["dims"]["n_x"] != 1:
        pytest.skip("the original's sampled checks only run for n_x = 1")
    expected = case["outputs"]["calculate_Lipschitz"]["ok"]
    assert list(result["ok"]) == expected


def test_lmi_check_flag_matches_original(case_and_result):
    case, result = case_and_result
    assert result["ok"][1] == certificate_output(case)["ok"][1] == 1.0


def test_returned_T_certifies_returned_bound(case_and_result):
    case, result = case_and_result
    weights = [np.array(case["inputs"]["W0"]), np.array(case["inputs"]["W1"])]
    structure = lmi.network_structure(weights)
    T = result["T"]
    assert T.shape == (case["dims"]["n_h"],) * 2
    assert np.count_nonzero(T - np.diag(np.diag(T))) == 0
    assert lmi.lmi_max_eigenvalue(structure, T, result["Lipschitz"] ** 2, 0.0, 1.0) <= 0.0


@pytest.fixture(scope="module")
def lipsdp_random_weights():
    return load_networks(REFERENCE / "peers/lipsdp/random_weights.mat")[0].weights


@pytest.mark.parametrize("form", ["neuron", "layer"])
def test_lipsdp_published_values(lipsdp_random_weights, form):
    published = load_json("paper_tables.json")["lipsdp_published"]["random_weights.mat"][form]
    cert = pylip.certify(lipsdp_random_weights, form=form, activation="relu")
    assert cert.bound == pytest.approx(published, abs=PUBLISHED_ATOL)
    cert.verify(lipsdp_random_weights)


def test_lipsdp_published_split_value(lipsdp_random_weights):
    published = load_json("paper_tables.json")["lipsdp_published"]["random_weights.mat"]["neuron_split_2"]
    split = pylip.certify_split(lipsdp_random_weights, layers_per_block=2, activation="relu")
    assert split.bound == pytest.approx(published, abs=PUBLISHED_ATOL)
    assert len(split.parts) == 2
