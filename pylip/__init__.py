"""pylip: Lipschitz-bounded neural-network training after Pauli et al. (2020).

Core (Pythonic) API: :func:`certify`, :func:`certify_margins`, :func:`certify_split`,
:func:`sampled_lower_bound`, :func:`verify`. The original's functions keep their names:
:func:`calculate_Lipschitz`, :func:`build_T` (see :mod:`pylip.original`).

The subpackages (the docs' architecture page): :mod:`pylip.lipsdp` (weights -> a
proven bound), :mod:`pylip.admm` (the Lipschitz step), :mod:`pylip.train` (the
torch trainers), :mod:`pylip.experiments` (the paper's examples and pylip's
tasks). The module paths of the old flat layout (``pylip.mlp_training``, ...)
still import, as the same modules (:mod:`pylip._aliases`).
"""

import importlib.util

from . import _aliases
from .admm.step import LipschitzStep, StepResult
from .errors import CertificateError, InputError, PylipError, SolverError, TrainingError
from .lipsdp.certificate import Certificate, SplitCertificate, certify, certify_split, closed_form_bound
from .lipsdp.margins import MarginBounds, certify_margins
from .lipsdp.proof import Proof, verify
from .lipsdp.sampling import sampled_lower_bound
from .original import build_T, calculate_Lipschitz, initialize_parameters, solve_SDP, solve_sdp

__version__ = "0.1.0"

_aliases.install()

_TRAINING_NAMES = ("MeinNetz", "TrainingConfig")


def __getattr__(name: str) -> object:
    """``MeinNetz`` and ``TrainingConfig`` need torch (the ``train`` extra): import on first use."""
    if name in _TRAINING_NAMES:
        try:
            from .train import training
        except ModuleNotFoundError as exc:
            if exc.name != "torch":
                raise
            raise ModuleNotFoundError(
                f"pylip.{name} trains networks with torch, which is not installed: "
                "pip install 'pylip[train]'",
                name="torch",
            ) from None
        return getattr(training, name)
    module = _aliases.module_attribute(name)
    if module is not None:
        return module
    raise AttributeError(f"module 'pylip' has no attribute {name!r}")


def _torch_available() -> bool:
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


__all__ = [
    "Certificate",
    "LipschitzStep",
    "MarginBounds",
    *(_TRAINING_NAMES if _torch_available() else ()),  # `from pylip import *` works without torch
    "StepResult",
    "TrainingError",
    "CertificateError",
    "InputError",
    "Proof",
    "PylipError",
    "SolverError",
    "SplitCertificate",
    "__version__",
    "build_T",
    "calculate_Lipschitz",
    "certify",
    "certify_margins",
    "certify_split",
    "closed_form_bound",
    "initialize_parameters",
    "solve_SDP",
    "solve_sdp",
    "sampled_lower_bound",
    "verify",
]
