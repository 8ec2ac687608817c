"""Adversarial campaign over random networks: is every returned certificate proven? (issue 12)

Draws random feed-forward nets (depth 1-4 hidden layers, widths 1-12, scales
1e-3 to 1e3, rank-deficient and zero rows, all three activations, both sound
forms), certifies each with every installed open solver, and counts:

* tried, proven (``Certificate.verified`` and an independent re-proof with
  :func:`pylip.verify`), repaired (and by how much), errors by type (pylip's
  own, and any other exception: those must be 0), bounds above the trivial
  bound (must be 0), bounds below a sampled lower bound (must be 0);
* the time per certificate and the share of it spent proving and repairing.

The engine (``formulation="engine"``) takes its turn in the rotation of solvers.
With ``--steps N``, N enforce-mode Lipschitz steps (eq. 12; one hidden layer:
``pylip.admm.LipschitzStep``, several: ``pylip.deep_admm.DeepLipschitzStep``)
at a binding ``L_des`` (0.1-1.5 times the net's certified bound, dual
multipliers drawn at random) are counted the same way: every returned
``W_bar`` must be proven at ``L_des`` by an independent :func:`pylip.verify`.

    python bench/proof_campaign.py --nets 10000 --steps 1000   # the full campaign
    python bench/proof_campaign.py --nets 300 --seed 1         # a quick one

Exit code 1 if anything that must be 0 is not.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import pylip  # noqa: E402
from pylip.errors import PylipError  # noqa: E402

ACTIVATIONS = ("tanh", "relu", "sigmoid")


def random_case(rng: np.random.Generator) -> tuple[list[np.ndarray], str, str]:
    depth = int(rng.integers(1, 5))
    sizes = [int(rng.integers(1, 13)) for _ in range(depth + 2)]
    scale = 10.0 ** rng.uniform(-3, 3)
    weights = [scale * rng.standard_normal((m, n)) / np.sqrt(n) for n, m in zip(sizes[:-1], sizes[1:])]
    kind = rng.integers(0, 4)
    if kind == 1:  # a zero row somewhere
        k = int(rng.integers(0, len(weights)))
        weights[k][int(rng.integers(0, weights[k].shape[0]))] = 0.0
    elif kind == 2:  # rank one layer
        k = int(rng.integers(0, len(weights)))
        u, v = rng.standard_normal(weights[k].shape[0]), rng.standard_normal(weights[k].shape[1])
        weights[k] = scale * np.outer(u, v)
    activation = ACTIVATIONS[int(rng.integers(0, 3))]
    form = ("neuron", "layer")[int(rng.integers(0, 2))]
    return weights, activation, form


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nets", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=0, help="enforce-mode steps to try (default 0)")
    parser.add_argument(
        "--solvers", default=None, help="comma-separated (default: every installed open solver)"
    )
    args = parser.parse_args(argv)
    import cvxpy as cp

    solvers = args.solvers.split(",") if args.solvers else [
        s for s in ("CLARABEL", "SCS", "CVXOPT") if s in cp.installed_solvers()
    ] + ["engine"]
    rng = np.random.default_rng(args.seed)
    counts: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    repairs: list[float] = []
    solve_time = proof_time = 0.0
    start = time.perf_counter()
    for index in range(args.nets):
        weights, activation, form = random_case(rng)
        solver = solvers[index % len(solvers)]
        counts["tried"] += 1
        how = {"formulation": "engine"} if solver == "engine" else {"solver": solver}
        cert = attempt(errors, f" ({solver})", pylip.certify, weights,
                       activation=activation, form=form, **how)
        if cert is None:
            continue
        solve_time += cert.solve_time
        proof_time += cert.proof_time
        independent = pylip.verify(weights, cert.bound, cert.T, alpha=cert.alpha, beta=cert.beta)
        if cert.verified and (independent.holds or cert.proof_method == "structure"):
            counts["proven"] += 1
        else:
            counts["UNPROVEN"] += 1
        if cert.repair:
            counts["repaired"] += 1
            repairs.append(cert.repair_change)
        if cert.bound > cert.trivial_bound:
            counts["ABOVE TRIVIAL"] += 1
        biases = [np.zeros(w.shape[0]) for w in weights]
        lower = pylip.sampled_lower_bound(weights, biases, activation=activation, n_samples=50, rng=index)
        if lower > cert.bound:
            counts["BELOW SAMPLED LOWER BOUND"] += 1
        if (index + 1) % max(1, args.nets // 20) == 0:
            print(f"  {index + 1} / {args.nets} nets, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    elapsed = time.perf_counter() - start
    print(f"solvers: {', '.join(solvers)}; nets: {args.nets}; seed {args.seed}; {elapsed:.0f} s in all")
    for key in ("tried", "proven", "UNPROVEN", "repaired", "ABOVE TRIVIAL", "BELOW SAMPLED LOWER BOUND"):
        print(f"  {key:28s} {counts[key]}")
    if repairs:
        r = np.array(repairs)
        print(f"  repair size (relative):      median {np.median(r):.1e}, max {r.max():.1e}")
    for key, value in sorted(errors.items()):
        print(f"  error {key}: {value}")
    certified = counts["tried"] - sum(errors.values())
    if certified:
        share = 100 * proof_time / max(solve_time, 1e-12)
        print(f"  per certificate: solve {solve_time / certified * 1e3:.1f} ms, prove+repair "
              f"{proof_time / certified * 1e3:.2f} ms ({share:.1f} % of solve)")
    escaped = escaped_count(errors)
    bad = counts["UNPROVEN"] + counts["ABOVE TRIVIAL"] + counts["BELOW SAMPLED LOWER BOUND"] + escaped
    if args.steps:
        bad += step_campaign(args.steps, np.random.default_rng(args.seed + 1_000_003))
    return 1 if bad else 0


def attempt(errors: collections.Counter[str], where: str, call, *args, detail: bool = False, **kwargs):
    """``call(*args, **kwargs)``, or None with its exception counted: pylip's by type, others as ESCAPED."""
    try:
        return call(*args, **kwargs)
    except PylipError as exc:
        key = f"{type(exc).__name__}: {exc}"[:160] if detail else f"{type(exc).__name__}{where}"
        errors[key] += 1
    except BaseException as exc:  # noqa: BLE001 - counting what escapes is the point
        if isinstance(exc, KeyboardInterrupt):
            raise
        errors[f"ESCAPED {type(exc).__name__}{where}: {exc}"[:120]] += 1
    return None


def escaped_count(errors: collections.Counter[str]) -> int:
    return sum(v for k, v in errors.items() if k.startswith("ESCAPED"))


def enforce_step(weights: list[np.ndarray], T: np.ndarray, multipliers: list[np.ndarray], L_des: float):
    """One enforce-mode Lipschitz step (eq. 12) at ``L_des``: the proposed ``W_bar`` and its solver's kind.

    The kind is ``"one layer"``, or for deeper nets ``"dual"`` (pylip's default solver answered)
    or ``"fallback"`` (it gave up and the barrier method or cvxpy answered).
    """
    from pylip.admm.deep_step import DeepLipschitzStep
    from pylip.admm.step import LipschitzStep

    if len(weights) == 2:
        (W0, W1), (Y0, Y1) = weights, multipliers
        step = LipschitzStep(W0.shape[1], W0.shape[0], W1.shape[0], T, mode="enforce")
        out = step.solve(W0, W1, Y0, Y1, rho=1.0, L_des=L_des)
        return [out.W0_bar, out.W1_bar], "one layer"
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    result = DeepLipschitzStep(sizes, T, mode="enforce").solve(weights, multipliers, rho=1.0, L_des=L_des)
    return result.W_bar, "fallback" if result.fallback else "dual"


def step_campaign(n_steps: int, rng: np.random.Generator) -> int:
    """Enforce-mode steps on random nets at a binding ``L_des``; prints counts, returns the bad ones."""
    from pylip.admm.deep_step import positive_multiplier

    counts: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    start = time.perf_counter()
    for index in range(n_steps):
        if index and index % max(1, n_steps // 20) == 0:
            print(f"  {index} / {n_steps} steps, {time.perf_counter() - start:.0f} s", file=sys.stderr)
        weights, _, _ = random_case(rng)
        counts["tried"] += 1
        cert = attempt(errors, "", pylip.certify, weights, activation="tanh", detail=True)
        if cert is None:
            continue
        T = positive_multiplier(cert.T)
        L_des = float(rng.uniform(0.1, 1.5)) * cert.bound
        if not L_des > 0:
            counts["zero-bound nets (skipped)"] += 1
            continue
        multipliers = [0.1 * np.abs(w).max() * rng.standard_normal(w.shape) for w in weights]
        answer = attempt(errors, "", enforce_step, weights, T, multipliers, L_des, detail=True)
        if answer is None:
            continue
        W_bar, kind = answer
        counts[f"answered: {kind}"] += 1
        if pylip.verify(W_bar, L_des, T, activation="tanh").holds:
            counts["proven at L_des"] += 1
        else:
            counts["UNPROVEN"] += 1
    elapsed = time.perf_counter() - start
    print(f"enforce-mode steps: {n_steps}; {elapsed:.0f} s in all")
    answered = ("answered: one layer", "answered: dual", "answered: fallback")
    for key in ("tried", "proven at L_des", "UNPROVEN", "zero-bound nets (skipped)", *answered):
        print(f"  {key:28s} {counts[key]}")
    for key, value in sorted(errors.items()):
        print(f"  error {key}: {value}")
    return counts["UNPROVEN"] + escaped_count(errors)


if __name__ == "__main__":
    sys.exit(main())
