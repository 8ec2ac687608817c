"""pylip's LipSDP engine (issue 11) against pylip's cvxpy paths and peers, same weights, one run.

Per network: the bound, wall time and peak resident memory of

* ``engine``: ``certify(W, formulation="engine")`` (solve and proof; median of 3
  where one run takes under ``REPEAT_BELOW`` seconds, else one run);
* ``auto``: the formulation ``certify(W)`` picks (not timed again where it is the engine);
* ``structured/<solver>``: ``certify(W, formulation="structured", solver=...)``
  with Clarabel, SCS and CVXOPT (the cvxpy sparse block form);
* ``reduced/CLARABEL``: the exact one-hidden-layer reformulation (one hidden layer only);
* ``cvxpy/CVXOPT``: an independent cvxpy model of LipSDP-Neuron (6), dense
  ``P <= 0``, solved by CVXOPT at its defaults (the route of LipSDP's cvxpy port);
* ``ECLipsE``: ``eclipse-nn`` (``pip install 'pylip[bench]'``, or a folder
  holding it named by ``$PYLIP_ECLIPSE_PATH``), a looser compositional
  estimator, for context;
* the trivial bound (product of spectral norms).

Every case runs in its own process (its peak memory is that process's
``ru_maxrss``, the interpreter and imports included) with a time limit of
``CASE_LIMIT`` seconds (300, or ``$PYLIP_BENCH_LIMIT``); a case known or estimated to take longer than a few
minutes is skipped with the reason printed. Random networks have
``W ~ N(0, 1/fan_in)`` with seed 0. Ratios are times relative to the
engine's, measured in this run. Activation: ReLU's sector [0, 1].

    python bench/engine.py             # every network, then the Lipschitz steps (bench/deep_step.py)
    python bench/engine.py 10-48-48-5  # the networks whose name starts so
    python bench/engine.py steps       # only the Lipschitz steps
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.io

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PEERS = ROOT / "reference" / "peers" / "lipsdp"
CASE_LIMIT = float(os.environ.get("PYLIP_BENCH_LIMIT", "300"))  # seconds per case before it is stopped
REPEAT_BELOW = 20.0  # the engine is timed three times where one run is shorter than this
DENSE_LIMIT = 300  # the dense cvxpy cone: 10-64x4-10's 266 took 31 s (issue 11); 784-50-10's 834 > 4 min
# the structured cvxpy form: Clarabel took 152-182 s on 10-48-48-5 and > 600 s on 10-64x4-10
# (issue 11); SCS and CVXOPT are tried up to 300 hidden neurons
STRUCTURED_LIMIT = {"CLARABEL": 60, "SCS": 300, "CVXOPT": 300}
SOLVERS = ("CLARABEL", "SCS", "CVXOPT")
STEP_NETWORKS = "64-32-32-10,64-128-128-10,784-256-256-10"  # issue 11's Lipschitz-step rows


def lipsdp_weights(name: str) -> list[np.ndarray]:
    cells = scipy.io.loadmat(PEERS / name)["weights"]
    return [np.asarray(w, dtype=np.float64) for w in cells.ravel()]


def random_weights(sizes: list[int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((b, a)) / np.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:])]


NETWORKS: dict[str, Callable[[], list[np.ndarray]]] = {
    "2-10-30-20-2 (LipSDP)": lambda: lipsdp_weights("random_weights.mat"),
    "10-48-48-5": lambda: random_weights([10, 48, 48, 5]),
    "10-64x4-10": lambda: random_weights([10, *[64] * 4, 10]),
    "5-32x10-3": lambda: random_weights([5, *[32] * 10, 3]),
    "10-128x8-10": lambda: random_weights([10, *[128] * 8, 10]),
    "10-64x20-10": lambda: random_weights([10, *[64] * 20, 10]),
    "784-50-10 (LipSDP MNIST)": lambda: lipsdp_weights("mnist_weights.mat"),
    "784-256-10": lambda: random_weights([784, 256, 10]),
    "784-1024-10": lambda: random_weights([784, 1024, 10]),
    "10-1000-10": lambda: random_weights([10, 1000, 10]),
    "1-500-1": lambda: random_weights([1, 500, 1]),
    "784-256-256-10": lambda: random_weights([784, 256, 256, 10]),
}


def cvxpy_neuron_bound(weights: list[np.ndarray], solver: str) -> float:
    """LipSDP-Neuron (6) with ReLU's sector [0, 1], built layer by layer and independently of pylip."""
    import cvxpy as cp

    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights[:-1]]
    starts = np.cumsum([0] + sizes)
    size = int(starts[-1])
    squared = cp.Variable()
    P = -squared * np.diag((np.arange(size) < sizes[0]).astype(float))
    for k, w in enumerate(weights[:-1]):
        t = cp.Variable(w.shape[0], nonneg=True)
        inp = np.zeros((w.shape[0], size))
        inp[:, starts[k] : starts[k + 1]] = w
        out = np.zeros((w.shape[0], size))
        out[:, starts[k + 1] : starts[k + 2]] = np.eye(w.shape[0])
        mixed = inp.T @ cp.diag(t) @ out
        P = P + mixed + mixed.T - 2 * out.T @ cp.diag(t) @ out
    last = np.zeros((weights[-1].shape[0], size))
    last[:, starts[-2] :] = weights[-1]
    P = P + last.T @ last
    problem = cp.Problem(cp.Minimize(squared), [0.5 * (P + P.T) << 0])
    problem.solve(solver=solver)
    return float(np.sqrt(squared.value))


def eclipse_bound(weights: list[np.ndarray]) -> Callable[[], float]:
    """ECLipsE's estimate as a function; torch and eclipse-nn are imported first (not timed)."""
    extra = os.environ.get("PYLIP_ECLIPSE_PATH")
    if extra:
        sys.path.insert(0, extra)
    import torch
    from eclipse_nn.LipConstEstimator import LipConstEstimator

    def run() -> float:
        estimator = LipConstEstimator(weights=[torch.tensor(w, dtype=torch.float64) for w in weights])
        return float(estimator.estimate(method="ECLipsE"))

    return run


def certify_call(weights: list[np.ndarray], formulation: str, solver: str | None) -> Callable[[], float]:
    import pylip

    def run() -> float:
        return pylip.certify(weights, activation="relu", formulation=formulation, solver=solver).bound

    return run


def case_function(method: str, weights: list[np.ndarray]) -> Callable[[], float]:
    if method == "engine":
        return certify_call(weights, "engine", None)
    if method == "auto":
        return certify_call(weights, "auto", None)
    if method.startswith(("structured/", "reduced/")):
        formulation, solver = method.split("/")
        return certify_call(weights, formulation, solver)
    if method == "cvxpy/CVXOPT":
        import cvxpy  # noqa: F401  (imported before the clock starts)

        return lambda: cvxpy_neuron_bound(weights, "CVXOPT")
    if method == "ECLipsE":
        return eclipse_bound(weights)
    raise ValueError(method)


def run_case(network: str, method: str) -> None:
    """In the child process: time one case and print its JSON line."""
    weights = NETWORKS[network]()
    function = case_function(method, weights)
    times = []
    bound = float("nan")
    while True:
        start = time.perf_counter()
        bound = function()
        times.append(time.perf_counter() - start)
        if method != "engine" or len(times) == 3 or times[0] >= REPEAT_BELOW:
            break
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    print(json.dumps({"bound": bound, "time": statistics.median(times), "runs": len(times), "peak": peak}))


def skip_reason(network: str, method: str, weights: list[np.ndarray]) -> str | None:
    hidden = sum(w.shape[0] for w in weights[:-1])
    size = min(weights[0].shape[1], weights[0].shape[0]) + hidden
    if method.startswith("structured/"):
        solver = method.split("/")[1]
        if len(weights) == 2:
            return "one hidden layer: the reduced form serves"
        if hidden > STRUCTURED_LIMIT[solver]:
            return f"{hidden} hidden neurons > {STRUCTURED_LIMIT[solver]}: minutes or more"
    if method == "reduced/CLARABEL" and len(weights) != 2:
        return "one hidden layer only"
    if method == "cvxpy/CVXOPT" and size > DENSE_LIMIT:
        return f"dense {size}x{size} cone: minutes or more"
    return None


def measure_case(network: str, method: str) -> dict[str, object]:
    environment = dict(os.environ)
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--case", network, method], capture_output=True, text=True,
            timeout=CASE_LIMIT, env=environment, check=False,
        )
    except subprocess.TimeoutExpired:
        return {"note": f"stopped after {CASE_LIMIT:.0f} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        return {"note": last[:60]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(network: str) -> None:
    """Print one network's rows."""
    from pylip.lipsdp import lmi

    weights = NETWORKS[network]()
    from pylip.lipsdp.certificate import _automatic_formulation

    picked = _automatic_formulation(weights, "neuron", None, len(weights) == 2, True)
    methods = ["engine", *(f"structured/{s}" for s in SOLVERS), "reduced/CLARABEL", "cvxpy/CVXOPT",
               "ECLipsE"]
    if picked != "engine":
        methods.insert(1, "auto")
    results = {}
    for method in methods:
        reason = skip_reason(network, method, weights)
        if reason == "one hidden layer only" or reason == "one hidden layer: the reduced form serves":
            continue
        results[method] = {"note": f"skipped: {reason}"} if reason else measure_case(network, method)
    engine = results["engine"]
    for method, row in results.items():
        if "bound" in row:
            ratio_bound = f"({row['bound'] / engine['bound']:.8f}x)" if "bound" in engine else ""
            ratio_time = f"{row['time'] / engine['time']:9.1f}" if "time" in engine else ""
            print(f"{network:26s} {method:20s} {row['bound']:12.6f} {ratio_bound:14s} {row['time']:9.3f} "
                  f"{ratio_time:>9s} {row['peak'] / 2**20:8.0f} MB  (runs: {row['runs']})")
        else:
            print(f"{network:26s} {method:20s} {row['note']}")
    print(f"{network:26s} {'trivial':20s} {lmi.trivial_bound(weights):12.6f}")
    print(f"{network:26s} {'(auto picks)':20s} {picked}")
    sys.stdout.flush()


def lipschitz_steps() -> None:
    """Issue 11's Lipschitz-step rows: ``bench/deep_step.py`` on its networks, in this run."""
    print("\nLipschitz step (10b), both modes: bench/deep_step.py", flush=True)
    subprocess.run(
        [sys.executable, str(Path(__file__).with_name("deep_step.py")), "--networks", STEP_NETWORKS,
         "--repeats", "3", "--skip-cvxpy-above", "120"], check=False,
    )


def main(arguments: list[str]) -> None:
    if arguments[:1] == ["--case"]:
        run_case(arguments[1], arguments[2])
        return
    steps = not arguments or "steps" in arguments
    chosen = [name for name in NETWORKS if not arguments or any(name.startswith(a) for a in arguments)]
    print(f"{'network':26s} {'method':20s} {'bound':>12s} {'x engine':14s} {'time s':>9s} {'x engine':>9s} "
          f"{'peak':>8s}")
    for network in chosen:
        measure(network)
    if steps:
        lipschitz_steps()


if __name__ == "__main__":
    main(sys.argv[1:])
