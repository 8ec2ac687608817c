"""The multi-layer Lipschitz step (10b) at scale: pylip's structured solver against the cvxpy step.

One row per network and mode (issue 11, item 3): the structured barrier solver of
:mod:`pylip.admm.deep_fast_step` (``DeepLipschitzStep(method="structured")``, the default) and the
compiled cvxpy step with Clarabel at 1e-12 (``method="cvxpy"``), on the same targets, with
time (median of ``--repeats``), the step's objective ``(mu/rho) L^2 + 1/2 ||W_bar - G||^2``,
the ratio cvxpy / structured measured in this run, and the peak resident memory of a fresh
process doing that one solve (so the import baseline, about 0.3 GB, is included).

Targets ``G = W`` (``Y = 0``) with ``W_k ~ N(0, 4 / n_k)``, ``T = diag(t)``, ``t`` uniform
in ``[0.5, 2]``; regularize: ``rho = 1``, ``mu = 0.05``; enforce: ``L_des`` 0.3 times the
trivial bound of ``G`` (the product of spectral norms). Usage::

    OMP_NUM_THREADS=1 python bench/deep_step.py [--repeats 3] [--skip-cvxpy-above N]

Measured on 2 cores shared with another engineer's jobs (load average 4.3 at the start, 3.5
at the end; ``MKL_CBWR=AVX2 OMP_NUM_THREADS=1 nice -n 5 python bench/deep_step.py --networks
64-32-32-10,64-64-64-10,64-128-128-10 --timeout 400 --skip-cvxpy-above 120``; structured median
of 3, cvxpy one solve; cvxpy's memory check refuses the LMIs of 202 and more), after issue 11's
item 3 (one BLAS thread in the solver, regularize started at its central ``L^2``, a blocked
preconditioner Gram matrix): 64-32-32-10 enforce 0.165 s vs 8.73 s (53x, objectives 1.3e-10
apart), regularize 0.276 s vs 11.2 s (41x, 4.9e-11); 64-64-64-10 enforce 1.04 s, regularize
1.47 s; 64-128-128-10 enforce 8.74 s, regularize 8.22 s; peak RSS 0.13-0.32 GB (cvxpy
0.57 GB). Before (the same networks and flags, measured earlier): 64-32-32-10 0.87 s /
2.35 s, 64-64-64-10 7.8 s / 43 s, 64-128-128-10 enforce 72 s, regularize no answer in 400 s.
784-256-256-10: see :mod:`pylip.admm.deep_fast_step` (in enforce its CG steps hit their cap).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NETWORKS = [(64, 32, 32, 10), (64, 64, 64, 10), (64, 128, 128, 10), (784, 256, 256, 10)]
MODES = ("enforce", "regularize")


def problem(sizes: tuple[int, ...]) -> tuple[list[np.ndarray], np.ndarray, float]:
    rng = np.random.default_rng(0)
    W = [
        2.0 * rng.standard_normal((sizes[k + 1], sizes[k])) / np.sqrt(sizes[k])
        for k in range(len(sizes) - 1)
    ]
    t = rng.uniform(0.5, 2.0, sum(sizes[1:-1]))
    trivial = float(np.prod([np.linalg.norm(w, 2) for w in W]))
    return W, t, 0.3 * trivial


def one(sizes: tuple[int, ...], mode: str, method: str, repeats: int) -> dict[str, float]:
    """Time one (network, mode, method) in this process; prints nothing, returns the row's numbers."""
    from pylip.admm.deep_step import DeepLipschitzStep

    W, t, L_des = problem(sizes)
    rho, mu = 1.0, 0.05
    times, objective = [], float("nan")
    for _ in range(repeats):
        start = time.perf_counter()
        step = DeepLipschitzStep(sizes, np.diag(t), mode=mode, method=method)
        result = step.solve(W, None, rho=rho, mu=mu, L_des=L_des if mode == "enforce" else None)
        times.append(time.perf_counter() - start)
        proximity = 0.5 * sum(float(np.sum((wb - w) ** 2)) for wb, w in zip(result.W_bar, W))
        objective = proximity + (mu / rho * result.squared_bound if mode == "regularize" else 0.0)
        assert result.max_eigenvalue <= 0  # proven by DeepLipschitzStep (Theorem 8 at L_des in enforce)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0
    return {"time": statistics.median(times), "objective": objective, "peak": peak}


def in_child(
    sizes: tuple[int, ...], mode: str, method: str, repeats: int, timeout: float
) -> dict[str, float] | str:
    command = [sys.executable, __file__, "--one", "-".join(map(str, sizes)), mode, method, str(repeats)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"no answer in {timeout:.0f} s"
    if done.returncode != 0:
        return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cvxpy-repeats", type=int, default=1, help="cvxpy takes tens of seconds per solve")
    parser.add_argument(
        "--skip-cvxpy-above", type=int, default=400, help="LMI size above which cvxpy is not run"
    )
    parser.add_argument("--networks", default=",".join("-".join(map(str, n)) for n in NETWORKS))
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per (network, mode, method)")
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        sizes, mode, method, repeats = args.one
        print(json.dumps(one(tuple(int(n) for n in sizes.split("-")), mode, method, int(repeats))))
        return
    print(f"{'network':18s} {'mode':10s} {'structured s':>12s} {'objective':>18s} {'peak GB':>8s} "
          f"{'cvxpy s':>9s} {'objective':>18s} {'peak GB':>8s} {'rel diff':>9s} {'ratio':>7s}")
    for text in args.networks.split(","):
        sizes = tuple(int(n) for n in text.split("-"))
        lmi_size = min(sizes[0], sizes[1]) + sum(sizes[1:])
        for mode in MODES:
            ours = in_child(sizes, mode, "structured", args.repeats, args.timeout)
            theirs = (
                in_child(sizes, mode, "cvxpy", args.cvxpy_repeats, args.timeout)
                if lmi_size <= args.skip_cvxpy_above
                else f"not run (LMI {lmi_size})"
            )
            row = f"{text:18s} {mode:10s} "
            row += (
                f"{ours['time']:12.3f} {ours['objective']:18.12g} {ours['peak'] / 1e9:8.2f} "
                if isinstance(ours, dict)
                else f"{ours[:50]:>40s} "
            )
            if isinstance(theirs, dict) and isinstance(ours, dict):
                diff = abs(ours["objective"] - theirs["objective"]) / abs(theirs["objective"])
                row += (
                    f"{theirs['time']:9.2f} {theirs['objective']:18.12g} {theirs['peak'] / 1e9:8.2f} "
                    f"{diff:9.1e} {theirs['time'] / ours['time']:7.1f}"
                )
            else:
                row += f"{str(theirs)[:60]}"
            print(row, flush=True)


if __name__ == "__main__":
    main()
