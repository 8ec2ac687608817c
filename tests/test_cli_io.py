"""The certify command and the file readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pylip
from pylip.cli import main
from pylip.io import load_networks

REFERENCE = Path(__file__).resolve().parent.parent / "reference"


def test_reads_the_original_res_file():
    nets = load_networks(REFERENCE / "original/sin_example_res.mat")
    assert [n.name for n in nets] == ["nominal", "L2", "Lip", "Lip2"]
    assert nets[0].weights[0].shape == (10, 1) and nets[0].weights[1].shape == (1, 10)
    assert nets[0].biases[0].shape == (10,) and nets[0].biases[1].shape == (1,)


def test_reads_lipsdp_weight_cells():
    (net,) = load_networks(REFERENCE / "peers/lipsdp/mnist_weights.mat")
    assert [w.shape for w in net.weights] == [(50, 784), (10, 50)]
    assert net.biases is None


def test_reads_npz(tmp_path):
    path = tmp_path / "net.npz"
    np.savez(path, W0=np.ones((3, 2)), W1=np.ones((1, 3)), b0=np.zeros(3), b1=np.zeros(1))
    (net,) = load_networks(path)
    assert [w.shape for w in net.weights] == [(3, 2), (1, 3)]
    assert net.biases is not None


def test_rejects_unknown_files(tmp_path):
    path = tmp_path / "net.txt"
    path.write_text("1 2 3")
    with pytest.raises(pylip.InputError, match="expected a .mat"):
        load_networks(path)
    with pytest.raises(pylip.InputError, match="no such file"):
        load_networks(tmp_path / "missing.mat")


def test_certify_command_on_npz(tmp_path, capsys):
    path = tmp_path / "net.npz"
    rng = np.random.default_rng(0)
    np.savez(path, W0=rng.standard_normal((4, 2)), W1=rng.standard_normal((1, 4)))
    assert main(["certify", str(path), "--samples", "200"]) == 0
    out = capsys.readouterr().out
    assert "neuron" in out and "layer" in out and "sampled lower bound" in out


def test_command_reports_errors_without_traceback(tmp_path, capsys):
    assert main(["certify", str(tmp_path / "missing.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
