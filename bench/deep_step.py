"""The multi-layer Lipschitz step (10b) at scale: pylip's dual solver against the barrier method and cvxpy.

One row per network and mode (issue 11, item 3): the low-rank dual solver of
:mod:`pylip.admm.deep_dual_step` (``DeepLipschitzStep(method="dual")``, the default), the
structured barrier method of :mod:`pylip.admm.deep_fast_step` (``method="structured"``, its
fallback) and the compiled cvxpy step with Clarabel at 1e-12 (``method="cvxpy"``), on the same
targets. Each cell is a fresh process timing whole ``DeepLipschitzStep`` solves (construction,
solve, the float64 proof): CPU and wall time (median of ``--repeats``), the step's objective
``(mu/rho) L^2 + 1/2 ||W_bar - G||^2`` (an alternative's relative to the dual's), the CPU-time
ratio alternative / dual measured in this run, and the dual's peak resident memory (the import
baseline, about 0.13 GB, included).

Targets ``G = W`` (``Y = 0``) with ``W_k ~ N(0, 4 / n_k)``, ``T = diag(t)``, ``t`` uniform
in ``[0.5, 2]``; regularize: ``rho = 1``, ``mu = 0.05``; enforce: ``L_des`` 0.3 times the
trivial bound of ``G`` (the product of spectral norms). Usage::

    OMP_NUM_THREADS=1 python bench/deep_step.py [--repeats 3] [--skip-cvxpy-above N]

Measured (``OMP_NUM_THREADS=1 nice -n 5 python bench/deep_step.py --networks
64-32-32-10,64-64-64-10,64-128-128-10,784-256-256-10 --repeats 3 --skip-cvxpy-above 120``) on
2 cores shared with other jobs (load average 2 to 3), CPU seconds, dual / barrier / cvxpy:

=================  ==========  ===============================  ================================
network            mode        dual (barrier, ratio)            cvxpy (ratio), objectives apart
=================  ==========  ===============================  ================================
64-32-32-10        enforce     0.022 (0.19, 8.7x)               6.1 (275x), 3.5e-9
64-32-32-10        regularize  0.023 (0.28, 12x)                10.7 (463x), 5.9e-11
64-64-64-10        enforce     0.042 (0.94, 23x)                not run (LMI 202)
64-64-64-10        regularize  0.059 (1.18, 20x)                not run
64-128-128-10      enforce     0.13 (7.9, 61x)                  not run (LMI 330)
64-128-128-10      regularize  0.15 (9.1, 60x)                  not run
784-256-256-10     enforce     2.7 (wall 3.8)                   barrier and cvxpy not run
784-256-256-10     regularize  1.4 (wall 1.8)                   barrier and cvxpy not run
=================  ==========  ===============================  ================================

Objectives of the dual and the barrier method 6e-12 to 1.3e-10 apart; peak RSS 0.13 GB (0.27 GB at
784-256-256-10). Before (the barrier method the default, wall times, median of 3, the same flags
on a machine under similar load): 64-32-32-10 0.17 s / 0.28 s, 64-64-64-10 1.0 s / 1.5 s,
64-128-128-10 8.7 s / 8.2 s; 784-256-256-10 no answer in 7 minutes (its CG steps hit their cap);
earlier still (before issue 11's item 3): 0.87 s / 2.35 s, 7.8 s / 43 s, 72 s / no answer in 400 s.
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
    times, cpu_times, objective = [], [], float("nan")
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        step = DeepLipschitzStep(sizes, np.diag(t), mode=mode, method=method)
        result = step.solve(W, None, rho=rho, mu=mu, L_des=L_des if mode == "enforce" else None)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        proximity = 0.5 * sum(float(np.sum((wb - w) ** 2)) for wb, w in zip(result.W_bar, W))
        objective = proximity + (mu / rho * result.squared_bound if mode == "regularize" else 0.0)
        assert result.max_eigenvalue <= 0  # proven by DeepLipschitzStep (Theorem 8 at L_des in enforce)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0
    return {
        "time": statistics.median(times),
        "cpu": statistics.median(cpu_times),
        "objective": objective,
        "peak": peak,
    }


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


def compared(ours: dict[str, float], theirs: dict[str, float] | str) -> str:
    """An alternative's cell: CPU and wall time, objective difference relative to the dual's, CPU ratio."""
    if isinstance(theirs, str):
        return f"{theirs[:34]:>34s}"
    diff = (theirs["objective"] - ours["objective"]) / abs(ours["objective"])
    return f"{theirs['cpu']:8.2f} {theirs['time']:8.2f} {diff:+9.1e} {theirs['cpu'] / ours['cpu']:6.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cvxpy-repeats", type=int, default=1, help="cvxpy takes tens of seconds per solve")
    parser.add_argument(
        "--skip-cvxpy-above", type=int, default=400, help="LMI size above which cvxpy is not run"
    )
    parser.add_argument(
        "--skip-barrier-above", type=int, default=400, help="LMI size above which the barrier is not run"
    )
    parser.add_argument("--networks", default=",".join("-".join(map(str, n)) for n in NETWORKS))
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per (network, mode, method)")
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        sizes, mode, method, repeats = args.one
        print(json.dumps(one(tuple(int(n) for n in sizes.split("-")), mode, method, int(repeats))))
        return
    print(
        f"{'network':16s} {'mode':10s} | {'dual cpu':>8s} {'wall':>7s} {'objective':>17s} {'peak GB':>7s} | "
        f"{'barrier cpu':>11s} {'wall':>8s} {'rel diff':>9s} {'ratio':>7s} | "
        f"{'cvxpy cpu':>9s} {'wall':>8s} {'rel diff':>9s} {'ratio':>7s}",
        flush=True,
    )
    for text in args.networks.split(","):
        sizes = tuple(int(n) for n in text.split("-"))
        lmi_size = min(sizes[0], sizes[1]) + sum(sizes[1:])
        for mode in MODES:
            ours = in_child(sizes, mode, "dual", args.repeats, args.timeout)
            row = f"{text:16s} {mode:10s} | "
            if not isinstance(ours, dict):
                print(row + ours, flush=True)
                continue
            row += f"{ours['cpu']:8.3f} {ours['time']:7.3f} {ours['objective']:17.11g} "
            row += f"{ours['peak'] / 1e9:7.2f} | "
            barrier = (
                in_child(sizes, mode, "structured", args.repeats, args.timeout)
                if lmi_size <= args.skip_barrier_above
                else f"not run (LMI {lmi_size})"
            )
            cvxpy = (
                in_child(sizes, mode, "cvxpy", args.cvxpy_repeats, args.timeout)
                if lmi_size <= args.skip_cvxpy_above
                else f"not run (LMI {lmi_size})"
            )
            print(row + compared(ours, barrier) + " | " + compared(ours, cvxpy), flush=True)


if __name__ == "__main__":
    main()
