"""The Lipschitz step (10b) and dual update (10c) against the authors' solve_sdp.m.

Tolerances and their reasons (reference/README.md): W_bar within 1e-4
relative (the step is strictly convex in W_bar, so its minimiser is unique;
independent interior-point solvers agree to 3e-5); Y within
rho * 1e-4 * ||W_bar|| (Y + rho (W - W_bar) carries W_bar's error); the bound
within 1e-4 relative. The same for every solver (reference/README.md,
"Solvers": CVXOPT's defaults reach 4.6e-5, SCS with eps 1e-9 2.1e-6).
"""

from __future__ import annotations

import numpy as np
import pytest

import pylip

from .reference import solve_sdp_arguments, solve_sdp_calls

W_RTOL = 1e-4
Y_FACTOR = 1e-4
BOUND_RTOL = 1e-4

CALLS = solve_sdp_calls()


@pytest.fixture(scope="module", params=CALLS, ids=[label for label, _, _ in CALLS])
def step(request):
    _, case, call = request.param
    parameters, x = solve_sdp_arguments(case, call)
    x["T"] = np.array(x["T"])
    return parameters, x, pylip.solve_sdp(parameters, x), call["outputs"]


@pytest.mark.parametrize("name", ["W0_bar", "W1_bar"])
def test_W_bar_matches_original(step, name):
    _, _, result, expected = step
    reference = np.array(expected[name])
    assert np.linalg.norm(result[name] - reference) <= W_RTOL * np.linalg.norm(reference)


@pytest.mark.parametrize("name", ["Y0", "Y1"])
def test_dual_update_matches_original(step, name):
    _, x, result, expected = step
    reference = np.array(expected[name])
    W_bar = np.array(expected[name.replace("Y", "W") + "_bar"])
    assert np.linalg.norm(result[name] - reference) <= x["rho"] * Y_FACTOR * np.linalg.norm(W_bar)


def test_bound_matches_original(step):
    _, _, result, expected = step
    assert result["Lipschitz"] == pytest.approx(expected["Lipschitz"], rel=BOUND_RTOL)


def test_other_fields_pass_through(step):
    parameters, _, result, _ = step
    for key in ("b0", "b1", "Yb0", "Yb1", "W0", "W1"):
        assert result[key] is parameters[key]


def test_lmi7_holds_at_the_returned_point(step):
    _, x, result, _ = step
    M = pylip.admm.lmi7_matrix(result["W0_bar"], result["W1_bar"], x["T"], result["Lipschitz"] ** 2)
    assert np.linalg.eigvalsh(M).max() <= 0.0
