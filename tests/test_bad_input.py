"""Bad input gets a clear exception naming the field and the fix."""

from __future__ import annotations

import numpy as np
import pytest

import pylip
from pylip import solvers

GOOD = [np.ones((3, 2)), np.ones((1, 3))]
NET_1_2_1 = {"W0": [[1.0], [2.0]], "W1": [[1.0, 1.0]], "b0": [0, 0], "b1": [0]}


@pytest.mark.parametrize(
    "weights, match",
    [
        ([np.ones((3, 2)), np.ones((1, 4))], r"weights\[1\] has 4 columns"),
        ([], "at least 1 weight matrix"),
        ([np.ones((3, 2)), np.ones(3)], r"weights\[1\] must be 2-D"),
        ([np.ones((0, 2)), np.ones((1, 0))], r"weights\[0\] is empty"),
        ([np.array([[np.nan, 1.0]]).T, np.ones((1, 1))], r"weights\[0\] contains 1 NaN or inf"),
        ([np.ones((3, 2)), np.full((1, 3), np.inf)], r"weights\[1\] contains 3 NaN or inf"),
        ([[["a"]], [[1.0]]], r"weights\[0\] must be a 2-D array of numbers"),
        (np.ones((3, 3)), "list of weight matrices"),
    ],
)
def test_bad_weights(weights, match):
    with pytest.raises(pylip.InputError, match=match):
        pylip.certify(weights)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"alpha": 1.0, "beta": 0.5}, "alpha must not exceed beta"),
        ({"alpha": [0.0, 2.0, 0.0], "beta": 1.0}, r"alpha must not exceed beta.*neuron 1"),
        ({"alpha": [0.0, 0.0], "beta": 1.0}, "one number per hidden neuron"),
        ({"beta": np.nan}, "finite"),
        ({"activation": "mish"}, "activation must be one of.*silu.*gelu.*identity"),
        ({"activation": "tanh:2"}, "activation must be one of"),
        ({"activation": "leakyrelu:x"}, "must be a number"),
        ({"activation": "elu:-1"}, "elu's parameter must be >= 0"),
        ({"form": "diag"}, "form must be one of"),
        ({"margin": -1.0}, "margin"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(pylip.InputError, match=match):
        pylip.certify(GOOD, **kwargs)


def test_unknown_solver_names_the_choices():
    with pytest.raises(pylip.SolverError, match="unknown solver 'gurobi'.*CLARABEL"):
        pylip.certify(GOOD, solver="gurobi")


def test_unknown_solver_from_environment_says_where_it_came_from(monkeypatch):
    monkeypatch.setenv("PYLIP_SOLVER", "nope")
    with pytest.raises(pylip.SolverError, match=r"\$PYLIP_SOLVER"):
        pylip.certify(GOOD)


def test_mosek_without_licence_explains_the_fix():
    available, reason = solvers.mosek_available()
    if available:
        pytest.skip("a MOSEK licence is present on this machine")
    if "not installed" in reason:
        with pytest.raises(pylip.SolverError, match="pip install"):
            pylip.certify(GOOD, solver="MOSEK")
    else:
        with pytest.raises(pylip.SolverError, match="MOSEKLM_LICENSE_FILE.*CLARABEL"):
            pylip.certify(GOOD, solver="mosek")


def test_solver_failure_raises_with_status(monkeypatch):
    import cvxpy as cp

    def fake_solve(self, *args, **kwargs):
        self._status = cp.INFEASIBLE
        return None

    monkeypatch.setattr(cp.Problem, "solve", fake_solve)
    monkeypatch.setattr(cp.Problem, "status", property(lambda self: cp.INFEASIBLE))
    with pytest.raises(pylip.SolverError, match="status 'infeasible'") as info:
        pylip.certify(GOOD)
    assert info.value.status == "infeasible"


@pytest.mark.parametrize(
    "parameters, dims, match",
    [
        ({"W0": [[1.0], [2.0]], "W1": [[1.0, 1.0]], "b0": [0.0, 0.0]}, None, "no field 'b1'"),
        ({"W0": [[1.0], [2.0]], "W1": [[1.0, 1.0]], "b0": [0.0], "b1": [0.0]}, None, r"b0'\] has 1 entries"),
        ({"W0": [[1.0], [2.0]], "W1": [[1.0, 1.0, 1.0]], "b0": [0, 0], "b1": [0]}, None, "3 columns"),
        (NET_1_2_1, {"n_x": 1, "n_h": 3, "n_y": 1}, r"x\['n_h'\] = 3"),
        (NET_1_2_1, {"n_x": 1, "n_h": 2}, "no field 'n_y'"),
        ({"W0": [[1.0], [np.nan]], "W1": [[1.0, 1.0]], "b0": [0, 0], "b1": [0]}, None, "NaN"),
    ],
)
def test_calculate_Lipschitz_bad_input(parameters, dims, match):
    dims = dims or {"n_x": 1, "n_h": 2, "n_y": 1}
    with pytest.raises(pylip.InputError, match=match):
        pylip.calculate_Lipschitz(parameters, dims)


def test_build_T_rejects_deeper_nets_and_bad_dims():
    with pytest.raises(pylip.InputError, match="one hidden layer"):
        pylip.build_T([np.ones((2, 1))] * 3, [np.zeros(2)] * 3, [1, 2, 1])
    with pytest.raises(pylip.InputError, match=r"net_dims must be \[n_x, n_h, n_y\]"):
        pylip.build_T([np.ones((2, 1)), np.ones((1, 2))], [np.zeros(2), np.zeros(1)], [1, 2])
