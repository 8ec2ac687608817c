"""Section II-C of the paper, executable: LipSDP-Network is not a valid bound.

(a) For the 1-2-1 tanh network ``W0 = [-1; -1]``, ``b0 = [-1; 1]``,
``W1 = [-1 1]``, ``b1 = -0.5`` (a fit of a cosine, true constant about 1) the
coupled multiplier ``T = [[1, -1], [-1, 1]]`` satisfies LMI (5) for any
``L^2 > 0``, so the coupled variant "certifies" an arbitrarily small bound,
while the diagonal-T certificate of Theorem 1 gives about 1.

(b) The reason: the incremental quadratic constraint (4) fails for coupled T.
For ReLU, ``T = (e1 - e2)(e1 - e2)'``, ``x = [0, 1]``, ``y = [-1.5, 0]`` it is
negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..lipsdp import lmi
from ..lipsdp.activations import get_activation
from ..lipsdp.certificate import certify
from ..lipsdp.sampling import sampled_lower_bound

W0 = np.array([[-1.0], [-1.0]])
B0 = np.array([-1.0, 1.0])
W1 = np.array([[-1.0, 1.0]])
B1 = np.array([-0.5])
COUPLED_T = np.array([[1.0, -1.0], [-1.0, 1.0]])
TINY_SQUARED_BOUNDS = (1e-6, 1e-12)
RELU_X = np.array([0.0, 1.0])
RELU_Y = np.array([-1.5, 0.0])
PAPER_RELU_VALUE = -2.0  # the value printed in the paper


@dataclass(frozen=True)
class CounterexampleReport:
    """The numbers behind Section II-C."""

    coupled_max_eigenvalues: dict[float, float]  # L^2 -> lambda_max of LMI (5) at coupled T
    diagonal_bound: float  # Theorem 1's certificate of the same network
    sampled_slope: float  # largest |f'(x)| over sampled x: a lower bound on L*
    relu_quadratic_form: float  # (4) at the ReLU example; < 0 disproves Lemma 1 of [12]

    def text(self) -> str:
        lines = [
            "Pauli et al. (2020), Section II-C: LipSDP-Network (coupled T) is not a valid bound.",
            "",
            "(a) 1-2-1 tanh net W0 = [-1; -1], b0 = [-1; 1], W1 = [-1 1], b1 = -0.5",
            "    coupled T = [[1, -1], [-1, 1]]:",
        ]
        for squared, value in self.coupled_max_eigenvalues.items():
            verdict = "feasible" if value <= lmi_rounding_tolerance() else "infeasible"
            lines.append(
                f"    L^2 = {squared:.0e}: largest eigenvalue of LMI (5) = {value:+.2e}  -> {verdict}, "
                f"'L' = {np.sqrt(squared):.0e}"
            )
        lines += [
            f"    diagonal T (Theorem 1): L = {self.diagonal_bound:.6f}",
            f"    largest sampled slope |f'(x)|: {self.sampled_slope:.6f}  (a lower bound on L*)",
            "    -> the coupled 'bound' lies far below the network's true slope.",
            "",
            "(b) ReLU, T = (e1 - e2)(e1 - e2)', x = [0, 1], y = [-1.5, 0]:",
            f"    quadratic form (4) = {self.relu_quadratic_form:+.6g} < 0,"
            " so (4) fails for this coupled T (Lemma 1 of [12] does not hold).",
            f"    (The paper prints {PAPER_RELU_VALUE:g}; the form evaluates to "
            f"{self.relu_quadratic_form:g} at these x, y: negative either way.)",
        ]
        return "\n".join(lines)


def lmi_rounding_tolerance() -> float:
    """Rounding allowance when deciding feasibility of the exact-zero eigenvalue in (a).

    At the coupled T the LMI's largest eigenvalue is exactly 0 in exact
    arithmetic (T is singular); float64 eigenvalue routines return it within a
    few ulps of the matrix norm (about 1e-16 here).
    """
    return 1e-12


def coupled_max_eigenvalue(squared_bound: float) -> float:
    """Largest eigenvalue of LMI (5) for the 1-2-1 net at the coupled ``T``."""
    structure = lmi.network_structure([W0, W1])
    return lmi.lmi_max_eigenvalue(structure, COUPLED_T, squared_bound, 0.0, 1.0)


def quadratic_constraint_value(
    x: np.ndarray, y: np.ndarray, T: np.ndarray, activation: str = "relu"
) -> float:
    """The incremental quadratic form (4) with ``alpha = 0``, ``beta = 1``."""
    phi = get_activation(activation).function
    dx, dphi = x - y, phi(x) - phi(y)
    return float(2.0 * dx @ T @ dphi - 2.0 * dphi @ T @ dphi)


def run(solver: str | None = None) -> CounterexampleReport:
    """Compute every number of Section II-C."""
    return CounterexampleReport(
        coupled_max_eigenvalues={s: coupled_max_eigenvalue(s) for s in TINY_SQUARED_BOUNDS},
        diagonal_bound=certify([W0, W1], solver=solver).bound,
        sampled_slope=sampled_lower_bound(
            [W0, W1], [B0, B1], n_samples=20_000, scale=3.0, rng=0
        ),
        relu_quadratic_form=quadratic_constraint_value(RELU_X, RELU_Y, COUPLED_T),
    )
