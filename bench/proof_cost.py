"""What proving a certificate costs, against solving it, at every size of pylip's benchmarks (issue 12).

Per network: ``certify(W)`` (pylip's default path) once to warm up, then the
median over ``--repeats`` calls of the solver's time (``Certificate.solve_time``)
and of the time spent proving and repairing (``Certificate.proof_time``: the
floating-point-safe Cholesky test of :mod:`pylip.proof` and any repair), the
wall time of the whole call (cvxpy's compilation included), and the proof's
share of the solve and of the call. The target is a share under 10 % at every size.

    python bench/proof_cost.py                 # every size, a few minutes
    python bench/proof_cost.py --quick         # the small ones
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.io  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pylip  # noqa: E402

PEERS = ROOT / "reference" / "peers" / "lipsdp"
QUICK = ["1-10-1", "2-10-30-20-2 (LipSDP)", "10-48-48-5", "10-100-10"]
SIZES = QUICK + [
    "10-64x4-10", "5-32x10-3", "784-50-10 (LipSDP MNIST)", "10-500-10", "784-256-10",
    "10-128x8-10", "20x64", "784-256-256-10", "784-1024-10",
]


def weights_of(name: str) -> list[np.ndarray]:
    """The benchmark's weights: LipSDP's files, or W ~ N(0, 1/fan_in) with seed 0."""
    if "(LipSDP" in name:
        file = "mnist_weights.mat" if "MNIST" in name else "random_weights.mat"
        return [np.asarray(w, dtype=np.float64) for w in scipy.io.loadmat(PEERS / file)["weights"].ravel()]
    sizes = layer_sizes(name)
    rng = np.random.default_rng(0)
    return [rng.standard_normal((b, a)) / np.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:])]


def layer_sizes(name: str) -> list[int]:
    """``"10-64x4-10"`` -> ``[10, 64, 64, 64, 64, 10]``; ``"20x64"``: 20 hidden layers of 64, 10-wide ends."""
    if name == "20x64":
        return [10] + [64] * 20 + [10]
    sizes: list[int] = []
    for part in name.split("-"):
        width, _, repeat = part.partition("x")
        sizes += [int(width)] * (int(repeat) if repeat else 1)
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="only the small networks")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"{'network':26s} {'solver':14s} {'call s':>8s} {'solve s':>8s} {'prove ms':>9s} "
          f"{'of solve':>8s} {'of call':>8s}  bound")
    worst = 0.0
    for name in QUICK if args.quick else SIZES:
        weights = weights_of(name)
        pylip.certify(weights)
        certs, walls = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            certs.append(pylip.certify(weights))
            walls.append(time.perf_counter() - start)
        wall = statistics.median(walls)
        solve = statistics.median(c.solve_time for c in certs)
        prove = statistics.median(c.proof_time for c in certs)
        share = 100 * prove / solve if solve > 0 else float("nan")
        worst = max(worst, share) if solve > 0 else worst
        path = certs[0].solver
        print(f"{name:26s} {path:14s} {wall:8.3f} {solve:8.3f} {prove * 1e3:9.2f} {share:7.2f}% "
              f"{100 * prove / wall:7.2f}%  {certs[0].bound:.6g} ({certs[0].proof_method})", flush=True)
    print(f"largest share of the solver's time spent proving: {worst:.2f} % (target < 10 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
