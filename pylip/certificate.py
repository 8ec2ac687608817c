"""LipSDP certificates on a network's Lipschitz constant (Theorem 1, eq. 5-6).

:func:`certify` solves the SDP (6), ``min L^2 s.t. P(L^2, T) <= 0``, over a
class of multipliers ``T``:

* ``"neuron"``: diagonal ``T >= 0``, one multiplier per neuron (Theorem 1 of
  the paper for one hidden layer; LipSDP-Neuron for several);
* ``"layer"``: ``T = lambda_k I`` on each hidden layer (LipSDP-Layer);
* ``"network"``: the coupled class of LipSDP-Network. Section II-C of the paper
  shows that this class does **not** give a valid bound; it is only available
  with ``allow_unsound=True`` and warns.

Every certificate is checked in float64 after the solve: the largest
eigenvalue of ``P(L^2, T)`` must be <= 0. A solver point that misses the LMI
by rounding is repaired by raising ``L^2`` to the exact minimum for its ``T``
(:func:`pylip.lmi.minimal_squared_bound`), and that is recorded on the
certificate.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

from . import lmi, reduced
from .activations import check_sector, get_activation
from .errors import CertificateError, InputError
from .solvers import resolve_solver, solve, value_of
from .validation import as_weight_list

FORMS = ("neuron", "layer", "network")
FORMULATIONS = ("auto", "reduced", "structured", "original")
DEFAULT_MARGIN = 1e-9  # the original asks for P <= -1e-9 I


class UnsoundCertificateWarning(UserWarning):
    """Warns that a LipSDP-Network (coupled T) result need not bound anything."""


@dataclass(frozen=True)
class Certificate:
    """A checked upper bound on a network's Lipschitz constant.

    Attributes:
        bound: the Lipschitz bound ``L`` (``P(L^2, T) <= 0`` holds in float64).
        squared_bound: ``L^2``.
        T: the multiplier matrix (``N x N`` for ``N`` hidden neurons).
        form: ``"neuron"``, ``"layer"`` or ``"network"``.
        solver, status, solve_time: what the SDP solver reported.
        trivial_bound: product of the weights' spectral norms (times ``beta``
            per hidden layer), for comparison.
        max_eigenvalue: largest eigenvalue of ``P(L^2, T)``, <= 0.
        repaired: True if the solver's ``L^2`` was raised: it violated the LMI,
            or held only within eigenvalue rounding (``lmi.rounding_slack``).
        solver_bound: ``sqrt`` of the ``L^2`` the solver returned.
        alpha, beta: the slope sector used (eq. 2).
        sound: False only for the coupled ``"network"`` form.
    """

    bound: float
    squared_bound: float
    T: np.ndarray
    form: str
    solver: str
    status: str
    solve_time: float
    trivial_bound: float
    max_eigenvalue: float
    repaired: bool
    solver_bound: float
    alpha: float
    beta: float
    margin: float
    layer_sizes: tuple[int, ...]
    sound: bool = True
    notes: tuple[str, ...] = field(default=())

    def verify(self, weights: Sequence[Any]) -> float:
        """Recompute the LMI's largest eigenvalue for ``weights``; raise if > 0."""
        structure = lmi.network_structure(as_weight_list(weights))
        value = lmi.lmi_max_eigenvalue(structure, self.T, self.squared_bound, self.alpha, self.beta)
        if value > 0.0:
            raise CertificateError(
                f"the certificate does not hold for these weights: the LMI's largest "
                f"eigenvalue is {value:.3e} > 0"
            )
        return value

    def summary(self) -> str:
        """One line: form, bound, trivial bound, solver and time."""
        flag = " (repaired)" if self.repaired else ""
        unsound = " UNSOUND" if not self.sound else ""
        return (
            f"{self.form:7s}{unsound} L = {self.bound:.6g}{flag}  "
            f"(trivial {self.trivial_bound:.6g}; {self.solver} {self.status}, "
            f"{self.solve_time:.3f} s)"
        )


def slope_sector(
    activation: str | None, alpha: float | None, beta: float | None
) -> tuple[float, float]:
    """Slope sector from an activation name, overridden by explicit alpha/beta."""
    base = get_activation(activation or "tanh")
    a = base.alpha if alpha is None else alpha
    b = base.beta if beta is None else beta
    return check_sector(a, b)


def certify(
    weights: Sequence[Any],
    *,
    form: str = "neuron",
    alpha: float | None = None,
    beta: float | None = None,
    activation: str = "tanh",
    solver: str | None = None,
    margin: float = DEFAULT_MARGIN,
    allow_unsound: bool = False,
    formulation: str = "auto",
) -> Certificate:
    """Certify an upper bound on the Lipschitz constant of a feed-forward network.

    Solves the SDP (6) of Theorem 1 (one hidden layer) or its multi-layer form
    (LipSDP) for ``f(x) = Wl phi(... phi(W0 x + b0) ...) + bl``; biases do not
    enter the bound.

    Args:
        weights: ``[W0, ..., Wl]``, each ``n_{i+1} x n_i`` (arrays or nested lists).
        form: ``"neuron"`` (diagonal T), ``"layer"`` (one multiplier per layer)
            or ``"network"`` (coupled T; unsound, needs ``allow_unsound=True``).
        alpha, beta: slope sector of the activation (eq. 2); default from
            ``activation`` (tanh and ReLU [0, 1], sigmoid [0, 1/4]).
        activation: ``"tanh"``, ``"relu"`` or ``"sigmoid"``.
        solver: ``"CLARABEL"`` (default, or ``$PYLIP_SOLVER``), ``"SCS"``,
            ``"CVXOPT"`` or ``"MOSEK"``.
        margin: the LMI is solved as ``P <= -margin I`` (the original's 1e-9).
        allow_unsound: permit ``form="network"``.
        formulation: how the SDP is handed to the solver; every one gives the same
            bound to solver accuracy (the returned ``T`` may differ: it is not
            unique at the optimum).

            * ``"auto"`` (default): ``"reduced"`` for one hidden layer with a
              diagonal ``T`` (form ``"neuron"`` or ``"layer"``), else ``"structured"``.
            * ``"reduced"``: one hidden layer only. LMI (7) with the middle
              block ``-2T`` eliminated by a Schur complement, ``1/t_k`` replaced
              by ``s_k`` with ``s_k t_k >= 1`` (exact), and ``W0`` (``W1``)
              reduced to its row (column) space when ``n_x > n_h`` (``n_y > n_h``):
              one PSD cone of size ``<= min(n_x, n_h) + min(n_y, n_h)`` plus
              ``n_h`` small cones (:mod:`pylip.reduced`). Scales to thousands
              of hidden neurons and to 784-input nets.
            * ``"structured"``: weights scaled to unit norm (an exact
              congruence), the output term as a Schur complement (sparse, as
              LMI (7)), ``T >= 0``; any depth and form.
            * ``"original"``: eq. (5) exactly as ``calculate_Lipschitz.m`` states
              it (dense, unscaled, free diagonal ``T``; one hidden layer, neuron
              form, alpha = 0). An interior-point solver lands on a
              formulation-dependent point of the optimal ``T`` set; this one
              lands where the original did, which matters when ``T`` is then
              fixed for ADMM (``calculate_Lipschitz`` uses it). Its cost grows
              as ``(n_x + n_h)^4``: impractical beyond ``n_h ~ 100``.

    Returns:
        A :class:`Certificate` whose LMI has been checked in float64.
    """
    matrices = as_weight_list(weights)
    a, b = slope_sector(activation, alpha, beta)
    if form not in FORMS:
        raise InputError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
    if form == "network" and not allow_unsound:
        raise InputError(
            "form='network' (LipSDP-Network, coupled T) does not give a valid Lipschitz bound "
            "(Pauli et al. 2020, Section II-C: see `pylip counterexample`); use form='neuron', "
            "or pass allow_unsound=True to compute it anyway"
        )
    if margin < 0 or not np.isfinite(margin):
        raise InputError(f"margin must be a finite number >= 0, got {margin}")
    if formulation not in FORMULATIONS:
        raise InputError(f"formulation must be one of {', '.join(FORMULATIONS)}, got {formulation!r}")
    if formulation == "original" and (form != "neuron" or len(matrices) != 2 or a != 0.0):
        raise InputError(
            "formulation='original' is calculate_Lipschitz.m's SDP: one hidden layer, form='neuron', "
            "alpha = 0; use formulation='structured' for anything else"
        )
    reducible = len(matrices) == 2 and form in reduced.REDUCED_FORMS
    if formulation == "auto":
        formulation = "reduced" if reducible else "structured"
    if formulation == "reduced" and not reducible:
        raise InputError(
            "formulation='reduced' needs one hidden layer and form='neuron' or 'layer' "
            f"(got {len(matrices) - 1} hidden layers, form={form!r}); use formulation='structured'"
        )
    solver_name = resolve_solver(solver)
    structure = lmi.network_structure(matrices)
    problem, squared, multiplier_value, scaling = _certificate_problem(
        formulation, form, matrices, structure, a, b, margin
    )
    info = solve(problem, solver_name, what=f"LipSDP-{form} certificate SDP")

    T, solver_squared = multiplier_value(), float(value_of(squared))
    if scaling is not None:
        T, solver_squared = scaling.multiplier(T), scaling.squared_bound(solver_squared)
    if form == "network":
        warnings.warn(
            "LipSDP-Network (coupled T) is not a valid Lipschitz bound in general "
            "(Pauli et al. 2020, Section II-C)",
            UnsoundCertificateWarning,
            stacklevel=2,
        )
    return _checked_certificate(
        structure, T, solver_squared, a, b, form=form, solver=info.solver, status=info.status,
        solve_time=info.solve_time, margin=margin, weights=matrices,
    )


def _certificate_problem(
    formulation: str,
    form: str,
    matrices: list[np.ndarray],
    structure: lmi.NetworkStructure,
    alpha: float,
    beta: float,
    margin: float,
) -> tuple[cp.Problem, cp.Variable, Callable[[], np.ndarray], _Normalization | None]:
    """The SDP (6) in the chosen formulation: problem, ``L^2``, ``T`` getter, and the scaling used."""
    if formulation == "reduced":
        scaling = _Normalization(matrices)
        problem, squared, multiplier_value = reduced.reduced_certificate_problem(
            scaling.weights[0], scaling.weights[1], form=form, alpha=alpha, beta=beta, margin=margin
        )
        return problem, squared, multiplier_value, scaling
    squared = cp.Variable(name="L2")
    if formulation == "original":
        T_expr, multiplier_value = _multiplier(form, structure, nonneg=False)
        P = lmi.certificate_matrix(structure, T_expr, squared, alpha, beta)
        scaling_or_none = None
    else:
        scaling_or_none = _Normalization(matrices)
        normalized = lmi.network_structure(scaling_or_none.weights)
        T_expr, multiplier_value = _multiplier(form, normalized)
        P = lmi.sparse_certificate_matrix(normalized, T_expr, squared, alpha, beta)
    problem = cp.Problem(cp.Minimize(squared), [0.5 * (P + P.T) << -margin * np.eye(P.shape[0])])
    return problem, squared, multiplier_value, scaling_or_none


class _Normalization:
    """Solve (6) for weights scaled to unit spectral norm, then map back exactly.

    With ``W_k = s_k V_k``, ``d_k = s_0 ... s_{k-1}`` on hidden layer ``k`` and
    ``S = s_0 ... s_l``, the congruence ``D P_W(L^2, T) D = S^2 P_V(L^2 / S^2,
    Delta T Delta / S^2)`` (``D = blkdiag(I, d_1 I, ..., d_l I)``) holds for
    every slope sector, so ``L(W) = S L(V)`` and ``T_W = S^2 Delta^-1 T_V
    Delta^-1``. Deep or large-weight networks (``L^2`` of 1e10) thus reach the
    solver well scaled; the result is still checked in the original weights.
    """

    def __init__(self, weights: Sequence[np.ndarray]) -> None:
        norms = [float(np.linalg.norm(w, 2)) for w in weights]
        self.scales = [n if n > 0 else 1.0 for n in norms]
        self.weights = [w / s for w, s in zip(weights, self.scales)]
        self.total = float(np.prod(self.scales))
        prefix = np.cumprod(self.scales[:-1])  # d_1 .. d_l
        self.hidden_scale = np.repeat(prefix, [w.shape[0] for w in weights[:-1]])

    def squared_bound(self, normalized: float) -> float:
        return normalized * self.total**2

    def multiplier(self, normalized: np.ndarray) -> np.ndarray:
        inverse = 1.0 / self.hidden_scale
        return self.total**2 * (inverse[:, None] * normalized * inverse[None, :])


def _multiplier(form: str, structure: lmi.NetworkStructure, nonneg: bool = True) -> tuple[Any, Any]:
    """The cvxpy expression of T for a form, and a function giving its value.

    ``nonneg=False`` leaves a diagonal ``T`` free, as the original did (for
    one hidden layer and ``alpha = 0`` the LMI itself forces ``T > 0``).
    """
    n = structure.n_hidden
    if form == "neuron":
        t = cp.Variable(n, nonneg=nonneg, name="t")
        return cp.diag(t), lambda: np.diag(np.maximum(value_of(t), 0.0))
    if form == "layer":
        sizes = structure.hidden_sizes
        lam = cp.Variable(len(sizes), nonneg=True, name="lambda")
        spread = np.repeat(np.eye(len(sizes)), sizes, axis=0)  # N x l
        return cp.diag(spread @ lam), lambda: np.diag(spread @ np.maximum(value_of(lam), 0.0))
    # coupled: T = diag(d) + sum_{i<j} l_ij (e_i - e_j)(e_i - e_j)'
    d = cp.Variable(n, nonneg=True, name="d")
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    incidence = np.zeros((len(pairs), n))
    for k, (i, j) in enumerate(pairs):
        incidence[k, i], incidence[k, j] = 1.0, -1.0
    if not pairs:
        return cp.diag(d), lambda: np.diag(np.maximum(value_of(d), 0.0))
    lam = cp.Variable(len(pairs), nonneg=True, name="lambda_ij")
    T_expr = cp.diag(d) + incidence.T @ cp.diag(lam) @ incidence
    return T_expr, lambda: (
        np.diag(np.maximum(value_of(d), 0.0))
        + incidence.T @ np.diag(np.maximum(value_of(lam), 0.0)) @ incidence
    )


def _checked_certificate(
    structure: lmi.NetworkStructure,
    T: np.ndarray,
    solver_squared: float,
    alpha: float,
    beta: float,
    *,
    form: str,
    solver: str,
    status: str,
    solve_time: float,
    margin: float,
    weights: Sequence[np.ndarray],
) -> Certificate:
    """Check ``P(L^2, T) <= 0`` in float64 and repair ``L^2`` if rounding broke it.

    The check is made at ``bound**2`` of the float ``bound`` that is returned,
    so a user who squares the bound again finds the LMI satisfied.
    """
    squared = max(solver_squared, 0.0)
    repaired = False
    step = 0.0
    for _ in range(100):
        bound = lmi.sqrt_up(squared)
        top = lmi.lmi_max_eigenvalue(structure, T, bound * bound, alpha, beta)
        if top <= 0.0:
            break
        if not repaired:
            # jump to the exact minimum for this T, then creep up past rounding noise
            nudged, target = _repairable_multiplier(structure, T, alpha, beta)
            if nudged is None:
                raise CertificateError(
                    f"{solver} returned a multiplier T for which no Lipschitz bound can be "
                    f"certified (LMI eigenvalue {top:.3e} > 0 at its L^2, and the hidden block "
                    "stays indefinite when T is scaled up slightly); try another solver"
                )
            T, squared, repaired = nudged, max(squared, target), True
            step = max(squared, 1e-12) * 1e-15
        else:
            squared += step
            step *= 2.0
    else:  # pragma: no cover - the doubling step reaches any finite gap
        raise CertificateError(f"could not repair the certificate: LMI eigenvalue {top:.3e} > 0")
    bound, top, raised = _beyond_rounding(structure, T, bound, top, alpha, beta)
    repaired = repaired or raised
    squared = bound * bound
    return Certificate(
        bound=bound,
        squared_bound=squared,
        T=T,
        form=form,
        solver=solver,
        status=status,
        solve_time=solve_time,
        trivial_bound=lmi.trivial_bound(weights, beta),
        max_eigenvalue=top,
        repaired=repaired,
        solver_bound=float(np.sqrt(max(solver_squared, 0.0))),
        alpha=alpha,
        beta=beta,
        margin=margin,
        layer_sizes=(structure.n_in, *structure.hidden_sizes, weights[-1].shape[0]),
        sound=form != "network",
    )


def _beyond_rounding(
    structure: lmi.NetworkStructure, T: np.ndarray, bound: float, top: float, alpha: float, beta: float
) -> tuple[float, float, bool]:
    """Raise a bound whose LMI holds only within eigenvalue rounding beyond it.

    With the largest eigenvalue in ``(-lmi.rounding_slack(P), 0]``, another
    float64 eigenvalue routine may find it > 0. Interior-point solvers land far
    inside (the margin); a first-order solver (SCS), or a repaired point, can
    end on the boundary. ``L^2`` is raised by at most 1e-10 relative; if that
    is not enough (the tight direction is not the input's, or ``P`` is badly
    scaled), the bound is kept: it holds in the check made.
    """
    P = lmi.certificate_matrix(structure, T, bound * bound, alpha, beta)
    if top <= -lmi.rounding_slack(P):
        return bound, top, False
    for change in (1e-14, 1e-12, 1e-10):
        raised = lmi.sqrt_up(bound * bound * (1 + change))
        P = lmi.certificate_matrix(structure, T, raised * raised, alpha, beta)
        moved = lmi.max_eigenvalue(P)
        if moved <= -lmi.rounding_slack(P):
            return raised, moved, True
    return bound, top, False


def _repairable_multiplier(
    structure: lmi.NetworkStructure, T: np.ndarray, alpha: float, beta: float
) -> tuple[np.ndarray | None, float]:
    """``T`` itself, or ``T`` nudged within its class, with a finite minimal ``L^2``.

    A solver's ``T`` can leave the hidden block of ``P`` a hair from negative
    definite (then no ``L^2`` works). Scaling ``T`` up, or adding a tiny
    multiple of the identity, keeps it in its class (diagonal, layer-wise or
    coupled) and makes the ``-2T`` block dominate again.
    """
    scale = float(np.max(np.abs(T))) or 1.0
    candidates = [T]
    for delta in (1e-10, 1e-8, 1e-6, 1e-4):
        candidates += [T * (1.0 + delta), T + delta * scale * np.eye(T.shape[0])]
    for candidate in candidates:
        target = lmi.minimal_squared_bound(structure, candidate, alpha, beta)
        if np.isfinite(target):
            return candidate, target
    return None, float("inf")


def closed_form_bound(W0: Any, W1: Any, beta: float = 1.0) -> float:
    """The diagonal-T bound of a 1-n_h-1 network in closed form.

    For one input and one output the products ``c_i = w1_i w0_i`` determine the
    network's slope ``sum_i c_i s_i`` with ``s_i`` in ``[0, beta]``, so the
    certificate (6) equals ``beta * max(sum of positive c_i, -sum of negative c_i)``.
    Used as a fast path for the logging certificates of the examples.
    """
    w0 = np.asarray(W0, dtype=np.float64).reshape(-1)
    w1 = np.asarray(W1, dtype=np.float64).reshape(-1)
    if w0.shape != w1.shape:
        raise InputError(
            f"closed_form_bound needs a 1-n-1 network: W0 has {w0.size} and W1 {w1.size} entries"
        )
    products = w0 * w1
    return float(beta * max(products[products > 0].sum(), -products[products < 0].sum()))


@dataclass(frozen=True)
class SplitCertificate:
    """LipSDP's split variant: the product of the certificates of consecutive subnetworks."""

    bound: float
    parts: tuple[Certificate | float, ...]  # a lone last matrix contributes its spectral norm
    beta: float


def certify_split(
    weights: Sequence[Any],
    *,
    layers_per_block: int = 2,
    form: str = "neuron",
    alpha: float | None = None,
    beta: float | None = None,
    activation: str = "tanh",
    solver: str | None = None,
    processes: int | None = None,
) -> SplitCertificate:
    """Bound ``L`` by splitting the network into subnetworks of ``layers_per_block`` weights.

    ``f = g_k o phi o ... o phi o g_1`` with each ``g_j`` a subnetwork, so
    ``L <= prod_j L(g_j) * beta^(k - 1)``: looser than :func:`certify` on the
    whole network but far cheaper for deep ones. Each block is certified by
    :func:`certify` (eq. 5-6 of the block; the default formulation, so a
    one-hidden-layer block uses the reduced one).

    ``processes``: solve the blocks' SDPs in up to this many worker processes
    (spawned, so safe with threaded BLAS and solvers); ``None`` or 1 solves
    them one after the other. The result is the same either way.
    """
    matrices = as_weight_list(weights)
    a, b = slope_sector(activation, alpha, beta)
    if not isinstance(layers_per_block, int) or isinstance(layers_per_block, bool) or layers_per_block < 2:
        raise InputError(
            f"layers_per_block must be an integer >= 2 (a block needs a hidden layer), "
            f"got {layers_per_block!r}"
        )
    if processes is not None and (
        not isinstance(processes, int) or isinstance(processes, bool) or processes < 1
    ):
        raise InputError(f"processes must be None or an integer >= 1, got {processes!r}")
    if form not in FORMS or form == "network":
        raise InputError(f"form must be 'neuron' or 'layer' for a split certificate, got {form!r}")
    solver_name = resolve_solver(solver)  # resolved here, so workers use the same solver
    blocks = [matrices[i : i + layers_per_block] for i in range(0, len(matrices), layers_per_block)]
    jobs = [block for block in blocks if len(block) > 1]
    options = {"form": form, "alpha": a, "beta": b, "solver": solver_name}
    if processes is None or processes == 1 or len(jobs) < 2:
        solved = [certify(block, **options) for block in jobs]  # type: ignore[arg-type]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(processes, len(jobs)), mp_context=context) as pool:
            futures = [pool.submit(certify, block, **options) for block in jobs]  # type: ignore[arg-type]
            solved = [future.result() for future in futures]
    parts: list[Certificate | float] = []
    results = iter(solved)
    for block in blocks:
        parts.append(float(np.linalg.norm(block[0], 2)) if len(block) == 1 else next(results))
    values = [p if isinstance(p, float) else p.bound for p in parts]
    return SplitCertificate(
        bound=float(np.prod(values) * b ** (len(blocks) - 1)), parts=tuple(parts), beta=b
    )
