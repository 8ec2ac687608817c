"""The Lipschitz-step family: one interface for one and many hidden layers.

Two classes solve the Lipschitz step (10b) and dual update (10c) with a fixed
diagonal multiplier ``T``:

* :class:`~pylip.admm.step.LipschitzStep`: one hidden layer, LMI (7) as the
  original poses it (the paper examples' parity rests on it), with the dual
  solver of :mod:`pylip.admm.fast_step` for wide layers;
* :class:`~pylip.admm.deep_step.DeepLipschitzStep`: any number of hidden
  layers (Remark 4); for one hidden layer it solves the same problem.

Both satisfy :class:`SupportsLipschitzStep`, so a trainer builds its step with
:func:`lipschitz_step` and calls ``step.solve_layers(W, Y, rho=..., ...)``
without caring which class it got; both answer with a
:class:`~pylip.admm.result.LayerStepResult`. Their own ``solve`` methods keep
their signatures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import InputError
from ..lipsdp.certificate import DEFAULT_MARGIN
from .deep_step import DeepLipschitzStep, check_layer_sizes
from .result import LayerStepResult
from .step import LipschitzStep

#: ``formulation`` of :func:`lipschitz_step`: ``"original"`` is :class:`LipschitzStep`
#: (one hidden layer only), ``"layers"`` :class:`DeepLipschitzStep`, ``"auto"`` the first
#: for one hidden layer and the second for more.
FORMULATIONS = ("auto", "original", "layers")


@runtime_checkable
class SupportsLipschitzStep(Protocol):
    """What a trainer needs of a compiled Lipschitz step (10b) with its dual update (10c)."""

    mode: str
    beta: float

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """``(n_in, n_1, ..., n_l, n_out)``."""
        ...

    @property
    def T(self) -> np.ndarray:  # noqa: N802
        """The fixed multiplier in use (``N x N`` diagonal, ``N`` hidden neurons)."""
        ...

    def set_T(self, T: Any) -> None:  # noqa: N802
        """Use another fixed multiplier from now on (Remark 3)."""
        ...

    def solve_layers(
        self,
        weights: Sequence[Any],
        multipliers: Sequence[Any] | None,
        *,
        rho: float,
        mu: float = 0.0,
        L_des: float | None = None,
    ) -> LayerStepResult:
        """One step (10b) at ``W = weights``, ``Y = multipliers`` (``None``: zeros), then (10c)."""
        ...


def lipschitz_step(
    layer_sizes: Sequence[int],
    T: Any,
    *,
    mode: str = "regularize",
    beta: float = 1.0,
    solver: str | None = None,
    margin: float = DEFAULT_MARGIN,
    formulation: str = "auto",
    method: str = "auto",
) -> SupportsLipschitzStep:
    """The compiled Lipschitz step for a network of ``layer_sizes`` with the fixed multiplier ``T``.

    ``formulation`` (:data:`FORMULATIONS`) chooses the class; ``method`` is
    :class:`~pylip.admm.deep_step.DeepLipschitzStep`'s (how it solves; only
    ``"auto"`` with :class:`~pylip.admm.step.LipschitzStep`); every other
    argument means what it means for both classes.
    """
    sizes = check_layer_sizes(layer_sizes)
    if formulation not in FORMULATIONS:
        raise InputError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")
    one_layer = len(sizes) == 3
    if formulation == "original" and not one_layer:
        raise InputError(
            f"formulation='original' is LMI (7) of one hidden layer, got layer_sizes {sizes} with "
            f"{len(sizes) - 2} hidden layers; use formulation='layers' (or 'auto')"
        )
    if formulation == "original" or (formulation == "auto" and one_layer):
        if method != "auto":
            raise InputError(
                f"method={method!r} is the multi-layer step's; use formulation='layers' to choose it"
            )
        n_x, n_h, n_y = sizes
        return LipschitzStep(n_x, n_h, n_y, T, mode=mode, beta=beta, solver=solver, margin=margin)
    return DeepLipschitzStep(sizes, T, mode=mode, beta=beta, solver=solver, margin=margin, method=method)


__all__ = ["FORMULATIONS", "SupportsLipschitzStep", "lipschitz_step"]
