"""Coercion and checking of user input (weights, biases, dimensions).

The original received its arrays through the MATLAB engine as 2-D
``matlab.double`` values; pylip accepts numpy arrays and nested lists, and
biases as flat vectors, ``1 x n`` rows or ``n x 1`` columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import InputError


def _reject_complex(value: Any, name: str) -> None:
    """Complex entries would be cast to their real part by numpy: refuse them instead."""
    if _holds_complex(value):
        raise InputError(
            f"{name} holds complex numbers; a Lipschitz bound is defined for real weights "
            "(pass the real part explicitly, np.real(w), if that is what is meant)"
        )


def _reject_booleans(value: Any, name: str) -> None:
    """A boolean array (a mask) passed as weights is a mistake, not a 0/1 weight matrix."""
    try:
        kind = value.dtype.kind if isinstance(value, np.ndarray) else np.asarray(value).dtype.kind
    except (TypeError, ValueError):
        return
    if kind == "b":
        raise InputError(f"{name} holds booleans (True/False), not numbers; pass weights as floats")


def _holds_complex(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype.kind == "c"
    try:
        return np.asarray(value).dtype.kind == "c"
    except (TypeError, ValueError):
        return False


def as_matrix(value: Any, name: str) -> np.ndarray:
    """Return ``value`` as a finite, non-empty 2-D float64 array."""
    _reject_complex(value, name)
    _reject_booleans(value, name)
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{name} must be a 2-D array of numbers (a numpy array or a nested list of rows); "
            f"could not convert it: {exc}"
        ) from None
    if array.ndim != 2:
        raise InputError(
            f"{name} must be 2-D (n_out x n_in), got an array with shape {array.shape}; "
            "give a weight matrix as a list of rows, e.g. [[w11, w12], [w21, w22]]"
        )
    if array.size == 0:
        raise InputError(f"{name} is empty (shape {array.shape}); every layer needs at least one neuron")
    _require_finite(array, name)
    return array


def as_vector(value: Any, name: str, length: int | None = None) -> np.ndarray:
    """Return a bias as a finite 1-D float64 array (accepts rows and columns)."""
    _reject_complex(value, name)
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a vector of numbers; could not convert it: {exc}") from None
    if array.ndim == 0:
        array = array.reshape(1)
    elif array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    elif array.ndim != 1:
        raise InputError(
            f"{name} must be a vector (flat, 1 x n or n x 1), got shape {array.shape}"
        )
    if length is not None and array.size != length:
        raise InputError(f"{name} has {array.size} entries but the layer has {length} neurons")
    _require_finite(array, name)
    return array


def _require_finite(array: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise InputError(
            f"{name} contains {bad} NaN or inf value(s); a Lipschitz bound of such a network "
            "is meaningless: check the training run that produced these weights"
        )


def as_weight_list(weights: Sequence[Any], name: str = "weights", *, min_layers: int = 2) -> list[np.ndarray]:
    """Check a feed-forward network's weight matrices ``[W0, ..., Wl]`` and that they chain.

    ``min_layers=1`` also accepts a single matrix ``[W]`` (a linear map).
    """
    if isinstance(weights, np.ndarray) and weights.dtype != object:
        raise InputError(
            f"{name} must be a list of weight matrices [W0, W1, ...], not a single array"
        )
    if isinstance(weights, (dict, str, bytes)) or not isinstance(weights, Sequence | np.ndarray):
        hint = " (for a dict of W0, W1, ... pass [d['W0'], d['W1']])" if isinstance(weights, dict) else ""
        raise InputError(
            f"{name} must be a list of weight matrices [W0, W1, ...], got {type(weights).__name__}{hint}"
        )
    matrices = [as_matrix(w, f"{name}[{i}]") for i, w in enumerate(weights)]
    if len(matrices) < min_layers:
        raise InputError(
            (f"{name} must hold at least two weight matrices (input->hidden, hidden->output), "
             if min_layers == 2 else f"{name} must hold at least {min_layers} weight matrix, ")
            + f"got {len(matrices)}"
        )
    for i in range(1, len(matrices)):
        if matrices[i].shape[1] != matrices[i - 1].shape[0]:
            raise InputError(
                f"{name}[{i}] has {matrices[i].shape[1]} columns but {name}[{i - 1}] has "
                f"{matrices[i - 1].shape[0]} rows: layer sizes must chain "
                f"(W{i} is n_{i + 1} x n_{i})"
            )
    return matrices


def as_dim(value: Any, name: str) -> int:
    """A dimension given as int, float, or a MATLAB-engine style ``[[n]]``."""
    array = np.asarray(value) if value is not None else np.asarray(None, dtype=object)
    if array.size != 1:
        raise InputError(f"{name} must be a single positive integer, got {value!r}")
    scalar = array.reshape(()).item()
    if (
        isinstance(scalar, bool)
        or not isinstance(scalar, (int, float))
        or not math.isfinite(scalar)
        or float(scalar) != int(scalar)
        or int(scalar) < 1
    ):
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(scalar)


def as_number(value: Any, name: str) -> float:
    """A finite real number given as a Python or numpy scalar (not a bool, not an array)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(f"{name} must be finite, got {number}")
    return number


def as_count(value: Any, name: str, minimum: int) -> int:
    """An integer (not a bool, not a float) that is at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def as_mapping(value: Any, name: str, fields: str) -> Mapping[str, Any]:
    """A dict-like argument of the original's interface (``parameters``, ``x``)."""
    if not isinstance(value, Mapping):
        raise InputError(
            f"{name} must be a dict with the fields {fields}, got {type(value).__name__}"
        )
    return value


def as_seed(value: Any, name: str = "rng") -> np.random.Generator:
    """A numpy Generator from a Generator, a non-negative integer seed, or ``None`` (seed 0)."""
    if isinstance(value, np.random.Generator):
        return value
    if value is None:
        return np.random.default_rng(0)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InputError(
            f"{name} must be a numpy Generator, a non-negative integer seed or None, got {value!r}"
        )
    return np.random.default_rng(int(value))


def as_scalar(value: Any, name: str) -> float:
    """A finite real scalar, given plain or as a 1 x 1 nested list (not a string, not a bool)."""
    raw = np.asarray(value) if value is not None else np.asarray(None, dtype=object)
    if raw.dtype.kind not in "iuf" or raw.size != 1:
        raise InputError(f"{name} must be a single real number, got {value!r}")
    array = raw.astype(np.float64)
    if array.size != 1:
        raise InputError(f"{name} must be a single number, got {value!r}")
    scalar = float(array.reshape(()))
    if not np.isfinite(scalar):
        raise InputError(f"{name} must be finite, got {scalar}")
    return scalar


def as_sequence(value: Any, name: str, what: str) -> Sequence[Any]:
    """A list or tuple argument (not None, a string, a dict or a single array)."""
    if isinstance(value, np.ndarray) and value.ndim >= 1:
        return list(value)
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise InputError(f"{name} must be a list of {what}, got {type(value).__name__}")
    return value


def as_flag(value: Any, name: str) -> bool:
    """A boolean option given as True/False (not a string such as 'no', which is truthy)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def as_nonnegative(value: Any, name: str, what: str) -> float:
    """A finite real number >= 0 (a radius, a bound)."""
    number = as_number(value, name)
    if number < 0:
        raise InputError(f"{name} ({what}) must be >= 0, got {number}")
    return number


def as_certificate_of(value: Any, name: str, matrices: Sequence[np.ndarray]) -> Any:
    """A :class:`pylip.certificate.Certificate` of the network with these weight matrices' sizes."""
    from .lipsdp.certificate import Certificate

    if not isinstance(value, Certificate):
        raise InputError(
            f"{name} must be a pylip Certificate (pylip.certify(weights, ...)), got {type(value).__name__}"
        )
    sizes = (matrices[0].shape[1], *(w.shape[0] for w in matrices))
    if tuple(value.layer_sizes) != sizes:
        raise InputError(
            f"{name} certifies a {'-'.join(map(str, value.layer_sizes))} network but the weights are "
            f"{'-'.join(map(str, sizes))}: pass the certificate of these weights"
        )
    return value
