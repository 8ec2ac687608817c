"""The dual interior-point Lipschitz step (pylip.fast_step) against the Clarabel SDP (pylip.admm)."""

from __future__ import annotations

import numpy as np
import pytest

import pylip
from pylip.admm.fast_step import solve_step_dual
from pylip.admm.step import LipschitzStep, lmi7_matrix
from pylip.errors import InputError
from pylip.lipsdp.certificate import DEFAULT_MARGIN
from pylip.lipsdp.proof import prove_certificate

RHO = 2.0


def step_data(n_x, n_h, n_y, seed):
    rng = np.random.default_rng(seed)
    W0 = rng.standard_normal((n_h, n_x)) / np.sqrt(n_x)
    W1 = rng.standard_normal((n_y, n_h)) / np.sqrt(n_h)
    Y0 = 0.1 * rng.standard_normal((n_h, n_x))
    Y1 = 0.1 * rng.standard_normal((n_y, n_h))
    t = rng.uniform(0.5, 2.0, n_h)
    return W0, W1, Y0, Y1, t


def compare(dims, seed, mode, beta, setting):
    """Solve one step both ways; ``setting`` is ``mu/rho`` (regularize) or ``L_des`` / trivial bound."""
    n_x, n_h, n_y = dims
    W0, W1, Y0, Y1, t = step_data(n_x, n_h, n_y, seed)
    G0, G1 = W0 + Y0 / RHO, W1 + Y1 / RHO
    step = LipschitzStep(n_x, n_h, n_y, np.diag(t), mode=mode, beta=beta, fast=False, solver="CLARABEL")
    if mode == "regularize":
        reference = step.solve(W0, W1, Y0, Y1, rho=RHO, mu=setting * RHO)
        fast = solve_step_dual(G0, G1, t, mode=mode, beta=beta, mu_over_rho=setting, margin=DEFAULT_MARGIN)
        mu_over_rho = setting
    else:
        L_des = setting * beta * np.linalg.norm(G0, 2) * np.linalg.norm(G1, 2)
        reference = step.solve(W0, W1, Y0, Y1, rho=RHO, L_des=L_des)
        fast = solve_step_dual(G0, G1, t, mode=mode, beta=beta, squared_bound=L_des**2, margin=DEFAULT_MARGIN)
        mu_over_rho = 0.0
    return step, reference, fast, (G0, G1, mu_over_rho)


def objective(G0, G1, W0_bar, W1_bar, squared, mu_over_rho):
    return mu_over_rho * squared + 0.5 * (np.sum((W0_bar - G0) ** 2) + np.sum((W1_bar - G1) ** 2))


def reference_margin(step, reference):
    """The ``eps`` of ``M <= -eps I`` that the reference point meets (LMI (7) at its ``L^2``)."""
    M = lmi7_matrix(reference.W0_bar, reference.W1_bar, step.T, reference.squared_bound, step.beta)
    return -float(np.linalg.eigvalsh(M).max())


def assert_within_certified_gap(step, reference, fast, G0, G1, mu_over_rho):
    """No point of the set the reference's point lies in beats the dual solver's certified bound.

    ``objective - gap`` of a dual solve is a lower bound over ``M <= -margin I``. Clarabel's
    ``optimal_inaccurate`` point can miss the step's margin (0.10.0 ends 2.7e-11 short of 1e-9)
    and then lies in a larger set with a lower optimum: the bound is recomputed on the set
    ``M <= -eps I`` with the ``eps`` the reference's point meets. 1e-12: rounding of the objective.
    """
    theirs = objective(G0, G1, reference.W0_bar, reference.W1_bar, reference.squared_bound, mu_over_rho)
    achieved = reference_margin(step, reference)
    if achieved < step.margin:  # pylip proved M <= 0 there: eps >= 0 up to eigenvalue rounding
        fast = solve_step_dual(
            G0, G1, np.diag(step.T), mode=step.mode, beta=step.beta, margin=max(achieved, 0.0),
            mu_over_rho=mu_over_rho if step.mode == "regularize" else None,
            squared_bound=reference.squared_bound if step.mode == "enforce" else None,
        )
    ours = objective(G0, G1, fast.W0_bar, fast.W1_bar, fast.squared_bound, mu_over_rho)
    assert ours - fast.gap <= theirs + 1e-12 * (1.0 + theirs)


def assert_close(step, reference, fast, G0, G1, mu_over_rho):
    # max-abs difference of W_bar relative to the largest |entry|; L^2 relative. Where Clarabel
    # reports "optimal_inaccurate" the dual gap certifies the fast point (assert_within_certified_gap).
    size = max(np.abs(reference.W0_bar).max(), np.abs(reference.W1_bar).max())
    accurate = reference.status == "optimal"
    tolerance = 1e-6 if accurate else 1e-4
    assert np.abs(fast.W0_bar - reference.W0_bar).max() <= tolerance * size
    assert np.abs(fast.W1_bar - reference.W1_bar).max() <= tolerance * size
    assert fast.squared_bound == pytest.approx(reference.squared_bound, rel=tolerance)
    assert_within_certified_gap(step, reference, fast, G0, G1, mu_over_rho)
    W0_bar, W1_bar, squared, top, _ = step._checked(fast.W0_bar, fast.W1_bar, fast.squared_bound)
    assert top <= 0.0
    bound = pylip.lmi.sqrt_up(squared) if step.mode == "regularize" else pylip.lmi.sqrt_up(fast.squared_bound)
    assert prove_certificate([W0_bar, W1_bar], np.diag(step.T), bound, 0.0, step.beta).holds
    assert squared == pytest.approx(fast.squared_bound, rel=1e-9)


@pytest.mark.parametrize("dims", [(3, 12, 2), (5, 30, 4)])
@pytest.mark.parametrize("beta", [1.0, 0.25])
@pytest.mark.parametrize("mu_over_rho", [1e-3, 0.1, 10.0])
def test_regularize_matches_clarabel(dims, beta, mu_over_rho):
    step, reference, fast, extra = compare(dims, 1, "regularize", beta, mu_over_rho)
    assert fast.converged and fast.iterations > 0
    assert_close(step, reference, fast, *extra)


@pytest.mark.parametrize("dims", [(3, 12, 2), (5, 30, 4)])
@pytest.mark.parametrize("beta", [1.0, 0.25])
@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.7])
def test_enforce_matches_clarabel(dims, beta, fraction):
    step, reference, fast, extra = compare(dims, 2, "enforce", beta, fraction)
    assert fast.squared_bound == reference.squared_bound
    assert_close(step, reference, fast, *extra)


@pytest.mark.parametrize(("mode", "beta", "setting"), [("enforce", 1.0, 0.2), ("regularize", 0.25, 0.1)])
def test_10_60_10_matches_clarabel(mode, beta, setting):
    step, reference, fast, extra = compare((10, 60, 10), 3, mode, beta, setting)
    assert_close(step, reference, fast, *extra)


def test_feasible_targets_are_returned_unchanged():
    W0, W1, Y0, Y1, t = step_data(5, 30, 4, 4)
    G0, G1 = W0 + Y0 / RHO, W1 + Y1 / RHO
    L_des = 2.0 * np.linalg.norm(G0, 2) * np.linalg.norm(G1, 2)
    fast = solve_step_dual(G0, G1, t, mode="enforce", squared_bound=L_des**2, margin=DEFAULT_MARGIN)
    assert fast.iterations == 0 and fast.gap == 0.0
    np.testing.assert_array_equal(fast.W0_bar, G0)
    np.testing.assert_array_equal(fast.W1_bar, G1)
    assert np.linalg.eigvalsh(lmi7_matrix(G0, G1, np.diag(t), L_des**2)).max() < 0


def test_gap_and_eigenvalue_at_a_binding_step():
    W0, W1, Y0, Y1, t = step_data(4, 20, 3, 5)
    L_des = 0.1 * np.linalg.norm(W0, 2) * np.linalg.norm(W1, 2)
    fast = solve_step_dual(W0, W1, t, mode="enforce", squared_bound=L_des**2, margin=DEFAULT_MARGIN)
    assert fast.converged and 0.0 <= fast.gap <= 1e-13 * 0.5 * (np.sum(W0**2) + np.sum(W1**2))
    top = np.linalg.eigvalsh(lmi7_matrix(fast.W0_bar, fast.W1_bar, np.diag(t), L_des**2)).max()
    assert top <= 0.0


@pytest.mark.parametrize(
    "change",
    [
        {"t": -1.0},
        {"t": 0.0},
        {"t": "short"},
        {"G1": "wide"},
        {"G0": "vector"},
        {"mode": "both"},
        {"mode": "regularize", "mu_over_rho": 0.0},
        {"mode": "regularize", "mu_over_rho": -1.0},
        {"mode": "regularize", "mu_over_rho": None},
        {"squared_bound": None},
        {"squared_bound": -1.0},
        {"beta": 0.0},
        {"G0": "nan"},
    ],
)
def test_bad_input_raises_input_error(change):
    W0, W1, _, _, t = step_data(3, 8, 2, 6)
    kwargs = {"mode": "enforce", "squared_bound": 1.0, "beta": 1.0, "mu_over_rho": None}
    args = {"G0": W0, "G1": W1, "t": t}
    for key, value in change.items():
        if key == "t" and value == "short":
            args["t"] = t[:-1]
        elif key == "t":
            bad = t.copy()
            bad[2] = value
            args["t"] = bad
        elif key == "G1":
            args["G1"] = np.zeros((2, 9))
        elif key == "G0" and value == "vector":
            args["G0"] = W0[:, 0]
        elif key == "G0":
            bad = W0.copy()
            bad[0, 0] = np.nan
            args["G0"] = bad
        else:
            kwargs[key] = value
    with pytest.raises(InputError):
        solve_step_dual(args["G0"], args["G1"], args["t"], **kwargs)
