"""Torch models in: pylip.models and ``certify(model)`` (issue 14, item 1)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import pylip
from pylip.errors import InputError

torch = pytest.importorskip("torch")
nn = torch.nn
from pylip.models import network_from_torch  # noqa: E402

pytestmark = pytest.mark.torch


def _seeded(module: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for p in module.parameters():
        p.data.normal_()
    return module


def _net(activation: nn.Module) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(3, 8), activation, nn.Linear(8, 2))


def test_reads_the_stored_float32_values_exactly():
    model = _net(nn.Tanh())
    network = network_from_torch(model)
    for w, layer in zip(network.weights, (model[0], model[2])):
        assert w.dtype == np.float64
        assert np.array_equal(w, layer.weight.detach().numpy().astype(np.float64))
        assert np.array_equal(w.astype(np.float32), layer.weight.detach().numpy())
    assert np.array_equal(network.biases[1], model[2].bias.detach().numpy().astype(np.float64))


@pytest.mark.parametrize(
    ("module", "sector"),
    [(nn.Tanh(), (0.0, 1.0)), (nn.ReLU(), (0.0, 1.0)), (nn.Sigmoid(), (0.0, 0.25)),
     (nn.LeakyReLU(0.1), (0.1, 1.0)), (nn.LeakyReLU(0.0), (0.0, 1.0))],
)
def test_sector_from_the_activation_module(module, sector):
    assert network_from_torch(_net(module)).sectors == [sector]


def test_certify_a_model_gives_the_bound_of_its_weights():
    model = _net(nn.LeakyReLU(0.2))
    network = network_from_torch(model)
    from_model = pylip.certify(model)
    from_weights = pylip.certify(network.weights, alpha=0.2, beta=1.0)
    assert from_model.bound == from_weights.bound
    assert (from_model.alpha, from_model.beta) == (0.2, 1.0)
    from_model.prove(network.weights)


def test_nested_sequentials_flatten_dropout_and_custom_modules():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(4, 6)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.linear(x))

    torch.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), Block(), nn.Dropout(0.5), nn.Sequential(nn.Linear(6, 5), nn.ReLU()),
                          nn.Linear(5, 1))
    model.train()
    network = network_from_torch(model)
    assert [w.shape for w in network.weights] == [(6, 4), (5, 6), (1, 5)]
    assert network.activations == ["relu", "relu"]
    assert model.training  # the mode is restored after the forward check
    assert pylip.certify(model).bound == pylip.certify(network.weights, activation="relu").bound


def test_identity_between_linear_layers_is_certified_in_the_sector_0_1():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(2, 3), nn.Identity(), nn.Linear(3, 2))
    network = network_from_torch(model)
    assert network.sectors == [(0.0, 1.0)]
    certificate = pylip.certify(model)
    product = np.linalg.norm(network.weights[1] @ network.weights[0], 2)
    assert certificate.bound >= product * (1 - 1e-9)  # it is a bound of the linear map


@pytest.mark.parametrize(
    ("model", "named"),
    [
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Linear(2, 1)), "model.0 (Conv2d)"),
        (nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1)), "model.1 (BatchNorm1d)"),
        (nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.Linear(3, 1)), "model.1 (LayerNorm)"),
        (nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1), nn.Sigmoid()), "model.3 (sigmoid)"),
        (nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1)), "model.1 (Linear)"),
        (nn.Sequential(nn.Linear(2, 3), nn.LeakyReLU(1.5), nn.Linear(3, 1)), "negative_slope=1.5"),
        (nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3, 1)), "model.2 (Flatten)"),
    ],
)
def test_unsupported_layers_are_named(model, named):
    with pytest.raises(InputError) as error:
        pylip.certify(model)
    assert named in str(error.value)
    assert "supported" in str(error.value)


def test_a_residual_connection_is_found():
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = nn.Linear(3, 3)
            self.act = nn.Tanh()
            self.last = nn.Linear(3, 3)

        def forward(self, x):
            return x + self.last(self.act(self.first(x)))

    with pytest.raises(InputError, match="residual"):
        pylip.certify(_seeded(Residual()))


def _mixed_net() -> nn.Sequential:
    return _seeded(nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 1)))


def test_different_sectors_per_layer_are_certified_per_layer():
    model = _mixed_net()
    weights = network_from_torch(model).weights
    per_neuron = {"alpha": np.zeros(7), "beta": np.r_[np.ones(4), np.full(3, 0.25)]}
    for form in ("neuron", "layer"):
        cert = pylip.certify(model, form=form)
        direct = pylip.certify(weights, form=form, **per_neuron)
        covering = pylip.certify(weights, form=form, alpha=0.0, beta=1.0)
        assert cert.verified
        assert cert.bound == direct.bound  # the same SDP, solved the same way
        # the sigmoid layer's sector [0, 1/4] lies inside [0, 1]: a smaller feasible set of slopes
        assert cert.bound < covering.bound


def test_cli_names_each_layers_sector(tmp_path, capsys):
    from pylip.cli import main

    path = tmp_path / "mixed.pt"
    torch.save(_mixed_net(), path)
    assert main(["certify", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "layer 0: tanh [0, 1], layer 1: sigmoid [0, 0.25]" in out and "proven" in out


def test_alpha_with_a_model_is_refused():
    with pytest.raises(InputError, match="come from the model"):
        pylip.certify(_net(nn.Tanh()), alpha=0.0)


def test_certify_does_not_import_torch():
    code = "import sys, pylip; pylip.certify([[[1.0, 2.0]], [[3.0]]]); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_certifies_a_saved_whole_model(tmp_path, capsys):
    from pylip.cli import main

    model = _net(nn.LeakyReLU(0.25))
    path = tmp_path / "model.pt"
    torch.save(model, path)
    assert main(["certify", str(path), "--samples", "10"]) == 0
    out = capsys.readouterr().out
    expected = pylip.certify(network_from_torch(model).weights, alpha=0.25, beta=1.0)
    assert f"L = {expected.bound:.6g}" in out
    assert "leaky_relu from the model, sector [0.25, 1]" in out


def test_cli_names_an_unsupported_layer_of_a_saved_model(tmp_path, capsys):
    from pylip.cli import main

    path = tmp_path / "model.pt"
    torch.save(nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.Linear(3, 1)), path)
    assert main(["certify", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pylip: error: model.1 (LayerNorm) is not supported")
    assert err.count("\n") == 1
