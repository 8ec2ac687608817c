"""The Lipschitz step (10b) and dual update (10c) of ADMM training (paper Section III).

One family: :mod:`~pylip.admm.step` solves the step for one hidden layer
(LMI (7), the original's formulation), :mod:`~pylip.admm.deep_step` for many
(it equals the one-layer step for one), and :mod:`~pylip.admm.fast_step` is
the dual interior-point solver of the one-layer step for wide layers. Every
step's ``W_bar`` is proven (:func:`pylip.lipsdp.repair.secure_weights`).

This package also answers to the old module path ``pylip.admm`` (the
one-layer step), so it re-exports that module's public names.
"""

from .step import (
    FAST_STEP_MIN_HIDDEN,
    L_DES_RANGE,
    MODES,
    LipschitzStep,
    StepResult,
    check_multiplier,
    checked_step_settings,
    lmi7_matrix,
    step_objective,
)

__all__ = [
    "FAST_STEP_MIN_HIDDEN",
    "L_DES_RANGE",
    "LipschitzStep",
    "MODES",
    "StepResult",
    "check_multiplier",
    "checked_step_settings",
    "lmi7_matrix",
    "step_objective",
]
