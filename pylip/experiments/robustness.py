"""Certified and empirical l2 robustness of classifiers (torch, vectorised over a data set).

A Lipschitz bound turns into a robustness certificate (Pauli et al. 2020,
Section I and IV; Tsuzuku et al. 2018): if the logit map ``f`` is
``L``-Lipschitz in the l2 norm, each difference ``f_y - f_j`` is
``sqrt(2) L``-Lipschitz (its gradient is ``(e_y - e_j)' J`` and
``||e_y - e_j|| = sqrt(2)``), so a point ``x`` of class ``y`` whose logit margin
``m(x) = f_y(x) - max_{j != y} f_j(x)`` exceeds ``sqrt(2) L eps`` keeps its
class on the whole l2 ball of radius ``eps`` around it. The certified robust
accuracy at ``eps`` is the fraction of test points classified correctly with
such a margin.

Class-pair bounds certify more: with ``L_yj`` a bound of ``f_y - f_j`` itself
(:mod:`pylip.margins`), ``x`` is certified when ``f_y(x) - f_j(x) > L_yj eps``
for every ``j != y`` (:func:`pairwise_certified_mask`); ``L_yj <= sqrt(2) L``,
so every point the global rule certifies is certified this way too.

The empirical counterpart is an l2 PGD attack (Madry et al. 2018): projected
gradient ascent on a loss within the ball. Every iterate lies in the ball, so
an iterate that is misclassified is a real adversarial example; the attacked
accuracy is the fraction of points that are classified correctly and stay so
at every iterate of every restart. A certified point can never be broken,
so certified accuracy <= attacked accuracy, point by point
(:func:`check_certified_subset`).

The ball is the whole l2 ball in input space: like the certificate, the attack
is not clipped to a pixel box unless ``bounds`` is given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import InputError

SQRT2 = math.sqrt(2.0)
LOSSES = ("margin", "cross_entropy")


def _labels(labels: torch.Tensor | np.ndarray | Sequence[int], n: int, n_classes: int) -> torch.Tensor:
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise InputError(f"labels must be a vector of {n} class indices, got shape {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise InputError(f"labels must be integer class indices, got dtype {y.dtype}")
    y = y.long()
    if n and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise InputError(
            f"labels must lie in 0 .. {n_classes - 1} (the logits have {n_classes} columns), "
            f"got {int(y.min())} .. {int(y.max())}"
        )
    return y


def _logits(logits: torch.Tensor | np.ndarray) -> torch.Tensor:
    z = torch.as_tensor(logits)
    if z.ndim != 2 or z.shape[1] < 2:
        raise InputError(f"logits must be an n x c matrix with c >= 2 classes, got shape {tuple(z.shape)}")
    if not z.dtype.is_floating_point:
        z = z.double()
    if not bool(torch.isfinite(z).all()):
        raise InputError("logits contain NaN or inf")
    return z


def check_radius(eps: float, *, name: str = "eps") -> float:
    """``eps`` as a float; raise :class:`InputError` unless it is finite and >= 0."""
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number >= 0, got {eps!r}") from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{name} must be a finite number >= 0 (an l2 radius), got {eps!r}")
    return value


def check_radii(eps: float | Sequence[float]) -> list[float]:
    """One radius or a sequence of radii, each checked by :func:`check_radius`."""
    values = [eps] if isinstance(eps, (int, float)) else list(eps)
    if not values:
        raise InputError("eps must name at least one radius")
    return [check_radius(e) for e in values]


def check_bound(bound: float) -> float:
    """A Lipschitz bound: finite and > 0."""
    try:
        value = float(bound)
    except (TypeError, ValueError):
        raise InputError(f"the Lipschitz bound must be a number > 0, got {bound!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"the Lipschitz bound must be a finite number > 0, got {bound!r}")
    return value


def logit_margins(logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``f_y(x) - max_{j != y} f_j(x)`` per row: > 0 iff the row is classified as ``y`` (ties: <= 0)."""
    z = _logits(logits)
    y = _labels(labels, z.shape[0], z.shape[1])
    true = z.gather(1, y[:, None]).squeeze(1)
    others = z.scatter(1, y[:, None], float("-inf"))
    return true - others.max(dim=1).values


def certified_radii(
    logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, bound: float
) -> torch.Tensor:
    """The l2 radius ``m(x) / (sqrt(2) L)`` certified around each point (0 where misclassified)."""
    L = check_bound(bound)
    return torch.clamp(logit_margins(logits, labels), min=0.0) / (SQRT2 * L)


def certified_mask(
    logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, bound: float, eps: float
) -> torch.Tensor:
    """Points certified at radius ``eps`` by the Lipschitz bound ``L`` of the logit map.

    True where the margin exceeds ``sqrt(2) L eps`` (which, for ``eps = 0``, is
    correct classification).
    """
    L, radius = check_bound(bound), check_radius(eps)
    return logit_margins(logits, labels) > SQRT2 * L * radius


def certified_accuracy(
    logits: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    bound: float,
    eps: float | Sequence[float],
) -> dict[float, float]:
    """Fraction of points certified at each radius (:func:`certified_mask`)."""
    return {e: float(certified_mask(logits, labels, bound, e).double().mean()) for e in check_radii(eps)}


def check_pair_bounds(pair_bounds: torch.Tensor | np.ndarray, n_classes: int) -> torch.Tensor:
    """A ``c x c`` matrix of pair bounds ``L_ij`` (>= 0, no NaN; ``inf``: not bounded), as float64."""
    matrix = torch.as_tensor(np.asarray(pair_bounds, dtype=np.float64))
    if matrix.shape != (n_classes, n_classes):
        raise InputError(
            f"pair_bounds must be {n_classes} x {n_classes} (one L_ij per class pair), "
            f"got {tuple(matrix.shape)}"
        )
    if bool(torch.isnan(matrix).any()) or bool((matrix < 0).any()):
        raise InputError("pair_bounds must be >= 0 and not NaN (inf marks a pair without a bound)")
    return matrix


def pairwise_certified_mask(
    logits: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    pair_bounds: torch.Tensor | np.ndarray,
    eps: float,
) -> torch.Tensor:
    """Points certified at ``eps`` by class-pair bounds: ``f_y - f_j > L_yj eps`` for every ``j != y``.

    ``L_yj`` bounds the l2 Lipschitz constant of ``f_y - f_j`` itself
    (:func:`pylip.margins.certify_margins`), so no ``sqrt(2)`` enters: on the
    ball, ``f_y - f_j >= (f_y - f_j)(x) - L_yj eps > 0``. With every
    ``L_yj = sqrt(2) L`` this is :func:`certified_mask`.
    """
    z = _logits(logits)
    y = _labels(labels, z.shape[0], z.shape[1])
    radius = check_radius(eps)
    bounds = check_pair_bounds(pair_bounds, z.shape[1]).to(z.dtype)
    gaps = z.gather(1, y[:, None]) - z  # f_y - f_j, 0 at j = y
    # L_yj eps per point and class (0 at eps = 0, also for a pair without a bound: inf * 0)
    needed = bounds[y] * radius if radius > 0 else torch.zeros_like(z)
    ok = gaps > needed
    ok = ok | (torch.arange(z.shape[1])[None, :] == y[:, None])
    return ok.all(dim=1) & (logit_margins(z, y) > 0)


def certified_accuracies(
    logits: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    bound: float,
    pair_bounds: torch.Tensor | np.ndarray,
    eps: float | Sequence[float],
) -> dict[str, dict[float, float]]:
    """Global (``sqrt(2) L eps``) and pairwise (``L_yj eps``) certified accuracy at each radius."""
    radii = check_radii(eps)
    return {
        "global": {e: float(certified_mask(logits, labels, bound, e).double().mean()) for e in radii},
        "pairwise": {
            e: float(pairwise_certified_mask(logits, labels, pair_bounds, e).double().mean()) for e in radii
        },
    }


def _check_inputs(model: nn.Module, X: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> tuple[
    torch.Tensor, torch.Tensor
]:
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    x = torch.as_tensor(X)
    if x.ndim != 2:
        raise InputError(f"X must be an n x d matrix (one input per row), got shape {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise InputError(f"X must hold floating-point inputs, got dtype {x.dtype}")
    param = next(model.parameters(), None)
    if param is not None:
        x = x.to(param.dtype)
    with torch.no_grad():
        out = model(x[:1]) if x.shape[0] else None
    n_classes = out.shape[1] if out is not None else 2
    return x, _labels(y, x.shape[0], n_classes)


def _project(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Rows of ``delta`` projected onto the l2 ball of radius ``eps``."""
    norms = delta.norm(dim=1, keepdim=True)
    return delta * torch.clamp(eps / torch.clamp(norms, min=1e-30), max=1.0)


def _random_in_ball(
    n: int, d: int, eps: float, generator: torch.Generator, dtype: torch.dtype
) -> torch.Tensor:
    """``n`` uniform samples from the l2 ball of radius ``eps`` in ``R^d``."""
    direction = torch.randn((n, d), generator=generator, dtype=torch.float64)
    direction /= torch.clamp(direction.norm(dim=1, keepdim=True), min=1e-30)
    radius = eps * torch.rand((n, 1), generator=generator, dtype=torch.float64) ** (1.0 / d)
    return (direction * radius).to(dtype)


def _attack_loss(logits: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-point loss to ascend: ``-margin`` or the cross-entropy."""
    if loss == "margin":
        return -logit_margins(logits, y)
    return nn.functional.cross_entropy(logits, y, reduction="none")


@dataclass(frozen=True)
class AttackResult:
    """Outcome of :func:`pgd_attack` at one radius.

    Attributes:
        robust: per point, True if it is classified correctly at ``x`` and at
            every PGD iterate of every restart (no adversarial example found).
        adversarial: per point, the iterate of smallest margin found (in the ball).
        min_margin: per point, the smallest logit margin seen (clean point included).
        eps: the radius.
    """

    robust: torch.Tensor
    adversarial: torch.Tensor
    min_margin: torch.Tensor
    eps: float

    @property
    def accuracy(self) -> float:
        """Fraction of points that survive the attack."""
        return float(self.robust.double().mean()) if self.robust.numel() else float("nan")


def pgd_attack(
    model: nn.Module,
    X: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    eps: float,
    *,
    steps: int = 50,
    step_size: float | None = None,
    restarts: int = 1,
    loss: str = "margin",
    bounds: tuple[float, float] | None = None,
    seed: int | None = 0,
    batch_size: int | None = None,
) -> AttackResult:
    """l2 PGD attack: projected (normalised) gradient ascent within ``||delta||_2 <= eps``.

    ``x_{k+1} = Proj_{B(x, eps)}(x_k + a g_k / ||g_k||)`` with ``g_k`` the gradient
    of the loss (``"margin"``: minus the logit margin, or ``"cross_entropy"``)
    and ``a = step_size`` (default ``2.5 eps / steps``, Madry et al.). The first
    run starts at ``x``; each further restart (``restarts`` runs in all) starts
    at a uniform random point of the ball (``seed`` fixes them). All points are
    attacked at once (in chunks of ``batch_size`` rows if given). ``bounds``
    clips iterates to a box as well (then the iterate is in the ball and the
    box); ``None`` attacks the whole ball, as the certificate covers it.
    """
    radius = check_radius(eps)
    if not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps must be an integer >= 1, got {steps!r}")
    if not isinstance(restarts, int) or restarts < 1:
        raise InputError(f"restarts must be an integer >= 1 (the first starts at x), got {restarts!r}")
    if loss not in LOSSES:
        raise InputError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if step_size is not None and not (math.isfinite(step_size) and step_size > 0):
        raise InputError(f"step_size must be a finite number > 0, got {step_size!r}")
    if bounds is not None and not (len(bounds) == 2 and bounds[0] < bounds[1]):
        raise InputError(f"bounds must be (low, high) with low < high, got {bounds!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise InputError(f"batch_size must be an integer >= 1 or None, got {batch_size!r}")
    x, labels = _check_inputs(model, X, y)
    if bounds is not None and x.numel() and (float(x.min()) < bounds[0] or float(x.max()) > bounds[1]):
        raise InputError(f"the clean inputs lie outside bounds={bounds}")
    alpha = step_size if step_size is not None else 2.5 * radius / steps
    generator = torch.Generator().manual_seed(0 if seed is None else seed)
    if seed is None:
        generator.seed()
    chunk = batch_size or max(x.shape[0], 1)
    parts = [
        _pgd_chunk(model, x[i : i + chunk], labels[i : i + chunk], radius, steps, alpha, restarts,
                   loss, bounds, generator)
        for i in range(0, x.shape[0], chunk)
    ]
    if not parts:
        empty = torch.zeros(0, dtype=torch.bool)
        return AttackResult(empty, x.clone(), torch.zeros(0, dtype=x.dtype), radius)
    robust, adversarial, margins = (torch.cat(items) for items in zip(*parts))
    return AttackResult(robust=robust, adversarial=adversarial, min_margin=margins, eps=radius)


def _pgd_chunk(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int,
    alpha: float,
    restarts: int,
    loss: str,
    bounds: tuple[float, float] | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            best_margin = logit_margins(model(x), y)
        best_x = x.clone()
        for restart in range(restarts):
            if restart == 0:
                delta = torch.zeros_like(x)
            else:
                delta = _random_in_ball(x.shape[0], x.shape[1], eps, generator, x.dtype)
            for _ in range(steps + 1):
                delta = _project(delta, eps)
                point = x + delta
                if bounds is not None:
                    point = torch.clamp(point, bounds[0], bounds[1])
                    delta = point - x  # still in the ball: clipping moves towards x coordinate-wise
                point = point.detach().requires_grad_(True)
                with torch.enable_grad():  # also when called under torch.no_grad()
                    logits = model(point)
                with torch.no_grad():
                    margin = logit_margins(logits.detach(), y)
                    better = margin < best_margin
                    best_margin = torch.where(better, margin, best_margin)
                    best_x[better] = point.detach()[better]
                with torch.enable_grad():
                    objective = _attack_loss(logits, y, loss).sum()
                grad = torch.autograd.grad(objective, point)[0]
                with torch.no_grad():
                    norm = torch.clamp(grad.norm(dim=1, keepdim=True), min=1e-30)
                    delta = delta + alpha * grad / norm
    finally:
        model.train(was_training)
    return best_margin > 0, best_x, best_margin


def attacked_accuracy(
    model: nn.Module,
    X: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    eps: float | Sequence[float],
    **attack: object,
) -> dict[float, float]:
    """Fraction of points surviving :func:`pgd_attack` at each radius (keywords go to it)."""
    return {e: pgd_attack(model, X, y, e, **attack).accuracy for e in check_radii(eps)}  # type: ignore[arg-type]


def check_certified_subset(certified: torch.Tensor, robust: torch.Tensor) -> int:
    """Number of points certified but broken by the attack: must be 0.

    A nonzero count means the certificate (or the margin rule) is wrong; the
    caller should treat it as a failure.
    """
    if certified.shape != robust.shape:
        raise InputError(f"masks differ in shape: {tuple(certified.shape)} vs {tuple(robust.shape)}")
    return int((certified.bool() & ~robust.bool()).sum())
