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

import importlib
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .admm.step import compiled_step, ind_Lip_mode
from .errors import InputError
from .lipsdp.certificate import DEFAULT_MARGIN, certify
from .lipsdp.sampling import as_generator, original_checks
from .validation import (
    as_dim,
    as_mapping,
    as_matrix,
    as_one_hidden_layer,
    as_sequence,
    as_vector,
    as_weight_pair,
)

#: Helpers this module held before it kept only the original's names: old name -> (module, name).
_MOVED_HELPERS = {
    "weight_pair": ("pylip.validation", "as_weight_pair"),
    "one_hidden_layer": ("pylip.validation", "as_one_hidden_layer"),
    "original_checks": ("pylip.lipsdp.sampling", "original_checks"),
    "N_CHECK_SAMPLES": ("pylip.lipsdp.sampling", "N_CHECK_SAMPLES"),
    "compiled_step": ("pylip.admm.step", "compiled_step"),
    "clear_step_cache": ("pylip.admm.step", "clear_step_cache"),
}


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
    W0, W1, b0, _ = as_one_hidden_layer(parameters, x)
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
    W0, W1 = as_weight_pair(parameters, ("W0", "W1", "Y0", "Y1"))
    for key in ("T", "rho", "mu", "ind_Lip"):
        if key not in x:
            raise InputError(f"x has no field '{key}' (needs T, rho, mu, ind_Lip, and L_des for ind_Lip 2)")
    dims = (W0.shape[1], W0.shape[0], W1.shape[0])
    mode = ind_Lip_mode(x["ind_Lip"])
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
    L_des: float | None,
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
    """``MeinNetz`` (the original's torch network, with its methods) needs torch: imported on first use.

    The helpers this module held before (``clear_step_cache``, ...) still answer, with a
    :class:`DeprecationWarning` naming their module today.
    """
    if name == "MeinNetz":
        import pylip

        return pylip.MeinNetz
    if name in _MOVED_HELPERS:
        module, new = _MOVED_HELPERS[name]
        warnings.warn(
            f"pylip.original.{name} moved to {module}.{new}; import it from there",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), new)
    raise AttributeError(f"module 'pylip.original' has no attribute {name!r}")


__all__ = [  # and MeinNetz, which needs torch (pylip.__all__ lists it where torch is installed)
    "build_T",
    "calculate_Lipschitz",
    "initialize_parameters",
    "solve_SDP",
    "solve_sdp",
]
