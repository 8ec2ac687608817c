"""ADMM training of a one-hidden-layer network under Lipschitz bounds (paper Section III).

:class:`MeinNetz` is the authors' PyTorch driver class under its own name, with
the same methods and, by default, the same float32 arithmetic step for step:

* ``train(epochs, lmbd, rho, parameters)``: full-batch SGD on the data MSE
  (+ L2 penalty) (+ the augmented-Lagrangian terms of (10a));
* ``train_Lipschitz(parameters, T)``: the ADMM scheme (10): the W step (10a)
  by SGD, then the Lipschitz step (10b) and the dual update (10c) by
  :func:`pylip.compat.solve_SDP`, ``it_ADMM`` times, for Lipschitz
  regularisation (problem (9), ``ind_Lip = 1``) or an enforced bound
  (problem (12), ``ind_Lip = 2``).

What the original read from module globals comes from a :class:`TrainingConfig`.
The SGD loop does the original's arithmetic without its overhead (no optimiser
built per step; gradients by ``torch.autograd.grad``; the multipliers converted
to tensors once per W step instead of once per SGD step).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .. import original as compat
from ..admm.step import check_multiplier
from ..errors import CertificateError, InputError, SolverError, TrainingError
from ..lipsdp.activations import get_activation
from ..lipsdp.certificate import certify, closed_form_bound
from ..lipsdp.lmi import trivial_bound
from ..lipsdp.solvers import resolve_solver
from ..validation import as_count, as_dim, as_matrix, as_number
from . import sgd_kernel

logger = logging.getLogger(__name__)

TORCH_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
}
CERTIFICATE_METHODS = ("sdp", "closed_form", "auto")
ENGINES = ("auto", "torch", "compiled")
FLOAT_DTYPES = (torch.float32, torch.float64)
ORIGINAL_DIMS = (1, 10, 1)  # the examples' net_dims


# --------------------------------------------------------------------------- configuration


@dataclasses.dataclass(frozen=True, eq=False)
class TrainingConfig:
    """Everything the original's drivers read from module globals, checked.

    Attributes:
        input: ``N x n_x`` training inputs (a flat vector is read as one input).
        target: ``N x n_y`` targets (a flat vector is read as one output).
        lr: SGD step size (the original's 0.01).
        epochs: SGD steps per ADMM W step (10a).
        it_ADMM: ADMM iterations of :meth:`MeinNetz.train_Lipschitz`.
        rho: ADMM penalty parameter ``rho`` of the augmented Lagrangian.
        mu: weight of ``L^2`` in (9); required for ``ind_Lip = 1``.
        ind_Lip: 1 = Lipschitz regularisation (9), 2 = enforce ``L_des`` (12).
        L_des: the enforced bound; given exactly when ``ind_Lip = 2``.
        solver: SDP solver for the certificates and the Lipschitz step.
        log_every: record MSE and certificate every this many SGD steps.
        log_certificate_every: compute the logged certificate at every k-th
            logged step of each ``train`` call only (1 = all, as the original;
            0 = never); the others are recorded as NaN, as in the reference
            runs, which logged 1 in 10.
        log_certificate_method: ``"sdp"`` (the original's ``build_T``),
            ``"closed_form"`` (:func:`pylip.closed_form_bound`, exact for
            ``n_x = n_y = 1``) or ``"auto"`` (closed form where exact, else SDP).
        n_x, n_h, n_y: layer sizes (``n_x``, ``n_y`` default to the data's).
        activation: ``"tanh"``, ``"relu"`` or ``"sigmoid"`` (slopes in
            ``[0, beta]`` with ``beta`` 1, 1, 1/4: LMI (7)).
        dtype: ``torch.float32`` (the original's) or ``torch.float64``.
        progress: show tqdm progress bars.
        engine: ``"torch"`` (autograd, the original's arithmetic), ``"compiled"``
            (:mod:`pylip.sgd_kernel`: the same float32 arithmetic compiled with
            numba, bit for bit equal on AVX2 CPUs with torch 2.13, for
            ``1 - n_h - 1`` tanh nets in float32), or ``"auto"`` (compiled
            where it applies and numba is installed, else torch).
    """

    input: torch.Tensor
    target: torch.Tensor
    lr: float = 0.01
    epochs: int = 10_000
    it_ADMM: int = 100
    rho: float = 2.0
    mu: float | None = None
    ind_Lip: int = 1
    L_des: float | None = None
    solver: str | None = None
    log_every: int = 1000
    log_certificate_every: int = 1
    log_certificate_method: str = "sdp"
    n_x: int | None = None
    n_h: int = 10
    n_y: int | None = None
    activation: str = "tanh"
    dtype: torch.dtype = torch.float32
    progress: bool = True
    engine: str = "auto"

    def __post_init__(self) -> None:
        if self.dtype not in FLOAT_DTYPES:
            raise InputError(f"TrainingConfig.dtype must be torch.float32 or torch.float64, got {self.dtype}")
        checked = _checked_data(self)
        checked.update(_checked_numbers(self))
        checked.update(_checked_mode(self))
        checked.update(_checked_logging(self, checked))
        if self.solver is not None:
            resolve_solver(self.solver)  # an unknown or missing solver fails now, not after training
        if not isinstance(self.progress, bool):
            raise InputError(f"TrainingConfig.progress must be True or False, got {self.progress!r}")
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # frozen: coerce once, here

    @property
    def net_dims(self) -> list[int]:
        """``[n_x, n_h, n_y]`` as the original's ``net_dims``."""
        return [int(self.n_x), self.n_h, int(self.n_y)]  # type: ignore[arg-type]

    @property
    def beta(self) -> float:
        """Upper slope bound of the activation (eq. 2): 1 for tanh and ReLU, 1/4 for sigmoid."""
        return get_activation(self.activation).beta

    @property
    def compiled_engine(self) -> bool:
        """Whether SGD runs in the compiled kernel (see ``engine``)."""
        if self.engine == "torch":
            return False
        return self.engine == "compiled" or _kernel_applies(self)

    @property
    def closed_form_exact(self) -> bool:
        """Whether :func:`pylip.closed_form_bound` equals the SDP certificate (n_x = n_y = 1)."""
        return self.n_x == 1 and self.n_y == 1

    def require_admm(self) -> None:
        """Check the fields :meth:`MeinNetz.train_Lipschitz` needs beyond plain training."""
        if self.ind_Lip == 1 and (self.mu is None or self.mu <= 0):
            raise InputError(
                "TrainingConfig.mu must be > 0 for ind_Lip=1 (Lipschitz regularisation, problem 9 "
                f"weights L^2 by mu), got {self.mu!r}; the paper's classifier example uses mu=8e-4"
            )


def _checked_data(config: TrainingConfig) -> dict[str, Any]:
    inputs = _data_tensor(config.input, "input", config.dtype)
    targets = _data_tensor(config.target, "target", config.dtype)
    if inputs.shape[0] != targets.shape[0]:
        raise InputError(
            f"TrainingConfig.input has {inputs.shape[0]} samples but target has "
            f"{targets.shape[0]}: give one target row per input row"
        )
    return {
        "input": inputs,
        "target": targets,
        "n_x": _data_dim(config.n_x, inputs, "n_x", "input"),
        "n_y": _data_dim(config.n_y, targets, "n_y", "target"),
        "n_h": as_dim(config.n_h, "TrainingConfig.n_h"),
    }


def _checked_numbers(config: TrainingConfig) -> dict[str, Any]:
    return {
        "lr": _positive(config.lr, "lr"),
        "rho": _positive(config.rho, "rho"),
        "epochs": _count(config.epochs, "epochs", minimum=1),
        "it_ADMM": _count(config.it_ADMM, "it_ADMM", minimum=1),
        "log_every": _count(config.log_every, "log_every", minimum=1),
        "log_certificate_every": _count(config.log_certificate_every, "log_certificate_every", 0),
    }


def _checked_mode(config: TrainingConfig) -> dict[str, Any]:
    if isinstance(config.ind_Lip, bool) or config.ind_Lip not in (1, 2):
        raise InputError(
            f"TrainingConfig.ind_Lip must be 1 (Lipschitz regularisation) or 2 (enforce L_des), "
            f"got {config.ind_Lip!r}"
        )
    mu = None if config.mu is None else _finite(config.mu, "mu")
    if mu is not None and mu < 0:
        raise InputError(f"TrainingConfig.mu must be >= 0 (the weight of L^2 in (9)), got {mu}")
    if config.ind_Lip == 1 and config.L_des is not None:
        raise InputError(
            "TrainingConfig.L_des is only used with ind_Lip=2 (enforce a bound); remove it, or set ind_Lip=2"
        )
    if config.ind_Lip == 2 and config.L_des is None:
        raise InputError(
            "TrainingConfig.L_des is required with ind_Lip=2 (enforce a bound): set it to the desired "
            "Lipschitz bound, e.g. the L2 net's certificate as in the sine example"
        )
    L_des = None if config.L_des is None else _positive(config.L_des, "L_des")
    return {"ind_Lip": int(config.ind_Lip), "mu": mu, "L_des": L_des}


def _checked_logging(config: TrainingConfig, checked: Mapping[str, Any]) -> dict[str, Any]:
    name = str(config.activation).lower()
    if name not in TORCH_ACTIVATIONS:
        raise InputError(
            f"TrainingConfig.activation must be one of {', '.join(TORCH_ACTIVATIONS)}, "
            f"got {config.activation!r}"
        )
    method = config.log_certificate_method
    if method not in CERTIFICATE_METHODS:
        raise InputError(
            f"TrainingConfig.log_certificate_method must be one of {', '.join(CERTIFICATE_METHODS)}, "
            f"got {method!r}"
        )
    if method == "closed_form" and (checked["n_x"], checked["n_y"]) != (1, 1):
        raise InputError(
            "TrainingConfig.log_certificate_method='closed_form' is exact only for one input and one "
            f"output (n_x = n_y = 1), got n_x={checked['n_x']}, n_y={checked['n_y']}; use 'sdp' or 'auto'"
        )
    if config.engine not in ENGINES:
        raise InputError(f"TrainingConfig.engine must be one of {', '.join(ENGINES)}, got {config.engine!r}")
    if config.engine == "compiled":
        if not sgd_kernel.available():
            raise InputError("TrainingConfig.engine='compiled' needs numba: pip install 'pylip[train]'")
        if not _kernel_covers(name, checked["n_x"], checked["n_y"], config.dtype):
            raise InputError(
                "TrainingConfig.engine='compiled' covers float32 1-n_h-1 tanh nets (the examples'), got "
                f"{checked['n_x']}-{config.n_h}-{checked['n_y']} {name} in {config.dtype}; "
                "use engine='torch' or 'auto'"
            )
    return {"activation": name}


def _kernel_covers(activation: str, n_x: Any, n_y: Any, dtype: torch.dtype) -> bool:
    """The networks :mod:`pylip.sgd_kernel` trains: float32, 1 - n_h - 1, tanh."""
    return activation == "tanh" and n_x == 1 and n_y == 1 and dtype == torch.float32


def _kernel_applies(config: TrainingConfig) -> bool:
    return sgd_kernel.available() and _kernel_covers(config.activation, config.n_x, config.n_y, config.dtype)


def _data_tensor(value: Any, name: str, dtype: torch.dtype) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"TrainingConfig.{name} must be a tensor or array of numbers: {exc}") from None
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise InputError(f"TrainingConfig.{name} must hold real numbers, got dtype {tensor.dtype}")
    tensor = tensor.to(dtype).clone()  # the config owns its data
    if tensor.ndim == 1:
        tensor = tensor.reshape(-1, 1)  # a flat vector is N scalar samples (the examples' column)
    if tensor.ndim != 2 or tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise InputError(
            f"TrainingConfig.{name} must be a non-empty N x n matrix (one sample per row), got "
            f"shape {tuple(tensor.shape)}"
        )
    if not torch.isfinite(tensor).all():
        raise InputError(f"TrainingConfig.{name} contains NaN or inf values")
    return tensor


def _data_dim(given: Any, data: torch.Tensor, field: str, source: str) -> int:
    if given is None:
        return int(data.shape[1])
    dim = as_dim(given, f"TrainingConfig.{field}")
    if dim != data.shape[1]:
        raise InputError(
            f"TrainingConfig.{field} = {dim} but {source} has {data.shape[1]} columns; drop {field} "
            f"to take it from the data, or reshape {source} to N x {dim}"
        )
    return dim


def _finite(value: Any, field: str) -> float:
    return as_number(value, f"TrainingConfig.{field}")


def _positive(value: Any, field: str) -> float:
    number = _finite(value, field)
    if number <= 0:
        raise InputError(f"TrainingConfig.{field} must be > 0, got {number}")
    return number


def _count(value: Any, field: str, minimum: int) -> int:
    return as_count(value, f"TrainingConfig.{field}", minimum)


# --------------------------------------------------------------------------- the network


class MeinNetz(nn.Module):
    """The original's network ``f(x) = W1 phi(W0 x + b0) + b1`` (eq. 3) and its training.

    Construct it as ``MeinNetz(config)``; sizes and activation come from the
    config, or, without one, from ``net_dims`` / ``activation`` (default the
    examples' 1-10-1 tanh net; a config is then needed only to train). The two
    ``nn.Linear`` layers are created in the original's order with PyTorch's
    default initialisation, so ``torch.manual_seed`` reproduces its weights.

    ``train`` keeps both meanings: ``net.train(10_000, lmbd=0.01)`` (an int)
    runs SGD as the original's method did and returns ``(L_course,
    MSE_course)``; ``net.train()``, ``net.train(False)`` or
    ``net.train(mode=...)`` (a bool) switch the ``nn.Module`` mode as in
    PyTorch, so ``net.eval()`` works. :meth:`fit` is the unambiguous name of
    the SGD training.
    """

    def __init__(
        self,
        config: TrainingConfig | None = None,
        *,
        net_dims: Sequence[int] | None = None,
        activation: str | None = None,
    ) -> None:
        super().__init__()
        if config is not None and not isinstance(config, TrainingConfig):
            raise InputError(f"config must be a pylip.training.TrainingConfig, got {type(config).__name__}")
        dims = _network_dims(config, net_dims)
        name = _network_activation(config, activation)
        self.config = config
        self.activation = name
        self.lin1 = nn.Linear(dims[0], dims[1])
        self.lin2 = nn.Linear(dims[1], dims[2])
        if config is not None and config.dtype != torch.float32:
            self.to(config.dtype)  # initialise in float32 first: the same random draws

    @property
    def net_dims(self) -> list[int]:
        """``[n_x, n_h, n_y]``."""
        return [self.lin1.in_features, self.lin1.out_features, self.lin2.out_features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``lin2(phi(lin1(x)))``."""
        return self.lin2(TORCH_ACTIVATIONS[self.activation](self.lin1(x)))

    # -- the original's loss terms ------------------------------------------------

    def l2_reg(self, lmbd: float) -> torch.Tensor:
        """``lmbd * sum_p 0.5 ||p||^2`` over all parameters, biases included.

        Written term by term as the original (first ``sum(p**2)``, then
        ``norm(p)**2``): the two round differently, and bitwise parity needs both.
        """
        reg: torch.Tensor | None = None
        for p in self.parameters():
            reg = 0.5 * torch.sum(p**2) if reg is None else reg + 0.5 * p.norm(2) ** 2
        assert reg is not None
        return lmbd * reg

    def Lip_reg(self, rho: float, parameters: Mapping[str, Any]) -> torch.Tensor:  # noqa: N802
        """The augmented-Lagrangian terms of (10a) for ``W_bar``, ``Y`` in ``parameters``.

        ``sum_i rho/2 ||W_i - W_bar_i||_F^2 + tr(Y_i' (W_i - W_bar_i))``, with
        ``W{i}_bar`` and ``Y{i}`` read as tensors of the network's dtype (the
        original's float32 conversion of the MATLAB engine's lists).
        """
        return self._lip_penalty(rho, self._multiplier_tensors(parameters))

    def evaluate_MSELoss(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """Mean squared error ``1/N sum (f(x) - y)^2``, written as the original."""
        return 1 / len(target) * torch.sum((self(input) - target) ** 2)

    def extract_weights(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """``([W0, W1], [b0, b1])`` as float64 numpy arrays, in state-dict order."""
        weights: list[np.ndarray] = []
        biases: list[np.ndarray] = []
        for key, value in self.state_dict().items():
            array = value.detach().cpu().numpy().astype(np.float64)
            (weights if key.endswith("weight") else biases).append(array)
        return weights, biases

    # -- training -------------------------------------------------------------------

    # Shadowing nn.Module.train (as the original did) is deliberate; bool is
    # tested before int at run time, so the overlap is resolved.
    @overload  # type: ignore[override]
    def train(self, epochs: bool = ..., *, mode: bool | None = ...) -> MeinNetz: ...  # type: ignore[overload-overlap]

    @overload
    def train(
        self,
        epochs: int,
        lmbd: float | None = ...,
        rho: float | None = ...,
        parameters: Mapping[str, Any] | None = ...,
    ) -> tuple[list[float], list[float]]: ...

    def train(
        self,
        epochs: int | bool = True,
        lmbd: float | None = None,
        rho: float | None = None,
        parameters: Mapping[str, Any] | None = None,
        *,
        mode: bool | None = None,
    ) -> MeinNetz | tuple[list[float], list[float]]:
        """SGD training for an int ``epochs`` (:meth:`fit`); ``nn.Module.train`` for a bool.

        The original's ``train`` shadowed ``nn.Module.train``; dispatching on
        the argument keeps ``net.train()``, ``net.train(False)`` and
        ``net.eval()`` working as in PyTorch.
        """
        if mode is not None or isinstance(epochs, (bool, np.bool_)):
            if lmbd is not None or rho is not None or parameters is not None:
                raise InputError(
                    "train(mode) switches nn.Module's training mode and takes no lmbd, rho or "
                    "parameters; pass an int number of SGD steps to train the network"
                )
            return super().train(bool(epochs if mode is None else mode))
        return self.fit(epochs, lmbd=lmbd, rho=rho, parameters=parameters)

    def fit(
        self,
        epochs: int,
        lmbd: float | None = None,
        rho: float | None = None,
        parameters: Mapping[str, Any] | None = None,
        *,
        show_progress: bool | None = None,
    ) -> tuple[list[float], list[float]]:
        """``epochs`` full-batch SGD steps on ``MSE (+ l2_reg(lmbd)) (+ Lip_reg(rho, parameters))``.

        With ``rho`` and ``parameters`` this is the ADMM W step (10a). At every
        step ``i`` with ``i % log_every == 0``, before that step's update, it
        records the data MSE and a certificate of the current weights.

        Returns:
            ``(L_course, MSE_course)``, one entry per logged step (``L`` is NaN
            where thinned out by ``log_certificate_every``).
        """
        config = self._require_config()
        steps = _steps(epochs)
        _optional_number(lmbd, "lmbd")
        _optional_number(rho, "rho")
        if rho is not None and parameters is None:
            raise InputError("train(rho=...) needs parameters with W0_bar, W1_bar, Y0, Y1 for Lip_reg")
        if rho is None and parameters is not None:
            raise InputError("train(parameters=...) is only used with rho (the ADMM penalty); pass rho too")
        multipliers = None if rho is None else self._multiplier_tensors(parameters)  # type: ignore[arg-type]
        show = config.progress if show_progress is None else show_progress
        loop = self._compiled_loop if config.compiled_engine else self._sgd_loop
        with torch.enable_grad(), tqdm(total=steps, disable=not show, unit="step", leave=False) as bar:
            courses = loop(config, steps, lmbd, rho, multipliers, bar)
        self._require_finite_parameters(config, f"the end of {steps} SGD steps", rho)
        return courses

    def _sgd_loop(
        self,
        config: TrainingConfig,
        steps: int,
        lmbd: float | None,
        rho: float | None,
        multipliers: list[tuple[torch.Tensor, torch.Tensor]] | None,
        bar: Any,
    ) -> tuple[list[float], list[float]]:
        x, y, lr, log_every = config.input, config.target, config.lr, config.log_every
        params = list(self.parameters())
        W0, b0, W1, b1 = params
        phi = TORCH_ACTIVATIONS[self.activation]
        L_course: list[float] = []
        MSE_course: list[float] = []
        for i in range(steps):
            if i % log_every == 0:
                L, mse = self._log_point(config, i, len(L_course))
                L_course.append(L)
                MSE_course.append(mse)
                bar.update(i - bar.n)
                bar.set_postfix(MSE=f"{mse:.4g}", refresh=False)
            # forward() without nn.Module call overhead: the same F.linear calls
            loss = F.mse_loss(F.linear(phi(F.linear(x, W0, b0)), W1, b1), y)
            if lmbd is not None:
                loss = loss + self.l2_reg(lmbd)
            if multipliers is not None:
                loss = loss + self._lip_penalty(rho, multipliers)  # type: ignore[arg-type]
            # One plain SGD update p <- p - lr * grad: torch.optim.SGD's arithmetic
            # (no momentum, no weight decay), without building an optimiser per step.
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    p.add_(g, alpha=-lr)
        bar.update(steps - bar.n)
        return L_course, MSE_course

    def _compiled_loop(
        self,
        config: TrainingConfig,
        steps: int,
        lmbd: float | None,
        rho: float | None,
        multipliers: list[tuple[torch.Tensor, torch.Tensor]] | None,
        bar: Any,
    ) -> tuple[list[float], list[float]]:
        """:meth:`_sgd_loop` with the SGD steps between two logged points in the compiled kernel.

        The kernel updates the parameters' storage in place (numpy views of the
        tensors), so the logging at ``i % log_every == 0`` sees exactly the
        weights the torch loop would.
        """
        views = [p.detach().numpy() for p in self.parameters()]
        x, y = config.input.numpy(), config.target.numpy()
        targets = None if multipliers is None else [(w.numpy(), v.numpy()) for w, v in multipliers]
        L_course: list[float] = []
        MSE_course: list[float] = []
        for start in range(0, steps, config.log_every):
            L, mse = self._log_point(config, start, len(L_course))
            L_course.append(L)
            MSE_course.append(mse)
            chunk = min(config.log_every, steps - start)
            sgd_kernel.sgd_steps(views, x, y, chunk, config.lr, lmbd=lmbd, rho=rho, multipliers=targets)
            bar.update(chunk)
            bar.set_postfix(MSE=f"{mse:.4g}", refresh=False)
        return L_course, MSE_course

    def _log_point(self, config: TrainingConfig, step: int, index: int) -> tuple[float, float]:
        """The original's logging: data MSE, then the certificate and trivial bound."""
        with torch.no_grad():
            mse = self.evaluate_MSELoss(config.input, config.target).item()
        if not math.isfinite(mse):
            raise TrainingError(
                f"training diverged: the MSE is {mse} at SGD step {step}; lower TrainingConfig.lr "
                f"(now {config.lr})"
            )
        self._require_finite_parameters(config, f"SGD step {step}")
        weights, biases = self.extract_weights()
        every = config.log_certificate_every
        L = math.nan
        if every and index % every == 0:
            L = self.logging_certificate(weights, biases)
        logger.debug(
            "step %d: MSE %.6g, Lipschitz bound %.6g, trivial bound %.6g",
            step, mse, L, trivial_bound(weights, self._beta()),
        )
        return L, mse

    def logging_certificate(self, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]) -> float:
        """The logged certificate of ``[W0, W1]`` by ``config.log_certificate_method``.

        ``"sdp"`` is the original's ``build_T(...)['Lipschitz']`` for tanh and
        :func:`pylip.certify` with the activation's sector otherwise; the closed
        form is used for ``"closed_form"``, and for ``"auto"`` when ``n_x = n_y = 1``.
        """
        config = self._require_config()
        method = config.log_certificate_method
        if method == "closed_form" or (method == "auto" and config.closed_form_exact):
            return closed_form_bound(weights[0], weights[1], beta=self._beta())
        if self.activation == "tanh":
            return float(compat.build_T(weights, biases, self.net_dims, solver=config.solver)["Lipschitz"])
        return certify(weights, activation=self.activation, solver=config.solver).bound

    def train_Lipschitz(  # noqa: N802
        self,
        parameters: Mapping[str, Any],
        T: Any,
        *,
        callback: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> tuple[dict[str, Any], list[list[float]], list[list[float]]]:
        """The ADMM scheme (10), ``config.it_ADMM`` iterations.

        Each iteration: the W step (10a) = ``train(epochs, rho=rho,
        parameters=parameters)``; the network's weights go to ``W0``, ``W1``;
        then the Lipschitz step (10b) and the dual update (10c) by
        :func:`pylip.compat.solve_SDP` with the fixed multiplier ``T``. The
        network keeps its own weights W; ``W_bar`` lives in ``parameters``.
        The caller's ``parameters`` dict is not modified.

        Args:
            parameters: as from :func:`pylip.compat.initialize_parameters`
                (``W0_bar``, ``W1_bar``, ``Y0``, ``Y1`` at least).
            T: the fixed ``n_h x n_h`` diagonal multiplier (e.g. ``build_T(...)['T']``).
            callback: called as ``callback(iteration, parameters)`` after each
                iteration (0-based), e.g. to check or save ``W_bar``.

        Returns:
            ``(parameters, L_course_Lip, MSE_course_Lip)``: the last Lipschitz
            step's result, and one ``train`` course per iteration.

        Raises:
            SolverError: the Lipschitz step failed (message names the iteration).
            TrainingError: NaN or inf appeared (message names the iteration).
        """
        config = self._require_config()
        config.require_admm()
        T_matrix = check_multiplier(T, self.lin1.out_features)  # fail before any training
        step = _lipschitz_step(config)
        current = dict(parameters)
        self._multiplier_tensors(current)  # malformed W_bar / Y fail before any training
        mu = 0.0 if config.mu is None else config.mu
        L_course_Lip: list[list[float]] = []
        MSE_course_Lip: list[list[float]] = []
        bar = tqdm(range(config.it_ADMM), disable=not config.progress, unit="ADMM it")
        for k in bar:
            where = f"ADMM iteration {k + 1} of {config.it_ADMM}"
            try:
                L_c, M_c = self.fit(config.epochs, rho=config.rho, parameters=current, show_progress=False)
            except TrainingError as exc:
                raise TrainingError(f"{where}, W step (10a): {exc}") from exc
            L_course_Lip.append(L_c)
            MSE_course_Lip.append(M_c)
            mse = self._check_w_step(where)
            weights, _ = self.extract_weights()
            current = {**current, "W0": weights[0], "W1": weights[1]}
            try:
                current = step(
                    current, T_matrix, config.net_dims, config.rho, mu, config.ind_Lip, config.L_des
                )
            except SolverError as exc:
                raise SolverError(
                    f"{where}: the Lipschitz step (10b) failed (solver status {exc.status!r}): {exc}",
                    status=exc.status,
                ) from exc
            except CertificateError as exc:
                raise CertificateError(f"{where}: the Lipschitz step (10b) failed: {exc}") from exc
            bound = _check_lipschitz_step(current, where)
            logger.info("%s: MSE %.6g, Lipschitz bound of W_bar %.6g", where, mse, bound)
            bar.set_postfix(MSE=f"{mse:.4g}", L=f"{bound:.4g}")
            if callback is not None:
                callback(k, current)
        return current, L_course_Lip, MSE_course_Lip

    # -- helpers --------------------------------------------------------------------

    def _require_config(self) -> TrainingConfig:
        if self.config is None:
            raise InputError(
                "this MeinNetz has no TrainingConfig: build it as MeinNetz(config) or set "
                "net.config = TrainingConfig(input=..., target=...)"
            )
        return self.config

    def _beta(self) -> float:
        return get_activation(self.activation).beta

    def _multiplier_tensors(self, parameters: Mapping[str, Any]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(W{i}_bar, Y{i})`` as tensors of the network's dtype, checked against ``W{i}``."""
        if not isinstance(parameters, Mapping):
            raise InputError(
                f"parameters must be a dict with W0_bar, W1_bar, Y0, Y1, got {type(parameters).__name__}"
            )
        pairs = []
        for i, weight in enumerate((self.lin1.weight, self.lin2.weight)):
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

    def _lip_penalty(self, rho: float, multipliers: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        # Two separate differences per layer, as the original: the gradient
        # contributions then reach W in the same order (bitwise parity).
        reg: torch.Tensor | None = None
        for param, (W_bar, Y) in zip((self.lin1.weight, self.lin2.weight), multipliers):
            term = rho / 2 * torch.sum((param - W_bar) ** 2) + torch.trace(
                torch.matmul(Y.t(), (param - W_bar))
            )
            reg = term if reg is None else reg + term
        assert reg is not None
        return reg

    def _require_finite_parameters(
        self, config: TrainingConfig, where: str, rho: float | None = None
    ) -> None:
        """Raise :class:`TrainingError` if SGD left NaN or inf in a weight or bias (a cheap check)."""
        with torch.no_grad():
            bad = [name for name, p in self.named_parameters() if not bool(torch.isfinite(p).all())]
        if bad:
            raise TrainingError(
                f"training diverged: SGD left NaN or inf in {', '.join(bad)} at {where}; lower "
                f"TrainingConfig.lr (now {config.lr})"
                + (f" or rho (now {rho})" if rho is not None else "")
            )

    def _check_w_step(self, where: str) -> float:
        """The data MSE after a W step; raise if it or any weight is NaN or inf."""
        for name, p in self.named_parameters():
            if not torch.isfinite(p).all():
                raise TrainingError(
                    f"{where}: the W step (10a) left NaN or inf in {name}; lower TrainingConfig.lr "
                    "or rho"
                )
        with torch.no_grad():
            mse = self.evaluate_MSELoss(self.config.input, self.config.target).item()  # type: ignore[union-attr]
        if not math.isfinite(mse):
            raise TrainingError(f"{where}: the MSE after the W step (10a) is {mse}")
        return mse


def _steps(epochs: Any) -> int:
    if isinstance(epochs, (bool, np.bool_)) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise InputError(f"epochs must be an integer number of SGD steps >= 0, got {epochs!r}")
    return int(epochs)


def _optional_number(value: Any, name: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a number or None, got {value!r}")
    if not math.isfinite(value):
        raise InputError(f"{name} must be finite, got {value}")


def _network_dims(config: TrainingConfig | None, net_dims: Sequence[int] | None) -> list[int]:
    if net_dims is None:
        return config.net_dims if config is not None else list(ORIGINAL_DIMS)
    if len(net_dims) != 3:
        raise InputError(f"net_dims must be [n_x, n_h, n_y], got {list(net_dims)!r}")
    dims = [as_dim(d, f"net_dims[{i}]") for i, d in enumerate(net_dims)]
    if config is not None and dims != config.net_dims:
        raise InputError(
            f"net_dims {dims} differ from the config's [n_x, n_h, n_y] = {config.net_dims}; "
            "give one of them"
        )
    return dims


def _network_activation(config: TrainingConfig | None, activation: str | None) -> str:
    if activation is None:
        return config.activation if config is not None else "tanh"
    name = str(activation).lower()
    if name not in TORCH_ACTIVATIONS:
        raise InputError(f"activation must be one of {', '.join(TORCH_ACTIVATIONS)}, got {activation!r}")
    if config is not None and name != config.activation:
        raise InputError(f"activation {name!r} differs from the config's {config.activation!r}; give one")
    return name


def _lipschitz_step(config: TrainingConfig) -> Callable[..., dict[str, Any]]:
    """``compat.solve_SDP`` bound to the config's solver and the activation's ``beta``."""

    def step(*args: Any) -> dict[str, Any]:
        return compat.solve_SDP(*args, solver=config.solver, beta=config.beta)

    return step


def _check_lipschitz_step(parameters: Mapping[str, Any], where: str) -> float:
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


__all__ = ["MeinNetz", "TrainingConfig", "TrainingError"]  # TrainingError lives in pylip.errors
