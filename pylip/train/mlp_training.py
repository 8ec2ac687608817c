"""Training multi-layer perceptrons with Lipschitz bounds (paper Section III, Remarks 3 and 4).

For a torch MLP ``f(x) = W_l phi(... phi(W0 x + b0) ...) + b_l`` (an
``nn.Sequential`` of ``Linear`` and activation layers, built by :func:`mlp`):

* :func:`fit`: nominal training, or the L2 net (``loss + l2/2 sum_k ||W_k||_F^2``);
* :func:`train_lipschitz`: the ADMM scheme (10) for Lipschitz regularisation
  (problem 9, ``mode="regularize"``) or an enforced bound (problem 12,
  ``mode="enforce"``): the W step (10a) by the configured optimiser on
  ``loss + sum_k rho/2 ||W_k - W_bar_k||^2 + tr(Y_k'(W_k - W_bar_k))``, the
  Lipschitz step (10b) and dual update (10c) by a step of the family
  :func:`pylip.admm.family.lipschitz_step` (the multi-layer
  :class:`~pylip.admm.deep_step.DeepLipschitzStep`) with a fixed diagonal
  multiplier ``T`` (Remark 4), optionally re-solved for the current ``W_bar``
  every few iterations (Remark 3), in the shared loop :func:`pylip.admm.loop.run_admm`.

In the enforce mode the ``W_bar`` network satisfies the LipSDP-Neuron LMI at
``L_des`` after every iteration (Theorem 8, for ``l`` hidden layers): its
Lipschitz constant is at most ``L_des`` all along.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..admm.deep_step import (
    METHODS as STEP_METHODS,
)
from ..admm.deep_step import (
    MODES,
    certificate_max_eigenvalue,
    feasible_shrink,
    multiplier_vector,
    positive_multiplier,
)
from ..admm.family import SupportsLipschitzStep, lipschitz_step
from ..admm.loop import certificate_for_T, fixed_T_bound, run_admm, update_T
from ..admm.result import LayerStepResult
from ..errors import CertificateError, InputError, SolverError, TrainingError
from ..lipsdp.activations import get_activation
from ..lipsdp.solvers import resolve_solver
from ..validation import as_count, as_number
from .threads import with_training_threads

logger = logging.getLogger(__name__)

ACTIVATION_MODULES: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}
LOSSES = ("cross_entropy", "mse")
OPTIMIZERS = ("adam", "sgd")


# --------------------------------------------------------------------------- models


def mlp(layer_sizes: Sequence[int], activation: str = "tanh", seed: int | None = None) -> nn.Sequential:
    """``Linear(n0, n1), phi, Linear(n1, n2), phi, ..., Linear(n_l, n_out)`` in float32.

    PyTorch's default initialisation, drawn under ``torch.manual_seed(seed)``
    when ``seed`` is given (the global random state is left as it was).
    """
    sizes = _layer_sizes(layer_sizes)
    name = _activation_name(activation, "activation")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise InputError(f"seed must be an integer or None, got {seed!r}")

    def build() -> nn.Sequential:
        layers: list[nn.Module] = []
        for k in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[k], sizes[k + 1]))
            if k < len(sizes) - 2:
                layers.append(ACTIVATION_MODULES[name]())
        return nn.Sequential(*layers)

    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


def mlp_weights(model: nn.Sequential) -> list[np.ndarray]:
    """float64 copies ``[W0, ..., Wl]`` of the model's ``Linear`` weights."""
    return [lin.weight.detach().cpu().numpy().astype(np.float64) for lin in _linears(model)]


def mlp_activation(model: nn.Sequential) -> str:
    """The model's activation: ``"tanh"``, ``"relu"`` or ``"sigmoid"`` (one for all hidden layers)."""
    _linears(model)
    names = {_module_activation(m) for m in model if not isinstance(m, nn.Linear)}
    if len(names) != 1:
        raise InputError(
            f"model mixes activations {sorted(names)}; LipSDP training here needs one activation "
            "for all hidden layers (build the model with pylip.mlp_training.mlp)"
        )
    return names.pop()


def _linears(model: Any) -> list[nn.Linear]:
    """The ``Linear`` layers of an ``nn.Sequential`` alternating Linear / activation, Linear last."""
    if not isinstance(model, nn.Sequential):
        raise InputError(
            f"model must be an nn.Sequential of Linear and activation layers (pylip.mlp_training.mlp), "
            f"got {type(model).__name__}"
        )
    modules = list(model)
    if len(modules) < 3 or len(modules) % 2 == 0:
        raise InputError(
            f"model must alternate Linear and activation layers with a Linear last and at least one "
            f"hidden layer, got {len(modules)} modules: {[type(m).__name__ for m in modules]}"
        )
    linears: list[nn.Linear] = []
    for i, m in enumerate(modules):
        if i % 2 == 0:
            if not isinstance(m, nn.Linear):
                raise InputError(
                    f"model[{i}] must be nn.Linear (layers alternate Linear / activation), got "
                    f"{type(m).__name__}"
                )
            if m.bias is None:
                raise InputError(f"model[{i}] has no bias; build Linear layers with bias=True")
            linears.append(m)
        else:
            _module_activation(m, index=i)
    for k in range(1, len(linears)):
        if linears[k].in_features != linears[k - 1].out_features:
            raise InputError(
                f"Linear layer {k} has {linears[k].in_features} inputs but layer {k - 1} has "
                f"{linears[k - 1].out_features} outputs"
            )
    return linears


def _module_activation(module: nn.Module, index: int | None = None) -> str:
    for name, cls in ACTIVATION_MODULES.items():
        if type(module) is cls:
            return name
    where = "" if index is None else f"model[{index}] "
    raise InputError(
        f"{where}is {type(module).__name__}; the supported activations are nn.Tanh, nn.ReLU and nn.Sigmoid "
        "(slope-restricted in [0, beta], eq. 2)"
    )


def _layer_sizes(layer_sizes: Sequence[Any]) -> tuple[int, ...]:
    try:
        sizes = tuple(layer_sizes)
    except TypeError:
        raise InputError(
            f"layer_sizes must be a sequence of positive integers, got {layer_sizes!r}"
        ) from None
    ok = len(sizes) >= 3 and all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1 for n in sizes
    )
    if not ok:
        raise InputError(
            f"layer_sizes must be (n_in, n_1, ..., n_l, n_out): positive integers and at least one hidden "
            f"layer, got {layer_sizes!r}"
        )
    return tuple(int(n) for n in sizes)


def _activation_name(value: Any, field_name: str) -> str:
    name = str(value).lower()
    if name not in ACTIVATION_MODULES:
        raise InputError(f"{field_name} must be one of {', '.join(ACTIVATION_MODULES)}, got {value!r}")
    return name


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class FitConfig:
    """How the weights are trained (nominal / L2 training, and the W step (10a) of ADMM).

    Attributes:
        epochs: passes over the data in :func:`fit` (ADMM uses
            ``ADMMConfig.epochs_per_iteration`` instead).
        batch_size: mini-batch size; ``None`` = full batch.
        lr: learning rate.
        optimizer: ``"adam"`` or ``"sgd"`` (ignored when ``make_optimizer`` is given).
        make_optimizer: builds the optimiser from the model's parameters.
        l2: the L2 net's weight decay: ``loss + l2/2 sum_k ||W_k||_F^2`` (weights, not biases).
        loss: ``"cross_entropy"`` (y: class indices) or ``"mse"`` (y: float targets;
            mean over all entries).
        seed: seed of the mini-batch shuffling (``None``: not reproducible).
    """

    epochs: int = 50
    batch_size: int | None = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    make_optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer] | None = None
    l2: float = 0.0
    loss: str = "cross_entropy"
    seed: int | None = 0

    def __post_init__(self) -> None:
        _count(self.epochs, "FitConfig.epochs", 1)
        if self.batch_size is not None:
            _count(self.batch_size, "FitConfig.batch_size", 1)
        if _number(self.lr, "FitConfig.lr") <= 0:
            raise InputError(f"FitConfig.lr must be > 0, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(
                f"FitConfig.optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.make_optimizer is not None and not callable(self.make_optimizer):
            raise InputError(
                "FitConfig.make_optimizer must be callable (parameters -> torch.optim.Optimizer)"
            )
        if _number(self.l2, "FitConfig.l2") < 0:
            raise InputError(f"FitConfig.l2 must be >= 0, got {self.l2}")
        if self.loss not in LOSSES:
            raise InputError(f"FitConfig.loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.seed is not None:
            _count(self.seed, "FitConfig.seed", 0)


@dataclass(frozen=True)
class ADMMConfig:
    """The ADMM scheme (10) of :func:`train_lipschitz`.

    Attributes:
        mode: ``"regularize"`` (problem 9, ``mu L^2`` in the objective) or
            ``"enforce"`` (problem 12, ``L = L_des``; Theorem 8).
        L_des: the enforced bound (required for, and only for, ``"enforce"``).
        mu: the weight of ``L^2`` in (9); must be > 0 for ``"regularize"``.
        rho: the ADMM penalty parameter.
        iterations: ADMM iterations.
        epochs_per_iteration: passes over the data in each W step (10a).
        T_update_every: Remark 3: every this many iterations, re-solve the
            certificate SDP (6) for ``T`` at the current ``W_bar`` (``None``: ``T`` stays fixed).
        solver: SDP solver (default Clarabel).
        initial_T: the fixed multiplier to start with (``N x N`` diagonal, ``>= 0``,
            e.g. a certificate's ``T``; zero entries are raised to 1e-6 times the
            largest, see :func:`pylip.deep_admm.positive_multiplier`); default the
            ``T`` of ``pylip.certify(initial weights)``.
        step_method: how the Lipschitz step (10b) is solved
            (:class:`pylip.deep_admm.DeepLipschitzStep`'s ``method``): ``"auto"``
            (default) the low-rank dual solver (the barrier method its fallback) for
            two or more hidden layers and cvxpy for one; ``"dual"``; ``"structured"``,
            the barrier method, also for one hidden layer, where it solves the same
            problem far faster than cvxpy (``bench/deep_step.py``, enforce: 64-32-10
            0.13 s against 6.0 s, 64-64-10 0.22 s against 184 s); ``"cvxpy"`` for
            every depth.
    """

    mode: str = "enforce"
    L_des: float | None = None
    mu: float = 0.0
    rho: float = 1.0
    iterations: int = 10
    epochs_per_iteration: int = 1
    T_update_every: int | None = None
    solver: str | None = None
    initial_T: np.ndarray | None = None
    step_method: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(
                f"ADMMConfig.mode must be 'regularize' (eq. 9) or 'enforce' (eq. 12), got {self.mode!r}"
            )
        if self.mode == "enforce":
            if self.L_des is None:
                raise InputError(
                    "ADMMConfig.L_des is required with mode='enforce' (problem 12): set the desired "
                    "Lipschitz bound, e.g. a third of pylip.certify(mlp_weights(model)).bound"
                )
            if _number(self.L_des, "ADMMConfig.L_des") <= 0:
                raise InputError(f"ADMMConfig.L_des must be > 0, got {self.L_des}")
        elif self.L_des is not None:
            raise InputError(
                "ADMMConfig.L_des is only used with mode='enforce'; remove it or set mode='enforce'"
            )
        mu = _number(self.mu, "ADMMConfig.mu")
        if mu < 0 or (self.mode == "regularize" and mu == 0):
            raise InputError(
                f"ADMMConfig.mu must be > 0 with mode='regularize' (problem 9 weights L^2 by mu) and >= 0 "
                f"otherwise, got {self.mu}"
            )
        if _number(self.rho, "ADMMConfig.rho") <= 0:
            raise InputError(f"ADMMConfig.rho must be > 0, got {self.rho}")
        _count(self.iterations, "ADMMConfig.iterations", 1)
        _count(self.epochs_per_iteration, "ADMMConfig.epochs_per_iteration", 1)
        if self.T_update_every is not None:
            _count(self.T_update_every, "ADMMConfig.T_update_every", 1)
        if self.solver is not None:
            resolve_solver(self.solver)
        if self.step_method not in STEP_METHODS:
            raise InputError(
                f"ADMMConfig.step_method must be one of {', '.join(STEP_METHODS)}, got {self.step_method!r}"
            )
        if self.initial_T is not None:
            array = np.array(self.initial_T, dtype=np.float64)
            if array.ndim not in (1, 2):
                raise InputError(
                    f"ADMMConfig.initial_T must be an N x N diagonal matrix, got shape {array.shape}"
                )
            object.__setattr__(self, "initial_T", array)


def _number(value: Any, name: str) -> float:
    return as_number(value, name)


def _count(value: Any, name: str, minimum: int) -> int:
    return as_count(value, name, minimum)


# --------------------------------------------------------------------------- data


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    try:
        tensor = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"{name} must be a tensor or array of numbers: {exc}") from None
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise InputError(f"{name} must hold real numbers, got dtype {tensor.dtype}")
    return tensor


def _prepare_data(model: nn.Sequential, X: Any, y: Any, loss: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``X`` as ``N x n_in`` in the model's dtype; ``y`` as class indices or ``N x n_out`` floats."""
    linears = _linears(model)
    dtype = linears[0].weight.dtype
    n_in, n_out = linears[0].in_features, linears[-1].out_features
    Xt = _as_tensor(X, "X")
    if Xt.ndim != 2 or Xt.shape[0] == 0 or Xt.shape[1] != n_in:
        raise InputError(
            f"X must be N x {n_in} (one sample per row, {n_in} features for the model's first layer), "
            f"got shape {tuple(Xt.shape)}"
        )
    if not torch.is_floating_point(Xt):
        Xt = Xt.to(dtype)
    if not torch.isfinite(Xt).all():
        raise InputError(
            f"X contains {int((~torch.isfinite(Xt)).sum())} NaN or inf value(s); clean the data first"
        )
    Xt = Xt.to(dtype)
    yt = _as_tensor(y, "y")
    N = Xt.shape[0]
    if loss == "cross_entropy":
        if torch.is_floating_point(yt):
            raise InputError(
                f"y must hold integer class indices for loss='cross_entropy', got dtype {yt.dtype}; "
                "convert with y.astype(np.int64) / y.long(), or use loss='mse' for float targets"
            )
        if yt.ndim != 1 or yt.shape[0] != N:
            raise InputError(
                f"y must be a vector of {N} class indices (one per row of X), got shape {tuple(yt.shape)}"
            )
        if yt.min() < 0 or yt.max() >= n_out:
            raise InputError(
                f"y has class indices in [{int(yt.min())}, {int(yt.max())}] but the model has "
                f"{n_out} outputs: indices must lie in [0, {n_out - 1}]"
            )
        return Xt, yt.to(torch.int64)
    if yt.ndim == 1 and n_out == 1:
        yt = yt.reshape(-1, 1)
    if yt.ndim != 2 or yt.shape != (N, n_out):
        raise InputError(f"y must be {N} x {n_out} float targets for loss='mse', got shape {tuple(yt.shape)}")
    yt = yt.to(dtype)
    if not torch.isfinite(yt).all():
        raise InputError(
            f"y contains {int((~torch.isfinite(yt)).sum())} NaN or inf value(s); clean the targets first"
        )
    return Xt, yt


def _loss_function(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return F.cross_entropy if name == "cross_entropy" else F.mse_loss


def _optimizer(model: nn.Module, config: FitConfig) -> torch.optim.Optimizer:
    if config.make_optimizer is not None:
        optimizer = config.make_optimizer(model.parameters())
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise InputError(
                "FitConfig.make_optimizer must return a torch.optim.Optimizer, got "
                f"{type(optimizer).__name__}"
            )
        return optimizer
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    return torch.optim.SGD(model.parameters(), lr=config.lr)


class _Epochs:
    """Mini-batch passes over ``(X, y)`` minimising ``loss + l2 term + penalty()``."""

    def __init__(self, model: nn.Sequential, X: torch.Tensor, y: torch.Tensor, config: FitConfig) -> None:
        self.model, self.X, self.y, self.config = model, X, y, config
        self.linears = _linears(model)
        self.loss_fn = _loss_function(config.loss)
        self.optimizer = _optimizer(model, config)
        self.generator = torch.Generator()
        if config.seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(config.seed))

    def run(self, penalty: Callable[[], torch.Tensor] | None, where: str) -> float:
        """One epoch; returns the sample-weighted mean of ``loss + l2 term`` (without the ADMM penalty)."""
        N = self.X.shape[0]
        size = N if self.config.batch_size is None else min(self.config.batch_size, N)
        order = torch.randperm(N, generator=self.generator) if size < N else torch.arange(N)
        total = 0.0
        self.model.train()
        for start in range(0, N, size):
            index = order[start : start + size]
            self.optimizer.zero_grad(set_to_none=True)
            objective = self.loss_fn(self.model(self.X[index]), self.y[index])
            if self.config.l2 > 0:
                objective = objective + 0.5 * self.config.l2 * sum(
                    (lin.weight.pow(2).sum() for lin in self.linears), start=torch.zeros(())
                )
            value = float(objective.detach())
            if not math.isfinite(value):
                raise TrainingError(
                    f"{where}: the loss became {value} (diverged); lower the learning rate FitConfig.lr"
                )
            if penalty is not None:
                objective = objective + penalty()
            objective.backward()
            self.optimizer.step()
            total += value * index.numel()
        return total / N


@with_training_threads
def fit(
    model: nn.Sequential, X: Any, y: Any, config: FitConfig = FitConfig(), *, progress: bool = True
) -> list[float]:  # noqa: B008
    """Train ``model`` in place on ``loss + l2/2 sum_k ||W_k||_F^2`` (nominal net, or L2 net if ``l2 > 0``).

    Returns the loss (data loss plus the L2 term, averaged over the epoch's
    mini-batches as they were trained) of every epoch.
    """
    if not isinstance(config, FitConfig):
        raise InputError(f"config must be a pylip.mlp_training.FitConfig, got {type(config).__name__}")
    Xt, yt = _prepare_data(model, X, y, config.loss)
    epochs = _Epochs(model, Xt, yt, config)
    losses: list[float] = []
    with tqdm(range(config.epochs), disable=not progress, unit="epoch", leave=False) as bar:
        for epoch in bar:
            losses.append(epochs.run(None, f"epoch {epoch + 1}/{config.epochs}"))
            bar.set_postfix(loss=f"{losses[-1]:.4g}")
            logger.debug("epoch %d: loss %.6g", epoch + 1, losses[-1])
    model.eval()
    return losses


# --------------------------------------------------------------------------- ADMM


@dataclass
class LipschitzTrainingResult:
    """What :func:`train_lipschitz` returns.

    Attributes:
        model: a copy of the trained model with weights ``W_bar`` (in the
            model's dtype) and the trained biases; ``bound`` is certified for
            exactly these weights with ``T`` (``P(bound^2, T) <= 0`` in float64).
        bound: the Lipschitz bound of ``model`` (enforce mode: ``<= L_des``).
        T: the multiplier in use at the end (``N x N`` diagonal).
        history: one dict per ADMM iteration: ``iteration``, ``loss`` (W step,
            last epoch), ``loss_bar`` (full-data loss of the ``W_bar`` net),
            ``squared_bound`` and ``bound`` (the step's ``L^2`` and ``L``;
            ``L_des`` in enforce mode), ``bound_T`` (smallest bound of
            ``W_bar`` with the ``T`` in use), ``step_time`` (s), ``T_updated``
            (``T`` was re-solved at the previous ``W_bar`` before this
            iteration's step), ``T_rejected`` (a re-solved ``T`` failed the
            guard and the old one was kept), ``T_update_time`` (s),
            ``max_eigenvalue`` (of ``P(L^2, T)`` at ``W_bar``),
            ``residual`` (``||W - W_bar||_F``), ``status``, ``repaired``.
        W_model: the W network of the last W step (the model passed in, trained in place).
    """

    model: nn.Sequential
    bound: float
    T: np.ndarray
    history: list[dict[str, Any]]
    W_model: nn.Sequential


@with_training_threads
def train_lipschitz(
    model: nn.Sequential,
    X: Any,
    y: Any,
    admm: ADMMConfig,
    fit_config: FitConfig = FitConfig(),  # noqa: B008
    *,
    progress: bool = True,
    callback: Callable[[dict[str, Any]], Any] | None = None,
) -> LipschitzTrainingResult:
    """Train ``model`` by the ADMM scheme (10) for problem (9) or (12), with ``l`` hidden layers.

    Starts at ``W_bar = W`` (the model's weights) and ``Y = 0``. Each iteration
    runs the W step (10a), ``admm.epochs_per_iteration`` passes of the
    configured optimiser (one optimiser for the whole run) on ``loss +
    sum_k rho/2 ||W_k - W_bar_k||^2 + tr(Y_k'(W_k - W_bar_k))``, then the
    Lipschitz step (10b) and the dual update (10c). With
    ``admm.T_update_every = k`` the multiplier is re-solved (Remark 3) for
    the current ``W_bar`` before iterations ``k + 1, 2k + 1, ...``; in
    enforce mode a new ``T`` is taken only if ``W_bar`` satisfies the LMI at
    ``L_des`` with it in float64 (in exact arithmetic it always does, since
    the certificate is optimal over ``T``), so Theorem 8 holds throughout.

    ``callback(record)``, if given, is called after every iteration with the
    history record plus ``W_bar``, ``W``, ``Y`` (lists of float64 arrays) and
    ``T``; returning ``True`` stops training after that iteration.
    ``model`` itself is trained in place and ends as the W network.
    """
    if not isinstance(admm, ADMMConfig):
        raise InputError(f"admm must be a pylip.mlp_training.ADMMConfig, got {type(admm).__name__}")
    if not isinstance(fit_config, FitConfig):
        raise InputError(
            f"fit_config must be a pylip.mlp_training.FitConfig, got {type(fit_config).__name__}"
        )
    activation = mlp_activation(model)
    beta = get_activation(activation).beta
    Xt, yt = _prepare_data(model, X, y, fit_config.loss)
    W = mlp_weights(model)
    sizes = (W[0].shape[1], *(w.shape[0] for w in W))
    n_hidden = int(sum(sizes[1:-1]))
    if admm.initial_T is None:
        initial = certificate_for_T(W, activation, admm.solver, "initial weights")
        t = multiplier_vector(positive_multiplier(initial.T), n_hidden)
    else:
        given = multiplier_vector(admm.initial_T, n_hidden, name="ADMMConfig.initial_T", allow_zero=True)
        t = np.diag(positive_multiplier(given))  # zero entries of a certificate's T floored
    # formulation="layers": the multi-layer step for every depth, one hidden layer included
    # (its input reduction and solver path are what this trainer has always run)
    step = lipschitz_step(
        sizes, np.diag(t), mode=admm.mode, beta=beta, solver=admm.solver, formulation="layers",
        method=admm.step_method,
    )
    with tqdm(range(1, admm.iterations + 1), disable=not progress, unit="ADMM it") as bar:
        training = _LipschitzTraining(model, (Xt, yt), (admm, fit_config), step, activation, bar, callback)
        run_admm(training, bar, T_update_every=admm.T_update_every)
    L_des = training.L_des
    bar_model, bound = _bar_network(model, training.W_bar, np.diag(step.T), beta, L_des)
    model.eval()
    return LipschitzTrainingResult(
        model=bar_model, bound=bound, T=step.T, history=training.history, W_model=model
    )


class _LipschitzTraining:
    """:func:`train_lipschitz`'s side of the ADMM scheme (:func:`pylip.admm.loop.run_admm`).

    Holds ``W`` (the model's weights after the last W step), ``W_bar`` and
    ``Y`` as float64 lists, starting at ``W_bar = W``, ``Y = 0``, and one
    history record per iteration.
    """

    def __init__(
        self,
        model: nn.Sequential,
        data: tuple[torch.Tensor, torch.Tensor],
        configs: tuple[ADMMConfig, FitConfig],
        step: SupportsLipschitzStep,
        activation: str,
        bar: Any,
        callback: Callable[[dict[str, Any]], Any] | None,
    ) -> None:
        self.model, (self.X, self.y), (self.admm, self.fit_config) = model, data, configs
        self.step, self.activation, self.bar, self.callback = step, activation, bar, callback
        self.linears = _linears(model)
        self.dtype = self.linears[0].weight.dtype
        self.epochs = _Epochs(model, self.X, self.y, self.fit_config)
        self.L_des = None if self.admm.L_des is None else float(self.admm.L_des)
        self.W = mlp_weights(model)
        self.W_bar = [w.copy() for w in self.W]
        self.Y = [np.zeros_like(w) for w in self.W]
        self.squared = self.L_des**2 if self.L_des is not None else float("nan")
        self.history: list[dict[str, Any]] = []
        self.loss = float("nan")
        self.growth = 1.0
        self.T_update: tuple[bool, bool, float] = (False, False, 0.0)

    def where(self, iteration: int) -> str:
        return f"ADMM iteration {iteration}/{self.admm.iterations}"

    def update_T(self, where: str) -> None:  # noqa: N802
        start = time.perf_counter()
        updated, rejected = update_T(
            self.step,
            self.W_bar,
            self.activation,
            solver=self.admm.solver,
            L_des=self.L_des,
            squared=self.squared,
            where=where,
        )
        self.T_update = (updated, rejected, time.perf_counter() - start)

    def w_step(self, where: str) -> None:
        """(10a): passes on ``loss + sum_k rho/2 ||W_k - W_bar_k||^2 + tr(Y_k'(W_k - W_bar_k))``."""
        rho = float(self.admm.rho)
        penalty = _admm_penalty(self.linears, self.W_bar, self.Y, rho, self.dtype)
        before = mlp_weights(self.model)
        for epoch in range(self.admm.epochs_per_iteration):
            self.loss = self.epochs.run(penalty, f"{where}, W step (10a) epoch {epoch + 1}")
        self.W = mlp_weights(self.model)
        self.growth = _w_step_growth(before, self.W)
        # a blow-up is reported here: the Lipschitz step, solved in rescaled coordinates, would
        # project even such weights, and the divergence would surface iterations later
        if not math.isfinite(self.growth) or self.growth > W_STEP_BLOW_UP:
            raise TrainingError(_diverged_w_step(where, self.growth, self.fit_config, rho))

    def lipschitz_step(self, where: str) -> LayerStepResult:
        """(10b, 10c); a W step that blew the weights up was already reported by :meth:`w_step`."""
        rho = float(self.admm.rho)
        try:
            result = self.step.solve_layers(self.W, self.Y, rho=rho, mu=self.admm.mu, L_des=self.L_des)
        except SolverError as exc:
            raise SolverError(f"{where}, Lipschitz step (10b): {exc}", status=exc.status) from exc
        except CertificateError as exc:
            raise TrainingError(f"{where}, Lipschitz step (10b): {exc}") from exc
        self.W_bar, self.Y, self.squared = result.W_bar, result.Y, result.squared_bound
        return result

    def finish(self, iteration: int, where: str, result: LayerStepResult) -> bool:
        T_updated, T_rejected, T_time = self.T_update
        self.T_update = (False, False, 0.0)
        W, W_bar, loss = self.W, self.W_bar, self.loss
        record = {
            "iteration": iteration,
            "loss": loss,
            "loss_bar": _loss_of(self.model, W_bar, self.X, self.y, self.fit_config.loss),
            "squared_bound": self.squared,
            "bound": result.bound,
            "bound_T": fixed_T_bound(W_bar, np.diag(self.step.T), self.step.beta),
            "step_time": result.solve_time,
            "T_updated": T_updated,
            "T_rejected": T_rejected,
            "T_update_time": T_time,
            "max_eigenvalue": result.max_eigenvalue,
            "residual": float(np.sqrt(sum(np.sum((w - wb) ** 2) for w, wb in zip(W, W_bar)))),
            "status": result.status,
            "repaired": result.repaired,
        }
        self.history.append(record)
        logger.info(
            "%s: loss %.5g, loss(W_bar) %.5g, bound %.5g (with T: %.5g), ||W - W_bar|| %.3g, "
            "step %.2f s%s",
            where,
            loss,
            record["loss_bar"],
            record["bound"],
            record["bound_T"],
            record["residual"],
            record["step_time"],
            ", T updated" if T_updated else "",
        )
        self.bar.set_postfix(loss=f"{loss:.4g}", bound=f"{record['bound_T']:.4g}")
        if self.callback is None:
            return False
        copies = {"W_bar": [w.copy() for w in W_bar], "Y": [v.copy() for v in self.Y]}
        extra = {"W_bar": copies["W_bar"], "W": W, "Y": copies["Y"], "T": self.step.T}
        return self.callback({**record, **extra}) is True


def _admm_penalty(
    linears: list[nn.Linear], W_bar: list[np.ndarray], Y: list[np.ndarray], rho: float, dtype: torch.dtype
) -> Callable[[], torch.Tensor]:
    """The augmented-Lagrangian terms of (10a) at fixed ``W_bar``, ``Y`` (tensors built once per W step)."""
    targets = [torch.as_tensor(w, dtype=dtype) for w in W_bar]
    duals = [torch.as_tensor(v, dtype=dtype) for v in Y]

    def penalty() -> torch.Tensor:
        total = torch.zeros((), dtype=dtype)
        for lin, target, dual in zip(linears, targets, duals):
            diff = lin.weight - target
            total = total + 0.5 * rho * diff.pow(2).sum() + (dual * diff).sum()
        return total

    return penalty


def _bar_network(
    model: nn.Sequential, W_bar: list[np.ndarray], t: np.ndarray, beta: float, L_des: float | None
) -> tuple[nn.Sequential, float]:
    """A copy of ``model`` with weights ``W_bar`` rounded to its dtype, and their certified bound.

    Rounding (float64 -> float32) moves weights by ~6e-8 relative, which can
    break an LMI solved with margin 1e-9; in enforce mode the rounded weights
    are then shrunk (:func:`pylip.deep_admm.feasible_shrink`) until they satisfy
    it at ``L_des^2``.
    """
    bar_model = copy.deepcopy(model)
    linears = _linears(bar_model)
    dtype = linears[0].weight.dtype

    def rounded(weights: list[np.ndarray]) -> list[np.ndarray]:
        return [torch.as_tensor(w, dtype=dtype).numpy().astype(np.float64) for w in weights]

    W_r = rounded(W_bar)
    if L_des is not None:
        squared = L_des**2
        for extra in (0.0, 1e-9, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3):
            if certificate_max_eigenvalue(W_r, t, squared, beta) <= 0.0:
                break
            s = feasible_shrink(W_r, t, squared, beta) * (1.0 - extra) * (1.0 - 4 * np.finfo(np.float32).eps)
            W_r = rounded([s * w for w in W_bar])
        else:
            raise TrainingError(
                f"the W_bar network rounded to {dtype} does not keep the bound L_des = {L_des}"
            )
    with torch.no_grad():
        for lin, w in zip(linears, W_r):
            lin.weight.copy_(torch.as_tensor(w, dtype=dtype))
    bar_model.eval()
    bound = fixed_T_bound(W_r, t, beta, cap=L_des)
    if not math.isfinite(bound):
        raise TrainingError(
            "no finite Lipschitz bound could be certified for the W_bar network with the final T"
        )
    return bar_model, bound


W_STEP_BLOW_UP = 1e3  # a W step that grows the weights' norm this much has diverged


def _w_step_growth(before: list[np.ndarray], after: list[np.ndarray]) -> float:
    """How much the W step (10a) grew the largest layer norm (inf if it left NaN or inf)."""
    if not all(np.all(np.isfinite(w)) for w in after):
        return math.inf
    old = max(float(np.linalg.norm(w)) for w in before)
    new = max(float(np.linalg.norm(w)) for w in after)
    return new / old if old > 0 else (1.0 if new == 0 else math.inf)


def _diverged_w_step(where: str, growth: float, fit_config: FitConfig, rho: float) -> str:
    what = (
        "left NaN or inf in the weights" if not math.isfinite(growth)
        else f"grew the weights' largest norm {growth:.3g}-fold, so the Lipschitz step (10b) has no solution"
    )
    return (
        f"{where}: the W step (10a) diverged: it {what}; lower the learning rate FitConfig.lr "
        f"(now {fit_config.lr:g}) or the penalty ADMMConfig.rho (now {rho:g})"
    )


def _loss_of(model: nn.Sequential, W: list[np.ndarray], X: torch.Tensor, y: torch.Tensor, loss: str) -> float:
    """Full-data loss of ``model`` with its weights replaced by ``W`` (biases kept)."""
    linears = _linears(model)
    saved = [lin.weight.detach().clone() for lin in linears]
    try:
        with torch.no_grad():
            for lin, w in zip(linears, W):
                lin.weight.copy_(torch.as_tensor(w, dtype=lin.weight.dtype))
            return float(_loss_function(loss)(model(X), y))
    finally:
        with torch.no_grad():
            for lin, old in zip(linears, saved):
                lin.weight.copy_(old)


__all__ = [
    "ADMMConfig",
    "FitConfig",
    "LipschitzTrainingResult",
    "fit",
    "mlp",
    "mlp_activation",
    "mlp_weights",
    "train_lipschitz",
]
