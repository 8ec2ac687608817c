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

import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import cvxpy as cp
import numpy as np

from ..errors import CertificateError, InputError, SolverError
from ..validation import as_flag, as_number, as_weight_list
from . import engine, lmi, memory, proof, reduced, repair
from .activations import check_sector, get_activation
from .solvers import SOLVER_ENV_VAR, installed_solvers, resolve_solver, solve, value_of

FORMS = ("neuron", "layer", "network")
FORMULATIONS = ("auto", "reduced", "structured", "original", "engine")
# one hidden layer: auto uses the engine from this reduced-cone size on (_automatic_formulation)
ENGINE_CONE = 15
STRUCTURED_SOLVER = "CVXOPT"  # the structured form's default where installed (_default_solver)
ENGINE_SOLVER = "PYLIP-ENGINE"
DEFAULT_MARGIN = 1e-9  # the original asks for P <= -1e-9 I


class UnsoundCertificateWarning(UserWarning):
    """Warns that a LipSDP-Network (coupled T) result need not bound anything."""


@dataclass(frozen=True)
class Certificate:
    """A proven upper bound on a network's Lipschitz constant.

    Attributes:
        bound: the Lipschitz bound ``L``: ``P(L^2, T) <= 0`` (eq. 5) is proven
            for the weights as given (:mod:`pylip.proof`), unless ``verified``
            is False (only the unsound ``"network"`` form).
        squared_bound: ``L^2`` (``bound * bound`` in float64).
        T: the multiplier matrix (``N x N`` for ``N`` hidden neurons).
        form: ``"neuron"``, ``"layer"`` or ``"network"``.
        solver, status, solve_time: what the SDP solver reported.
        trivial_bound: product of the weights' spectral norms (times ``beta``
            per hidden layer), for comparison; ``bound`` never exceeds it (when
            the SDP's bound is above the float product, this is the product's
            proven value, above it by about 1e-13 relative, and the lower of
            the two proven points is returned).
        max_eigenvalue: largest float64 eigenvalue of ``P(L^2, T)`` in the
            exactly (power-of-two) rescaled coordinates of :mod:`pylip.proof`,
            which are congruent to ``P`` (same sign) and well scaled. For
            information: the proof, not this number, is the guarantee.
        repaired: True if the solver's point was changed before it could be
            proven (see ``repair``) or replaced by the trivial bound.
        solver_bound: ``sqrt`` of the ``L^2`` the solver returned.
        alpha, beta: the slope sector used (eq. 2).
        sound: False only for the coupled ``"network"`` form.
        notes: what was done beyond the solve, in words.
        verified: True when the bound is proven.
        proof_method: ``"rump"`` (floating-point safe Cholesky test),
            ``"exact"``, or ``"structure"`` (a zero layer: the network is constant).
        repair: ``""`` or what the repair changed and by how much.
        repair_change: relative size of the repair.
        proof_time: seconds spent proving (and repairing).
        iteration_limit: True if the solver stopped at its iteration limit
            (SCS's ``max_iters``): :func:`certify` then re-solves with the next
            solver and keeps the smaller proven bound.
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
    alpha: Sector
    beta: Sector
    margin: float
    layer_sizes: tuple[int, ...]
    sound: bool = True
    notes: tuple[str, ...] = field(default=())
    verified: bool = False
    proof_method: str = ""
    repair: str = ""
    repair_change: float = 0.0
    proof_time: float = 0.0
    iteration_limit: bool = False

    def prove(self, weights: Sequence[Any]) -> proof.Proof:
        """Prove again, independently of how the certificate was made, that it holds for ``weights``.

        Raises:
            CertificateError: if ``P(L^2, T) <= 0`` cannot be proven for these weights.
        """
        matrices = as_weight_list(weights, min_layers=1)
        if len(matrices) == 1:
            result = proof.prove_spectral_norm(matrices[0], self.bound) if self.bound > 0 else (
                proof.Proof(holds=not np.any(matrices[0]), method="structure", margin=0.0))
            if not result.holds:
                raise CertificateError(f"||W||_2 <= {self.bound:.6g} cannot be proven for this weight")
            return result
        if self.proof_method == "structure":
            if any(not np.any(w) for w in matrices):
                return proof.Proof(holds=True, method="structure", margin=0.0)
            raise CertificateError("the certificate (L = 0) needs a zero layer, these weights have none")
        result = proof.prove_certificate(matrices, np.diag(self.T), self.bound, self.alpha, self.beta)
        if not result.holds:
            raise CertificateError(
                f"the certificate L = {self.bound:.6g} cannot be proven for these weights: "
                "P(L^2, T) <= 0 (eq. 5) fails or is too tight for a floating-point-safe proof"
            )
        return result

    def verify(self, weights: Sequence[Any]) -> float:
        """:meth:`prove` the certificate for ``weights``; return the LMI's largest float64 eigenvalue."""
        self.prove(weights)
        if self.proof_method == "structure" or len(self.layer_sizes) == 2:
            return 0.0 if self.proof_method == "structure" else self.max_eigenvalue
        structure = lmi.network_structure(as_weight_list(weights))
        return lmi.lmi_max_eigenvalue(structure, self.T, self.squared_bound, self.alpha, self.beta)

    def summary(self) -> str:
        """One line: form, bound, the proof's verdict, trivial bound, solver and time."""
        unsound = " UNSOUND" if not self.sound else ""
        if self.verified:
            verdict = f"proven ({self.proof_method})"
            if self.repair:
                verdict += f" after a repair: {self.repair}"
        else:
            verdict = "NOT proven (checked in float64 only)"
        if any(note.startswith("trivial bound returned") for note in self.notes):
            verdict += "; the SDP's bound was above the trivial bound, which is returned"
        return (
            f"{self.form:7s}{unsound} L = {self.bound:.6g}  {verdict}  "
            f"(trivial {self.trivial_bound:.6g}; {self.solver} {self.status}, "
            f"{self.solve_time:.3f} s)"
        )


Sector = Any  # a float, or one float per hidden neuron (a numpy vector)


def slope_sector(
    activation: str | None,
    alpha: Any,
    beta: Any,
    hidden_sizes: Sequence[int] | None = None,
) -> tuple[Sector, Sector]:
    """Slope sector from an activation name, overridden by explicit alpha/beta.

    ``alpha`` and ``beta`` are each a number, one number per hidden neuron, or a
    list with one number or vector per hidden layer (``hidden_sizes`` needed for
    the last two). Sectors that are the same for every neuron come back as
    floats, others as float64 vectors of ``sum(hidden_sizes)`` entries.
    """
    base = get_activation(activation or "tanh")
    a = base.alpha if alpha is None else alpha
    b = base.beta if beta is None else beta
    if _is_number(a) and _is_number(b):
        return check_sector(_sector_number(a, "alpha"), _sector_number(b, "beta"))
    if hidden_sizes is None:
        raise InputError("per-neuron alpha and beta need the network's hidden layer sizes")
    va, vb = (_sector_vector(v, name, hidden_sizes) for v, name in ((a, "alpha"), (b, "beta")))
    if not (np.all(np.isfinite(va)) and np.all(np.isfinite(vb))):
        raise InputError("alpha and beta must be finite in every entry")
    if np.any(va > vb):
        first = int(np.argmax(va > vb))
        raise InputError(
            f"alpha must not exceed beta (eq. 2 needs alpha <= beta): neuron {first} has "
            f"alpha={va[first]}, beta={vb[first]}"
        )
    if np.all(va == va[0]) and np.all(vb == vb[0]):
        return check_sector(va[0], vb[0])
    return va, vb


def _is_number(value: Any) -> bool:
    return not isinstance(value, (list, tuple)) and np.ndim(value) == 0


def _sector_number(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise InputError(f"{name} must be a number or one number per hidden neuron, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number or one number per hidden neuron, got {value!r}") from None


def _sector_vector(value: Any, name: str, hidden_sizes: Sequence[int]) -> np.ndarray:
    """One entry per hidden neuron from a number, a flat vector, or one entry per hidden layer."""
    n_hidden = int(sum(hidden_sizes))
    if _is_number(value):
        return np.full(n_hidden, _sector_number(value, name))
    items = list(value)
    if len(items) == len(hidden_sizes) and any(not _is_number(item) for item in items):
        parts = []
        for k, (item, size) in enumerate(zip(items, hidden_sizes)):
            part = np.asarray(item, dtype=np.float64).reshape(-1)
            if part.size == 1:
                part = np.full(size, float(part[0]))
            if part.size != size:
                raise InputError(f"{name}[{k}] must have one entry per neuron of hidden layer {k} ({size}), "
                                 f"got {part.size}")
            parts.append(part)
        return np.concatenate(parts)
    try:
        if np.asarray(items).dtype.kind not in "iuf":
            raise TypeError(name)
        vector = np.asarray(items, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"{name} must hold numbers, got {value!r}") from None
    if vector.size != n_hidden:
        raise InputError(
            f"{name} must be a number, one number per hidden neuron ({n_hidden}) or one vector per "
            f"hidden layer (sizes {tuple(hidden_sizes)}), got {vector.size} entries"
        )
    return vector


def certify(
    weights: Sequence[Any],
    *,
    form: str = "neuron",
    alpha: Any = None,
    beta: Any = None,
    activation: str = "tanh",
    solver: str | None = None,
    margin: float = DEFAULT_MARGIN,
    allow_unsound: bool = False,
    formulation: str = "auto",
) -> Certificate:
    """Certify an upper bound on the Lipschitz constant of a feed-forward network.

    Solves the SDP (6) of Theorem 1 (one hidden layer) or its multi-layer form
    (LipSDP) for ``f(x) = Wl phi(... phi(W0 x + b0) ...) + bl``; biases do not
    enter the bound. A single weight matrix ``[W]`` (a linear map) is certified
    by ``||W||_2``, proven (:func:`single_layer_certificate`).

    Args:
        weights: ``[W0, ..., Wl]``, each ``n_{i+1} x n_i`` (arrays or nested lists),
            or a feed-forward ``torch.nn.Module`` (:mod:`pylip.models`), whose
            activation modules set ``alpha`` and ``beta`` (one sector per
            hidden layer where they differ).
        form: ``"neuron"`` (diagonal T), ``"layer"`` (one multiplier per layer)
            or ``"network"`` (coupled T; unsound, needs ``allow_unsound=True``).
        alpha, beta: slope sector of the activation (eq. 2); default from
            ``activation`` (tanh and ReLU [0, 1], sigmoid [0, 1/4]). Each may
            be a number, one number per hidden neuron, or a list with one
            vector (or number) per hidden layer: per-neuron sectors, e.g. the
            narrower slopes of a local bound (:mod:`pylip.local`). ``alpha``
            may be negative; ``alpha <= beta``.
        activation: a name of :mod:`pylip.activations` (``"tanh"``, ``"relu"``,
            ``"sigmoid"``, ``"leakyrelu:0.1"``, ``"elu"``, ``"softplus"``,
            ``"silu"``, ``"gelu"``, ``"hardtanh"``, ``"identity"``).
        solver: ``"CLARABEL"`` (default, or ``$PYLIP_SOLVER``), ``"SCS"``,
            ``"CVXOPT"`` or ``"MOSEK"``.
        margin: how strictly the LMI is solved. ``formulation="original"``
            solves the original's ``P <= -margin I`` (its 1e-9); the others
            solve ``P <= -margin diag(L^2 I, T)``, a relative margin that is
            the same for the weights as given and exactly rescaled, and moves
            the bound by about ``margin`` relative at any scale (``1e-9 I``
            applied to the rescaled LMI moved a twenty-layer net's bound by
            1.2 %, and applied to the weights as given a sigmoid net's by 2e-5);
            a linear neuron's multiplier (``alpha_i = beta_i``) is left out.
        allow_unsound: permit ``form="network"``.
        formulation: how the SDP is handed to the solver; every one gives the same
            bound to solver accuracy (the returned ``T`` may differ: it is not
            unique at the optimum).

            * ``"auto"`` (default): ``"engine"`` for forms ``"neuron"``/``"layer"``
              with no solver named (argument or ``$PYLIP_SOLVER``), for two or
              more hidden layers with one sector, and for one hidden layer whose
              reduced PSD cone ``min(n_x, n_h) + min(n_y, n_h)`` has at least
              15 rows or whose sectors are per neuron (measured faster, and
              tighter with neurons fixed on); else ``"reduced"`` for one hidden
              layer with a diagonal ``T``; else ``"structured"``.
            * ``"engine"``: pylip's own primal-dual interior-point method on
              the LMI's structure (:mod:`pylip.engine`; one hidden layer:
              :mod:`pylip.lipsdp.one_layer`), forms ``"neuron"`` and ``"layer"``,
              any depth, per-neuron sectors for one hidden layer; ``solver``
              must not be given.
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
    weights, alpha, beta = _model_weights_and_sector(weights, alpha, beta)
    matrices = as_weight_list(weights, min_layers=1)
    if len(matrices) == 1:
        return single_layer_certificate(matrices[0], form=form, margin=margin)
    a, b = slope_sector(activation, alpha, beta, [w.shape[0] for w in matrices[:-1]])
    per_neuron = np.ndim(a) > 0
    if form not in FORMS:
        raise InputError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
    allow_unsound = as_flag(allow_unsound, "allow_unsound")
    if form == "network" and not allow_unsound:
        raise InputError(
            "form='network' (LipSDP-Network, coupled T) does not give a valid Lipschitz bound "
            "(Pauli et al. 2020, Section II-C: see `pylip counterexample`); use form='neuron', "
            "or pass allow_unsound=True to compute it anyway"
        )
    if not 0.0 <= as_number(margin, "margin") < 1.0:
        raise InputError(f"margin must be a number in [0, 1), got {margin}")
    if formulation not in FORMULATIONS:
        raise InputError(f"formulation must be one of {', '.join(FORMULATIONS)}, got {formulation!r}")
    if form == "network" and per_neuron:
        raise InputError("per-neuron alpha and beta need a diagonal T: use form='neuron' or 'layer'")
    if formulation == "original" and (form != "neuron" or len(matrices) != 2 or np.any(np.asarray(a) != 0.0)):
        raise InputError(
            "formulation='original' is calculate_Lipschitz.m's SDP: one hidden layer, form='neuron', "
            "alpha = 0; use formulation='structured' for anything else"
        )
    reducible = len(matrices) == 2 and form in reduced.REDUCED_FORMS
    engine_sector = _engine_takes_sector(a, b, hidden_layers=len(matrices) - 1)
    engine_backs_up = (
        formulation == "auto" and form in engine.ENGINE_FORMS and engine_sector and not _solver_named(solver)
    )
    if formulation == "auto":
        formulation = _automatic_formulation(matrices, form, solver, reducible, engine_sector, per_neuron)
    if formulation == "engine":
        if form not in engine.ENGINE_FORMS:
            raise InputError(f"formulation='engine' solves form 'neuron' or 'layer', got form={form!r}")
        if not engine_sector:
            raise InputError(
                "formulation='engine' takes one sector alpha < beta (beta > 0) for every neuron, or "
                "per-neuron sectors; deeper than one hidden layer, a neuron with alpha_i = beta_i (a "
                "linear neuron) needs formulation='structured', as does one degenerate sector alpha = beta"
            )
        if solver is not None:
            raise InputError(
                f"formulation='engine' is pylip's own solver; leave solver unset (got {solver!r}) or "
                "use formulation='structured' to name a cvxpy solver"
            )
    if formulation == "reduced" and not reducible:
        raise InputError(
            "formulation='reduced' needs one hidden layer and form='neuron' or 'layer' "
            f"(got {len(matrices) - 1} hidden layers, form={form!r}); use formulation='structured'"
        )
    default = _default_solver(formulation, solver)
    solver_name = ENGINE_SOLVER if formulation == "engine" else resolve_solver(default)
    if any(not np.any(w) for w in matrices):
        return _constant_network_certificate(lmi.network_structure(matrices), matrices, form, a, b, margin)
    sizes = [matrices[0].shape[1], *(w.shape[0] for w in matrices)]
    memory.require_certificate_fits(formulation, sizes, solver_name)  # before anything is built
    _require_representable_bound(matrices, np.maximum(np.abs(a), np.abs(b)))
    structure = lmi.network_structure(matrices)
    if form == "network":
        warnings.warn(
            "LipSDP-Network (coupled T) is not a valid Lipschitz bound in general "
            "(Pauli et al. 2020, Section II-C)",
            UnsoundCertificateWarning,
            stacklevel=2,
        )
    certificate = _first_solved_certificate(formulation, form, matrices, structure, a, b, margin, solver_name)
    if engine_backs_up and formulation != "engine" and certificate.status != "optimal":
        certificate = _engine_if_tighter(certificate, form, matrices, structure, a, b, margin)
    reason = _why_solve_again(certificate, solver_name)
    if form == "network" or not reason:
        return certificate
    # the solver's point was too far off to be repaired near the optimum, or no optimum
    # at all (a first-order solver's T, say): re-solve with the next solver of the stated order
    fallbacks = _fallback_certificates(formulation, form, matrices, structure, a, b, margin, solver_name)
    for fallback, again in fallbacks:
        if again.bound < certificate.bound:
            return replace(again, notes=(*again.notes, f"re-solved with {fallback}: {reason}"))
    note = f"{reason}; no other solver found a smaller bound"
    return replace(certificate, notes=(*certificate.notes, note))


def _solver_named(solver: str | None) -> bool:
    """Whether a cvxpy solver was asked for, by argument or by ``$PYLIP_SOLVER``."""
    return solver is not None or bool(os.environ.get(SOLVER_ENV_VAR))


def _engine_if_tighter(
    certificate: Certificate,
    form: str,
    matrices: list[np.ndarray],
    structure: lmi.NetworkStructure,
    alpha: Sector,
    beta: Sector,
    margin: float,
) -> Certificate:
    """The engine's certificate where it is below an inexact one ``formulation="auto"`` chose.

    A solver's ``optimal_inaccurate`` point may sit above the optimum by more
    than the stated 1e-6: on 1-500-1 (a two-row reduced cone, so Clarabel's)
    1e-5 above it; the engine's took 0.1 s more.
    """
    exact = _certificate_if_solved("engine", form, matrices, structure, alpha, beta, margin, ENGINE_SOLVER)
    if exact is None or exact.bound >= certificate.bound:
        return certificate
    note = (f"{certificate.solver} returned {certificate.status!r} (L = {certificate.bound:.8g}): "
            "solved by the engine")
    return replace(exact, notes=(*exact.notes, note))


def _why_solve_again(certificate: Certificate, solver_name: str) -> str:
    """Why another solver should try (``""``: no reason): a large repair, or the iteration limit."""
    if certificate.iteration_limit:
        return f"{solver_name} stopped at its iteration limit"
    if _repair_size(certificate) > REPAIR_TOLERANCE:
        return (
            f"{solver_name}'s point needed a repair of {_repair_size(certificate):.2e} (relative), "
            f"more than {REPAIR_TOLERANCE:g}"
        )
    return ""


def single_layer_certificate(weight: np.ndarray, *, form: str = "neuron", margin: float = DEFAULT_MARGIN
                             ) -> Certificate:
    """The certificate of a linear map ``x -> W x + b``: ``L = ||W||_2``, proven (no SDP).

    ``L`` is the float64 spectral norm raised by the least relative step of a
    short ladder (``1e-15`` upwards) for which ``L^2 I - W'W > 0`` is proven
    (:func:`pylip.proof.prove_spectral_norm`).
    """
    if form not in FORMS:
        raise InputError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
    start = time.perf_counter()
    try:
        bound, result = proof.proven_spectral_norm(weight)
    except ValueError as exc:
        raise CertificateError(f"single-layer net: {exc}") from None
    norm = float(np.linalg.norm(weight, 2))
    top = -result.margin
    return Certificate(
        bound=bound, squared_bound=_finite_square(bound), T=np.zeros((0, 0)), form=form, solver="none",
        status="exact", solve_time=0.0, trivial_bound=max(norm, bound), max_eigenvalue=top,
        repaired=False, solver_bound=norm, alpha=0.0, beta=1.0, margin=margin,
        layer_sizes=(weight.shape[1], weight.shape[0]),
        notes=("a single layer (linear map): L = ||W||_2, proven without an SDP",),
        verified=True, proof_method=result.method, proof_time=time.perf_counter() - start,
    )


def _model_weights_and_sector(
    weights: Any, alpha: Any, beta: Any
) -> tuple[Any, Any, Any]:
    """A torch model's weights and its sectors, per layer where they differ (:mod:`pylip.models`)."""
    from ..models import is_torch_module, network_from_torch

    if not is_torch_module(weights):
        return weights, alpha, beta
    if alpha is not None or beta is not None:
        raise InputError(
            "alpha and beta come from the model's activation modules; to certify in another sector, "
            "pass the weights (pylip.models.network_from_torch(model).weights) with alpha and beta"
        )
    network = network_from_torch(weights)
    a, b = network.certify_sector()
    return network.weights, a, b


REPAIR_TOLERANCE = 1e-6  # a repair larger than this (relative) means the solver's point was poor


def _first_solved_certificate(
    formulation: str,
    form: str,
    matrices: list[np.ndarray],
    structure: lmi.NetworkStructure,
    alpha: Sector,
    beta: Sector,
    margin: float,
    solver_name: str,
) -> Certificate:
    """The certificate from ``solver_name``, or, where it fails, from the next solver of the stated order.

    The SDP (6) is always feasible (large ``L``, ``T = I``), so a solver's failure
    is the solver's, not the problem's: the others are tried before giving up.
    """
    try:
        return _solved_certificate(formulation, form, matrices, structure, alpha, beta, margin, solver_name)
    except (SolverError, CertificateError) as first_error:
        fallbacks = _fallback_certificates(
            formulation, form, matrices, structure, alpha, beta, margin, solver_name
        )
        for fallback, again in fallbacks:
            return replace(again, notes=(*again.notes, f"{solver_name} failed ({first_error}); "
                                         f"solved with {fallback}"))
        raise


def _fallback_certificates(
    formulation: str,
    form: str,
    matrices: list[np.ndarray],
    structure: lmi.NetworkStructure,
    alpha: Sector,
    beta: Sector,
    margin: float,
    tried: str,
) -> Iterator[tuple[str, Certificate]]:
    """``(solver, certificate)`` from each other solver of the stated order that solves (6), lazily.

    The engine's fallback is the structured formulation with the cvxpy solvers.
    """
    fallback_formulation = "structured" if formulation == "engine" else formulation
    for fallback in fallback_solvers(tried):
        solved = _certificate_if_solved(
            fallback_formulation, form, matrices, structure, alpha, beta, margin, fallback
        )
        if solved is not None:
            yield fallback, solved


def _certificate_if_solved(
    formulation: str,
    form: str,
    matrices: list[np.ndarray],
    structure: lmi.NetworkStructure,
    alpha: Sector,
    beta: Sector,
    margin: float,
    solver_name: str,
) -> Certificate | None:
    """:func:`_solved_certificate` for a second attempt; ``None`` where it fails or would not fit.

    The memory estimate comes first: the engine's fallback is a larger SDP (10-128x8-10
    would have Clarabel ask for 32 GB and abort the process).
    """
    sizes = [matrices[0].shape[1], *(w.shape[0] for w in matrices)]
    try:
        memory.require_certificate_fits(formulation, sizes, solver_name)
    except InputError:
        return None
    try:
        return _solved_certificate(formulation, form, matrices, structure, alpha, beta, margin, solver_name)
    except (SolverError, CertificateError):
        return None


def _repair_size(certificate: Certificate) -> float:
    """How far the returned bound is above the solver's own (relative): repair or trivial cap."""
    if certificate.solver_bound <= 0.0:
        return 0.0 if certificate.bound == 0.0 else math.inf
    return max(certificate.bound / certificate.solver_bound - 1.0, 0.0)
FALLBACK_ORDER = ("CLARABEL", "CVXOPT", "SCS")


def fallback_solvers(tried: str) -> list[str]:
    """The installed open solvers other than ``tried``, in pylip's stated order (interior point first)."""
    installed = cp.installed_solvers()
    return [name for name in FALLBACK_ORDER if name != tried and name in installed]


def _default_solver(formulation: str, solver: str | None) -> str | None:
    """The solver when none is named: CVXOPT for the structured form where it is installed.

    Measured on the structured form (``bench/engine.py``, 2 loaded cores):
    2-10-30-20-2 CVXOPT 1.6 s, SCS 3.8 s, Clarabel 22 s; 10-48-48-5 CVXOPT
    4.8 s, SCS 13 s, Clarabel 152-182 s (issue 11). Elsewhere
    (``$PYLIP_SOLVER`` or Clarabel) as before.
    """
    if solver is not None or os.environ.get(SOLVER_ENV_VAR) or formulation != "structured":
        return solver
    return STRUCTURED_SOLVER if STRUCTURED_SOLVER in installed_solvers() else None


def _engine_takes_sector(alpha: Sector, beta: Sector, *, hidden_layers: int) -> bool:
    """One sector ``alpha < beta`` with ``beta > 0``, or per-neuron sectors (``alpha_i <= beta_i``, checked).

    A neuron with ``alpha_i = beta_i`` is linear (a ReLU fixed on in a local
    bound): its optimal multiplier is unbounded. The one-hidden-layer solver
    (:mod:`pylip.lipsdp.one_layer`) handles it; the deep engine's interior-point
    method needs the dual's interior, which such a neuron removes, so deeper
    nets need every ``alpha_i < beta_i``.
    """
    if np.ndim(alpha) > 0 or np.ndim(beta) > 0:
        return hidden_layers == 1 or bool(np.all(np.asarray(alpha) < np.asarray(beta)))
    return float(alpha) < float(beta) and float(beta) > 0.0


def _automatic_formulation(
    matrices: list[np.ndarray], form: str, solver: str | None, reducible: bool, engine_sector: bool,
    per_neuron: bool = False,
) -> str:
    """``formulation="auto"``: the fastest exact one (measured in ``bench/engine.py``).

    One hidden layer (:mod:`pylip.lipsdp.one_layer` against the reduced form with
    Clarabel, whose PSD cone has ``min(n_x, n_h) + min(n_y, n_h)`` rows; certify's
    CPU time, 2 loaded cores, median of 5): below a cone of 15 the reduced form is
    5-30 ms faster (1-10-1 10 ms against 18 ms, 8-64-4 20 against 26); from 15 on
    the engine is faster in the neuron form (10-50-5, cone 15: 22 ms against 29;
    10-100-10 38 against 120; 30-100-10 46 against 1970; 784-50-10 0.12 s against
    4.5 s) and as fast in the layer form (10-100-10 51 against 52 ms). So the
    engine from a cone of ``ENGINE_CONE`` rows on, and for per-neuron sectors at
    every size: with neurons fixed on (``[1, 1]``, local ReLU bounds) its bounds are
    2e-5 to 6e-5 tighter (its finite multipliers for them are chosen against the
    proof's rounding) and 30-100-10 took 0.07 s against 61 s.
    """
    named = _solver_named(solver)
    if reducible:
        n_h, n_x, n_y = matrices[0].shape[0], matrices[0].shape[1], matrices[1].shape[0]
        cone = min(n_x, n_h) + min(n_y, n_h)
        wide = (cone >= ENGINE_CONE or per_neuron) and form in engine.ENGINE_FORMS and engine_sector
        return "engine" if wide and not named else "reduced"
    if len(matrices) > 2 and form in engine.ENGINE_FORMS and engine_sector and not named:
        return "engine"
    return "structured"


# relative duality gap of the engine for the many SDPs that sharpen a proven global bound
AUXILIARY_TOLERANCE = 1e-6


def _engine_solves(
    matrices: list[np.ndarray], alpha: Any, beta: Any, activation: str, solver: str | None
) -> bool:
    """Whether :func:`certify` (form ``"neuron"``, ``formulation="auto"``) would solve with the engine."""
    if len(matrices) < 2 or any(not np.any(w) for w in matrices):
        return False
    a, b = slope_sector(activation, alpha, beta, [w.shape[0] for w in matrices[:-1]])
    reducible = len(matrices) == 2
    takes = _engine_takes_sector(a, b, hidden_layers=len(matrices) - 1)
    chosen = _automatic_formulation(matrices, "neuron", solver, reducible, takes, per_neuron=np.ndim(a) > 0)
    return chosen == "engine"


def _engine_only_certificate(
    matrices: list[np.ndarray], alpha: Any, beta: Any, activation: str, tol: float = AUXILIARY_TOLERANCE
) -> Certificate:
    """The engine's certificate at relative gap ``tol``, proven; no other solver is tried.

    For the many SDPs that sharpen an already proven global certificate (class
    pairs, local balls): their callers fall back on the global ``T``, which is
    far cheaper than :func:`certify`'s fallback to the cvxpy solvers (on a
    64-128-128-10 local ball the engine stalled at a gap of 4.2e-7 after 200
    steps and Clarabel then took minutes). At ``tol = 1e-6`` the same ball took
    86 steps (3.4 s); the bound is looser by about ``tol`` relative and proven
    all the same. Raises :class:`SolverError` where the engine stalls.
    """
    a, b = slope_sector(activation, alpha, beta, [w.shape[0] for w in matrices[:-1]])
    sizes = [matrices[0].shape[1], *(w.shape[0] for w in matrices)]
    memory.require_certificate_fits("engine", sizes, ENGINE_SOLVER)
    _require_representable_bound(matrices, np.maximum(np.abs(a), np.abs(b)))
    structure = lmi.network_structure(matrices)
    return _engine_certificate("neuron", matrices, structure, a, b, DEFAULT_MARGIN, tol=tol)


def _engine_certificate(
    form: str,
    matrices: list[np.ndarray],
    structure: lmi.NetworkStructure,
    alpha: Sector,
    beta: Sector,
    margin: float,
    tol: float = engine.DEFAULT_TOLERANCE,
) -> Certificate:
    """Solve (6) with :mod:`pylip.engine` on exactly rescaled weights; prove it as any solver's point.

    The margin is relative, ``P <= -margin diag(L^2 I, T)``: the same condition
    for the weights as given and rescaled (see :func:`certify`).
    """
    scaling = _Normalization(matrices, fold_beta=np.maximum(np.abs(alpha), np.abs(beta)))
    a, b = scaling.sector(alpha, beta)
    result = engine.solve_certificate_sdp(scaling.weights, a, b, form=form, margin=margin, tol=tol)
    T = scaling.multiplier(np.diag(result.t))
    certificate = _checked_certificate(
        structure, T, scaling.squared_bound(result.squared_bound), alpha, beta, form=form,
        solver=ENGINE_SOLVER, status="optimal" if result.converged else "optimal_inaccurate",
        solve_time=result.solve_time, margin=margin, weights=matrices,
    )
    if result.converged:
        return certificate
    relative = result.gap / result.squared_bound
    note = (f"the engine stopped at rounding with a relative gap of {relative:.1e} in L^2 to the SDP's "
            f"optimum (the bound is proven; the optimum is at most {relative / 2:.1e} lower)")
    return replace(certificate, notes=(*certificate.notes, note))


def _solved_certificate(
    formulation: str,
    form: str,
    matrices: list[np.ndarray],
    structure: lmi.NetworkStructure,
    alpha: Sector,
    beta: Sector,
    margin: float,
    solver_name: str,
) -> Certificate:
    """Solve the SDP (6) in ``formulation`` with ``solver_name`` and prove (repairing if need be)."""
    if formulation == "engine":
        return _engine_certificate(form, matrices, structure, alpha, beta, margin)
    problem, squared, multiplier_value, scaling = _certificate_problem(
        formulation, form, matrices, structure, alpha, beta, margin
    )
    info = solve(problem, solver_name, what=f"LipSDP-{form} certificate SDP")
    T, solver_squared = multiplier_value(), float(value_of(squared))
    if scaling is not None:
        T, solver_squared = scaling.multiplier(T), scaling.squared_bound(solver_squared)
    certificate = _checked_certificate(
        structure, T, solver_squared, alpha, beta, form=form, solver=info.solver, status=info.status,
        solve_time=info.solve_time, margin=margin, weights=matrices,
    )
    return replace(certificate, iteration_limit=info.iteration_limit)


def _require_representable_bound(matrices: Sequence[np.ndarray], beta: float) -> None:
    """Refuse weights whose bound ``L`` or ``L^2`` would leave float64's range."""
    log2_norms = [math.log2(max(float(np.linalg.norm(w, 2)), np.finfo(np.float64).tiny)) for w in matrices]
    log2_bound = sum(log2_norms) + sum(math.log2(max(g, 1e-300)) for g in lmi.layer_slope_bounds(
        matrices, 0.0, beta))
    if not -500 < log2_bound < 500:
        raise InputError(
            f"the weights' scale puts the Lipschitz bound near 2^{log2_bound:.0f} (product of the "
            "spectral norms), so L^2 would leave float64's range; rescale the weights by powers of "
            "two (exact: L scales by the product of the factors) to bring every layer's norm near 1"
        )


def _constant_network_certificate(
    structure: lmi.NetworkStructure,
    matrices: Sequence[np.ndarray],
    form: str,
    alpha: Sector,
    beta: Sector,
    margin: float,
) -> Certificate:
    """``L = 0``, without a solver: a zero weight matrix makes the network constant."""
    zero = next(k for k, w in enumerate(matrices) if not np.any(w))
    n = structure.n_hidden
    return Certificate(
        bound=0.0, squared_bound=0.0, T=np.zeros((n, n)), form=form, solver="none", status="exact",
        solve_time=0.0, trivial_bound=0.0, max_eigenvalue=0.0, repaired=False, solver_bound=0.0,
        alpha=alpha, beta=beta, margin=margin,
        layer_sizes=(structure.n_in, *structure.hidden_sizes, matrices[-1].shape[0]),
        notes=(f"W{zero} is zero, so the network is constant: L = 0 exactly (no SDP solved)",),
        verified=True, proof_method="structure",
    )


def _certificate_problem(
    formulation: str,
    form: str,
    matrices: list[np.ndarray],
    structure: lmi.NetworkStructure,
    alpha: Sector,
    beta: Sector,
    margin: float,
) -> tuple[cp.Problem, cp.Variable, Callable[[], np.ndarray], _Normalization | None]:
    """The SDP (6) in the chosen formulation: problem, ``L^2``, ``T`` getter, and the scaling used."""
    if formulation == "reduced":
        scaling = _Normalization(matrices, fold_beta=np.maximum(np.abs(alpha), np.abs(beta)))
        a, b = scaling.sector(alpha, beta)
        problem, squared, multiplier_value = reduced.reduced_certificate_problem(
            scaling.weights[0], scaling.weights[1], form=form, alpha=a, beta=b, margin=margin
        )
        return problem, squared, multiplier_value, scaling
    squared = cp.Variable(name="L2")
    if formulation == "original":
        T_expr, multiplier_value = _multiplier(form, structure, nonneg=False)
        P = lmi.certificate_matrix(structure, T_expr, squared, alpha, beta)
        scaling_or_none = None
    else:
        scaling_or_none = _Normalization(matrices, fold_beta=np.maximum(np.abs(alpha), np.abs(beta)))
        normalized = lmi.network_structure(scaling_or_none.weights)
        T_expr, multiplier_value = _multiplier(form, normalized)
        a, b = scaling_or_none.sector(alpha, beta)
        P = lmi.sparse_certificate_matrix(normalized, T_expr, squared, a, b)
        # the relative margin P <= -margin diag(L^2 I, T), none on the Schur form's output block
        # (so exactly P + margin diag(L^2 I, T) <= 0): the same for the weights as given; none on
        # linear neurons' multipliers (alpha_i = beta_i: engine._margin_free_sector)
        n_in, n_hidden = structure.n_in, structure.n_hidden
        n_out = P.shape[0] - n_in - n_hidden
        free = np.broadcast_to(np.asarray(alpha) != np.asarray(beta), (n_hidden,)).astype(np.float64)
        scale = cp.bmat([
            [squared * np.eye(n_in), np.zeros((n_in, n_hidden + n_out))],
            [np.zeros((n_hidden, n_in)), T_expr @ np.diag(free), np.zeros((n_hidden, n_out))],
            [np.zeros((n_out, n_in + n_hidden + n_out))],
        ])
        strict = 0.5 * (P + P.T) + margin * scale
        return cp.Problem(cp.Minimize(squared), [strict << 0]), squared, multiplier_value, scaling_or_none
    problem = cp.Problem(cp.Minimize(squared), [0.5 * (P + P.T) << -margin * np.eye(P.shape[0])])
    return problem, squared, multiplier_value, scaling_or_none


class _Normalization:
    """Solve (6) for weights scaled to about unit spectral norm, then map back exactly.

    With ``W_k = s_k V_k``, ``d_k = s_0 ... s_{k-1}`` on hidden layer ``k`` and
    ``S = s_0 ... s_l``, the congruence ``D P_W(L^2, T) D = S^2 P_V(L^2 / S^2,
    Delta T Delta / S^2)`` (``D = blkdiag(I, d_1 I, ..., d_l I)``) holds for
    every slope sector, so ``L(W) = S L(V)`` and ``T_W = S^2 Delta^-1 T_V
    Delta^-1``. Each ``s_k`` is the power of two nearest ``||W_k||_2``, so the
    scaling and its inverse are exact in floating point. Deep or large-weight
    networks (``L^2`` of 1e10) thus reach the solver well scaled; the result is
    proven for the original weights.

    ``fold_beta``: a sector ``[alpha, beta]`` is the sector ``[alpha / beta, 1]``
    of the weights ``beta W_k`` (``k < l``): ``phi(W x) = psi(beta W x)`` with
    ``psi(y) = phi(y / beta)``, and the slope restriction (4) is the same
    quadratic constraint, so ``P`` and ``T`` do not change. Folding ``beta``
    into the scales keeps a sigmoid's ``beta^l`` out of the solver's ``L^2``.
    """

    def __init__(self, weights: Sequence[np.ndarray], fold_beta: Any = 1.0) -> None:
        largest = float(np.max(np.abs(fold_beta)))  # per-neuron sectors: one scalar fold for all
        self.fold = largest if largest > 0 else 1.0
        folded = [self.fold * w for w in weights[:-1]] + [weights[-1]]
        self.scales = [proof.power_of_two_scale_near_norm(w) for w in folded]
        self.weights = [w / s for w, s in zip(folded, self.scales)]
        self.total = float(np.prod(self.scales))
        prefix = np.cumprod(self.scales[:-1])  # d_1 .. d_l
        self.hidden_scale = np.repeat(prefix, [w.shape[0] for w in weights[:-1]])

    def sector(self, alpha: Any, beta: Any) -> tuple[Any, Any]:
        """The sector the solver sees for the scaled weights."""
        return alpha / self.fold, beta / self.fold

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
    alpha: Sector,
    beta: Sector,
    *,
    form: str,
    solver: str,
    status: str,
    solve_time: float,
    margin: float,
    weights: Sequence[np.ndarray],
) -> Certificate:
    """Prove the solver's point, repairing it minimally first if need be (:mod:`pylip.repair`).

    The proof (:func:`pylip.proof.prove_certificate`) is made at ``bound**2`` of
    the float ``bound`` that is returned, for the weights as given. A bound
    above the trivial one is replaced by the trivial bound, proven
    (:func:`trivial_certificate_point`). The coupled ``"network"`` form has
    no valid certificate to prove: it is checked in float64 only and marked
    ``verified=False``.
    """
    start = time.perf_counter()
    solver_bound = lmi.sqrt_up(max(solver_squared, 0.0))
    trivial = lmi.trivial_bound(weights, beta, alpha)
    if form == "network":
        return _float_checked_network_certificate(
            structure, T, solver_squared, alpha, beta, solver=solver, status=status,
            solve_time=solve_time, margin=margin, weights=weights, trivial=trivial,
        )
    t = np.maximum(np.diag(T), 0.0)
    notes: list[str] = []
    try:
        point = repair.secure_bound(weights, t, solver_bound, alpha, beta)
    except CertificateError as exc:
        raise CertificateError(
            f"{solver} returned a multiplier T for which no Lipschitz bound can be proven "
            f"({exc}); try another solver"
        ) from None
    reported_trivial = trivial
    if point.bound > trivial:
        point, reported_trivial = _capped_at_trivial(point, trivial, weights, alpha, beta, notes)
    if point.repair:
        notes.append(f"repaired: {point.repair}")
    bound = point.bound
    T_out = np.diag(point.t)
    top = point.max_eigenvalue()
    return Certificate(
        bound=bound,
        squared_bound=_finite_square(bound),
        T=T_out,
        form=form,
        solver=solver,
        status=status,
        solve_time=solve_time,
        trivial_bound=reported_trivial,
        max_eigenvalue=top,
        repaired=bool(point.repair) or bool(notes),
        solver_bound=float(np.sqrt(max(solver_squared, 0.0))),
        alpha=alpha,
        beta=beta,
        margin=margin,
        layer_sizes=(structure.n_in, *structure.hidden_sizes, weights[-1].shape[0]),
        sound=True,
        notes=tuple(notes),
        verified=True,
        proof_method=point.proof.method,
        repair=point.repair,
        repair_change=point.change,
        proof_time=time.perf_counter() - start,
    )


def _capped_at_trivial(
    point: repair.ProvenPoint,
    trivial: float,
    weights: Sequence[np.ndarray],
    alpha: Any,
    beta: Any,
    notes: list[str],
) -> tuple[repair.ProvenPoint, float]:
    """The lower of the SDP's proven point and the proven trivial point, and the trivial value to report.

    The float product of spectral norms is not itself proven; its proven
    point (:func:`trivial_certificate_point`) lies about 1e-13 relative above
    it. An SDP bound between the two is kept, and the proven trivial value is
    reported, so ``bound <= trivial_bound`` holds whenever the trivial point
    can be proven (otherwise a note says so).
    """
    capped = trivial_certificate_point(weights, alpha, beta)
    if capped is None:
        notes.append(
            f"the proven bound {point.bound:.6g} is above the float product of spectral norms "
            f"{trivial:.6g}, which could not be proven"
        )
        return point, trivial
    if capped.bound < point.bound:
        notes.append(
            f"trivial bound returned (product of spectral norms, proven): the SDP's bound "
            f"{point.bound:.6g} exceeded it"
        )
        return capped, capped.bound
    return point, capped.bound


def _finite_square(bound: float) -> float:
    squared = bound * bound
    if not np.isfinite(squared):
        raise InputError(
            f"the Lipschitz bound {bound:.3e} squared overflows float64; scale the weights down by a "
            "power of two (exact) and the bound up by the same factor"
        )
    return squared


def trivial_certificate_point(
    weights: Sequence[np.ndarray], alpha: Any, beta: Any
) -> repair.ProvenPoint | None:
    """A proven LipSDP-Layer point at (just above) the trivial bound.

    With ``w_k = ||W_k||_2``, ``g_k`` the largest ``|slope|`` of hidden layer
    ``k`` (``beta`` for a sector ``[0, beta]``), ``lambda_l = w_l^2`` and
    ``lambda_k = g_{k+1}^2 w_{k+1}^2 lambda_{k+1}``, Young's inequality
    ``2 g lambda x' W u <= lambda |x|^2 + lambda g^2 w^2 |u|^2`` on each cross
    term of (5) gives ``P <= 0`` at ``L^2 = prod g_k^2 prod w_k^2`` for
    ``alpha = 0``. The multipliers and ``L`` are raised slightly so that the
    point is strictly feasible and can be proven. Other sectors (per neuron,
    negative ``alpha``) are tried the same way: the proof decides. Returns
    ``None`` when it fails.
    """
    slopes = lmi.layer_slope_bounds(weights, alpha, beta)
    if min(slopes) <= 0.0:
        return None
    norms = [float(np.linalg.norm(w, 2)) for w in weights]
    if min(norms) == 0.0:
        return None
    for relative in (1e-13, 1e-11, 1e-9):  # the least slack that can be proven
        slack = 1.0 + relative
        lam = [0.0] * (len(weights) - 1)
        lam[-1] = norms[-1] ** 2 * slack
        for k in range(len(weights) - 3, -1, -1):
            lam[k] = slopes[k + 1] ** 2 * norms[k + 1] ** 2 * lam[k + 1] * slack
        squared = slopes[0] ** 2 * norms[0] ** 2 * lam[0] * slack
        t = np.repeat(lam, [w.shape[0] for w in weights[:-1]])
        try:
            return repair.secure_bound(weights, t, lmi.sqrt_up(squared), alpha, beta, scale_multiplier=False)
        except CertificateError:
            continue
    return None


def _float_checked_network_certificate(
    structure: lmi.NetworkStructure,
    T: np.ndarray,
    solver_squared: float,
    alpha: Sector,
    beta: Sector,
    *,
    solver: str,
    status: str,
    solve_time: float,
    margin: float,
    weights: Sequence[np.ndarray],
    trivial: float,
) -> Certificate:
    """LipSDP-Network's coupled ``T``: raise ``L^2`` to its float64 minimum for ``T``; not proven."""
    squared = max(solver_squared, 0.0)
    top = lmi.lmi_max_eigenvalue(structure, T, squared, alpha, beta)
    repaired = False
    if top > 0.0:
        target = lmi.minimal_squared_bound(structure, T, alpha, beta)
        if not np.isfinite(target):
            raise CertificateError(
                f"{solver} returned a multiplier T for which no Lipschitz bound can be certified; "
                "try another solver"
            )
        squared, repaired = target * (1 + 1e-10), True
        top = lmi.lmi_max_eigenvalue(structure, T, squared, alpha, beta)
    bound = lmi.sqrt_up(squared)
    return Certificate(
        bound=bound, squared_bound=bound * bound, T=T, form="network", solver=solver, status=status,
        solve_time=solve_time, trivial_bound=trivial, max_eigenvalue=top, repaired=repaired,
        solver_bound=float(np.sqrt(squared)), alpha=alpha, beta=beta, margin=margin,
        layer_sizes=(structure.n_in, *structure.hidden_sizes, weights[-1].shape[0]), sound=False,
        notes=("LipSDP-Network is not a valid bound (Section II-C): checked in float64, not proven",),
    )


def closed_form_bound(W0: Any, W1: Any, beta: float = 1.0) -> float:
    """The diagonal-T bound of a 1-n_h-1 network in closed form.

    For one input and one output the products ``c_i = w1_i w0_i`` determine the
    network's slope ``sum_i c_i s_i`` with ``s_i`` in ``[0, beta]``, so the
    certificate (6) equals ``beta * max(sum of positive c_i, -sum of negative c_i)``.
    Used as a fast path for the logging certificates of the examples.
    """
    first, last = as_weight_list([W0, W1], "[W0, W1]")
    if first.shape[1] != 1 or last.shape[0] != 1:
        raise InputError(
            f"closed_form_bound needs a 1-n-1 network (W0 n x 1, W1 1 x n), got W0 {first.shape} and "
            f"W1 {last.shape}; use pylip.certify for other sizes"
        )
    beta = as_number(beta, "beta")
    if beta <= 0:
        raise InputError(f"beta must be > 0 (the activation's largest slope), got {beta}")
    products = first.reshape(-1) * last.reshape(-1)
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
    alpha: Any = None,
    beta: Any = None,
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
        solved = [certify(block, **options) for block in jobs]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(processes, len(jobs)), mp_context=context) as pool:
            futures = [pool.submit(certify, block, **options) for block in jobs]
            solved = [future.result() for future in futures]
    parts: list[Certificate | float] = []
    results = iter(solved)
    for block in blocks:
        parts.append(float(np.linalg.norm(block[0], 2)) if len(block) == 1 else next(results))
    values = [p if isinstance(p, float) else p.bound for p in parts]
    return SplitCertificate(
        bound=float(np.prod(values) * b ** (len(blocks) - 1)), parts=tuple(parts), beta=b
    )
