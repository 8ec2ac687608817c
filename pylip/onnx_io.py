"""Feed-forward ONNX graphs as pylip networks (the ``onnx`` extra).

The graph must be one chain from its single input to its single output:

* ``Gemm`` (attributes ``transA = 0``, ``transB``, ``alpha``, ``beta``) with
  the weight ``B`` and the bias ``C`` stored as initializers (or ``Constant``
  nodes): ``W = alpha B^T`` (``alpha B`` with ``transB = 1``), ``b = beta C``;
* ``MatMul`` by an initializer ``B``, optionally followed by ``Add`` of an
  initializer: ``W = B^T``, ``b = C``;
* between two of these one activation: ``Relu``, ``Tanh``, ``Sigmoid`` or
  ``LeakyRelu`` (attribute ``alpha``, ``0 <= alpha < 1``), sectors as in
  :mod:`pylip.models`;
* ``Flatten`` or ``Reshape`` of the input, before the first layer, and
  ``Identity`` anywhere (norms unchanged).

Weights are read as float64 copies of the stored values (``alpha * B`` is
exact in float64 for float32 ``alpha`` and ``B``: the product of two 24-bit
significands has at most 48 bits). Any other node raises
:class:`~pylip.errors.InputError` naming the node and its op type.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .models import ImportedNetwork

ACTIVATION_OPS = {"Relu": ("relu", (0.0, 1.0)), "Tanh": ("tanh", (0.0, 1.0)),
                  "Sigmoid": ("sigmoid", (0.0, 0.25)), "LeakyRelu": ("leaky_relu", None)}
RESHAPE_OPS = ("Flatten", "Reshape")
SUPPORTED = (
    "Gemm (transA=0) or MatMul (+ Add) with stored weights, Relu/Tanh/Sigmoid/LeakyRelu between them, "
    "Flatten/Reshape of the input, Identity"
)


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise InputError("reading ONNX files needs the onnx package: pip install 'pylip[onnx]'") from None
    return onnx


def load_onnx(path: str | os.PathLike[str]) -> ImportedNetwork:
    """The network in an ONNX file (see the module's docstring for the supported graphs)."""
    onnx = _onnx()
    file = Path(path)
    try:
        model = onnx.load(str(file))
    except Exception as exc:  # protobuf raises several types for damaged files
        raise InputError(f"{file.name} is not a readable ONNX file ({type(exc).__name__}: {exc})") from None
    return network_from_onnx(model)


def network_from_onnx(model: Any) -> ImportedNetwork:
    """Read a feed-forward ``onnx.ModelProto`` (or ``GraphProto``)."""
    onnx = _onnx()
    graph = model.graph if hasattr(model, "graph") else model
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in constants]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise InputError(
            f"the ONNX graph has {len(inputs)} inputs and {len(graph.output)} outputs; a feed-forward "
            "network has one of each"
        )
    reader = _ChainReader(inputs[0], constants, onnx)
    for node in graph.node:
        reader.read(node)
    return reader.network(graph.output[0].name)


class _ChainReader:
    """Follows the chain value through the nodes, collecting layers and activations."""

    def __init__(self, input_name: str, constants: dict[str, np.ndarray], onnx: Any) -> None:
        self.current = input_name
        self.constants = constants
        self.onnx = onnx
        self.weights: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        self.activations: list[str] = []
        self.sectors: list[tuple[float, float]] = []
        self.pending: tuple[str, tuple[float, float]] | None = None
        self.awaiting_bias = False  # a MatMul whose Add may follow

    def read(self, node: Any) -> None:
        op = node.op_type
        if op == "Constant":
            value = self.onnx.helper.get_attribute_value(node.attribute[0])
            is_tensor = isinstance(value, self.onnx.TensorProto)
            self.constants[node.output[0]] = self.onnx.numpy_helper.to_array(value) if is_tensor else value
            return
        if op == "Add" and self.awaiting_bias:
            self._add_bias(node)
            return
        self.awaiting_bias = False
        if op in ("Gemm", "MatMul"):
            self._linear(node)
        elif op in ACTIVATION_OPS:
            self._activation(node)
        elif op in RESHAPE_OPS and not self.weights:
            self._follow(node)
        elif op == "Identity":
            self._follow(node)
        else:
            where = " after the first layer" if op in RESHAPE_OPS else ""
            raise _unsupported(node, f"{op}{where} is not supported")

    def _follow(self, node: Any) -> None:
        if not node.input or node.input[0] != self.current:
            raise _unsupported(node, "it does not take the previous layer's output as its first input")
        self.current = node.output[0]

    def _stored(self, node: Any, index: int, what: str) -> np.ndarray:
        name = node.input[index] if index < len(node.input) else ""
        if name not in self.constants:
            raise _unsupported(node, f"its {what} ({name or 'missing'}) is not a stored initializer")
        array = np.asarray(self.constants[name])
        if not np.issubdtype(array.dtype, np.floating) or not np.all(np.isfinite(array)):
            raise _unsupported(node, f"its {what} {name} must be finite floating-point values")
        return array.astype(np.float64)

    def _linear(self, node: Any) -> None:
        self._follow(node)
        if self.weights:
            if self.pending is None:
                raise _unsupported(node, "two linear layers need an activation between them")
            self.activations.append(self.pending[0])
            self.sectors.append(self.pending[1])
        self.pending = None
        attributes = {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}
        matrix = self._stored(node, 1, "weight")
        if matrix.ndim != 2:
            raise _unsupported(node, f"its weight has shape {matrix.shape}, expected a matrix")
        if node.op_type == "MatMul":
            self.weights.append(matrix.T)
            self.biases.append(np.zeros(matrix.shape[1]))
            self.awaiting_bias = True
            return
        if attributes.get("transA", 0):
            raise _unsupported(node, "transA=1 (the input transposed) is not supported")
        alpha, beta = float(attributes.get("alpha", 1.0)), float(attributes.get("beta", 1.0))
        weight = alpha * (matrix if attributes.get("transB", 0) else matrix.T)
        self.weights.append(weight)
        bias = self._stored(node, 2, "bias") if len(node.input) > 2 and node.input[2] else np.zeros(1)
        self.biases.append(self._bias_vector(node, beta * bias, weight.shape[0]))

    def _add_bias(self, node: Any) -> None:
        self.awaiting_bias = False
        other = [name for name in node.input if name != self.current]
        if len(other) != 1 or self.current not in node.input:
            raise _unsupported(node, "it adds two computed tensors (a residual connection?)")
        index = list(node.input).index(other[0])
        bias = self._stored(node, index, "bias")
        self.biases[-1] = self._bias_vector(node, bias, self.weights[-1].shape[0])
        self.current = node.output[0]

    @staticmethod
    def _bias_vector(node: Any, bias: np.ndarray, n_out: int) -> np.ndarray:
        if bias.size == 1:
            return np.full(n_out, float(bias.reshape(-1)[0]))
        if bias.size != n_out:
            raise _unsupported(node, f"its bias has {bias.size} entries, the layer {n_out} outputs")
        return bias.reshape(-1)

    def _activation(self, node: Any) -> None:
        if not self.weights:
            raise _unsupported(node, "an activation before the first layer is not supported")
        if self.pending is not None:
            raise _unsupported(node, f"it follows another activation ({self.pending[0]})")
        self._follow(node)
        name, sector = ACTIVATION_OPS[node.op_type]
        if sector is None:
            attributes = {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}
            slope = float(attributes.get("alpha", 0.01))  # ONNX's default
            if not 0.0 <= slope < 1.0:
                raise _unsupported(node, f"alpha={slope:g}; supported: 0 <= alpha < 1 (sector [alpha, 1])")
            sector = (slope, 1.0)
        self.pending = (name, sector)

    def network(self, output: str) -> ImportedNetwork:
        if not self.weights:
            raise InputError(f"the ONNX graph has no Gemm or MatMul layer; supported: {SUPPORTED}")
        if self.pending is not None:
            raise InputError(
                f"the ONNX graph ends with an activation ({self.pending[0]}) after its last layer: not "
                "supported; certify the graph without it (the whole is at most beta times that bound)"
            )
        if self.current != output:
            raise InputError(
                f"the ONNX graph's output {output!r} is not the end of its chain of layers ({self.current!r})"
            )
        return ImportedNetwork(self.weights, self.biases, self.activations, self.sectors)


def _unsupported(node: Any, why: str) -> InputError:
    label = node.name or (node.output[0] if node.output else "?")
    return InputError(f"ONNX node {label!r} (op type {node.op_type}): {why}; supported: {SUPPORTED}")
