"""Reading networks from the files users bring.

* the original's result file ``res_<date>.mat`` (struct ``res`` with
  ``weights``, ``weights_L2``, ``weights_Lip``, ``weights_Lip2`` and biases);
* LipSDP's weight files (a cell array ``weights``, layer by layer);
* ``.npz`` archives with ``W0, W1, ...`` (and optionally ``b0, b1, ...``);
* torch state dicts (``.pt``/``.pth``; needs the ``train`` extra).
"""

from __future__ import annotations

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


RES_NETS = (("nominal", ""), ("L2", "_L2"), ("Lip", "_Lip"), ("Lip2", "_Lip2"))


def load_networks(path: str | os.PathLike[str]) -> list[Network]:
    """All networks stored in ``path`` (a ``.mat``, ``.npz``, ``.pt`` or ``.pth`` file)."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"no such file: {file}")
    suffix = file.suffix.lower()
    if suffix == ".mat":
        return _from_mat(file)
    if suffix == ".npz":
        return [_from_arrays(file.stem, dict(np.load(file)))]
    if suffix in (".pt", ".pth"):
        return [_from_state_dict(file)]
    raise InputError(
        f"cannot read {file.name}: expected a .mat (original res or LipSDP weights), .npz, "
        ".pt or .pth file"
    )


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
    content = scipy.io.loadmat(file)
    if "res" in content:
        res: Any = _unwrap(content["res"])
        fields = res.dtype.names or ()
        nets = []
        for name, suffix in RES_NETS:
            if f"weights{suffix}" in fields:
                weights = as_weight_list(_cells(res[f"weights{suffix}"]), f"res.weights{suffix}")
                biases = [
                    as_vector(b, f"res.biases{suffix}[{i}]", w.shape[0])
                    for i, (w, b) in enumerate(zip(weights, _cells(res[f"biases{suffix}"])))
                ]
                nets.append(Network(name, weights, biases))
        if not nets:
            raise InputError(f"{file.name}: struct 'res' has no 'weights*' fields")
        return nets
    if "weights" in content:
        return [Network(file.stem, as_weight_list(_cells(content["weights"]), "weights"), None)]
    raise InputError(
        f"{file.name} holds neither a struct 'res' (the original's results) nor a cell "
        f"array 'weights' (LipSDP); variables found: "
        f"{', '.join(k for k in content if not k.startswith('__'))}"
    )


def _numbered(arrays: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    keys = sorted(
        (int(m.group(1)), k) for k in arrays if (m := re.fullmatch(rf"{prefix}(\d+)", k))
    )
    return [arrays[k] for _, k in keys]


def _from_arrays(name: str, arrays: dict[str, np.ndarray]) -> Network:
    weights = _numbered(arrays, "W")
    if not weights:
        raise InputError(f"{name}: expected arrays named W0, W1, ... (and optionally b0, b1, ...)")
    matrices = as_weight_list(weights)
    biases = _numbered(arrays, "b")
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
    state = torch.load(file, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise InputError(f"{file.name} does not hold a state dict (a mapping of tensors)")
    weights = [v.double().numpy() for k, v in state.items() if k.endswith("weight")]
    biases = [v.double().numpy() for k, v in state.items() if k.endswith("bias")]
    matrices = as_weight_list(weights, f"{file.name} weights")
    return Network(file.stem, matrices, biases if len(biases) == len(matrices) else None)
