"""The original's functions under their original names.

A thin layer over pylip's core for users migrating from the authors' MATLAB
(``calculate_Lipschitz.m``, ``solve_sdp.m``) and Python bridge
(``solve_SDP.py``: ``build_T``, ``solve_SDP``, ``initialize_parameters``).
Arguments and results keep the original layout: dicts with ``W0, W1, b0, b1``
and ``n_x, n_h, n_y``; results as dicts with the original keys. The
original's torch network ``MeinNetz`` (``pylip.train.training``) is here too,
imported on first use: it needs torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .admm.step import MODES, LipschitzStep
from .errors import InputError
from .lipsdp.certificate import DEFAULT_MARGIN, certify
from .lipsdp.sampling import as_generator
from .validation import as_dim, as_mapping, as_matrix, as_number, as_sequence, as_vector

N_CHECK_SAMPLES = 10_000  # the original's sample count for its checks


def weight_pair(parameters: Mapping[str, Any], required: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``W0, W1`` of an original ``parameters`` dict, after checking its ``required`` fields."""
    as_mapping(parameters, "parameters", ", ".join(required) + " (initialize_parameters builds them)")
    for key in required:
        if key not in parameters:
            raise InputError(f"parameters has no field '{key}' (needs {', '.join(required)})")
    W0 = as_matrix(parameters["W0"], "parameters['W0']")
    W1 = as_matrix(parameters["W1"], "parameters['W1']")
    if W1.shape[1] != W0.shape[0]:
        raise InputError(
            f"parameters['W1'] has {W1.shape[1]} columns but parameters['W0'] has "
            f"{W0.shape[0]} rows: W0 is n_h x n_x and W1 is n_y x n_h"
        )
    return W0, W1


def one_hidden_layer(
    parameters: Mapping[str, Any], dims: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``W0, W1, b0, b1`` from an original ``parameters`` dict, checked against ``dims``."""
    W0, W1 = weight_pair(parameters, ("W0", "W1", "b0", "b1"))
    if dims is not None:
        as_mapping(dims, "x", "n_x, n_h, n_y")
    b0 = as_vector(parameters["b0"], "parameters['b0']", W0.shape[0])
    b1 = as_vector(parameters["b1"], "parameters['b1']", W1.shape[0])
    if dims is not None:
        expected = {"n_x": W0.shape[1], "n_h": W0.shape[0], "n_y": W1.shape[0]}
        for key, actual in expected.items():
            if key not in dims:
                raise InputError(f"x has no field '{key}' (needs n_x, n_h, n_y)")
            given = as_dim(dims[key], f"x['{key}']")
            if given != actual:
                raise InputError(
                    f"x['{key}'] = {given} does not match the weights ({key} = {actual} "
                    "from W0 (n_h x n_x) and W1 (n_y x n_h))"
                )
    return W0, W1, b0, b1


def original_checks(
    W0: np.ndarray,
    W1: np.ndarray,
    b0: np.ndarray,
    T: np.ndarray,
    squared_bound: float,
    lmi_max_eigenvalue: float,
    rng: np.random.Generator,
    n_samples: int = N_CHECK_SAMPLES,
) -> np.ndarray:
    """The original's three self-checks ``ok`` of ``calculate_Lipschitz``.

    ``ok[0]``: 1 if the slope-restriction quadratic form (4) is >= 0 on all
    sampled pairs, else 0; ``ok[1]``: 1 if the LMI's largest eigenvalue is
    <= 0, else that eigenvalue; ``ok[2]``: 1 if ``|f(x1) - f(x2)| <= L |x1 - x2|``
    (without biases' effect on the difference) on all sampled pairs, else 0.
    The original drew scalar inputs (n_x = 1 only); here the samples have n_x
    components, which is the same for n_x = 1.
    """
    n_x = W0.shape[1]
    x1 = rng.standard_normal((n_samples, n_x))
    x2 = rng.standard_normal((n_samples, n_x))
    v1 = x1 - x2
    v2 = np.tanh(x1 @ W0.T + b0) - np.tanh(x2 @ W0.T + b0)
    res_lip = np.sum((v2 @ W1.T) ** 2, axis=1) - squared_bound * np.sum(v1**2, axis=1)
    Tv2 = v2 @ T  # T is symmetric
    res_sr = 2.0 * np.sum((v1 @ W0.T) * Tv2, axis=1) - 2.0 * np.sum(v2 * Tv2, axis=1)
    return np.array(
        [
            1.0 if res_sr.min() >= 0 else 0.0,
            1.0 if lmi_max_eigenvalue <= 0 else float(lmi_max_eigenvalue),
            1.0 if res_lip.max() <= 0 else 0.0,
        ]
    )


def calculate_Lipschitz(
    parameters: Mapping[str, Any],
    x: Mapping[str, Any],
    *,
    solver: str | None = None,
    rng: np.random.Generator | int | None = None,
) -> dict[str, Any]:
    """The original ``calculate_Lipschitz.m``: Theorem 1's certificate for a tanh net.

    Args:
        parameters: ``W0`` (n_h x n_x), ``W1`` (n_y x n_h), ``b0``, ``b1``.
        x: ``n_x``, ``n_h``, ``n_y``.
        solver: SDP solver (default Clarabel).
        rng: seed or Generator for the sampled checks (default seed 0).

    Returns:
        dict: ``"Lipschitz"`` (the bound L), ``"T"`` (n_h x n_h, diagonal), ``"ok"``
        (``[sr, lmi, lip]``) and ``"certificate"`` (the full :class:`~pylip.Certificate`).
    """
    W0, W1, b0, _ = one_hidden_layer(parameters, x)
    cert = certify(
        [W0, W1], form="neuron", activation="tanh", solver=solver, margin=DEFAULT_MARGIN,
        formulation="original",
    )
    ok = original_checks(
        W0, W1, b0, cert.T, cert.squared_bound, cert.max_eigenvalue, as_generator(rng)
    )
    return {"Lipschitz": cert.bound, "T": cert.T, "ok": ok, "certificate": cert}


def build_T(
    weights: Sequence[Any],
    biases: Sequence[Any],
    net_dims: Sequence[Any],
    *,
    solver: str | None = None,
    rng: np.random.Generator | int | None = None,
) -> dict[str, Any]:
    """The original bridge's ``build_T``: ``calculate_Lipschitz`` of ``[W0, W1], [b0, b1]``."""
    weights = as_sequence(weights, "weights", "weight matrices [W0, W1]")
    biases = as_sequence(biases, "biases", "bias vectors [b0, b1]")
    net_dims = as_sequence(net_dims, "net_dims", "layer sizes [n_x, n_h, n_y]")
    if len(weights) != 2 or len(biases) != 2:
        raise InputError(
            f"build_T takes one hidden layer: weights=[W0, W1] and biases=[b0, b1], got "
            f"{len(weights)} weights and {len(biases)} biases (use pylip.certify for deeper nets)"
        )
    if len(net_dims) != 3:
        raise InputError(f"net_dims must be [n_x, n_h, n_y], got {list(net_dims)!r}")
    parameters = {"W0": weights[0], "W1": weights[1], "b0": biases[0], "b1": biases[1]}
    dims = {"n_x": net_dims[0], "n_h": net_dims[1], "n_y": net_dims[2]}
    return calculate_Lipschitz(parameters, dims, solver=solver, rng=rng)


_STEP_CACHE: dict[tuple[Any, ...], LipschitzStep] = {}
_STEP_CACHE_SIZE = 8


def compiled_step(
    dims: tuple[int, int, int], T: np.ndarray, mode: str, solver: str | None, beta: float = 1.0
) -> LipschitzStep:
    """A compiled :class:`~pylip.admm.LipschitzStep`, reused across ADMM iterations."""
    beta = as_number(beta, "beta")
    key = (dims, np.asarray(T, dtype=np.float64).tobytes(), np.shape(T), mode, solver, beta)
    step = _STEP_CACHE.get(key)
    if step is None:
        step = LipschitzStep(*dims, T, mode=mode, solver=solver, beta=beta)
        if len(_STEP_CACHE) >= _STEP_CACHE_SIZE:
            _STEP_CACHE.pop(next(iter(_STEP_CACHE)))
        _STEP_CACHE[key] = step
    return step


def clear_step_cache() -> None:
    """Forget the compiled Lipschitz steps (e.g. after changing solver settings)."""
    _STEP_CACHE.clear()


def _mode(ind_Lip: Any) -> str:
    """1 or 2, given as a number or a MATLAB-engine ``[[2.0]]``; strings, bools and 2.7 are refused."""
    array = np.asarray(ind_Lip) if not isinstance(ind_Lip, (str, bool)) else np.asarray(None)
    key = None
    if array.size == 1 and array.dtype.kind in "iuf":
        value = float(array.reshape(()))
        key = int(value) if value.is_integer() else None
    if key not in MODES:
        raise InputError(
            f"ind_Lip must be 1 (Lipschitz regularisation, eq. 9) or 2 (enforce L_des, eq. 12), "
            f"got {ind_Lip!r}"
        )
    return MODES[key]


def solve_sdp(
    parameters: Mapping[str, Any],
    x: Mapping[str, Any],
    *,
    solver: str | None = None,
    beta: float = 1.0,
) -> dict[str, Any]:
    """The original ``solve_sdp.m``: Lipschitz step (10b) and dual update (10c).

    Args:
        parameters: ``W0, W1`` (current weights W), ``Y0, Y1`` (multipliers);
            every other field is passed through unchanged.
        x: ``T`` (fixed diagonal multiplier), ``rho`` (ADMM penalty), ``mu``,
            ``ind_Lip`` (1 regularise, 2 enforce ``L_des``), ``L_des``.
        solver: SDP solver (default Clarabel).
        beta: the activation's largest slope in LMI (7); the original's is 1
            (tanh), sigmoid needs 1/4.

    Returns:
        A copy of ``parameters`` with ``W0_bar, W1_bar``, the updated
        ``Y0, Y1`` and ``Lipschitz`` (``sqrt`` of the step's ``L^2``; ``L_des``
        itself in mode 2) set.
    """
    as_mapping(x, "x", "T, rho, mu, ind_Lip and L_des")
    W0, W1 = weight_pair(parameters, ("W0", "W1", "Y0", "Y1"))
    for key in ("T", "rho", "mu", "ind_Lip"):
        if key not in x:
            raise InputError(f"x has no field '{key}' (needs T, rho, mu, ind_Lip, and L_des for ind_Lip 2)")
    dims = (W0.shape[1], W0.shape[0], W1.shape[0])
    mode = _mode(x["ind_Lip"])
    step = compiled_step(dims, as_matrix(x["T"], "x['T']"), mode, solver, beta)
    L_des = x.get("L_des") if mode == "enforce" else None
    result = step.solve(
        W0, W1, parameters["Y0"], parameters["Y1"], rho=x["rho"], mu=x["mu"], L_des=L_des
    )
    updated = dict(parameters)
    updated.update(
        W0_bar=result.W0_bar,
        W1_bar=result.W1_bar,
        Y0=result.Y0,
        Y1=result.Y1,
        Lipschitz=result.bound if mode == "regularize" else float(np.asarray(L_des).reshape(())),
    )
    return updated


def solve_SDP(
    parameters: Mapping[str, Any],
    T: Any,
    net_dims: Sequence[Any],
    rho: float,
    mu: float,
    ind_Lip: int,
    L_des: float,
    *,
    solver: str | None = None,
    beta: float = 1.0,
) -> dict[str, Any]:
    """The original bridge's ``solve_SDP``: :func:`solve_sdp` with the settings as arguments."""
    if len(net_dims) != 3:
        raise InputError(f"net_dims must be [n_x, n_h, n_y], got {list(net_dims)!r}")
    n_x, n_h, n_y = (as_dim(d, f"net_dims[{i}]") for i, d in enumerate(net_dims))
    W0 = as_matrix(parameters.get("W0"), "parameters['W0']") if "W0" in parameters else None
    if W0 is not None and W0.shape != (n_h, n_x):
        raise InputError(f"parameters['W0'] has shape {W0.shape} but net_dims says n_h x n_x = {(n_h, n_x)}")
    x = {"T": T, "rho": rho, "mu": mu, "ind_Lip": ind_Lip, "L_des": L_des, "n_x": n_x, "n_h": n_h, "n_y": n_y}
    return solve_sdp(parameters, x, solver=solver, beta=beta)


def initialize_parameters(weights: Sequence[Any], biases: Sequence[Any]) -> dict[str, Any]:
    """The original bridge's ``initialize_parameters``: ADMM variables at ``W_bar = W``, ``Y = 0``.

    For each layer ``i``: ``W{i}`` and ``W{i}_bar`` (the given weights),
    ``b{i}``, ``Y{i}`` (zeros like ``W{i}``) and ``Yb{i}`` (zeros like ``b{i}``,
    unused, kept for the original's layout).
    """
    weights = as_sequence(weights, "weights", "weight matrices [W0, W1, ...]")
    biases = as_sequence(biases, "biases", "bias vectors [b0, b1, ...]")
    if len(weights) != len(biases):
        raise InputError(f"got {len(weights)} weight matrices but {len(biases)} bias vectors")
    parameters: dict[str, Any] = {}
    for i, (w, b) in enumerate(zip(weights, biases)):
        W = as_matrix(w, f"weights[{i}]")
        as_vector(b, f"biases[{i}]", W.shape[0])
        bias = np.array(b, dtype=np.float64)  # the original's layout (row, column or flat) is kept
        parameters[f"W{i}"] = W.copy()
        parameters[f"W{i}_bar"] = W.copy()
        parameters[f"b{i}"] = bias
        parameters[f"Y{i}"] = np.zeros_like(W)
        parameters[f"Yb{i}"] = np.zeros_like(bias)
    return parameters


def __getattr__(name: str) -> object:
    """``MeinNetz`` (the original's torch network, with its methods) needs torch: imported on first use."""
    if name == "MeinNetz":
        import pylip

        return pylip.MeinNetz
    raise AttributeError(f"module 'pylip.original' has no attribute {name!r}")


__all__ = [  # and MeinNetz, which needs torch (pylip.__all__ lists it where torch is installed)
    "build_T",
    "calculate_Lipschitz",
    "initialize_parameters",
    "solve_SDP",
    "solve_sdp",
]
