"""The certify command and the file readers."""

from __future__ import annotations

import os
import re
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


# --- issue 14 item 6: arguments checked before any work, one error line, words instead of statuses ---


def _one_error_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "", captured.out
    assert len(lines) == 1 and lines[0].startswith("pylip: error: "), captured.err
    return lines[0]


@pytest.fixture
def small_npz(tmp_path):
    path = tmp_path / "net.npz"
    rng = np.random.default_rng(0)
    np.savez(path, W0=rng.standard_normal((4, 2)), W1=rng.standard_normal((1, 4)))
    return path


@pytest.mark.parametrize(
    "argv, match",
    [
        (["certify", "{npz}", "--samples", "0"], "--samples must be >= 1"),
        (["certify", "{npz}", "--samples", "-5"], "--samples must be >= 1"),
        (["certify", "{npz}", "--seed", "-1"], "--seed must be >= 0"),
        (["certify", "{npz}", "--solver", "BOGUS"], "unknown solver 'BOGUS'"),
        (["parity-report", "--solver", "bogus"], "unknown solver 'bogus'"),
        (["digits-example", "--threads", "0"], "--threads must be >= 1"),
        (["sin-example", "--ind-Lip", "3"], "--ind-Lip must be 1 .* or 2"),
        (["reproduce", "--jobs", "0"], "--jobs must be >= 1"),
        (["reproduce", "--scale", "0"], "--scale must be a finite number > 0"),
    ],
)
@pytest.mark.torch  # the training commands check torch first
def test_bad_arguments_are_rejected_before_any_work(argv, match, small_npz, capsys, monkeypatch):
    from pylip.experiments import examples

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the arguments were checked")

    monkeypatch.setattr(examples, "run_example", no_training)
    assert main([a.format(npz=small_npz) for a in argv]) == 2
    assert re.search(match, _one_error_line(capsys))


def test_reproduce_chooses_its_workers_from_the_work():
    from pylip.cli import _reproduce_jobs, build_parser

    parse = build_parser().parse_args
    assert _reproduce_jobs(parse(["reproduce", "--scale", "0.01"])) == 1
    assert _reproduce_jobs(parse(["reproduce", "--jobs", "1"])) == 1
    expected = 2 if (os.cpu_count() or 1) >= 2 else 1
    assert _reproduce_jobs(parse(["reproduce"])) == expected


def test_reproduce_at_another_scale_says_nothing_was_compared():
    from pylip.cli import build_parser, reproduce_verdict

    parse = build_parser().parse_args
    assert reproduce_verdict(parse(["reproduce", "--scale", "0.01"]), [True, True]).startswith(
        "nothing was compared"
    )
    assert reproduce_verdict(parse(["reproduce"]), [True, True]) == "every cell within tolerance"


@pytest.mark.torch
def test_reproduce_tables_state_the_tolerance_behind_ok():
    from types import SimpleNamespace

    from pylip.experiments import examples

    result = SimpleNamespace(spec=SimpleNamespace(table="II", name="sin_example"))
    cells = [examples.Cell("Lip", "L", 1.0, 1.001, None)]
    table = examples.format_comparison(result, cells)
    assert "ok: within 0.5% of the original's run" in table


def test_certify_prints_the_proof_in_words_and_progress_on_stderr(small_npz, capsys):
    assert main(["certify", str(small_npz), "--samples", "50"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("proven (") == 2
    assert "optimal_inaccurate" not in captured.out
    assert "no repair needed" in captured.out or "after a repair" in captured.out
    assert "pylip: certifying net (LipSDP-neuron)" in captured.err
    assert main(["certify", str(small_npz), "--samples", "50", "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


def test_certify_help_documents_every_option_and_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["certify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for expected in (
        "--activation",
        "(default: tanh)",
        "--solver",
        "CLARABEL, SCS",
        "--samples",
        "(default: 10000)",
        "--seed",
        "seed of the sampled points (default: 0)",
        "--no-progress",
    ):
        assert expected in text


NO_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
"""


@pytest.mark.parametrize(
    "code, expected",
    [
        ("from pylip import *\nprint(certify.__name__)", "certify"),
        (  # the layout (issue 15): every exported name, the subpackages, old paths as the new modules
            "import warnings\nwarnings.simplefilter('error', DeprecationWarning)\n"
            "import pylip, pylip.lipsdp, pylip.admm, pylip.train, pylip.experiments, pylip.original\n"
            "import pylip.compat, pylip.deep_admm, pylip.train.threads\n"
            "assert pylip.compat is pylip.original and pylip.deep_admm is pylip.admm.deep_step\n"
            "assert 'MeinNetz' not in pylip.__all__\n"
            "print([name for name in pylip.__all__ if not hasattr(pylip, name)] == [])",
            "True",
        ),
        (
            "import pylip\ntry:\n    pylip.MeinNetz\nexcept ImportError as e:\n    print(e)",
            "pip install 'pylip[train]'",
        ),
        *(
            (f"from pylip.cli import main\nprint(main({argv!r}))", "pip install 'pylip[train]'")
            for argv in (
                ["reproduce"],
                ["sin-example"],
                ["classifier-example"],
                ["digits-example", "--quick"],
            )
        ),
    ],
    ids=[
        "from pylip import *", "layout", "pylip.MeinNetz",
        "reproduce", "sin-example", "classifier-example", "digits",
    ],
)
def test_without_torch_the_training_entry_points_name_the_extra(code, expected, tmp_path):
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", NO_TORCH + code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(pylip.__file__).resolve().parent.parent)},
        timeout=120,
    )
    assert "Traceback" not in run.stderr, run.stderr
    assert expected in run.stdout + run.stderr


# --- a second hostile pass: files and arguments that still ended in a traceback or a silent coercion ---


def _json(path, content):
    import json

    path.write_text(json.dumps(content))


def _state_dict(path, **tensors):
    torch = pytest.importorskip("torch")
    torch.save(tensors, path)


def _complex_linear_layers():
    torch = pytest.importorskip("torch")
    return {"0.weight": torch.ones(4, 2, dtype=torch.complex64), "2.weight": torch.ones(1, 4)}


BAD_FILES = {
    "verify: JSON with a string L (ValueError)": (
        "c.json", lambda p: _json(p, {"L": "x", "T": [1, 1, 1, 1]}), ["verify", "{f}", "--weights", "{npz}"],
        r"c.json 'L' must be a number \(the certified bound\), got 'x'",
    ),
    "verify: JSON with a ragged T (ValueError)": (
        "c.json", lambda p: _json(p, {"L": 1.0, "T": [[1, 2], [3]]}), ["verify", "{f}", "--weights", "{npz}"],
        "c.json 'T' must be a vector .* or a matrix of real numbers",
    ),
    "verify: JSON with a string T (ValueError)": (
        "c.json", lambda p: _json(p, {"L": 1.0, "T": "abcd"}), ["verify", "{f}", "--weights", "{npz}"],
        "c.json 'T' must be a vector",
    ),
    "verify: JSON with L = true (coerced to 1)": (
        "c.json", lambda p: _json(p, {"L": True, "T": [1, 1, 1, 1]}), ["verify", "{f}", "--weights", "{npz}"],
        "c.json 'L' must be a number",
    ),
    "verify: .npz with a string L (ValueError)": (
        "c.npz", lambda p: np.savez(p, L="abc", T=np.ones(4), W0=np.ones((4, 2)), W1=np.ones((1, 4))),
        ["verify", "{f}"], "c.npz 'L' must be a number",
    ),
    "sweep: a binary spec (UnicodeDecodeError)": (
        "spec.toml", lambda p: p.write_bytes(b"\xff\xfe\x00task"), ["sweep", "{f}", "--workers", "0"],
        "spec.toml: not a text file",
    ),
    "certify: a complex state dict (imaginary part dropped)": (
        "net.pt",
        lambda p: _state_dict(p, **_complex_linear_layers()),
        ["certify", "{f}", "--samples", "10"], "net.pt: 0.weight holds complex numbers",
    ),
    "sweep: --out is a file (NotADirectoryError)": (
        "afile", lambda p: p.write_text("x"),
        ["sweep", "examples/sweeps/digits_small.toml", "--out", "{f}", "--workers", "0"],
        "--out .*afile is a file, not a folder",
    ),
    "digits-example: --out inside a file (FileExistsError)": (
        "afile", lambda p: p.write_text("x"), ["digits-example", "--preset", "miniature", "--out", "{f}/sub"],
        "--out .*afile is a file, not a folder",
    ),
    "certify: --scheduler without a port (ValueError from Dask)": (
        "unused", lambda p: None, ["certify", "{npz}", "--scheduler", "bogus"],
        "--scheduler 'bogus': could not connect to a Dask scheduler",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_or_argument_gets_one_error_line(case, tmp_path, small_npz, capsys):
    name, write, argv, match = BAD_FILES[case]
    write(tmp_path / name)
    if "--scheduler" in argv:
        pytest.importorskip("distributed")
    root = Path(__file__).resolve().parent.parent
    argv = [a.format(f=tmp_path / name, npz=small_npz) for a in argv]
    argv = [str(root / a) if a.startswith("examples/") else a for a in argv]
    assert main(argv) == 2
    assert re.search(match, _one_error_line(capsys))
