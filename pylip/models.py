"""Feed-forward PyTorch models as pylip networks: weights, biases and slope sectors (eq. 2).

:func:`network_from_torch` reads an ``nn.Sequential`` (nested ones are
flattened) or an ``nn.Module`` whose children, in the order they were
registered, are the layers its ``forward`` applies one after the other:

* ``nn.Linear`` layers, whose float32 (or float64) weights are copied to
  float64 exactly, value for value;
* between two of them one activation: ``nn.Tanh`` and ``nn.ReLU`` (sector
  ``[0, 1]``), ``nn.Sigmoid`` (``[0, 1/4]``), ``nn.LeakyReLU(a)`` with
  ``0 <= a < 1`` (``[a, 1]``), or ``nn.Identity`` (slope 1, certified in the
  sector ``[0, 1]`` that contains it: a valid bound, possibly above the
  product of the two layers' norms);
* ``nn.Flatten`` before the first ``Linear`` (a reshape: norms unchanged);
* ``nn.Dropout`` anywhere, skipped: it is the identity in evaluation mode, and
  the certificate is for the model as it predicts (``model.eval()``).

Anything else (convolutions, normalisation layers, residual connections, an
activation after the last ``Linear``) raises :class:`~pylip.errors.InputError`
naming the layer. A ``forward`` that does not apply the children in sequence
(a residual connection inside a custom module, say) is found by comparing the
model's outputs with the layers applied in sequence on random inputs.

torch is imported only here, and only when a model is read.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError

# (torch class name, pylip activation name, fixed sector); LeakyReLU's depends on its slope
ACTIVATION_MODULES: dict[str, tuple[str, tuple[float, float] | None]] = {
    "Tanh": ("tanh", (0.0, 1.0)),
    "ReLU": ("relu", (0.0, 1.0)),
    "Sigmoid": ("sigmoid", (0.0, 0.25)),
    "LeakyReLU": ("leaky_relu", None),
    "Identity": ("identity", (0.0, 1.0)),
}
SKIPPED_MODULES = ("Dropout", "Dropout1d", "AlphaDropout")
SUPPORTED = (
    "Linear layers with one of Tanh, ReLU, Sigmoid, LeakyReLU(0 <= negative_slope < 1) or Identity "
    "between them, Flatten before the first Linear, Dropout (skipped: identity in evaluation mode)"
)
FORWARD_RTOL = 1e-4  # float32 forward vs the float64 layers: see reference/README.md


@dataclass(frozen=True)
class ImportedNetwork:
    """A feed-forward network read from a torch model or an ONNX graph (:mod:`pylip.onnx_io`).

    Attributes:
        weights: ``[W0, ..., Wl]`` as float64 copies of the stored values.
        biases: ``[b0, ..., bl]`` (zeros where a ``Linear`` has no bias).
        activations: the activation's name per hidden layer (``tanh``, ``relu``,
            ``sigmoid``, ``leaky_relu`` or ``identity``).
        sectors: the slope sector ``(alpha, beta)`` of eq. (2) per hidden layer
            (the list a per-layer certificate takes).
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activations: list[str]
    sectors: list[tuple[float, float]]

    def certify_sector(self) -> tuple[Any, Any]:
        """``alpha, beta`` for :func:`pylip.certify` (eq. 2 per neuron).

        One pair of floats where every hidden layer has the same sector, else
        one float64 vector per hidden layer (each layer's sector repeated for
        its neurons): :func:`pylip.certify` takes per-neuron sectors with a
        diagonal ``T`` (forms ``"neuron"`` and ``"layer"``).
        """
        if len(set(self.sectors)) == 1:
            return self.sectors[0]
        sizes = [w.shape[0] for w in self.weights[:-1]]
        alpha = [np.full(n, a) for n, (a, _) in zip(sizes, self.sectors)]
        beta = [np.full(n, b) for n, (_, b) in zip(sizes, self.sectors)]
        return alpha, beta

    def describe_sectors(self) -> str:
        """The activation names and sectors, once if all hidden layers share one."""
        if len(set(self.sectors)) == 1:
            a, b = self.sectors[0]
            return f"{'/'.join(sorted(set(self.activations)))} from the model, sector [{a:g}, {b:g}]"
        layers = ", ".join(
            f"layer {i}: {name} [{a:g}, {b:g}]"
            for i, (name, (a, b)) in enumerate(zip(self.activations, self.sectors))
        )
        return f"per-layer sectors from the model ({layers})"


def is_torch_module(value: object) -> bool:
    """Whether ``value`` is a ``torch.nn.Module`` (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.Module)


def network_from_torch(model: Any) -> ImportedNetwork:
    """Read a feed-forward torch model (see the module's docstring for what is supported)."""
    if not is_torch_module(model):
        raise InputError(f"expected a torch.nn.Module, got {type(model).__name__}")
    layers = _sequence(model, "model")
    network = _network_from_layers(layers)
    _check_forward(model, network, layers)
    return network


def _sequence(module: Any, path: str) -> list[tuple[str, Any]]:
    """The leaf layers of ``module`` in order, with their dotted names."""
    children = list(module.named_children())
    if not children:
        return [(path, module)]
    kind = type(module).__name__
    if kind not in ("Sequential", "ModuleList") and type(module).forward is _module_forward():
        raise InputError(f"{path} ({kind}) has no forward to follow")
    return [leaf for name, child in children for leaf in _sequence(child, f"{path}.{name}")]


def _module_forward() -> Any:
    import torch

    return torch.nn.Module.forward


def _network_from_layers(layers: list[tuple[str, Any]]) -> ImportedNetwork:
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    activations: list[str] = []
    sectors: list[tuple[float, float]] = []
    pending: tuple[str, str, tuple[float, float]] | None = None  # activation since the last Linear
    for path, layer in layers:
        kind = type(layer).__name__
        if kind in SKIPPED_MODULES:
            continue
        if kind == "Flatten":
            if weights:
                raise _unsupported(path, kind, "Flatten is supported only before the first Linear")
            continue
        if kind == "Linear":
            if weights:
                if pending is None:
                    raise _unsupported(
                        path, kind, "two Linear layers need an activation (or Identity) between them"
                    )
                activations.append(pending[1])
                sectors.append(pending[2])
            pending = None
            weights.append(_float64(layer.weight, f"{path}.weight"))
            biases.append(
                np.zeros(weights[-1].shape[0]) if layer.bias is None else _float64(layer.bias, f"{path}.bias")
            )
            continue
        if kind in ACTIVATION_MODULES:
            if not weights:
                if kind == "Identity":
                    continue
                raise _unsupported(path, kind, "an activation before the first Linear is not supported")
            if pending is not None:
                if kind == "Identity":
                    continue
                if pending[1] != "identity":
                    raise _unsupported(path, kind, f"it follows another activation ({pending[0]})")
            pending = (path, ACTIVATION_MODULES[kind][0], _sector(layer, path))
            continue
        raise _unsupported(path, kind)
    if not weights:
        raise InputError(f"the model has no Linear layer; supported: {SUPPORTED}")
    if pending is not None and pending[1] != "identity":
        raise _unsupported(
            pending[0], pending[1],
            "an activation after the last Linear layer is not supported: certify the model without it "
            "(the Lipschitz constant of the whole is at most beta times that bound)",
        )
    return ImportedNetwork(weights, biases, activations, sectors)


def _sector(layer: Any, path: str) -> tuple[float, float]:
    kind = type(layer).__name__
    fixed = ACTIVATION_MODULES[kind][1]
    if fixed is not None:
        return fixed
    slope = float(layer.negative_slope)
    if not 0.0 <= slope < 1.0:
        raise InputError(
            f"{path} (LeakyReLU) has negative_slope={slope:g}; supported: 0 <= negative_slope < 1 "
            "(slope sector [negative_slope, 1])"
        )
    return (slope, 1.0)


def _float64(parameter: Any, name: str) -> np.ndarray:
    values = parameter.detach().cpu()
    if not values.is_floating_point():
        raise InputError(f"{name} is not floating point ({values.dtype})")
    array = values.numpy().astype(np.float64)  # exact: every float32 (and float16) value is a float64
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} has NaN or infinite entries")
    return array


def _unsupported(path: str, kind: str, why: str = "") -> InputError:
    reason = f": {why}" if why else ""
    return InputError(f"{path} ({kind}) is not supported{reason}; supported: {SUPPORTED}")


def _check_forward(model: Any, network: ImportedNetwork, layers: list[tuple[str, Any]]) -> None:
    """The model's outputs must be those of its layers in sequence (catches residual connections)."""
    import torch

    first = next(layer for _, layer in layers if type(layer).__name__ == "Linear")
    n_inputs = first.in_features
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, n_inputs, generator=generator, dtype=first.weight.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            actual = model(x).detach().cpu().double().numpy().reshape(8, -1)
    except Exception as exc:  # the model's own forward rejects a flat input: say why
        raise InputError(
            f"the model's forward failed on inputs of shape (8, {n_inputs}) ({type(exc).__name__}: {exc}); "
            f"supported: {SUPPORTED}"
        ) from None
    finally:
        model.train(was_training)
    expected = _forward(network, x.double().numpy())
    scale = max(float(np.max(np.abs(expected))), 1.0)
    if actual.shape != expected.shape or np.max(np.abs(actual - expected)) > FORWARD_RTOL * scale:
        raise InputError(
            "the model's forward does not apply its layers in sequence (a residual connection or "
            f"another custom forward?); supported: {SUPPORTED}"
        )


def _forward(network: ImportedNetwork, x: np.ndarray) -> np.ndarray:
    functions: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "tanh": np.tanh,
        "relu": lambda z: np.maximum(z, 0.0),
        "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),
        "identity": lambda z: z,
    }
    h = x
    for i, (w, b) in enumerate(zip(network.weights, network.biases)):
        h = h @ w.T + b
        if i < len(network.activations):
            name, (slope, _) = network.activations[i], network.sectors[i]
            h = np.where(h > 0, h, slope * h) if name == "leaky_relu" else functions[name](h)
    return h
