"""Section II-C of the paper: the coupled LipSDP-Network multiplier is unsound."""

from __future__ import annotations

import numpy as np
import pytest

from pylip.cli import main
from pylip.experiments import counterexample as cx


@pytest.fixture(scope="module")
def report():
    return cx.run()


@pytest.mark.parametrize("squared", [1e-6, 1e-12])
def test_coupled_T_makes_lmi_feasible_for_tiny_bounds(report, squared):
    assert report.coupled_max_eigenvalues[squared] <= cx.lmi_rounding_tolerance()


def test_diagonal_certificate_is_about_one_and_not_below_sampled_slope(report):
    assert report.diagonal_bound == pytest.approx(1.0, rel=1e-6)
    assert report.sampled_slope <= report.diagonal_bound
    assert report.sampled_slope > 0.9  # the network's slope is ~0.93 somewhere
    assert np.sqrt(1e-6) < report.sampled_slope  # the coupled 'bound' is violated


def test_relu_quadratic_constraint_is_violated(report):
    # x - y = [1.5, 1], phi(x) - phi(y) = [0, 1], T d = [-1, 1]:
    # 2 (x - y)' T d - 2 d' T d = 2 (-0.5) - 2 (1) = -3
    assert report.relu_quadratic_form == -3.0


def test_quadratic_constraint_holds_for_diagonal_T():
    rng = np.random.default_rng(0)
    for _ in range(200):
        x, y = rng.standard_normal(2) * 3, rng.standard_normal(2) * 3
        T = np.diag(rng.uniform(0, 2, 2))
        assert cx.quadratic_constraint_value(x, y, T, "relu") >= -1e-12
        assert cx.quadratic_constraint_value(x, y, T, "tanh") >= -1e-12


def test_command_prints_both_facts(capsys):
    assert main(["counterexample"]) == 0
    out = capsys.readouterr().out
    assert "L^2 = 1e-06" in out and "L^2 = 1e-12" in out and "feasible" in out
    assert "quadratic form (4) = -3" in out
    assert "diagonal T (Theorem 1): L = 1.000000" in out
