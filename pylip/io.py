"""Reading networks from the files users bring.

* the original's result file ``res_<date>.mat`` (struct ``res`` with
  ``weights``, ``weights_L2``, ``weights_Lip``, ``weights_Lip2`` and biases);
* LipSDP's weight files (a cell array ``weights``, layer by layer);
* ``.npz`` archives with ``W0, W1, ...`` (and optionally ``b0, b1, ...``);
* torch state dicts (``.pt``/``.pth``; needs the ``train`` extra);
* ONNX graphs of feed-forward networks (``.onnx``; :mod:`pylip.onnx_io`, the ``onnx`` extra);
* whole torch models saved with ``torch.save(model)`` (:mod:`pylip.models`).
  Loading one runs pickled code (``torch.load(weights_only=False)``): only
  read files you trust. A state dict is read safely first (``weights_only=True``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from .errors import InputError
from .validation import as_vector, as_weight_list


@dataclass(frozen=True)
class Network:
    """Weights (and biases, if the file has them) of one feed-forward network."""

    name: str
    weights: list[np.ndarray]
    biases: list[np.ndarray] | None
    # slope sector per hidden layer, where the file says (a whole torch model's activations)
    sectors: list[tuple[float, float]] | None = None
    activations: list[str] | None = None


RES_NETS = (("nominal", ""), ("L2", "_L2"), ("Lip", "_Lip"), ("Lip2", "_Lip2"))


def load_networks(path: str | os.PathLike[str]) -> list[Network]:
    """All networks stored in ``path`` (a ``.mat``, ``.npz``, ``.pt``, ``.pth`` or ``.onnx`` file)."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"no such file: {file}")
    suffix = file.suffix.lower()
    if suffix == ".mat":
        return _from_mat(file)
    if suffix == ".npz":
        return [_from_arrays(file.stem, _read_npz(file), source=file.name)]
    if suffix in (".pt", ".pth"):
        return [_from_state_dict(file)]
    if suffix == ".onnx":
        return [_from_onnx(file)]
    raise InputError(
        f"cannot read {file.name}: expected a .mat (original res or LipSDP weights), .npz, "
        ".pt, .pth or .onnx file"
    )


def _from_onnx(file: Path) -> Network:
    from .onnx_io import load_onnx

    network = load_onnx(file)
    return Network(file.stem, network.weights, network.biases, network.sectors, network.activations)


def _unwrap(value: object) -> object:
    """Drill through the 1 x 1 object and struct arrays ``loadmat`` wraps values in."""
    while isinstance(value, np.ndarray) and value.size == 1 and (
        value.dtype == object or value.dtype.names
    ):
        value = value.reshape(-1)[0]
    return value


def _cells(value: object) -> list[np.ndarray]:
    """A MATLAB cell array (or a single matrix) as a list of 2-D arrays."""
    value = _unwrap(value)
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [np.asarray(_unwrap(v), dtype=np.float64) for v in value.ravel()]
    return [np.asarray(value, dtype=np.float64)]


def _from_mat(file: Path) -> list[Network]:
    content = _read_mat(file)
    if "res" in content:
        return _from_res(file, _unwrap(content["res"]))
    if "weights" in content:
        weights = _numeric_cells(file, content["weights"], "cell array 'weights'")
        return [Network(file.stem, as_weight_list(weights, f"{file.name} 'weights'", min_layers=1), None)]
    raise InputError(
        f"{file.name} holds neither a struct 'res' (the original's results) nor a cell "
        f"array 'weights' (LipSDP); variables found: "
        f"{', '.join(k for k in content if not k.startswith('__'))}"
    )


def _from_res(file: Path, res: Any) -> list[Network]:
    """The four nets of the original's ``res`` struct (each with its weights and biases)."""
    fields = getattr(getattr(res, "dtype", None), "names", None) or ()
    nets = []
    for name, suffix in RES_NETS:
        if f"weights{suffix}" not in fields:
            continue
        if f"biases{suffix}" not in fields:
            raise InputError(
                f"{file.name}: struct 'res' has 'weights{suffix}' but no 'biases{suffix}'; expected "
                "both, as the original's drivers save them (or save the weights alone as LipSDP's "
                "cell array 'weights')"
            )
        weights = as_weight_list(
            _numeric_cells(file, res[f"weights{suffix}"], f"res.weights{suffix}"),
            f"{file.name} res.weights{suffix}",
            min_layers=1,
        )
        cells = _numeric_cells(file, res[f"biases{suffix}"], f"res.biases{suffix}")
        if len(cells) != len(weights):
            raise InputError(
                f"{file.name}: res.biases{suffix} has {len(cells)} vectors but res.weights{suffix} "
                f"has {len(weights)} matrices; expected one bias per layer"
            )
        biases = [
            as_vector(b, f"{file.name} res.biases{suffix}[{i}]", w.shape[0])
            for i, (w, b) in enumerate(zip(weights, cells))
        ]
        nets.append(Network(name, weights, biases))
    if not nets:
        raise InputError(f"{file.name}: struct 'res' has no 'weights*' fields")
    return nets


def _numeric_cells(file: Path, value: object, what: str) -> list[np.ndarray]:
    """:func:`_cells`, with an error naming the file if an entry is not numeric."""
    try:
        return _cells(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{file.name}: {what} must hold numeric matrices ({exc})") from None


def _read_npz(file: Path) -> dict[str, np.ndarray]:
    """The arrays of a ``.npz`` archive (never unpickling: object arrays are refused)."""
    try:
        with np.load(file, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise ValueError("it holds a single .npy array, not an archive")
            return {k: archive[k] for k in archive.files}
    except Exception as exc:  # numpy raises many types for damaged or non-npz files
        raise InputError(
            f"{file.name} is not a readable .npz archive of numeric arrays W0, W1, ... "
            f"(np.savez writes one; object arrays are not read): {exc}"
        ) from None


def _numbered(arrays: dict[str, np.ndarray], prefix: str, name: str = "") -> list[np.ndarray]:
    """Arrays ``prefix0, prefix1, ...`` in order; a gap in the numbering is an error."""
    keys = sorted(
        (int(m.group(1)), k) for k in arrays if (m := re.fullmatch(rf"{prefix}(\d+)", k))
    )
    expected = list(range(len(keys)))
    if [i for i, _ in keys] != expected:
        raise InputError(
            f"{name}: arrays {', '.join(k for _, k in keys)} leave a gap; expected "
            f"{', '.join(f'{prefix}{i}' for i in expected)} (one per layer, numbered from 0)"
        )
    return [arrays[k] for _, k in keys]


def _from_arrays(name: str, arrays: dict[str, np.ndarray], source: str | None = None) -> Network:
    where = source or name
    weights = _numbered(arrays, "W", where)
    if not weights:
        found = ", ".join(arrays) or "no arrays"
        raise InputError(
            f"{where}: expected arrays named W0, W1, ... (and optionally b0, b1, ...); found {found}"
        )
    matrices = as_weight_list(weights, f"{where} weights", min_layers=1)
    biases = _numbered(arrays, "b", where)
    vectors = (
        [as_vector(b, f"b{i}", w.shape[0]) for i, (w, b) in enumerate(zip(matrices, biases))]
        if len(biases) == len(matrices)
        else None
    )
    return Network(name, matrices, vectors)


def _from_state_dict(file: Path) -> Network:
    try:
        import torch
    except ImportError:
        raise InputError(
            f"reading {file.name} needs torch: pip install 'pylip[train]'"
        ) from None
    try:
        state = _torch_load(file, torch)
    except _PickledModel:
        return _from_whole_model(file, torch)
    if not isinstance(state, dict):
        raise InputError(
            f"{file.name} holds a {type(state).__name__}, not a state dict; expected a mapping of "
            "tensors as torch.save(model.state_dict(), path) writes"
        )
    _require_linear_layers(file, state)
    _require_real_tensors(file, state)
    weights = [v.double().numpy() for k, v in state.items() if k.endswith("weight")]
    biases = [v.double().numpy() for k, v in state.items() if k.endswith("bias")]
    matrices = as_weight_list(weights, f"{file.name} weights", min_layers=1)
    return Network(file.stem, matrices, biases if len(biases) == len(matrices) else None)


class _PickledModel(Exception):
    """The file holds more than tensors: a whole model saved with ``torch.save(model)``."""


def _require_real_tensors(file: Path, state: dict[str, Any]) -> None:
    """``Tensor.double()`` would drop a complex tensor's imaginary part: refuse it instead."""
    for key, value in state.items():
        if getattr(value, "is_complex", lambda: False)():
            raise InputError(
                f"{file.name}: {key} holds complex numbers; a Lipschitz bound is defined for real weights"
            )


def _torch_load(file: Path, torch: Any) -> Any:
    """``torch.load`` of tensors only; damaged files as InputError, whole models as :class:`_PickledModel`."""
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises EOFError, UnpicklingError, RuntimeError, ...
        detail = " ".join(str(exc).split())[:200]
        if "weights only load failed" in detail.lower():
            raise _PickledModel from None
        hint = "the file is empty, damaged or not written by torch.save"
        raise InputError(
            f"{file.name} is not a readable torch state dict ({hint}); expected "
            f"torch.save(model.state_dict(), path) of Linear layers [{type(exc).__name__}: {detail}]"
        ) from None


_NORMALISATION_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _require_linear_layers(file: Path, state: dict[str, Any]) -> None:
    """Refuse state dicts of layers other than Linear (convolution, normalisation, ...)."""
    for key, value in state.items():
        layer = key.rsplit(".", 1)[0]
        ndim = getattr(value, "ndim", None)
        if key.endswith(_NORMALISATION_BUFFERS) or (key.endswith("weight") and ndim == 1):
            kind = "a normalisation layer"
        elif key.endswith("weight") and ndim is not None and ndim != 2:
            kind = f"a layer with a {ndim}-D weight (convolution?)"
        elif not key.endswith(("weight", "bias")):
            kind = f"an entry '{key}' that is neither a weight nor a bias"
        else:
            continue
        raise InputError(
            f"{file.name}: layer '{layer}' is {kind}, which is not supported; pylip certifies "
            "feed-forward nets of Linear layers (2-D weights, 1-D biases) with elementwise activations"
        )


def _from_whole_model(file: Path, torch: Any) -> Network:
    """A model saved with ``torch.save(model)``: trusted files only (unpickling runs code)."""
    from .models import is_torch_module, network_from_torch

    try:
        model = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as exc:  # a damaged file, or a class that is not importable here
        detail = " ".join(str(exc).split())[:200]
        raise InputError(
            f"{file.name} is not a readable torch state dict or model (the file is damaged, not "
            "written by torch.save, or its model class cannot be imported here); expected "
            f"torch.save(model.state_dict(), path) [{type(exc).__name__}: {detail}]"
        ) from None
    if not is_torch_module(model):
        raise InputError(
            f"{file.name} holds a {type(model).__name__}, neither a state dict nor a torch model"
        )
    network = network_from_torch(model)
    return Network(file.stem, network.weights, network.biases, network.sectors, network.activations)


def network_sector(net: Any, activation: str) -> tuple[str, dict[str, Any], str | None]:
    """What to print, certify's sector arguments, and the sampled bound's activation (None: none).

    A whole torch model or an ONNX graph brings its activations (:mod:`pylip.models`,
    :mod:`pylip.onnx_io`), which override ``activation``.
    """
    if net.sectors is None:
        return activation, {"activation": activation}, activation
    from .models import ImportedNetwork

    model = ImportedNetwork(net.weights, net.biases or [], net.activations, net.sectors)
    alpha, beta = model.certify_sector()
    names = sorted(set(net.activations))
    sampled = names[0] if len(names) == 1 and names[0] in ("tanh", "relu", "sigmoid") else None
    return model.describe_sectors(), {"alpha": alpha, "beta": beta}, sampled


def res_struct(result: Any) -> dict[str, Any]:
    """An :class:`~pylip.examples.ExampleResult` in the original's ``res`` layout.

    Fields and names as the original drivers saved them: ``hyper``, ``data``
    (inputs, targets, outputs, ``Lip*`` bounds, ``MSELoss*``, courses) and
    ``weights*``, ``biases*`` of the four nets.
    """
    h = result.hyper
    hyper = {
        "lr": h.lr, "n_x": 1, "n_h": 10, "n_y": 1, "rho": h.rho, "mu": h.mu, "lambda": h.lmbd,
        "epochs": h.epochs, "epochs_nom": h.epochs_nom, "epochs_L2": h.epochs_L2,
        "iterations_ADMM": h.it_ADMM, "ind_Lip": h.ind_Lip, "Lip_des": result.L_des,
    }
    column = lambda values: np.asarray(values, dtype=np.float64).reshape(-1, 1)  # noqa: E731
    data: dict[str, Any] = {"input": column(result.input), "target": column(result.target)}
    for name, suffix in RES_NETS:
        data[f"out{suffix}"] = column(result.nets[name].prediction)
    for name, suffix in RES_NETS:
        data[f"Lip{suffix}"] = result.nets[name].bound
    labels = {"train": "MSELoss", "test": "MSELoss_test", "sine": "MSELoss_sin"}
    for key, label in labels.items():
        for name, suffix in RES_NETS:
            if key in result.nets[name].mse:
                data[f"{label}{suffix}"] = np.float32(result.nets[name].mse[key])
    data["L_course"] = np.asarray(result.courses["L_course"])
    data["L_course_L2"] = np.asarray(result.courses["L_course_L2"])
    data["L_course_Lip"] = column(result.courses["L_course_Lip"])
    data["MSE_course"] = np.asarray(result.courses["MSE_course"])
    data["MSE_course_L2"] = np.asarray(result.courses["MSE_course_L2"])
    data["MSE_course_Lip"] = column(result.courses["MSE_course_Lip"])
    res: dict[str, Any] = {"hyper": hyper, "data": data}
    for name, suffix in RES_NETS:
        res[f"weights{suffix}"] = _cell(result.nets[name].weights)
    for name, suffix in RES_NETS:
        res[f"biases{suffix}"] = _cell(result.nets[name].biases)
    return res


def _cell(arrays: list[np.ndarray]) -> np.ndarray:
    cell = np.empty((1, len(arrays)), dtype=object)
    for i, array in enumerate(arrays):
        cell[0, i] = np.asarray(array, dtype=np.float64)
    return cell


def save_res_mat(result: Any, path: str | os.PathLike[str]) -> Path:
    """Write the original's ``res`` struct (``load(file); res.data.Lip`` in MATLAB)."""
    target = Path(path)
    scipy.io.savemat(target, {"res": np.array(res_struct(result), dtype=object)})
    return target


def summary(result: Any) -> dict[str, Any]:
    """A JSON-ready summary: hyperparameters, per-net bound and MSEs, timings, courses."""
    return {
        "example": result.example,
        "hyper": {**dataclasses.asdict(result.hyper), "Lip_des": result.L_des},
        "settings": result.settings,
        "nets": {
            name: {"L": net.bound, "mse": net.mse, "weights": [w.tolist() for w in net.weights],
                   "biases": [b.tolist() for b in net.biases]}
            for name, net in result.nets.items()
        },
        "timings_seconds": result.timings,
        "courses": {k: [None if v != v else v for v in values] for k, values in result.courses.items()},
    }


def save_summary(result: Any, path: str | os.PathLike[str]) -> Path:
    """Write :func:`summary` as JSON (NaN logging entries as null)."""
    target = Path(path)
    target.write_text(json.dumps(summary(result), indent=1))
    return target


@dataclass(frozen=True)
class StoredCertificate:
    """A bound ``L`` and multiplier ``T`` read from a file, with the network if the file has it."""

    L: float
    T: np.ndarray
    network: Network | None
    activation: str | None
    alpha: Any  # a number, one number per hidden neuron, or None
    beta: Any


def load_certificate(path: str | os.PathLike[str], net: str | None = None) -> StoredCertificate:
    """A certificate ``(L, T)`` from a JSON, ``.mat`` or ``.npz`` file.

    * JSON (as :func:`save_certificate` writes): ``"L"``, ``"T"`` (matrix or
      diagonal), optionally ``"weights"`` (list of matrices), ``"activation"``
      or ``"alpha"``/``"beta"``;
    * ``.mat`` (LipSDP's or the original's outputs): a bound ``L`` or
      ``Lipschitz``, a multiplier ``T``, optionally LipSDP's cell ``weights``;
    * ``.npz``: ``L``, ``T``, optionally ``W0, W1, ...``.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError(f"no such file: {file}")
    suffix = file.suffix.lower()
    if suffix == ".json":
        return _certificate_from_json(file)
    if suffix == ".mat":
        content = {k: v for k, v in _read_mat(file).items() if not k.startswith("__")}
        return _certificate_from_mapping(file, content, mat=True)
    if suffix == ".npz":
        return _certificate_from_mapping(file, _read_npz(file), mat=False)
    raise InputError(f"cannot read a certificate from {file.name}: expected a .json, .mat or .npz file")


def _read_mat(file: Path) -> dict[str, Any]:
    try:
        return dict(scipy.io.loadmat(file))
    except Exception as exc:  # scipy raises many types for damaged files
        raise InputError(f"{file.name} is not a readable MATLAB .mat file ({exc})") from None


def _certificate_from_json(file: Path) -> StoredCertificate:
    try:
        content = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{file.name} is not a JSON file ({exc})") from None
    if not isinstance(content, dict):
        raise InputError(f"{file.name}: expected a JSON object with keys 'L' and 'T'")
    missing = [key for key in ("L", "T") if key not in content]
    if missing:
        raise InputError(
            f"{file.name}: missing key(s) {', '.join(missing)} (a certificate needs 'L' and 'T')"
        )
    network = None
    if "weights" in content:
        matrices = as_weight_list(content["weights"], f"{file.name} 'weights'", min_layers=1)
        network = Network(file.stem, matrices, None)
    return StoredCertificate(
        L=_scalar(content["L"], f"{file.name} 'L'"),
        T=_multiplier(content["T"], f"{file.name} 'T'"),
        network=network,
        activation=content.get("activation"),
        alpha=content.get("alpha"),
        beta=content.get("beta"),
    )


def _certificate_from_mapping(file: Path, content: dict[str, Any], *, mat: bool) -> StoredCertificate:
    bound_key = next((k for k in ("L", "Lipschitz", "lipschitz") if k in content), None)
    if bound_key is None or "T" not in content:
        raise InputError(
            f"{file.name}: expected a bound 'L' (or 'Lipschitz') and a multiplier 'T'; found "
            f"{', '.join(content) or 'nothing'}"
        )
    network = None
    if mat and "weights" in content:
        matrices = as_weight_list(_cells(content["weights"]), "weights", min_layers=1)
        network = Network(file.stem, matrices, None)
    elif not mat and any(re.fullmatch(r"W\d+", k) for k in content):
        network = _from_arrays(file.stem, content, source=file.name)
    return StoredCertificate(
        L=_scalar(content[bound_key], f"{file.name} '{bound_key}'"),
        T=_multiplier(_unwrap(content["T"]), f"{file.name} 'T'"),
        network=network, activation=None, alpha=None, beta=None,
    )


def _scalar(value: Any, name: str) -> float:
    array = np.asarray(_unwrap(value)) if value is not None else np.asarray(None, dtype=object)
    if isinstance(value, bool) or array.dtype.kind not in "iuf":
        raise InputError(f"{name} must be a number (the certified bound), got {value!r}")
    if array.size != 1:
        raise InputError(f"{name} must be one number, got shape {array.shape}")
    return float(array.reshape(-1)[0])


def _multiplier(value: Any, name: str) -> np.ndarray:
    """The multiplier ``T`` as stored: a vector or matrix of real numbers (its size is checked later)."""
    try:
        if np.iscomplexobj(np.asarray(value)):
            raise TypeError("complex")
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(
            f"{name} must be a vector (the diagonal) or a matrix of real numbers, with one entry per hidden "
            f"neuron; got {str(value)[:60]!r}"
        ) from None
    return array


def save_certificate(certificate: Any, weights: list[np.ndarray], path: str | os.PathLike[str]) -> Path:
    """Write ``L``, ``T``, the sector and the weights as JSON (floats round-trip exactly)."""
    target = Path(path)
    content = {
        "L": certificate.bound,
        "T": np.diag(certificate.T).tolist(),
        "alpha": np.asarray(certificate.alpha, dtype=np.float64).tolist(),  # a number or one per neuron
        "beta": np.asarray(certificate.beta, dtype=np.float64).tolist(),
        "weights": [np.asarray(w, dtype=np.float64).tolist() for w in weights],
    }
    target.write_text(json.dumps(content))
    return target
