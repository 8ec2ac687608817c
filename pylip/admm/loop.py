"""The ADMM scheme (10) that both trainers run, and its multiplier update (Remark 3).

Each iteration is the W step (10a), then the Lipschitz step (10b) with the
dual update (10c); with a ``T_update_every`` the fixed multiplier ``T`` is
re-solved for the current ``W_bar`` first (Remark 3). What an iteration does
with the network (torch training, the original's parameter dicts, logging) is
the trainer's: it supplies an :class:`ADMMTrainer` and :func:`run_admm` calls
it in the scheme's order. :class:`pylip.train.training.MeinNetz` (one hidden
layer, the original's loop) and :func:`pylip.train.mlp_training.train_lipschitz`
(any depth) both run here; neither loop needs torch at this level.

:func:`update_T` is the Remark 3 update on any step of the family
(:class:`~pylip.admm.family.SupportsLipschitzStep`), with the guard that keeps
Theorem 8: in the enforce mode a new ``T`` is taken only if it certifies the
current ``W_bar`` at ``L_des`` in float64.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np

from ..errors import CertificateError, SolverError
from ..lipsdp import lmi
from ..lipsdp.certificate import certify
from .deep_step import certificate_max_eigenvalue, positive_multiplier
from .family import SupportsLipschitzStep

logger = logging.getLogger(__name__)

R = TypeVar("R")  # what the trainer's Lipschitz step returns


class ADMMTrainer(Protocol[R]):
    """A trainer's side of one ADMM iteration (``iteration`` counts from 1)."""

    def where(self, iteration: int) -> str:
        """How messages name the iteration (``"ADMM iteration 2 of 10"``)."""
        ...

    def update_T(self, where: str) -> None:  # noqa: N802
        """Re-solve the multiplier for the current ``W_bar`` (Remark 3); only with ``T_update_every``."""
        ...

    def w_step(self, where: str) -> None:
        """The W step (10a) at the current ``W_bar`` and ``Y``."""
        ...

    def lipschitz_step(self, where: str) -> R:
        """The Lipschitz step (10b) and dual update (10c) at the W step's weights."""
        ...

    def finish(self, iteration: int, where: str, result: R) -> bool | None:
        """Record the iteration; ``True`` stops the scheme after it."""
        ...


def run_admm(
    trainer: ADMMTrainer[Any], iterations: Iterable[int], *, T_update_every: int | None = None
) -> None:
    """The ADMM scheme (10) over ``iterations`` (1, 2, ...; e.g. a progress bar over them).

    With ``T_update_every = k`` the trainer's :meth:`~ADMMTrainer.update_T`
    runs before iterations ``k + 1, 2k + 1, ...``.
    """
    for iteration in iterations:
        where = trainer.where(iteration)
        if T_update_every is not None and iteration > 1 and (iteration - 1) % T_update_every == 0:
            trainer.update_T(where)
        trainer.w_step(where)
        result = trainer.lipschitz_step(where)
        if trainer.finish(iteration, where, result) is True:
            logger.info("%s: stopped by the callback", where)
            break


def certificate_for_T(W: list[np.ndarray], activation: str, solver: str | None, what: str) -> Any:
    """LipSDP-Neuron's certificate of ``W`` (its ``T`` starts or updates the step); errors name ``what``."""
    try:
        return certify(W, activation=activation, form="neuron", solver=solver)
    except (SolverError, CertificateError) as exc:
        raise type(exc)(f"certificate of the {what} (for T): {exc}") from exc


def update_T(  # noqa: N802
    step: SupportsLipschitzStep,
    W_bar: list[np.ndarray],
    activation: str,
    *,
    solver: str | None,
    L_des: float | None,
    squared: float,
    where: str,
) -> tuple[bool, bool]:
    """Remark 3: re-solve the certificate SDP for ``T`` at ``W_bar``; returns (updated, rejected).

    Enforce mode (``L_des`` given): the new ``T`` is taken only if its
    certificate is at most ``L_des`` and ``W_bar`` satisfies the LMI at
    ``squared`` (= ``L_des^2``) with it in float64. Regularize mode: the
    better of the two multipliers for ``W_bar`` is kept.
    """
    cert = certificate_for_T(W_bar, activation, solver, f"W_bar before {where}")
    candidate = np.diag(positive_multiplier(cert.T))
    old = np.diag(step.T)
    beta = step.beta
    if L_des is not None:
        ok = cert.bound <= L_des and certificate_max_eigenvalue(W_bar, candidate, squared, beta) <= 0.0
    else:
        ok = fixed_T_bound(W_bar, candidate, beta) <= fixed_T_bound(W_bar, old, beta)
    if ok:
        step.set_T(candidate)
        logger.info("%s: T re-solved at W_bar (certificate %.6g)", where, cert.bound)
        return True, False
    logger.warning(
        "%s: the re-solved T (certificate %.6g) does not certify W_bar at the current bound in float64; "
        "keeping the old T",
        where,
        cert.bound,
    )
    return False, True


def fixed_T_bound(W: Sequence[np.ndarray], t: np.ndarray, beta: float, cap: float | None = None) -> float:  # noqa: N802
    """The smallest checked ``L`` with ``P(L^2, T) <= 0`` for ``W`` (``cap`` if it holds and is smaller)."""
    structure = lmi.network_structure(list(W))
    squared = lmi.minimal_squared_bound(structure, np.diag(t), 0.0, beta)
    best = float("inf")
    if np.isfinite(squared):
        for factor in (1.0, 1 + 1e-14, 1 + 1e-12, 1 + 1e-10, 1 + 1e-8):
            bound = lmi.sqrt_up(squared * factor)
            if certificate_max_eigenvalue(W, t, bound * bound, beta) <= 0.0:
                best = bound
                break
    if cap is not None and cap < best and certificate_max_eigenvalue(W, t, cap * cap, beta) <= 0.0:
        best = cap
    return best


__all__ = ["ADMMTrainer", "certificate_for_T", "fixed_T_bound", "run_admm", "update_T"]
