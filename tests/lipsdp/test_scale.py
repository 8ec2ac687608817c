"""The reduced one-hidden-layer formulation (issue 7) against the dense and structured ones."""

from __future__ import annotations

import numpy as np
import pytest

from pylip.errors import InputError
from pylip.lipsdp import lmi
from pylip.lipsdp.certificate import certify, certify_split
from pylip.lipsdp.reduced import reduce_input, reduce_output

REL = 1e-6


def _net(rng: np.random.Generator, sizes: tuple[int, ...]) -> list[np.ndarray]:
    return [rng.standard_normal((sizes[i + 1], sizes[i])) / np.sqrt(sizes[i]) for i in range(len(sizes) - 1)]


@pytest.mark.parametrize("sizes", [(5, 40, 3), (10, 60, 10)])
def test_reduced_equals_dense_original(sizes: tuple[int, ...]) -> None:
    weights = _net(np.random.default_rng(sum(sizes)), sizes)
    reduced = certify(weights, formulation="reduced")
    dense = certify(weights, formulation="original")
    assert reduced.bound == pytest.approx(dense.bound, rel=REL)
    assert reduced.max_eigenvalue <= 0.0
    structure = lmi.network_structure(weights)
    assert lmi.lmi_max_eigenvalue(structure, reduced.T, reduced.squared_bound, 0.0, 1.0) <= 0


@pytest.mark.parametrize(
    "activation, alpha, beta, form",
    [("relu", None, None, "neuron"), ("sigmoid", None, None, "neuron"), ("tanh", 0.1, 0.9, "neuron"),
     ("tanh", None, None, "layer")],
)
def test_reduced_equals_structured_sectors(
    activation: str, alpha: float | None, beta: float | None, form: str
) -> None:
    weights = _net(np.random.default_rng(3), (6, 25, 4))
    kwargs = {"activation": activation, "alpha": alpha, "beta": beta, "form": form}
    reduced = certify(weights, formulation="reduced", **kwargs)  # type: ignore[arg-type]
    structured = certify(weights, formulation="structured", **kwargs)  # type: ignore[arg-type]
    assert reduced.bound == pytest.approx(structured.bound, rel=REL)
    assert reduced.verify(weights) <= 0.0


def test_auto_picks_reduced_and_matches() -> None:
    weights = _net(np.random.default_rng(4), (4, 12, 2))
    auto = certify(weights)
    assert auto.bound == pytest.approx(certify(weights, formulation="reduced").bound, rel=1e-12)


def test_input_and_output_reduction_exact() -> None:
    rng = np.random.default_rng(5)
    W0, W1 = rng.standard_normal((6, 40)), rng.standard_normal((30, 6))  # n_x, n_y > n_h
    U, V = reduce_input(W0), reduce_output(W1)
    assert U.shape == (6, 6) and V.shape == (6, 6)
    # the Gram matrices that define the LMI are preserved
    np.testing.assert_allclose(U @ U.T, W0 @ W0.T, atol=1e-10)
    np.testing.assert_allclose(V.T @ V, W1.T @ W1, atol=1e-10)
    full = certify([W0, W1], formulation="structured")
    small = certify([W0, W1], formulation="reduced")
    assert small.bound == pytest.approx(full.bound, rel=REL)
    assert small.T.shape == (6, 6)
    assert small.verify([W0, W1]) <= 0.0


def test_dead_neuron() -> None:
    weights = _net(np.random.default_rng(6), (3, 10, 2))
    weights[0][4] = 0.0
    weights[1][:, 4] = 0.0
    weights[1][:, 7] = 0.0
    reduced = certify(weights, formulation="reduced")
    assert reduced.bound == pytest.approx(certify(weights, formulation="structured").bound, rel=REL)


def test_split_parallel_equals_serial() -> None:
    weights = _net(np.random.default_rng(7), (3, 8, 6, 8, 5, 2))
    serial = certify_split(weights)
    parallel = certify_split(weights, processes=2)
    assert parallel.bound == pytest.approx(serial.bound, rel=1e-9)
    assert len(parallel.parts) == len(serial.parts) == 3


def test_reduced_bad_input() -> None:
    weights = _net(np.random.default_rng(8), (3, 5, 4, 2))
    with pytest.raises(InputError, match="one hidden layer"):
        certify(weights, formulation="reduced")
    with pytest.raises(InputError, match="formulation"):
        certify(weights[:2], formulation="dense")
    with pytest.raises(InputError, match="processes"):
        certify_split(weights, processes=0)
    with pytest.raises(InputError, match="form"):
        certify_split(weights, form="network")
