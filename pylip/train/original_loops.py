"""The loops behind :class:`~pylip.train.training.MeinNetz`'s original-named methods.

* :func:`sgd_course`: the SGD steps of ``train`` / ``fit`` (full-batch SGD on
  the data MSE, + ``l2_reg``, + ``Lip_reg``), in torch or in the compiled
  kernel (:mod:`pylip.train.sgd_kernel`), with the original's logging point
  every ``log_every`` steps;
* :class:`OriginalADMM`: ``train_Lipschitz``'s side of the shared ADMM loop
  (:func:`pylip.admm.loop.run_admm`): the W step (10a) by ``fit``, the
  Lipschitz step (10b, 10c) by the original's ``solve_SDP`` on its parameter
  dict, with ``T`` fixed as in the original.

The arithmetic is the original's float32 arithmetic step for step (the paper
examples' parity rests on it); the methods of ``MeinNetz`` are thin calls here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import original as compat
from ..errors import CertificateError, InputError, SolverError, TrainingError
from ..lipsdp.activations import get_activation
from ..lipsdp.lmi import trivial_bound
from ..validation import as_matrix
from . import sgd_kernel

if TYPE_CHECKING:
    from .training import MeinNetz, TrainingConfig

# MeinNetz's messages keep the logger they always had.
logger = logging.getLogger("pylip.train.training")

TORCH_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
}

#: ``[(W0_bar, Y0), (W1_bar, Y1)]`` as tensors of the network's dtype.
Multipliers = list[tuple[torch.Tensor, torch.Tensor]]


# --------------------------------------------------------------------------- SGD (train, fit)


def sgd_course(
    net: MeinNetz,
    config: TrainingConfig,
    steps: int,
    lmbd: float | None,
    rho: float | None,
    multipliers: Multipliers | None,
    *,
    show: bool,
) -> tuple[list[float], list[float]]:
    """``steps`` SGD steps of ``net``; ``(L_course, MSE_course)`` of the logged steps."""
    run = _SGDRun(net, config, steps, lmbd, rho, multipliers)
    loop = _compiled_steps if config.compiled_engine else _torch_steps
    with torch.enable_grad(), tqdm(total=steps, disable=not show, unit="step", leave=False) as bar:
        loop(run, bar)
    require_finite_parameters(net, config, f"the end of {steps} SGD steps", rho)
    return run.L_course, run.MSE_course


@dataclass
class _SGDRun:
    """One ``train`` call: ``steps`` SGD steps on ``MSE (+ l2_reg) (+ Lip_reg)``, and its courses."""

    net: MeinNetz
    config: TrainingConfig
    steps: int
    lmbd: float | None
    rho: float | None
    multipliers: Multipliers | None
    L_course: list[float] = field(default_factory=list)
    MSE_course: list[float] = field(default_factory=list)

    def log(self, step: int) -> float:
        """The logging point before SGD step ``step``; returns the data MSE."""
        L, mse = _log_point(self.net, self.config, step, len(self.L_course))
        self.L_course.append(L)
        self.MSE_course.append(mse)
        return mse


def _torch_steps(run: _SGDRun, bar: Any) -> None:
    net, config, lmbd, rho, multipliers = run.net, run.config, run.lmbd, run.rho, run.multipliers
    x, y, lr, log_every = config.input, config.target, config.lr, config.log_every
    params = list(net.parameters())
    W0, b0, W1, b1 = params
    phi = TORCH_ACTIVATIONS[net.activation]
    for i in range(run.steps):
        if i % log_every == 0:
            mse = run.log(i)
            bar.update(i - bar.n)
            bar.set_postfix(MSE=f"{mse:.4g}", refresh=False)
        # forward() without nn.Module call overhead: the same F.linear calls
        loss = F.mse_loss(F.linear(phi(F.linear(x, W0, b0)), W1, b1), y)
        if lmbd is not None:
            loss = loss + net.l2_reg(lmbd)
        if multipliers is not None:
            loss = loss + lip_penalty(net, rho, multipliers)  # type: ignore[arg-type]
        # One plain SGD update p <- p - lr * grad: torch.optim.SGD's arithmetic
        # (no momentum, no weight decay), without building an optimiser per step.
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.add_(g, alpha=-lr)
    bar.update(run.steps - bar.n)


def _compiled_steps(run: _SGDRun, bar: Any) -> None:
    """:func:`_torch_steps` with the SGD steps between two logged points in the compiled kernel.

    The kernel updates the parameters' storage in place (numpy views of the
    tensors), so the logging at ``i % log_every == 0`` sees exactly the
    weights the torch loop would.
    """
    config = run.config
    views = [p.detach().numpy() for p in run.net.parameters()]
    x, y = config.input.numpy(), config.target.numpy()
    targets = None if run.multipliers is None else [(w.numpy(), v.numpy()) for w, v in run.multipliers]
    for start in range(0, run.steps, config.log_every):
        mse = run.log(start)
        chunk = min(config.log_every, run.steps - start)
        sgd_kernel.sgd_steps(views, x, y, chunk, config.lr, lmbd=run.lmbd, rho=run.rho, multipliers=targets)
        bar.update(chunk)
        bar.set_postfix(MSE=f"{mse:.4g}", refresh=False)


def _log_point(net: MeinNetz, config: TrainingConfig, step: int, index: int) -> tuple[float, float]:
    """The original's logging: data MSE, then the certificate and trivial bound."""
    with torch.no_grad():
        mse = net.evaluate_MSELoss(config.input, config.target).item()
    if not math.isfinite(mse):
        raise TrainingError(
            f"training diverged: the MSE is {mse} at SGD step {step}; lower TrainingConfig.lr "
            f"(now {config.lr})"
        )
    require_finite_parameters(net, config, f"SGD step {step}")
    weights, biases = net.extract_weights()
    every = config.log_certificate_every
    L = math.nan
    if every and index % every == 0:
        L = net.logging_certificate(weights, biases)
    logger.debug(
        "step %d: MSE %.6g, Lipschitz bound %.6g, trivial bound %.6g",
        step, mse, L, trivial_bound(weights, get_activation(net.activation).beta),
    )
    return L, mse


def multiplier_tensors(net: MeinNetz, parameters: Mapping[str, Any]) -> Multipliers:
    """``(W{i}_bar, Y{i})`` as tensors of the network's dtype, checked against ``W{i}``."""
    if not isinstance(parameters, Mapping):
        raise InputError(
            f"parameters must be a dict with W0_bar, W1_bar, Y0, Y1, got {type(parameters).__name__}"
        )
    pairs = []
    for i, weight in enumerate((net.lin1.weight, net.lin2.weight)):
        pair = []
        for key in (f"W{i}_bar", f"Y{i}"):
            if key not in parameters:
                raise InputError(
                    f"parameters has no field '{key}'; build it with "
                    "pylip.compat.initialize_parameters(weights, biases)"
                )
            value = as_matrix(parameters[key], f"parameters['{key}']")
            if value.shape != tuple(weight.shape):
                raise InputError(
                    f"parameters['{key}'] has shape {value.shape} but W{i} of this network is "
                    f"{tuple(weight.shape)}"
                )
            pair.append(torch.from_numpy(value).to(weight.dtype))
        pairs.append((pair[0], pair[1]))
    return pairs


def lip_penalty(net: MeinNetz, rho: float, multipliers: Multipliers) -> torch.Tensor:
    """The augmented-Lagrangian terms of (10a): ``sum_i rho/2 ||W_i - W_bar_i||^2 + tr(Y_i'(W_i - W_bar_i))``.

    Two separate differences per layer, as the original: the gradient
    contributions then reach W in the same order (bitwise parity).
    """
    reg: torch.Tensor | None = None
    for param, (W_bar, Y) in zip((net.lin1.weight, net.lin2.weight), multipliers):
        term = rho / 2 * torch.sum((param - W_bar) ** 2) + torch.trace(
            torch.matmul(Y.t(), (param - W_bar))
        )
        reg = term if reg is None else reg + term
    assert reg is not None
    return reg


def require_finite_parameters(
    net: MeinNetz, config: TrainingConfig, where: str, rho: float | None = None
) -> None:
    """Raise :class:`TrainingError` if SGD left NaN or inf in a weight or bias (a cheap check)."""
    with torch.no_grad():
        bad = [name for name, p in net.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise TrainingError(
            f"training diverged: SGD left NaN or inf in {', '.join(bad)} at {where}; lower "
            f"TrainingConfig.lr (now {config.lr})"
            + (f" or rho (now {rho})" if rho is not None else "")
        )


# --------------------------------------------------------------------------- ADMM (train_Lipschitz)


class OriginalADMM:
    """``train_Lipschitz``'s side of the ADMM scheme (:func:`pylip.admm.loop.run_admm`).

    ``current`` is the original's parameter dict (``W0``, ``W1``, ``W0_bar``,
    ``W1_bar``, ``Y0``, ``Y1``, ``Lipschitz``, ...); ``T`` stays fixed, as in
    the original. ``L_course_Lip`` and ``MSE_course_Lip`` collect one
    ``train`` course per iteration.
    """

    def __init__(
        self,
        net: MeinNetz,
        config: TrainingConfig,
        T: np.ndarray,
        parameters: Mapping[str, Any],
        bar: Any,
        callback: Callable[[int, dict[str, Any]], None] | None,
    ) -> None:
        self.net, self.config, self.T, self.bar, self.callback = net, config, T, bar, callback
        self.current = dict(parameters)
        multiplier_tensors(net, self.current)  # malformed W_bar / Y fail before any training
        self.mu = 0.0 if config.mu is None else config.mu
        self.L_course_Lip: list[list[float]] = []
        self.MSE_course_Lip: list[list[float]] = []
        self.mse = math.nan

    def where(self, iteration: int) -> str:
        return f"ADMM iteration {iteration} of {self.config.it_ADMM}"

    def update_T(self, where: str) -> None:  # noqa: N802
        raise RuntimeError("the original's ADMM keeps T fixed: run it without T_update_every")

    def w_step(self, where: str) -> None:
        """(10a): ``train(epochs, rho=rho, parameters=current)``; the weights go to ``W0``, ``W1``."""
        config, net = self.config, self.net
        try:
            courses = net.fit(config.epochs, rho=config.rho, parameters=self.current, show_progress=False)
        except TrainingError as exc:
            raise TrainingError(f"{where}, W step (10a): {exc}") from exc
        self.L_course_Lip.append(courses[0])
        self.MSE_course_Lip.append(courses[1])
        self.mse = _checked_w_step(self.net, config, where)
        weights, _ = self.net.extract_weights()
        self.current = {**self.current, "W0": weights[0], "W1": weights[1]}

    def lipschitz_step(self, where: str) -> float:
        """(10b, 10c) by the original's ``solve_SDP``; returns the bound of the new ``W_bar``."""
        config = self.config
        try:
            self.current = compat.solve_SDP(
                self.current, self.T, config.net_dims, config.rho, self.mu, config.ind_Lip, config.L_des,
                solver=config.solver, beta=config.beta,
            )
        except SolverError as exc:
            raise SolverError(
                f"{where}: the Lipschitz step (10b) failed (solver status {exc.status!r}): {exc}",
                status=exc.status,
            ) from exc
        except CertificateError as exc:
            raise CertificateError(f"{where}: the Lipschitz step (10b) failed: {exc}") from exc
        return _checked_lipschitz_step(self.current, where)

    def finish(self, iteration: int, where: str, bound: float) -> bool:
        logger.info("%s: MSE %.6g, Lipschitz bound of W_bar %.6g", where, self.mse, bound)
        self.bar.set_postfix(MSE=f"{self.mse:.4g}", L=f"{bound:.4g}")
        if self.callback is not None:
            self.callback(iteration - 1, self.current)
        return False


def _checked_w_step(net: MeinNetz, config: TrainingConfig, where: str) -> float:
    """The data MSE after a W step; raise if it or any weight is NaN or inf."""
    for name, p in net.named_parameters():
        if not torch.isfinite(p).all():
            raise TrainingError(
                f"{where}: the W step (10a) left NaN or inf in {name}; lower TrainingConfig.lr "
                "or rho"
            )
    with torch.no_grad():
        mse = net.evaluate_MSELoss(config.input, config.target).item()
    if not math.isfinite(mse):
        raise TrainingError(f"{where}: the MSE after the W step (10a) is {mse}")
    return mse


def _checked_lipschitz_step(parameters: Mapping[str, Any], where: str) -> float:
    """Raise if the Lipschitz step returned NaN or inf; return its bound."""
    for key in ("W0_bar", "W1_bar", "Y0", "Y1"):
        if key not in parameters:
            raise TrainingError(f"{where}: the Lipschitz step returned no '{key}'")
        if not np.all(np.isfinite(np.asarray(parameters[key], dtype=np.float64))):
            raise TrainingError(f"{where}: the Lipschitz step (10b, 10c) returned NaN or inf in {key}")
    bound = float(parameters.get("Lipschitz", math.nan))
    if not math.isfinite(bound):
        raise TrainingError(f"{where}: the Lipschitz step returned the bound {bound}")
    return bound


__all__ = ["OriginalADMM", "lip_penalty", "multiplier_tensors", "sgd_course"]
