"""Bad input gets a clear exception naming the field and the fix."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import pylip
from pylip.lipsdp import solvers

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


# --- the bad-input classes of issue 17 (items 5-7): each with what it now gets ------------------

RNG = np.random.default_rng(0)
W0_3_5, W1_5_2 = RNG.standard_normal((5, 3)), RNG.standard_normal((2, 5))


@pytest.fixture(scope="module")
def admm_state():
    """A 3-5-2 net at W_bar = W with its certified T, and an enforce-mode x at 1.5 L."""
    parameters = pylip.initialize_parameters([W0_3_5, W1_5_2], [np.zeros(5), np.zeros(2)])
    cert = pylip.calculate_Lipschitz(parameters, {"n_x": 3, "n_h": 5, "n_y": 2})
    x = {"T": cert["T"], "rho": 1.0, "mu": 0.1, "ind_Lip": 2, "L_des": 1.5 * cert["Lipschitz"]}
    return parameters, x


COERCED_VALUES = {
    "complex weights": (lambda p, x: pylip.certify([W0_3_5 * 1j, W1_5_2]), r"weights\[0\] holds complex"),
    "complex nested list": (lambda p, x: pylip.certify([[[1 + 1j]], [[1.0]]]), "holds complex numbers"),
    "ind_Lip=2.7": (lambda p, x: pylip.solve_sdp(p, {**x, "ind_Lip": 2.7}), "ind_Lip must be 1 .* or 2"),
    "ind_Lip='2'": (lambda p, x: pylip.solve_sdp(p, {**x, "ind_Lip": "2"}), "ind_Lip must be 1 .* got '2'"),
    "ind_Lip=True": (
        lambda p, x: pylip.solve_sdp(p, {**x, "ind_Lip": True}),
        "ind_Lip must be 1 .* got True",
    ),
    "NaN biases": (
        lambda p, x: pylip.initialize_parameters([W0_3_5, W1_5_2], [np.full(5, np.nan), np.zeros(2)]),
        r"biases\[0\] contains 5 NaN",
    ),
    "LipschitzStep margin=-1": (lambda p, x: pylip.LipschitzStep(3, 5, 2, x["T"], margin=-1), "margin"),
    "LipschitzStep margin=NaN": (
        lambda p, x: pylip.LipschitzStep(3, 5, 2, x["T"], margin=float("nan")),
        "margin must be finite",
    ),
    "LipschitzStep n_x=0": (
        lambda p, x: pylip.LipschitzStep(0, 5, 2, x["T"]),
        "n_x must be a positive integer",
    ),
    "LipschitzStep n_x=2.5": (lambda p, x: pylip.LipschitzStep(2.5, 5, 2, x["T"]), "n_x must be a positive"),
    "weights None": (lambda p, x: pylip.certify(None), "weights must be a list .* got NoneType"),
    "weights dict": (
        lambda p, x: pylip.certify({"W0": W0_3_5, "W1": W1_5_2}),
        "weights must be a list .* dict",
    ),
    "beta=[1.0] (certify)": (
        lambda p, x: pylip.certify([W0_3_5, W1_5_2], beta=[1.0]),
        "beta must be a number",
    ),
    "beta=[1.0] (solve_sdp)": (lambda p, x: pylip.solve_sdp(p, x, beta=[1.0]), "beta must be a number"),
    "margin='1e-9'": (lambda p, x: pylip.certify([W0_3_5, W1_5_2], margin="1e-9"), "margin must be a number"),
    "parameters as a list": (
        lambda p, x: pylip.solve_sdp([W0_3_5, W1_5_2], x),
        "parameters must be a dict .* got list",
    ),
    "parameters as a list (calculate_Lipschitz)": (
        lambda p, x: pylip.calculate_Lipschitz([W0_3_5, W1_5_2], None),
        "parameters must be a dict",
    ),
    "x=None": (lambda p, x: pylip.solve_sdp(p, None), "x must be a dict .* got NoneType"),
    "rng='abc'": (lambda p, x: pylip.sampled_lower_bound([W0_3_5, W1_5_2], rng="abc"), "rng must be"),
    "n_samples=0": (
        lambda p, x: pylip.sampled_lower_bound([W0_3_5, W1_5_2], n_samples=0),
        "n_samples must be an integer >= 1",
    ),
}

# --- similar classes found by a second hostile pass: each got a raw exception or a wrong number ---
from pylip.lipsdp import local as _local  # noqa: E402

B_3_5_2 = [np.zeros(5), np.zeros(2)]
OTHER_NET = [np.ones((4, 3)), np.ones((2, 4))]
SECOND_PASS = {
    "n_h=NaN (ValueError)": (
        lambda p, x: pylip.calculate_Lipschitz(p, {"n_x": 3, "n_h": float("nan"), "n_y": 2}),
        r"x\['n_h'\] must be a positive integer, got nan",
    ),
    "n_h=inf (OverflowError)": (
        lambda p, x: pylip.calculate_Lipschitz(p, {"n_x": 3, "n_h": float("inf"), "n_y": 2}),
        "n_h.* must be a positive integer",
    ),
    "n_h=None (TypeError)": (
        lambda p, x: pylip.calculate_Lipschitz(p, {"n_x": 3, "n_h": None, "n_y": 2}),
        "n_h.* must be a positive integer, got None",
    ),
    "n_h='5' (coerced)": (
        lambda p, x: pylip.calculate_Lipschitz(p, {"n_x": 3, "n_h": "5", "n_y": 2}),
        "n_h.* must be a positive integer, got '5'",
    ),
    "net_dims='abc' (ValueError)": (
        lambda p, x: pylip.solve_SDP(p, x["T"], "abc", 1.0, 0.1, 2, x["L_des"]),
        r"net_dims\[0\] must be a positive integer",
    ),
    "build_T weights=None (TypeError)": (
        lambda p, x: pylip.build_T(None, B_3_5_2, [3, 5, 2]),
        "weights must be a list of weight matrices .* got NoneType",
    ),
    "initialize_parameters biases=None (TypeError)": (
        lambda p, x: pylip.initialize_parameters([W0_3_5, W1_5_2], None),
        "biases must be a list of bias vectors .* got NoneType",
    ),
    "mu='x' (ValueError)": (
        lambda p, x: pylip.solve_sdp(p, {**x, "ind_Lip": 1, "mu": "x"}),
        "mu must be a single real number, got 'x'",
    ),
    "rho='1' (coerced)": (lambda p, x: pylip.solve_sdp(p, {**x, "rho": "1"}), "rho must be a single real"),
    "L_des=True (coerced)": (lambda p, x: pylip.solve_sdp(p, {**x, "L_des": True}), "L_des must be a single"),
    "sampled biases one short (ValueError)": (
        lambda p, x: pylip.sampled_lower_bound([W0_3_5, W1_5_2], [np.zeros(5)]),
        r"biases must have one vector per layer \(2\), got 1",
    ),
    "sampled n_samples=1e12 (MemoryError)": (
        lambda p, x: pylip.sampled_lower_bound([W0_3_5, W1_5_2], n_samples=10**12),
        "n_samples = 1000000000000 is more than 1e.08",
    ),
    "pairs=3 (TypeError)": (
        lambda p, x: pylip.certify_margins([W0_3_5, W1_5_2], pairs=3),
        "pairs must be a list of .* or None, got 3",
    ),
    "pairs=[(0.5, 1)] (truncated to 0)": (
        lambda p, x: pylip.certify_margins([W0_3_5, W1_5_2], pairs=[(0.5, 1)]),
        "class index pairs of integers",
    ),
    "pairs=[(True, False)] (coerced)": (
        lambda p, x: pylip.certify_margins([W0_3_5, W1_5_2], pairs=[(True, False)]),
        "class index pairs of integers",
    ),
    "margins logits='x' (truthy)": (
        lambda p, x: pylip.certify_margins([W0_3_5, W1_5_2], logits="x"),
        "logits must be True or False",
    ),
    "margins global_certificate=3.0 (AttributeError)": (
        lambda p, x: pylip.certify_margins([W0_3_5, W1_5_2], global_certificate=3.0),
        "global_certificate must be a pylip Certificate",
    ),
    "margins global_certificate of another net (wrong bounds)": (
        lambda p, x: pylip.certify_margins([W0_3_5, W1_5_2], global_certificate=pylip.certify(OTHER_NET)),
        "global_certificate certifies a 3-4-2 network but the weights are 3-5-2",
    ),
    "local radius=None (TypeError)": (
        lambda p, x: _local.certify_local([W0_3_5, W1_5_2], B_3_5_2, np.zeros(3), None),
        "radius must be a finite number >= 0 .* got None",
    ),
    "local radius=[0.1, 0.2] (TypeError)": (
        lambda p, x: _local.certify_local([W0_3_5, W1_5_2], B_3_5_2, np.zeros(3), np.array([0.1, 0.2])),
        "radius must be a finite number >= 0",
    ),
    "local radius='0.1' (coerced)": (
        lambda p, x: _local.certify_local([W0_3_5, W1_5_2], B_3_5_2, np.zeros(3), "0.1"),
        "radius must be a finite number >= 0",
    ),
    "local global_bound=-1 (returned as the bound)": (
        lambda p, x: _local.certify_local([W0_3_5, W1_5_2], B_3_5_2, np.zeros(3), 0.1, global_bound=-1.0),
        r"global_bound \(a proven global Lipschitz bound\) must be >= 0",
    ),
    "local global_bound=NaN (ignored)": (
        lambda p, x: _local.certify_local(
            [W0_3_5, W1_5_2], B_3_5_2, np.zeros(3), 0.1, global_bound=float("nan")
        ),
        "global_bound must be finite",
    ),
    "local global_certificate='x' (AttributeError)": (
        lambda p, x: _local.certify_local(
            [W0_3_5, W1_5_2], B_3_5_2, np.zeros(3), 0.1, global_certificate="x"
        ),
        "global_certificate must be a pylip Certificate",
    ),
    "certify beta='1' (coerced)": (
        lambda p, x: pylip.certify([W0_3_5, W1_5_2], beta="1"), "beta must be a number .* got '1'",
    ),
    "certify beta=True (coerced to 1)": (
        lambda p, x: pylip.certify([W0_3_5, W1_5_2], beta=True), "beta must be a number .* got True",
    ),
    "certify alpha=['0'] * 5 (coerced)": (
        lambda p, x: pylip.certify([W0_3_5, W1_5_2], alpha=["0"] * 5), "alpha must hold numbers",
    ),
    "certify boolean weights (a mask, coerced to 0/1)": (
        lambda p, x: pylip.certify([W0_3_5 > 0, W1_5_2]), r"weights\[0\] holds booleans",
    ),
    "certify allow_unsound='yes' (truthy)": (
        lambda p, x: pylip.certify([W0_3_5, W1_5_2], allow_unsound="yes"),
        "allow_unsound must be True or False",
    ),
    "verify exact='no' (truthy: ran the exact prover)": (
        lambda p, x: pylip.verify([W0_3_5, W1_5_2], 10.0, x["T"], exact="no"),
        "exact must be True or False",
    ),
    "verify L=1e300 (margin NaN)": (
        lambda p, x: pylip.verify([W0_3_5, W1_5_2], 1e300, x["T"]), "L = 1e.300 is too large",
    ),
    "verify complex T (real part used)": (
        lambda p, x: pylip.verify([W0_3_5, W1_5_2], 10.0, np.diag(x["T"]) * (1 + 1j)),
        "T must be a matrix or vector of real numbers",
    ),
    "closed_form_bound 2x3 and 3x2 (a wrong number: 6 products)": (
        lambda p, x: pylip.closed_form_bound(np.ones((2, 3)), np.ones((3, 2))), "needs a 1-n-1 network",
    ),
    "closed_form_bound empty (0.0)": (
        lambda p, x: pylip.closed_form_bound(np.ones((0, 1)), np.ones((1, 0))), r"\[W0, W1\]\[0\] is empty",
    ),
    "closed_form_bound beta=-1 (a negative bound)": (
        lambda p, x: pylip.closed_form_bound(np.ones((2, 1)), np.ones((1, 2)), beta=-1.0), "beta must be > 0",
    ),
    "LipschitzStep repair_T=-1 (a negative multiplier)": (
        lambda p, x: pylip.LipschitzStep(3, 5, 2, x["T"], repair_T=-1.0), "repair_T .* must be > 0",
    ),
    "LipschitzStep repair_T='x' (ValueError)": (
        lambda p, x: pylip.LipschitzStep(3, 5, 2, x["T"], repair_T="x"), "repair_T must be a number",
    ),
    "local_certified local=None (AttributeError)": (
        lambda p, x: _local.local_certified(1.0, None),
        "local must be a LocalBound",
    ),
}

EXTREME_VALUES = {
    "L_des=1e200": (
        lambda p, x: pylip.solve_sdp(p, {**x, "L_des": 1e200}),
        "L_des = 1e.200 is .* between 1e-06 and",
    ),
    "L_des=1e-12": (
        lambda p, x: pylip.solve_sdp(p, {**x, "L_des": 1e-12}),
        "L_des = 1e-12 is .* between 1e-06",
    ),
    "beta=inf (solve_sdp)": (lambda p, x: pylip.solve_sdp(p, x, beta=float("inf")), "beta must be finite"),
}


@pytest.mark.parametrize("case", list(COERCED_VALUES) + list(EXTREME_VALUES) + list(SECOND_PASS))
def test_bad_value_gets_an_input_error_naming_the_field(case, admm_state):
    call, match = {**COERCED_VALUES, **EXTREME_VALUES, **SECOND_PASS}[case]
    with pytest.raises(pylip.InputError, match=match):
        call(*admm_state)


def test_T_entries_of_1e12_solve_and_are_proven(admm_state):
    """Clarabel panics on the problem as posed; the rescaled problem solves (mu = 1e12 already did)."""
    parameters, x = admm_state
    out = pylip.solve_sdp(parameters, {**x, "T": 1e12 * np.eye(5)})
    bound, t = out["Lipschitz"], np.full(5, 1e12)
    assert np.all(np.isfinite(out["W0_bar"])) and np.all(np.isfinite(out["W1_bar"]))
    assert pylip.verify([out["W0_bar"], out["W1_bar"]], bound, t).holds


def test_a_solver_panic_becomes_a_solver_error(monkeypatch):
    import cvxpy as cp

    class Panic(BaseException):  # what a Rust solver's panic is (pyo3 PanicException)
        pass

    def panicking_solve(self, *args, **kwargs):
        raise Panic("Eigval error: Eigen(1)")

    monkeypatch.setattr(cp.Problem, "solve", panicking_solve)
    with pytest.raises(pylip.SolverError, match="crashed .*Panic: Eigval error"):
        solvers.solve(cp.Problem(cp.Minimize(cp.Variable())), "CLARABEL", what="test problem")

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cp.Problem, "solve", interrupted)  # Ctrl-C still stops the solve
    with pytest.raises(KeyboardInterrupt):
        solvers.solve(cp.Problem(cp.Minimize(cp.Variable())), "CLARABEL", what="test problem")


# --- bad files (issue 17 item 5): one line `pylip: error:` naming the file and what was expected ---


def _res_without_biases(path):
    import scipy.io

    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = np.ones((3, 1)), np.ones((1, 3))
    scipy.io.savemat(path, {"res": {"weights": cell}})


def _torch_save(value):
    def write(path):
        torch = pytest.importorskip("torch")
        torch.save(value() if callable(value) else value, path)

    return write


def _state_dict_with(layer):
    def build():
        import torch

        return torch.nn.Sequential(layer(), torch.nn.Tanh(), torch.nn.Linear(4, 1)).state_dict()

    return build


def _conv():
    import torch

    return torch.nn.Conv1d(1, 4, 1)


def _norm():
    import torch

    return torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.BatchNorm1d(4))


def _whole_convolutional_model():
    import torch

    return torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(4, 1))


def _object_npz(path):
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.ones((3, 2)), np.ones((1, 3))
    np.savez(path, W0=ragged, W1=np.ones((1, 3)))


BAD_FILES = {
    "empty .mat": ("net.mat", lambda p: p.write_bytes(b""), "net.mat is not a readable MATLAB .mat file"),
    "truncated .mat": (
        "net.mat",
        lambda p: p.write_bytes((REFERENCE_RES.read_bytes())[:300]),
        "net.mat is not a readable MATLAB .mat file",
    ),
    "text named .mat": ("net.mat", lambda p: p.write_text("W0 = [1 2]"), "net.mat is not a readable MATLAB"),
    "text named .npz": (
        "net.npz",
        lambda p: p.write_text("W0 = [1 2]"),
        "net.npz is not a readable .npz archive",
    ),
    "text named .pth": (
        "net.pth",
        lambda p: p.write_text("W0 = [1 2]"),
        "net.pth is not a readable torch state dict",
    ),
    "empty .npz": (
        "net.npz",
        lambda p: np.savez(p),
        "net.npz: expected arrays named W0, W1, .*found no arrays",
    ),
    "object-array .npz": (
        "net.npz",
        _object_npz,
        "net.npz is not a readable .npz .*object arrays are not read",
    ),
    "complex .npz": (
        "net.npz",
        lambda p: np.savez(p, W0=np.ones((3, 2)) * 1j, W1=np.ones((1, 3))),
        "net.npz .*complex",
    ),
    "empty .pt": (
        "net.pt",
        lambda p: p.write_bytes(b""),
        "net.pt is not a readable torch state dict .*empty",
    ),
    "whole pickled model .pt of an unsupported layer": (
        "net.pt",
        _torch_save(_whole_convolutional_model),
        "Conv1d",
    ),
    "res without biases": (
        "res.mat",
        _res_without_biases,
        "res.mat: struct 'res' has 'weights' but no 'biases'",
    ),
    ".npz with W0, W2": (
        "net.npz",
        lambda p: np.savez(p, W0=np.ones((3, 2)), W2=np.ones((1, 3))),
        "net.npz: arrays W0, W2 leave a gap",
    ),
    ".npz with W0, W1, W2, W10": (
        "net.npz",
        lambda p: np.savez(p, **{f"W{i}": np.ones((2, 2)) for i in (0, 1, 2, 10)}),
        "net.npz: arrays W0, W1, W2, W10 leave a gap; expected W0, W1, W2, W3",
    ),
    "state dict with a convolution": (
        "net.pt",
        _torch_save(_state_dict_with(_conv)),
        "net.pt: layer '0' is a layer with a 3-D weight .*not supported",
    ),
    "state dict with batch normalisation": (
        "net.pt",
        _torch_save(_state_dict_with(_norm)),
        "net.pt: layer '0.1' is a normalisation layer.*not supported",
    ),
}

REFERENCE_RES = Path(__file__).resolve().parent.parent / "reference/original/sin_example_res.mat"


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_gets_one_error_line_naming_it(case, tmp_path, capsys):
    from pylip.cli import main

    name, write, match = BAD_FILES[case]
    if name.endswith((".pt", ".pth")):
        pytest.importorskip("torch", reason="torch files are read with torch (the train extra)")
    path = tmp_path / name
    write(path)
    assert main(["certify", str(path), "--samples", "10"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pylip: error: "), captured.err
    assert re.search(match, lines[0]), lines[0]


# --- divergent training (issue 17 item 4): a TrainingError saying what diverged, where, and the fix ---


@pytest.mark.parametrize("engine", ["torch", "compiled"])
def test_meinnetz_divergence_without_a_logging_step_is_reported(engine):
    pytest.importorskip("torch")
    from pylip.train.training import MeinNetz, TrainingConfig

    if engine == "compiled":
        pytest.importorskip("numba")
    x = np.linspace(-1, 1, 20).reshape(-1, 1)
    config = TrainingConfig(
        x,
        np.sin(3 * x),
        lr=1e3,
        epochs=200,
        it_ADMM=2,
        ind_Lip=2,
        L_des=2.0,
        log_every=1000,
        engine=engine,
        progress=False,
    )
    with pytest.raises(pylip.TrainingError, match=r"NaN or inf in lin1.weight.* 200 SGD steps.*lower .*lr"):
        MeinNetz(config).train(200)  # only step 0 is a logging step: the end-of-call check finds it


@pytest.mark.parametrize(
    "lr, rho, optimizer, iteration",
    [(1e6, 1.0, "sgd", 1), (1e6, 1.0, "adam", 1), (1e-3, 1e30, "sgd", 2)],
    ids=["lr=1e6 (SGD)", "lr=1e6 (Adam)", "rho=1e30"],
)
def test_train_lipschitz_divergent_w_step_is_named(lr, rho, optimizer, iteration):
    pytest.importorskip("torch")
    from pylip.train.mlp_training import ADMMConfig, FitConfig, mlp, train_lipschitz

    X, y = RNG.standard_normal((64, 4)), np.arange(64) % 3
    admm = ADMMConfig(mode="enforce", L_des=2.0, rho=rho, iterations=3)
    with pytest.raises(
        pylip.TrainingError,
        match=rf"iteration {iteration}/3: the W step \(10a\) diverged: .*FitConfig.lr .*ADMMConfig.rho",
    ):
        train_lipschitz(
            mlp([4, 6, 3], seed=0), X, y, admm, FitConfig(lr=lr, optimizer=optimizer), progress=False
        )


def test_scs_lipschitz_step_does_not_depend_on_call_history(admm_state):
    """Issue 17 item 9: the cached compiled step is not warm-started from an earlier call."""
    if "SCS" not in solvers.cp.installed_solvers():
        pytest.skip("SCS is not installed (pip install 'pylip[solvers]')")
    parameters, x = admm_state
    first = pylip.solve_sdp(parameters, x, solver="SCS")
    other = {**parameters, "W0": 1.3 * parameters["W0"], "Y0": first["Y0"], "Y1": first["Y1"]}
    pylip.solve_sdp(other, x, solver="SCS")
    again = pylip.solve_sdp(parameters, x, solver="SCS")
    assert np.array_equal(first["W0_bar"], again["W0_bar"])
    assert np.array_equal(first["W1_bar"], again["W1_bar"])


# --- memory (issue 17 item 8): an estimate before any SDP is built, at once ---------------------------


@pytest.mark.parametrize(
    "sizes, formulation",
    [
        ((784, 20000, 10), "reduced"),
        ((100, 1000, 1000, 10), "structured"),
        ((20, 300, 300, 10), "structured"),
    ],
    ids=["784-20000-10", "100-1000-1000-10", "20-300-300-10"],
)
def test_a_certificate_too_large_for_memory_is_refused_at_once(sizes, formulation):
    import time

    from pylip.lipsdp import memory

    weights = [np.full((m, n), 1.0 / n) for n, m in zip(sizes[:-1], sizes[1:])]
    before = memory.available_bytes()
    start = time.perf_counter()
    with pytest.raises(pylip.InputError) as info:
        pylip.certify(weights, solver="CLARABEL")
    elapsed = time.perf_counter() - start
    after = memory.available_bytes()
    message = str(info.value)
    assert f"formulation={formulation!r}) with CLARABEL needs about" in message
    # the available memory moves while other processes run: the stated figure (3 digits)
    # must lie between the readings taken before and after the call
    stated = re.search(r"but this machine has ([\d.]+) ([kMGTP]B) available", message)
    assert stated is not None
    units = {"kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15}
    value = float(stated.group(1)) * units[stated.group(2)]
    assert 0.995 * min(before, after) <= value <= 1.005 * max(before, after)
    assert "with SCS would fit" in message or "no formulation pylip has fits" in message
    assert elapsed < 5.0  # measured: 0.003-0.02 s, plus about 1 s to copy 784-20000-10's 125 MB of weights


def test_memory_estimate_matches_the_allocations_clarabel_asked_for():
    """8 m^2 bytes per cone (m = N (N+1)/2): 126 GB at N = 501, 316 GB at N = 630 (issue 17, README)."""
    from pylip.lipsdp import memory

    for n, asked in ((501, 126e9), (630, 316e9)):
        block = memory.estimate("x", (n,), "CLARABEL").bytes - memory.BASE_BYTES
        assert block / memory.INTERIOR_POINT_FACTOR == pytest.approx(asked, rel=0.01)


def test_a_wide_lipschitz_step_sdp_too_large_is_refused_before_solving():
    from pylip.admm.deep_step import DeepLipschitzStep

    with pytest.raises(pylip.InputError, match=r"multi-layer Lipschitz step .* needs about .* TB"):
        DeepLipschitzStep((10, 1000, 1000, 10), np.eye(2000), solver="CLARABEL")
    step = pylip.LipschitzStep(10, 3000, 10, np.eye(3000), solver="CLARABEL")
    W0, W1 = np.full((3000, 10), 0.01), np.full((10, 3000), 0.01)
    with pytest.raises(pylip.InputError, match=r"step \(10b, regularize\) SDP .*fast=None"):
        step.solve(W0, W1, 0 * W0, 0 * W1, rho=1.0, mu=0.1)
