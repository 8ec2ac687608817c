"""The outcome of one Lipschitz step (10b) and dual update (10c), for any number of hidden layers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..lipsdp import lmi


@dataclass(frozen=True)
class LayerStepResult:
    """Outcome of one Lipschitz step (10b) and dual update (10c), layer by layer.

    ``W_bar`` satisfies ``P(squared_bound, T) <= 0`` (eq. 5; LMI (7) for one
    hidden layer) in float64 with the step's ``T`` (``max_eigenvalue <= 0``);
    ``Y`` holds the dual-updated multipliers ``Y_k + rho (W_k - W_bar_k)``.
    """

    W_bar: list[np.ndarray]
    Y: list[np.ndarray]
    squared_bound: float
    status: str
    solve_time: float
    max_eigenvalue: float
    repaired: bool
    # solved at looser tolerances after a solver failure (see DeepLipschitzStep._solve)
    fallback: bool = False

    @property
    def bound(self) -> float:
        """``L`` with ``L**2 >= squared_bound``, so the LMI also holds at ``bound**2``."""
        return lmi.sqrt_up(self.squared_bound)


__all__ = ["LayerStepResult"]
