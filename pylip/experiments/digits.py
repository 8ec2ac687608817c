"""A real task with certified robust accuracy: handwritten digits (``pylip digits-example``).

The paper's examples (Section IV) are one-dimensional; this one takes its
method to scikit-learn's digits data (1,797 8 x 8 images, 10 classes; it ships
inside scikit-learn, nothing is downloaded) and reports what a Lipschitz
bound is for: certified robustness.

Protocol (:func:`run`):

1. inputs ``X / 16`` in ``[0, 1]^64``; a stratified train/test split with a
   fixed seed;
2. per architecture (tanh nets ``64-h-10``, ``64-h'-h'-10``, ...: one entry
   of ``depths`` and ``hidden`` each): a nominal net and an L2 net (weight decay
   ``l2``), trained with Adam on the cross-entropy (:func:`pylip.mlp_training.fit`);
3. Lipschitz nets: starting from the L2 net's weights and its certificate's
   ``T`` (as the paper's examples start ADMM from the L2 net), ADMM with an
   enforced bound ``L_des`` (problem 12, Theorem 8;
   :func:`pylip.mlp_training.train_lipschitz`, the structured Lipschitz step at
   every depth); the evaluated net is the
   ``W_bar`` net, whose bound is certified <= ``L_des``. Optionally one run
   re-solves ``T`` every few iterations (Remark 3, ``T_update_every``);
4. per net: clean test accuracy; the LipSDP-Neuron bound ``L``
   (:func:`pylip.certify`, checked, computed here on the net's weights, not
   taken from training) and the trivial bound (product of spectral norms);
   at each l2 radius ``eps``, the certified robust accuracy (correct, and
   logit margin ``> sqrt(2) L eps``; :mod:`pylip.robustness`) and the accuracy
   under an l2 PGD attack. Every certified point must survive the attack;
   :func:`run` counts the exceptions (``certified_not_attacked``, always 0)
   and raises :class:`pylip.errors.CertificateError` if there is one.

:func:`write_outputs` saves ``summary.json`` (a JSON list, one object per net),
``digits_run.json`` (settings, timings, the table), ``digits_table.txt`` and
the trade-off plot ``digits_tradeoff.png`` (accuracy against ``eps``:
certified solid, attacked dashed).

Each object of ``summary.json`` has ``name``, ``kind`` (``"nominal"``,
``"L2"``, ``"lipschitz"``), ``hidden_layers``, ``layer_sizes``, ``L_des``
(null for the nominal and L2 nets), ``T_update_every``, ``start``,
``clean_accuracy``, ``bound``, ``trivial_bound``, ``certified_accuracy`` and
``attacked_accuracy`` (each a mapping from the radius as a string, ``"0.1"``,
to the accuracy in ``[0, 1]``), ``certified_not_attacked`` (same keys, counts,
all 0), ``training_bound`` (the trainer's own bound, for comparison),
``T_updates``, ``admm_iterations`` and the times ``train_time``,
``certify_time``, ``attack_time`` in seconds. Added by issue 16 (older
readers ignore them): ``pairwise_certified_accuracy`` and
``local_certified_accuracy`` (per radius, as ``certified_accuracy``; class-pair
bounds, :mod:`pylip.margins`, and local bounds on the first ``local_points``
test points, :mod:`pylip.local`), ``pairwise_certified_not_attacked`` and
``local_certified_not_attacked`` (counts, all 0), ``pair_bounds`` (the 10 x 10
``L_ij``), ``margin_method`` and ``local_method`` (``"sdp"`` or ``"fixed_T"``),
``local_points``, ``margins_time`` and ``local_time``; and later
``local_solves`` (how many local SDPs were solved).

Presets: :meth:`DigitsSettings.full` (``64-32-10``, ``64-64-64-10`` and
``64-128-128-10``, nine Lipschitz nets; README "Run times"),
:meth:`DigitsSettings.quick` (``h = 16``, three Lipschitz nets; about a
minute) and :meth:`DigitsSettings.miniature` (tests; seconds).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import CertificateError, InputError
from ..lipsdp.certificate import Certificate, certify
from . import robustness

logger = logging.getLogger(__name__)

PRESETS = ("full", "quick", "miniature")
MARGIN_METHODS = ("auto", "sdp", "fixed_T")
LOCAL_METHODS = ("auto", "sdp", "fixed_T")
LOCAL_SDP_NEURONS = 128  # local_method "auto": local SDPs for deep nets up to this many hidden neurons


@dataclass(frozen=True)
class LipschitzRun:
    """One Lipschitz-enforced net: its depth, ``L_des``, (optionally) the T-update period and its width.

    ``width`` picks the L2 net to start from among those of depth ``hidden_layers``
    (needed only where the settings train that depth at more than one width).
    """

    hidden_layers: int
    L_des: float
    T_update_every: int | None = None
    width: int | None = None


@dataclass(frozen=True)
class DigitsSettings:
    """Everything that determines a run (the presets are :meth:`full`, :meth:`quick`, :meth:`miniature`).

    Attributes:
        preset: name of the preset these settings started from.
        seed: seeds the split, the nets' initialisation, the SGD streams and the attack.
        test_fraction: share of the data held out (stratified).
        n_train, n_test: use only the first ``n`` points of each split (None: all).
        depths: hidden-layer counts of the nominal and L2 nets (one pair per entry; a depth
            may repeat with different widths).
        hidden: neurons ``h`` per hidden layer, one width per entry of ``depths``. The full
            preset trains ``64-32-10``, ``64-64-64-10`` and ``64-128-128-10``: the ADMM
            Lipschitz step (10b), an SDP in all weights, is solved by the structured solver at
            every depth (``step_method="structured"`` of :class:`pylip.mlp_training.ADMMConfig`
            unless ``solver`` is named): 0.13 s per step at ``64-32-10`` (cvxpy 6.0 s), about
            1 s at ``64-64-64-10`` and 8-9 s at ``64-128-128-10`` (``bench/deep_step.py``).
        activation: the nets' activation (``"tanh"``).
        epochs, lr, batch_size: Adam training of the nominal and L2 nets.
        l2: the L2 net's penalty ``l2/2 sum ||W_k||_F^2``.
        lipschitz: the Lipschitz-enforced nets (each starts from the L2 net of its depth and width).
        admm_iterations, epochs_per_iteration, rho, admm_lr: ADMM (10a-c) in enforce mode.
        eps: the l2 radii (pixels in ``[0, 1]``).
        pgd_steps, pgd_restarts, pgd_loss: the attack.
        solver: SDP solver for certificates and ADMM (None: pylip's default).
        local_points: local bounds (:mod:`pylip.local`, one SDP per point and radius) are
            computed on the first ``local_points`` test points only (None: all); the others
            count as certified locally when the global bound certifies them.
        margin_method, local_method: ``method`` of :func:`pylip.margins.certify_margins`
            (``"auto"``, ``"sdp"``, ``"fixed_T"``) and of the local bounds (``"auto"``: ``"sdp"``
            for one hidden layer, and deeper where the engine solves them (no ``solver`` named)
            on nets of at most ``LOCAL_SDP_NEURONS`` hidden neurons, else ``"fixed_T"``:
            :func:`local_method`; ``"sdp"``; ``"fixed_T"``).
    """

    preset: str = "full"
    seed: int = 0
    test_fraction: float = 0.3
    n_train: int | None = None
    n_test: int | None = None
    depths: tuple[int, ...] = (1, 2, 2)
    hidden: tuple[int, ...] = (32, 64, 128)
    activation: str = "tanh"
    epochs: int = 60
    lr: float = 1e-2
    batch_size: int = 64
    l2: float = 1e-3
    lipschitz: tuple[LipschitzRun, ...] = (
        LipschitzRun(1, 8.0),
        LipschitzRun(1, 4.0),
        LipschitzRun(1, 2.0),
        LipschitzRun(2, 8.0, width=64),
        LipschitzRun(2, 4.0, width=64),
        LipschitzRun(2, 2.0, width=64),
        LipschitzRun(2, 4.0, T_update_every=2, width=64),
        LipschitzRun(2, 4.0, width=128),
        LipschitzRun(2, 2.0, width=128),
    )
    admm_iterations: int = 8
    epochs_per_iteration: int = 5
    rho: float = 0.2
    admm_lr: float = 3e-3
    eps: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1.0)
    pgd_steps: int = 50
    pgd_restarts: int = 3
    pgd_loss: str = "margin"
    solver: str | None = None
    local_points: int | None = 60
    margin_method: str = "auto"
    local_method: str = "auto"

    @classmethod
    def full(cls, **changes: Any) -> DigitsSettings:
        """The full run: ``64-32-10``, ``64-64-64-10`` and ``64-128-128-10`` (README: Run times)."""
        return dataclasses.replace(cls(), **changes)

    @classmethod
    def quick(cls, **changes: Any) -> DigitsSettings:
        """A reduced run of a minute or two: ``h = 16``, fewer nets, iterations, radii and attack steps."""
        base = cls(
            preset="quick",
            depths=(1, 2),
            hidden=(16, 16),
            epochs=40,
            lipschitz=(LipschitzRun(1, 4.0), LipschitzRun(1, 2.0), LipschitzRun(2, 4.0)),
            admm_iterations=6,
            eps=(0.1, 0.25, 0.5, 1.0),
            pgd_steps=30,
            pgd_restarts=2,
        )
        return dataclasses.replace(base, **changes)

    @classmethod
    def miniature(cls, **changes: Any) -> DigitsSettings:
        """A tiny run for tests (seconds): ``h = 8``, 400 training and 150 test points."""
        base = cls(
            preset="miniature",
            n_train=400,
            n_test=150,
            depths=(1, 2),
            hidden=(8, 8),
            epochs=15,
            lipschitz=(LipschitzRun(1, 3.0), LipschitzRun(2, 3.0)),
            admm_iterations=2,
            epochs_per_iteration=1,
            eps=(0.1, 0.5),
            pgd_steps=10,
            pgd_restarts=1,
            local_points=25,
        )
        return dataclasses.replace(base, **changes)

    @classmethod
    def preset_named(cls, name: str, **changes: Any) -> DigitsSettings:
        """The preset ``name`` (``"full"``, ``"quick"`` or ``"miniature"``) with ``changes``."""
        if name not in PRESETS:
            raise InputError(f"preset must be one of {', '.join(PRESETS)}, got {name!r}")
        factory: Callable[..., DigitsSettings] = getattr(cls, name)
        return factory(**changes)

    def validate(self) -> DigitsSettings:
        """Raise :class:`InputError` naming the first bad field."""
        if not 0.0 < self.test_fraction < 1.0:
            raise InputError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")
        for name in ("n_train", "n_test"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 20):
                raise InputError(f"{name} must be an integer >= 20 or None, got {value!r}")
        if len(self.hidden) != len(self.depths) or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise InputError(
                f"hidden must give one width >= 1 per depth (depths = {self.depths}), got {self.hidden!r}"
            )
        for name in ("epochs", "batch_size", "admm_iterations", "epochs_per_iteration",
                     "pgd_steps", "pgd_restarts"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be an integer >= 1, got {value!r}")
        if not self.depths or any(not isinstance(d, int) or d < 1 for d in self.depths):
            raise InputError(f"depths must be hidden-layer counts >= 1, got {self.depths!r}")
        nets = list(zip(self.depths, self.hidden))
        if len(set(nets)) != len(nets):
            raise InputError(f"depths and hidden repeat a net: {nets}")
        for run in self.lipschitz:
            self.start_net(run)
            if not (math.isfinite(run.L_des) and run.L_des > 0):
                raise InputError(f"L_des must be a finite number > 0, got {run.L_des!r}")
            if run.T_update_every is not None and run.T_update_every < 1:
                raise InputError(f"T_update_every must be >= 1 or None, got {run.T_update_every!r}")
        for name in ("lr", "admm_lr", "rho"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{name} must be a finite number > 0, got {value!r}")
        if not (math.isfinite(self.l2) and self.l2 >= 0):
            raise InputError(f"l2 must be a finite number >= 0, got {self.l2!r}")
        points = self.local_points
        if points is not None and (not isinstance(points, int) or isinstance(points, bool) or points < 0):
            raise InputError(f"local_points must be an integer >= 0 or None, got {self.local_points!r}")
        robustness.check_radii(self.eps)
        if self.pgd_loss not in robustness.LOSSES:
            raise InputError(f"pgd_loss must be one of {', '.join(robustness.LOSSES)}, got {self.pgd_loss!r}")
        for name, methods in (("margin_method", MARGIN_METHODS), ("local_method", LOCAL_METHODS)):
            if getattr(self, name) not in methods:
                raise InputError(f"{name} must be one of {', '.join(methods)}, got {getattr(self, name)!r}")
        return self

    def start_net(self, run: LipschitzRun) -> tuple[int, int]:
        """``(depth, width)`` of the L2 net ``run`` starts from; :class:`InputError` if none or ambiguous."""
        widths = [h for d, h in zip(self.depths, self.hidden) if d == run.hidden_layers]
        if run.width is None and len(widths) == 1:
            return run.hidden_layers, widths[0]
        if run.width is not None and run.width in widths:
            return run.hidden_layers, run.width
        if run.width is None and widths:
            raise InputError(
                f"the Lipschitz net with L_des = {run.L_des} has {run.hidden_layers} hidden layers, "
                f"trained at widths {widths}: give its width (LipschitzRun(..., width=...))"
            )
        width = "" if run.width is None else f" of width {run.width}"
        raise InputError(
            f"the Lipschitz net with L_des = {run.L_des} has {run.hidden_layers} hidden layers{width}, but "
            f"depths = {self.depths}, hidden = {self.hidden} train no L2 net of that shape to start it from"
        )

    def net_name(self, kind: str, depth: int, width: int, run: LipschitzRun | None = None) -> str:
        """``nominal-2h``, ``lip-1h-L4-T2``; with the width (``L2-2h128``) where the depth repeats."""
        name = f"{kind}-{depth}h"
        if list(self.depths).count(depth) > 1:
            name += str(width)
        if run is not None:
            name += f"-L{run.L_des:g}"
            if run.T_update_every is not None:
                name += f"-T{run.T_update_every}"
        return name

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        values = dataclasses.asdict(self)
        values["lipschitz"] = [dataclasses.asdict(run) for run in self.lipschitz]
        return values


@dataclass(frozen=True)
class DigitsData:
    """The split: float32 inputs in ``[0, 1]^64`` and integer labels."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor


def load_data(settings: DigitsSettings) -> DigitsData:
    """scikit-learn's digits, ``X / 16``, split stratified with ``random_state = seed``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = np.asarray(digits.data, dtype=np.float64) / 16.0
    y = np.asarray(digits.target, dtype=np.int64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=settings.test_fraction, stratify=y, random_state=settings.seed
    )
    X_train, y_train = X_train[: settings.n_train], y_train[: settings.n_train]
    X_test, y_test = X_test[: settings.n_test], y_test[: settings.n_test]
    return DigitsData(
        X_train=torch.tensor(X_train, dtype=torch.float32),
        y_train=torch.tensor(y_train),
        X_test=torch.tensor(X_test, dtype=torch.float32),
        y_test=torch.tensor(y_test),
    )


@dataclass
class NetReport:
    """One trained net and its evaluation (one row of the table, one object of summary.json)."""

    name: str
    kind: str  # "nominal", "L2" or "lipschitz"
    hidden_layers: int
    layer_sizes: list[int]
    L_des: float | None
    T_update_every: int | None
    start: str | None  # the net whose weights training started from
    clean_accuracy: float
    bound: float
    trivial_bound: float
    certified_accuracy: dict[float, float]
    attacked_accuracy: dict[float, float]
    certified_not_attacked: dict[float, int]
    train_time: float
    certify_time: float
    attack_time: float
    training_bound: float | None = None  # what the trainer reported (for comparison)
    pairwise_certified_accuracy: dict[float, float] = field(default_factory=dict)
    local_certified_accuracy: dict[float, float] = field(default_factory=dict)
    pairwise_not_attacked: dict[float, int] = field(default_factory=dict)
    local_not_attacked: dict[float, int] = field(default_factory=dict)
    pair_bounds: list[list[float]] | None = None
    margin_method: str | None = None
    local_method: str | None = None
    local_points: int = 0
    margins_time: float = 0.0
    local_time: float = 0.0
    local_solves: int = 0
    T_updates: int | None = None
    admm_iterations: int | None = None
    model: nn.Sequential | None = field(default=None, repr=False)
    certificate: Certificate | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of summary.json (radii as strings, e.g. ``"0.1"``)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "hidden_layers": self.hidden_layers,
            "layer_sizes": self.layer_sizes,
            "L_des": self.L_des,
            "T_update_every": self.T_update_every,
            "start": self.start,
            "clean_accuracy": self.clean_accuracy,
            "bound": self.bound,
            "trivial_bound": self.trivial_bound,
            "certified_accuracy": {eps_key(e): v for e, v in self.certified_accuracy.items()},
            "attacked_accuracy": {eps_key(e): v for e, v in self.attacked_accuracy.items()},
            "certified_not_attacked": {eps_key(e): v for e, v in self.certified_not_attacked.items()},
            "training_bound": self.training_bound,
            "T_updates": self.T_updates,
            "admm_iterations": self.admm_iterations,
            "train_time": self.train_time,
            "certify_time": self.certify_time,
            "attack_time": self.attack_time,
            "pairwise_certified_accuracy": {
                eps_key(e): v for e, v in self.pairwise_certified_accuracy.items()
            },
            "local_certified_accuracy": {eps_key(e): v for e, v in self.local_certified_accuracy.items()},
            "pairwise_certified_not_attacked": {eps_key(e): v for e, v in self.pairwise_not_attacked.items()},
            "local_certified_not_attacked": {eps_key(e): v for e, v in self.local_not_attacked.items()},
            "pair_bounds": self.pair_bounds,
            "margin_method": self.margin_method,
            "local_method": self.local_method,
            "local_points": self.local_points,
            "margins_time": self.margins_time,
            "local_time": self.local_time,
            "local_solves": self.local_solves,
        }


@dataclass
class DigitsResult:
    """A run: its settings, the nets' reports and timings."""

    settings: DigitsSettings
    nets: list[NetReport]
    n_train: int
    n_test: int
    timings: dict[str, float]

    def summary(self) -> list[dict[str, Any]]:
        """The content of summary.json: one object per net."""
        return [net.to_dict() for net in self.nets]


def eps_key(eps: float) -> str:
    """A radius as summary.json's key: ``0.1 -> "0.1"``, ``1.0 -> "1.0"`` (``repr`` of the float)."""
    return repr(float(eps))


def _layer_sizes(n_in: int, hidden: int, depth: int, n_out: int) -> list[int]:
    return [n_in, *([hidden] * depth), n_out]


@dataclass
class Evaluation:
    """What :func:`evaluate` measures on the test set, with the per-point masks behind it."""

    certificate: Certificate
    clean: float
    logits: torch.Tensor
    certified: dict[float, float]
    attacked: dict[float, float]
    violations: dict[float, int]
    robust: dict[float, torch.Tensor]
    certify_time: float
    attack_time: float


def _evaluate(
    model: nn.Module,
    weights: Sequence[np.ndarray],
    activation: str,
    data: DigitsData,
    settings: DigitsSettings,
) -> Evaluation:
    start = time.perf_counter()
    cert = certify(list(weights), form="neuron", activation=activation, solver=settings.solver)
    certify_time = time.perf_counter() - start
    start = time.perf_counter()
    model64 = copy.deepcopy(model).double().eval()
    X = data.X_test.double()
    with torch.no_grad():
        logits = model64(X)
    margins = robustness.logit_margins(logits, data.y_test)
    clean = float((margins > 0).double().mean())
    certified: dict[float, float] = {}
    attacked: dict[float, float] = {}
    violations: dict[float, int] = {}
    robust: dict[float, torch.Tensor] = {}
    for eps in settings.eps:
        mask = robustness.certified_mask(logits, data.y_test, cert.bound, eps)
        attack = robustness.pgd_attack(
            model64, X, data.y_test, eps, steps=settings.pgd_steps, restarts=settings.pgd_restarts,
            loss=settings.pgd_loss, seed=settings.seed,
        )
        certified[eps] = float(mask.double().mean())
        attacked[eps] = attack.accuracy
        violations[eps] = robustness.check_certified_subset(mask, attack.robust)
        robust[eps] = attack.robust
    return Evaluation(cert, clean, logits, certified, attacked, violations, robust, certify_time,
                      time.perf_counter() - start)


def evaluate(
    model: nn.Module,
    weights: Sequence[np.ndarray],
    activation: str,
    data: DigitsData,
    settings: DigitsSettings,
) -> tuple[Certificate, float, dict[float, float], dict[float, float], dict[float, int], float, float]:
    """Certify ``weights`` and measure clean, certified and attacked accuracy on the test set.

    The model is evaluated in float64 (a copy), the precision of the certificate.
    Returns the certificate, clean accuracy, certified and attacked accuracy per
    radius, the count of certified-but-broken points per radius (0), and the
    certification and attack times.
    """
    e = _evaluate(model, weights, activation, data, settings)
    return (e.certificate, e.clean, e.certified, e.attacked, e.violations, e.certify_time,
            e.attack_time)


@dataclass
class TighterCertificates:
    """Pairwise and local certified accuracy of one net (:func:`tighter_certificates`)."""

    pairwise: dict[float, float]
    local: dict[float, float]
    pairwise_not_attacked: dict[float, int]
    local_not_attacked: dict[float, int]
    pair_bounds: np.ndarray
    method: str
    local_method: str
    local_points: int
    margins_time: float
    local_time: float
    local_solves: int = 0  # local SDPs solved (method "sdp")


def tighter_certificates(
    model: nn.Sequential, evaluation: Evaluation, activation: str, data: DigitsData, settings: DigitsSettings
) -> TighterCertificates:
    """Certified accuracy from class-pair bounds and from local bounds, beside the global one.

    Pairwise (:func:`pylip.margins.certify_margins`, ``settings.margin_method``):
    ``f_y - f_j > L_yj eps`` for all ``j``. Local (:mod:`pylip.local`): margin
    ``> sqrt(2) L(x0, eps) eps`` with ``L(x0, eps) <= L``; computed on the first
    ``settings.local_points`` test points that are correct, not already certified
    globally, and not ruled out by ``margin <= sqrt(2) eps J`` with ``J`` the
    largest Jacobian norm at ``x0`` and at 32 sampled points of the ball (``J <=
    L(x0, eps)``, so such a point cannot be certified locally). Every other point
    counts as certified locally iff the global bound certifies it. The cheap
    ``fixed_T`` bound is tried first, the SDP only where it does not certify.

    The radii are taken in increasing order, and a point that a local bound fails
    to certify at one radius is not tried at the larger ones: ``L(x0, eps)`` grows
    with ``eps`` (wider intervals, wider sectors, a smaller feasible set), so the
    rule ``margin > sqrt(2) L(x0, eps) eps`` would fail there too (up to the
    engine's 1e-6 gap: skipping can only leave a point uncertified, never certify
    one). Where the engine solves the SDPs (no ``solver`` named), ``"auto"``
    solves them at every depth (:func:`local_method`).
    """
    from ..lipsdp.local import certify_local, local_certified
    from ..lipsdp.margins import certify_margins
    from ..lipsdp.sampling import jacobian_norms, sampled_local_lower_bound
    from ..train import mlp_training as mt

    weights = mt.mlp_weights(model)
    biases = [m.bias.detach().double().numpy() for m in model if isinstance(m, nn.Linear)]
    cert, logits, y = evaluation.certificate, evaluation.logits, data.y_test
    start = time.perf_counter()
    margins_result = certify_margins(weights, logits=False, activation=activation, solver=settings.solver,
                                     method=settings.margin_method, global_certificate=cert)
    margins_time = time.perf_counter() - start
    start = time.perf_counter()
    X = data.X_test.double().numpy()
    margin = robustness.logit_margins(logits, y).numpy()
    n_local = X.shape[0] if settings.local_points is None else min(settings.local_points, X.shape[0])
    jac = jacobian_norms(weights, biases, X[:n_local], activation) if n_local else np.zeros(0)
    method = local_method(settings, [w.shape[0] for w in weights[:-1]])
    radii = sorted(settings.eps)
    local_masks = {eps: robustness.certified_mask(logits, y, cert.bound, eps).clone() for eps in radii}
    solves = 0
    for k in range(n_local):
        for eps in radii:
            if local_masks[eps][k]:
                continue
            if margin[k] <= 0 or margin[k] <= robustness.SQRT2 * eps * jac[k]:
                break
            # a sampled lower bound of L(x, eps) (32 Jacobians in the ball) rules out more points
            lower = sampled_local_lower_bound(weights, biases, X[k], eps, activation=activation,
                                              n_samples=32, rng=k)
            if margin[k] <= robustness.SQRT2 * eps * lower:
                break
            for tried in dict.fromkeys(("fixed_T", method)):
                bound = certify_local(weights, biases, X[k], eps, activation=activation,
                                      solver=settings.solver, method=tried, global_certificate=cert)
                solves += tried == "sdp"
                local_masks[eps][k] = local_certified(float(margin[k]), bound)
                if local_masks[eps][k]:
                    break
            if not local_masks[eps][k]:
                break
    pairwise, local, pair_broken, local_broken = {}, {}, {}, {}
    for eps in settings.eps:
        pair_mask = robustness.pairwise_certified_mask(logits, y, margins_result.pair_bounds, eps)
        pairwise[eps] = float(pair_mask.double().mean())
        local[eps] = float(local_masks[eps].double().mean())
        pair_broken[eps] = robustness.check_certified_subset(pair_mask, evaluation.robust[eps])
        local_broken[eps] = robustness.check_certified_subset(local_masks[eps], evaluation.robust[eps])
    return TighterCertificates(pairwise, local, pair_broken, local_broken, margins_result.pair_bounds,
                               margins_result.method, method, n_local, margins_time,
                               time.perf_counter() - start, solves)


def local_method(settings: DigitsSettings, hidden_sizes: Sequence[int]) -> str:
    """``settings.local_method``, with ``"auto"`` resolved for a net of these hidden-layer widths.

    ``"sdp"`` for one hidden layer, and deeper where the engine solves the local
    SDPs (no ``solver`` named) and the net has at most ``LOCAL_SDP_NEURONS``
    hidden neurons; else ``"fixed_T"``. Per ball, CPU: 0.1 s at 64-16-16-10,
    0.7-1.0 s at 64-64-64-10, 3.5-4.4 s at 64-128-128-10 (:mod:`pylip.local`);
    in the full preset the local SDPs of the four 64-128-128-10 nets took 408 s
    of its 1069 s for at most +0.044 certified accuracy (on the first 60 test
    points), those of the five 64-64-64-10 nets 100 s. cvxpy's deep SDPs take
    seconds each even at 64-16-16-10.
    """
    if settings.local_method != "auto":
        return settings.local_method
    if len(hidden_sizes) == 1:
        return "sdp"
    return "sdp" if settings.solver is None and sum(hidden_sizes) <= LOCAL_SDP_NEURONS else "fixed_T"


def run(
    settings: DigitsSettings | None = None,
    *,
    progress: bool = True,
    on_phase: Callable[[str], None] | None = None,
) -> DigitsResult:
    """Train, certify and attack the digits nets (see the module docstring)."""
    from ..train import mlp_training as mt

    settings = (settings or DigitsSettings.full()).validate()
    timings: dict[str, float] = {}
    run_start = time.perf_counter()

    def phase(message: str) -> None:
        if on_phase is not None:
            on_phase(message)
        logger.info("digits_example: %s", message)

    data = load_data(settings)
    n_in, n_out = data.X_train.shape[1], int(data.y_train.max()) + 1
    phase(
        f"data: {data.X_train.shape[0]} training and {data.X_test.shape[0]} test images "
        f"({n_in} pixels, {n_out} classes); seed {settings.seed}"
    )
    nets: list[NetReport] = []
    total = len(settings.depths) * 2 + len(settings.lipschitz)

    def add(report: NetReport) -> None:
        nets.append(report)
        bad = {
            f"{rule} {e:g}": v
            for rule, counts in (("global", report.certified_not_attacked),
                                 ("pairwise", report.pairwise_not_attacked),
                                 ("local", report.local_not_attacked))
            for e, v in counts.items() if v
        }
        if bad:
            raise CertificateError(
                f"{report.name}: points certified at radius eps but broken by the attack {bad}: "
                "the certificate or the margin rule is wrong"
            )
        radii = ", ".join(f"{e:g}" for e in settings.eps)
        shares = ", ".join(
            f"{report.certified_accuracy[e]:.2f}/{report.pairwise_certified_accuracy[e]:.2f}/"
            f"{report.local_certified_accuracy[e]:.2f}" for e in settings.eps
        )
        phase(
            f"[{len(nets)}/{total}] {report.name}: accuracy {report.clean_accuracy:.3f}, "
            f"L = {report.bound:.4g} (trivial {report.trivial_bound:.4g}), certified (global/pairwise/"
            f"local) at eps = {radii}: {shares}; train {report.train_time:.1f} s, certify "
            f"{report.certify_time:.1f} s, pairs {report.margins_time:.1f} s, local "
            f"{report.local_time:.1f} s ({report.local_points} points, {report.local_solves} SDPs), "
            f"attack {report.attack_time:.1f} s"
        )

    for depth, width in zip(settings.depths, settings.hidden):
        sizes = _layer_sizes(n_in, width, depth, n_out)
        starts: dict[str, tuple[nn.Sequential, Certificate]] = {}
        for kind, l2 in (("nominal", 0.0), ("L2", settings.l2)):
            name = settings.net_name(kind, depth, width)
            shape = "-".join(map(str, sizes))
            phase(f"{name}: training {shape} ({settings.epochs} epochs, Adam, l2 = {l2:g})")
            start = time.perf_counter()
            model = mt.mlp(sizes, activation=settings.activation, seed=settings.seed + depth)
            fit_config = mt.FitConfig(
                epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr, l2=l2,
                seed=settings.seed,
            )
            mt.fit(model, data.X_train, data.y_train, fit_config, progress=progress)
            train_time = time.perf_counter() - start
            phase(f"{name}: certifying (LipSDP-Neuron, class pairs, local) and attacking")
            activation = mt.mlp_activation(model)
            ev = _evaluate(model, mt.mlp_weights(model), activation, data, settings)
            tight = tighter_certificates(model, ev, activation, data, settings)
            cert = ev.certificate
            starts[kind] = (model, cert)
            add(NetReport(
                name=name, kind=kind, hidden_layers=depth, layer_sizes=sizes, L_des=None, T_update_every=None,
                start=None, clean_accuracy=ev.clean, bound=cert.bound, trivial_bound=cert.trivial_bound,
                certified_accuracy=ev.certified, attacked_accuracy=ev.attacked,
                certified_not_attacked=ev.violations, train_time=train_time, certify_time=ev.certify_time,
                attack_time=ev.attack_time, model=model, certificate=cert, **_tighter_fields(tight),
            ))
        start_name = settings.net_name("L2", depth, width)
        for lip in (r for r in settings.lipschitz if settings.start_net(r) == (depth, width)):
            name = settings.net_name("lip", depth, width, lip)
            base_model, base_cert = starts["L2"]
            every = f", T re-solved every {lip.T_update_every} iterations" if lip.T_update_every else ""
            phase(
                f"{name}: ADMM from {start_name} (L = {base_cert.bound:.4g}), enforcing "
                f"L_des = {lip.L_des:g}, {settings.admm_iterations} iterations of "
                f"{settings.epochs_per_iteration} epochs{every}"
            )
            start = time.perf_counter()
            model = copy.deepcopy(base_model)
            admm = mt.ADMMConfig(
                mode="enforce", L_des=lip.L_des, rho=settings.rho, iterations=settings.admm_iterations,
                epochs_per_iteration=settings.epochs_per_iteration, T_update_every=lip.T_update_every,
                solver=settings.solver, initial_T=base_cert.T,
                step_method="structured" if settings.solver is None else "auto",
            )
            fit_config = mt.FitConfig(
                epochs=settings.epochs_per_iteration, batch_size=settings.batch_size, lr=settings.admm_lr,
                seed=settings.seed,
            )
            trained = mt.train_lipschitz(
                model, data.X_train, data.y_train, admm, fit_config, progress=progress
            )
            train_time = time.perf_counter() - start
            phase(f"{name}: certifying the W_bar net (LipSDP-Neuron) and attacking")
            activation = mt.mlp_activation(trained.model)
            ev = _evaluate(trained.model, mt.mlp_weights(trained.model), activation, data, settings)
            tight = tighter_certificates(trained.model, ev, activation, data, settings)
            cert = ev.certificate
            add(NetReport(
                name=name, kind="lipschitz", hidden_layers=depth, layer_sizes=sizes, L_des=lip.L_des,
                T_update_every=lip.T_update_every, start=start_name, clean_accuracy=ev.clean,
                bound=cert.bound, trivial_bound=cert.trivial_bound, certified_accuracy=ev.certified,
                attacked_accuracy=ev.attacked, certified_not_attacked=ev.violations, train_time=train_time,
                certify_time=ev.certify_time, attack_time=ev.attack_time, training_bound=float(trained.bound),
                T_updates=_count_T_updates(trained.history), admm_iterations=len(trained.history),
                model=trained.model, certificate=cert, **_tighter_fields(tight),
            ))
    timings["total"] = time.perf_counter() - run_start
    timings["train"] = sum(n.train_time for n in nets)
    timings["certify"] = sum(n.certify_time for n in nets)
    timings["attack"] = sum(n.attack_time for n in nets)
    timings["margins"] = sum(n.margins_time for n in nets)
    timings["local"] = sum(n.local_time for n in nets)
    return DigitsResult(
        settings=settings, nets=nets, n_train=int(data.X_train.shape[0]), n_test=int(data.X_test.shape[0]),
        timings=timings,
    )


def _tighter_fields(tight: TighterCertificates) -> dict[str, Any]:
    return dict(
        pairwise_certified_accuracy=tight.pairwise, local_certified_accuracy=tight.local,
        pairwise_not_attacked=tight.pairwise_not_attacked, local_not_attacked=tight.local_not_attacked,
        pair_bounds=tight.pair_bounds.tolist(), margin_method=tight.method, local_method=tight.local_method,
        local_points=tight.local_points,
        margins_time=tight.margins_time, local_time=tight.local_time, local_solves=tight.local_solves,
    )


def _count_T_updates(history: Sequence[Any]) -> int | None:
    """How many times ADMM re-solved T, if the trainer's history says so."""
    counts = [
        bool(entry.get("T_updated", entry.get("T_update", False)))
        for entry in history
        if isinstance(entry, dict) and ("T_updated" in entry or "T_update" in entry)
    ]
    return sum(counts) if counts else None


def format_table(result: DigitsResult) -> str:
    """The printed table: per net, accuracy, bounds, then certified / attacked accuracy per radius."""
    radii = list(result.settings.eps)
    head = f"{'net':18s} {'layers':>12s} {'L_des':>6s} {'clean':>6s} {'L':>9s} {'trivial':>9s}"
    for eps in radii:
        head += f" {'eps=' + format(eps, 'g'):>23s}"
    lines = [
        f"digits ({result.settings.preset}): {result.n_train} training / {result.n_test} test images; "
        f"accuracy certified by the global / class-pair / local bounds / under l2 PGD "
        f"({result.settings.pgd_steps} steps, {result.settings.pgd_restarts} restart(s)) at each radius",
        head,
    ]
    for net in result.nets:
        L_des = f"{net.L_des:g}" if net.L_des is not None else "-"
        row = (
            f"{net.name:18s} {'-'.join(map(str, net.layer_sizes)):>12s} {L_des:>6s} "
            f"{net.clean_accuracy:6.3f} {net.bound:9.4g} {net.trivial_bound:9.4g}"
        )
        for eps in radii:
            pair = net.pairwise_certified_accuracy.get(eps, math.nan)
            local = net.local_certified_accuracy.get(eps, math.nan)
            row += f" {net.certified_accuracy[eps]:.3f}/{pair:.3f}/{local:.3f}"
            row += f"/{net.attacked_accuracy[eps]:.3f}"
        lines.append(row)
    local_points = max((net.local_points for net in result.nets), default=0)
    lines.append(
        "L: LipSDP-Neuron bound (pylip.certify, proven); trivial: product of spectral norms; certified at "
        "eps: global, logit margin > sqrt(2) L eps; class-pair, f_y - f_j > L_yj eps for all j "
        "(pylip.margins); local, margin > sqrt(2) L(x, eps) eps (pylip.local; computed on the first "
        f"{local_points} test points, elsewhere the global rule)"
    )
    return "\n".join(lines)


def write_outputs(result: DigitsResult, out_dir: str | Path) -> list[Path]:
    """Save ``summary.json``, ``digits_run.json``, ``digits_table.txt`` and ``digits_tradeoff.png``."""
    from . import figures

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    table = format_table(result)
    summary_path = folder / "summary.json"
    summary_path.write_text(json.dumps(result.summary(), indent=1))
    run_path = folder / "digits_run.json"
    run_path.write_text(json.dumps({
        "example": "digits_example",
        "settings": result.settings.to_dict(),
        "n_train": result.n_train,
        "n_test": result.n_test,
        "timings": result.timings,
        "table": table.splitlines(),
        "nets": result.summary(),
    }, indent=1))
    table_path = folder / "digits_table.txt"
    table_path.write_text(table + "\n")
    plot_path = figures.plot_tradeoff(result, folder / "digits_tradeoff.png")
    return [summary_path, run_path, table_path, plot_path]
