"""Certificates at scale (issue 7): pylip's default formulation vs the naive dense LMI (5).

The Lipschitz step (10b) rows compare pylip's default (the dual solver of
:mod:`pylip.fast_step` for wide layers; time = both modes) with the SDP of
LMI (7) solved by Clarabel; "dense" is then that SDP.

Every measurement runs in its own subprocess, which reports its wall time and
peak RSS (``ru_maxrss`` of itself). Dense runs get a time limit and an
address-space limit, so a solver that asks for 126 GB fails at once and is
printed as "does not fit". pylip's time is that of a second call in the
process (the first, also printed, includes cvxpy's one-off set-up); the
step's is per solve after compiling. Ratios come from a single run; the machine may be
shared, so timings are noisy.

    python bench/certificate_scale.py            # all sizes, a few minutes
    python bench/certificate_scale.py --no-dense # pylip only
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "reference" / "peers" / "lipsdp" / "mnist_weights.mat"
SIZES = ["10-100-10", "1-500-1", "10-500-10", "10-1000-10", "mnist"]
DENSE_LIMIT_S = {"10-100-10": 150.0, "mnist": 60.0}  # other dense sizes are skipped (> 150 s measured)
STEP_SIZES = ["10-100-10", "10-500-10", "10-1000-10"]
SDP_STEP_LIMIT_S = {"10-100-10": 60.0}  # the Lipschitz step as the SDP of LMI (7), Clarabel
ADDRESS_LIMIT = 8 * 2**30


def _weights(spec: str) -> list:
    import numpy as np

    if spec == "mnist":
        from scipy.io import loadmat

        return [np.asarray(w, dtype=np.float64) for w in loadmat(MNIST)["weights"].ravel()]
    n_x, n_h, n_y = (int(v) for v in spec.split("-"))
    rng = np.random.default_rng(0)
    return [rng.standard_normal((n_h, n_x)) / np.sqrt(n_x), rng.standard_normal((n_y, n_h)) / np.sqrt(n_h)]


def child(kind: str, spec: str) -> None:
    """Run one measurement and print a JSON line."""
    import numpy as np

    from pylip.admm.step import LipschitzStep
    from pylip.lipsdp.certificate import certify

    weights = _weights(spec)
    start = time.perf_counter()
    if kind in ("step", "sdpstep"):
        W0, W1 = weights
        T = np.diag(np.random.default_rng(1).uniform(0.5, 1.5, W0.shape[0]))
        zeros = [np.zeros_like(W0), np.zeros_like(W1)]
        times, bounds = [], []
        fast = None if kind == "step" else False  # "sdpstep": the SDP of LMI (7) with Clarabel
        for mode in ("regularize", "enforce"):
            step = LipschitzStep(W0.shape[1], W0.shape[0], W1.shape[0], T, mode=mode, fast=fast)
            t0 = time.perf_counter()
            result = step.solve(1.5 * W0, 1.5 * W1, *zeros, rho=1.0, mu=0.1, L_des=1.0)
            times.append(time.perf_counter() - t0)
            bounds.append(result.bound)
        value = bounds[0]  # the regularize mode's L; enforce returns L_des
        how = "dual solver" if step.fast else "SDP"
        extra = f"{how}: regularize {times[0]:.2f} s, enforce {times[1]:.2f} s"
        elapsed = sum(times)
    else:
        formulation = "original" if kind == "dense" else "auto"
        cert = certify(weights, formulation=formulation)
        elapsed = cold = time.perf_counter() - start
        if kind == "cert":  # the first call in a process also pays cvxpy's one-off set-up
            start = time.perf_counter()
            cert = certify(weights, formulation=formulation)
            elapsed = time.perf_counter() - start
        value, extra = cert.bound, f"solve {cert.solve_time:.2f} s, first call {cold:.2f} s, {cert.status}"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    print(json.dumps({"time": elapsed, "rss": rss, "bound": value, "extra": extra}))


def measure(kind: str, spec: str, limit: float | None) -> dict:
    """Run ``child`` in a subprocess; dense runs with a time and address-space limit."""

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_LIMIT, ADDRESS_LIMIT))

    command = [sys.executable, __file__, "--child", kind, spec]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=limit,
            preexec_fn=limits if kind in ("dense", "sdpstep") else None,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"skipped: > {limit:.0f} s"}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        words = ("MemoryError", "memory allocation", "alloc", "Cannot allocate")
        memory = any(word in done.stderr for word in words)
        if kind == "dense" and (memory or done.returncode < 0):
            return {"error": f"does not fit in {ADDRESS_LIMIT / 2**30:.0f} GB ({tail[:60]})"}
        return {"error": f"failed ({tail[:80]})"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    parser.add_argument("--no-dense", action="store_true", help="skip the dense LMI (5) runs")
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    print(f"{'size':12s} {'pylip':>9s} {'peak':>8s} {'dense':>9s} {'peak':>8s} {'ratio':>7s}  bound / notes")
    rows = [("cert", s) for s in SIZES] + [("step", s) for s in STEP_SIZES]
    for kind, spec in rows:
        ours = measure(kind, spec, None)
        label = spec if kind == "cert" else f"step {spec}"
        if "error" in ours:
            print(f"{label:12s} {ours['error']}")
            continue
        dense: dict = {"error": "-"}
        if kind == "cert" and not args.no_dense:
            if spec in DENSE_LIMIT_S:
                dense = measure("dense", spec, DENSE_LIMIT_S[spec])
            else:
                dense = {"error": "skipped: > 150 s (issue 7)"}
        if kind == "step" and not args.no_dense:
            if spec in SDP_STEP_LIMIT_S:
                dense = measure("sdpstep", spec, SDP_STEP_LIMIT_S[spec])
            else:
                dense = {"error": "SDP step skipped: too large"}
        mine = f"{ours['time']:8.2f}s {ours['rss'] / 2**20:6.0f}MB"
        if "error" in dense:
            print(f"{label:12s} {mine} {dense['error']:>26s}  L={ours['bound']:.8g}; {ours['extra']}")
        else:
            ratio = dense["time"] / ours["time"]
            rel = abs(dense["bound"] - ours["bound"]) / dense["bound"]
            print(
                f"{label:12s} {mine} {dense['time']:8.2f}s {dense['rss'] / 2**20:6.0f}MB {ratio:6.1f}x  "
                f"L={ours['bound']:.8g} (dense {rel:.1e} rel.); {ours['extra']}"
            )


if __name__ == "__main__":
    main()
