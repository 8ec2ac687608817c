"""The original-named certificate functions: layouts the MATLAB engine produced."""

from __future__ import annotations

import numpy as np
import pytest

import pylip

W0 = [[-1.0], [-1.0]]
W1 = [[-1.0, 1.0]]


@pytest.mark.parametrize(
    "b0, b1",
    [
        ([-1.0, 1.0], [-0.5]),  # flat
        ([[-1.0, 1.0]], [[-0.5]]),  # 1 x n rows, as the MATLAB engine delivered them
        ([[-1.0], [1.0]], -0.5),  # n x 1 column and a scalar
    ],
)
def test_bias_layouts_are_accepted(b0, b1):
    out = pylip.build_T([W0, W1], [b0, b1], [1, 2, 1])
    assert out["Lipschitz"] == pytest.approx(1.0, rel=1e-6)
    assert out["T"].shape == (2, 2)
    assert list(out["ok"]) == [1.0, 1.0, 1.0]


def test_dims_as_matlab_int64_style():
    parameters = {"W0": np.array(W0), "W1": np.array(W1), "b0": [[-1.0, 1.0]], "b1": [[-0.5]]}
    out = pylip.calculate_Lipschitz(parameters, {"n_x": [[1]], "n_h": [[2]], "n_y": [[1]]})
    assert out["certificate"].bound == out["Lipschitz"]


def test_checks_work_for_several_inputs_and_are_seedable():
    rng = np.random.default_rng(0)
    parameters = {
        "W0": rng.standard_normal((6, 3)),
        "W1": rng.standard_normal((2, 6)),
        "b0": rng.standard_normal(6),
        "b1": rng.standard_normal(2),
    }
    dims = {"n_x": 3, "n_h": 6, "n_y": 2}
    first = pylip.calculate_Lipschitz(parameters, dims, rng=5)
    again = pylip.calculate_Lipschitz(parameters, dims, rng=5)
    assert list(first["ok"]) == [1.0, 1.0, 1.0]
    np.testing.assert_array_equal(first["ok"], again["ok"])


def test_ok_flags_detect_a_wrong_bound():
    """The sampled Lipschitz check fails when fed a bound below the true constant."""
    from pylip.original import original_checks

    W0a, W1a, b0 = np.array([[2.0], [1.0]]), np.array([[1.0, 1.0]]), np.zeros(2)
    ok = original_checks(W0a, W1a, b0, np.eye(2), 0.01, 0.5, np.random.default_rng(0))
    assert ok[2] == 0.0 and ok[1] == 0.5 and ok[0] == 1.0
