"""The Lipschitz step (10b) and dual update (10c) of ADMM training (paper Section III).

One family: :mod:`~pylip.admm.step` solves the step for one hidden layer
(LMI (7), the original's formulation), :mod:`~pylip.admm.deep_step` for many
(it equals the one-layer step for one), and :mod:`~pylip.admm.fast_step` is
the dual interior-point solver of the one-layer step for wide layers. Both
steps satisfy one interface, :class:`~pylip.admm.family.SupportsLipschitzStep`
(built by :func:`~pylip.admm.family.lipschitz_step`, answering with a
:class:`~pylip.admm.result.LayerStepResult`), which the trainers program
against. Every step's ``W_bar`` is proven (:func:`pylip.lipsdp.repair.secure_step`).

This package also answers to the old module path ``pylip.admm`` (the
one-layer step), so it re-exports that module's public names, and the family's.
"""

from .family import FORMULATIONS, SupportsLipschitzStep, lipschitz_step
from .result import LayerStepResult
from .step import (
    FAST_STEP_MIN_HIDDEN,
    L_DES_RANGE,
    MODES,
    LipschitzStep,
    StepResult,
    check_multiplier,
    checked_step_settings,
    clear_step_cache,
    compiled_step,
    ind_Lip_mode,
    lmi7_matrix,
    step_objective,
)

__all__ = [
    # the family's interface (pylip.admm.family, pylip.admm.result)
    "FORMULATIONS",
    "LayerStepResult",
    "SupportsLipschitzStep",
    "lipschitz_step",
    # the one-layer step's names (pylip.admm.step: the old module pylip.admm)
    "FAST_STEP_MIN_HIDDEN",
    "L_DES_RANGE",
    "LipschitzStep",
    "MODES",
    "StepResult",
    "check_multiplier",
    "checked_step_settings",
    "clear_step_cache",
    "compiled_step",
    "ind_Lip_mode",
    "lmi7_matrix",
    "step_objective",
]
