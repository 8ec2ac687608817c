"""ONNX graphs in: pylip.onnx_io, ``pylip certify model.onnx`` (issue 14, item 2)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import pylip
from pylip.cli import main
from pylip.errors import InputError
from pylip.io import load_networks

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from pylip.onnx_io import load_onnx, network_from_onnx  # noqa: E402

RNG = np.random.default_rng(0)


def _tensor(name: str, array: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def _model(nodes, initializers, n_in: int, n_out: int, input_shape=None) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape or ["N", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def _float32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _gemm_net(activation: str = "Tanh", **attributes):
    """x -> Gemm(transB=1) -> activation -> Gemm(B as (in, out), alpha, beta) -> y."""
    W0, b0, B1, c1 = _float32(5, 3), _float32(5), _float32(5, 2), _float32(2)
    nodes = [
        helper.make_node("Gemm", ["x", "W0", "b0"], ["h0"], name="fc0", transB=1),
        helper.make_node(activation, ["h0"], ["a0"], name="act0", **attributes),
        helper.make_node("Gemm", ["a0", "B1", "c1"], ["y"], name="fc1", alpha=0.5, beta=2.0),
    ]
    inits = [_tensor("W0", W0), _tensor("b0", b0), _tensor("B1", B1), _tensor("c1", c1)]
    return _model(nodes, inits, 3, 2), (W0, b0, B1, c1)


def test_gemm_attributes_and_exact_weights():
    model, (W0, b0, B1, c1) = _gemm_net()
    network = network_from_onnx(model)
    assert np.array_equal(network.weights[0], W0.astype(np.float64))
    assert np.array_equal(network.weights[1], 0.5 * B1.T.astype(np.float64))
    assert np.array_equal(network.biases[1], 2.0 * c1.astype(np.float64))
    assert network.sectors == [(0.0, 1.0)]


def test_matmul_add_with_flatten_and_leaky_relu(tmp_path):
    B0, c0, B1 = _float32(4, 6), _float32(6), _float32(6, 1)
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], name="flatten", axis=1),
        helper.make_node("MatMul", ["flat", "B0"], ["m0"], name="mm0"),
        helper.make_node("Add", ["c0", "m0"], ["h0"], name="add0"),
        helper.make_node("LeakyRelu", ["h0"], ["a0"], name="act0", alpha=0.125),
        helper.make_node("MatMul", ["a0", "B1"], ["y"], name="mm1"),
    ]
    model = _model(nodes, [_tensor("B0", B0), _tensor("c0", c0), _tensor("B1", B1)], 4, 1,
                   input_shape=["N", 2, 2])
    path = tmp_path / "net.onnx"
    onnx.save(model, path)
    network = load_onnx(path)
    assert np.array_equal(network.weights[0], B0.T.astype(np.float64))
    assert np.array_equal(network.biases[0], c0.astype(np.float64))
    assert network.sectors == [(0.125, 1.0)]
    assert pylip.certify(network.weights, alpha=0.125, beta=1.0).bound > 0


def test_a_graph_with_different_activations_is_certified_per_layer(tmp_path, capsys):
    B0, c0, B1, c1, B2 = _float32(3, 4), _float32(4), _float32(4, 4), _float32(4), _float32(4, 1)
    nodes = [
        helper.make_node("MatMul", ["x", "B0"], ["m0"], name="mm0"),
        helper.make_node("Add", ["m0", "c0"], ["h0"], name="add0"),
        helper.make_node("Relu", ["h0"], ["a0"], name="act0"),
        helper.make_node("MatMul", ["a0", "B1"], ["m1"], name="mm1"),
        helper.make_node("Add", ["m1", "c1"], ["h1"], name="add1"),
        helper.make_node("Sigmoid", ["h1"], ["a1"], name="act1"),
        helper.make_node("MatMul", ["a1", "B2"], ["y"], name="mm2"),
    ]
    inits = [_tensor("B0", B0), _tensor("c0", c0), _tensor("B1", B1), _tensor("c1", c1), _tensor("B2", B2)]
    path = tmp_path / "mixed.onnx"
    onnx.save(_model(nodes, inits, 3, 1), path)
    (net,) = load_networks(path)
    assert net.sectors == [(0.0, 1.0), (0.0, 0.25)]
    direct = pylip.certify(net.weights, alpha=np.zeros(8), beta=np.r_[np.ones(4), np.full(4, 0.25)])
    assert main(["certify", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"neuron  L = {direct.bound:.6g}" in out
    assert "layer 0: relu [0, 1], layer 1: sigmoid [0, 0.25]" in out


def test_the_certified_bound_equals_that_of_the_same_weights(tmp_path, capsys):
    model, (W0, _, B1, _) = _gemm_net("Sigmoid")
    path = tmp_path / "sigmoid.onnx"
    onnx.save(model, path)
    (net,) = load_networks(path)
    direct = pylip.certify([W0, 0.5 * B1.T.astype(np.float64)], activation="sigmoid")
    assert pylip.certify(net.weights, alpha=0.0, beta=0.25).bound == direct.bound
    assert main(["certify", str(path), "--samples", "10"]) == 0
    out = capsys.readouterr().out
    assert f"L = {direct.bound:.6g}" in out and "sigmoid from the model, sector [0, 0.25]" in out


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ([helper.make_node("Conv", ["x", "W0"], ["y"], name="conv")], "'conv' (op type Conv)"),
        ([helper.make_node("Gemm", ["x", "W0"], ["h"], name="fc", transB=1),
          helper.make_node("Add", ["h", "x"], ["y"], name="skip")], "'skip' (op type Add)"),
        ([helper.make_node("Gemm", ["x", "W0"], ["h"], name="fc", transB=1),
          helper.make_node("Softmax", ["h"], ["y"], name="soft")], "'soft' (op type Softmax)"),
        ([helper.make_node("Gemm", ["W0", "x"], ["y"], name="fc", transA=1)], "'fc' (op type Gemm)"),
    ],
)
def test_unsupported_nodes_are_named(nodes, message):
    model = helper.make_model(helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[_tensor("W0", _float32(3, 3))],
    ))
    with pytest.raises(InputError, match="supported") as error:
        network_from_onnx(model)
    assert message in str(error.value)


def test_cli_one_line_error_for_an_unsupported_graph(tmp_path, capsys):
    model, _ = _gemm_net("Elu")
    path = tmp_path / "elu.onnx"
    onnx.save(model, path)
    assert main(["certify", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pylip: error: ONNX node 'act0' (op type Elu)") and err.count("\n") == 1


@pytest.mark.torch
def test_exported_from_torch_gives_the_bound_of_the_torch_model(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    path = tmp_path / "exported.onnx"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (torch.randn(1, 4),), str(path), dynamo=False)
    except Exception as exc:  # the exporter needs packages this environment may lack
        pytest.skip(f"torch.onnx.export does not work here: {type(exc).__name__}: {exc}")
    network = load_onnx(path)
    assert pylip.certify(network.weights, alpha=0.0, beta=1.0).bound == pylip.certify(model).bound


def test_bulk_certify_takes_the_sector_from_the_graph(tmp_path):
    from pylip.experiments.bulk_certify import certify_files, format_rows, network_files

    model, (W0, _, B1, _) = _gemm_net("Sigmoid")
    onnx.save(model, tmp_path / "sigmoid.onnx")
    (row,) = certify_files(network_files([tmp_path]), samples=50)
    assert row["error"] is None
    expected = pylip.certify([W0, 0.5 * B1.T.astype(np.float64)], activation="sigmoid")
    assert row["neuron_bound"] == expected.bound
    assert 0 < row["sampled_lower_bound"] <= row["neuron_bound"]
    assert "sigmoid.onnx" in format_rows([row])
