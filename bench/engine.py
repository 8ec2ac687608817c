"""pylip's LipSDP engine (issue 11) against pylip's cvxpy paths and peers, same weights, one run.

Per network: the bound and wall time of

* ``engine``: ``certify(W, formulation="engine")`` (solve and proof; median of 3);
* ``auto``: ``certify(W)``, pylip's default (the engine for >= 2 hidden layers;
  the reduced formulation with Clarabel for one);
* ``structured/CLARABEL``: the former default for deep nets (skipped where issue
  11 measured it above 150 s);
* ``cvxpy/CVXOPT``: an independent cvxpy model of LipSDP-Neuron (6), dense
  ``P <= 0``, solved by CVXOPT at its defaults (the route of LipSDP's cvxpy port);
* ``ECLipsE``: ``eclipse-nn`` (``pip install 'pylip[bench]'``), a looser
  compositional estimator, for context;
* the trivial bound.

Ratios are times relative to the engine's, measured in this run. The machine
may be shared: run with ``nice`` and read the ratios, not the absolute times.

    python bench/engine.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import cvxpy as cp
import numpy as np
import scipy.io

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pylip  # noqa: E402
from pylip.lipsdp import lmi  # noqa: E402

PEERS = ROOT / "reference" / "peers" / "lipsdp"
DENSE_LIMIT = 400  # 784-50-10's 834 x 834 cone did not finish in 4 minutes here
SLOW_STRUCTURED = {"10-48-48-5": "152-182 s", "10-64x4-10": "> 600 s"}  # issue 11's measurements


def lipsdp_weights(name: str) -> list[np.ndarray]:
    cells = scipy.io.loadmat(PEERS / name)["weights"]
    return [np.asarray(w, dtype=np.float64) for w in cells.ravel()]


def random_weights(sizes: list[int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((b, a)) / np.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:])]


def networks() -> list[tuple[str, list[np.ndarray]]]:
    return [
        ("2-10-30-20-2 (LipSDP)", lipsdp_weights("random_weights.mat")),
        ("10-48-48-5", random_weights([10, 48, 48, 5], 0)),
        ("10-64x4-10", random_weights([10, 64, 64, 64, 64, 10], 0)),
        ("784-50-10 (LipSDP MNIST)", lipsdp_weights("mnist_weights.mat")),
    ]


def cvxpy_neuron_bound(weights: list[np.ndarray], solver: str) -> float:
    """LipSDP-Neuron (6) with ReLU's sector [0, 1], built layer by layer and independently of pylip."""
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


def eclipse_bound(weights: list[np.ndarray]) -> float | str:
    try:
        import torch
        from eclipse_nn.LipConstEstimator import LipConstEstimator
    except ImportError:
        return "not installed"
    estimator = LipConstEstimator(weights=[torch.tensor(w, dtype=torch.float64) for w in weights])
    return float(estimator.estimate(method="ECLipsE"))


def timed(function, repeats: int = 1) -> tuple[float | str, float]:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return value, statistics.median(times)


def measure(name: str, weights: list[np.ndarray]) -> None:
    """Print one network's rows."""
    rows: list[tuple[str, float | str, float | None]] = []
    engine_cert, engine_time = timed(
        lambda: pylip.certify(weights, activation="relu", formulation="engine"), 3
    )
    rows.append(("engine", engine_cert.bound, engine_time))
    auto, auto_time = timed(lambda: pylip.certify(weights, activation="relu"))
    rows.append((f"auto ({auto.solver})", auto.bound, auto_time))
    key = name.split(" ")[0]
    if key in SLOW_STRUCTURED:
        rows.append(("structured/CLARABEL", f"skipped: {SLOW_STRUCTURED[key]} in issue 11", None))
    elif len(weights) > 2:
        cert, seconds = timed(lambda: pylip.certify(weights, activation="relu", formulation="structured"))
        rows.append(("structured/CLARABEL", cert.bound, seconds))
    size = weights[0].shape[1] + sum(w.shape[0] for w in weights[:-1])
    if size > DENSE_LIMIT:
        rows.append(("cvxpy/CVXOPT", f"skipped: dense {size}x{size} cone", None))
    else:
        rows.append(("cvxpy/CVXOPT", *timed(lambda: cvxpy_neuron_bound(weights, "CVXOPT"))))
    rows.append(("ECLipsE", *timed(lambda: eclipse_bound(weights))))
    rows.append(("trivial", lmi.trivial_bound(weights), None))
    for method, bound, seconds in rows:
        text = f"{bound:12.6f}" if isinstance(bound, float) else f"{bound:>12s}"
        timing = f"{seconds:9.3f} {seconds / engine_time:9.1f}" if seconds is not None else ""
        if isinstance(bound, float) and method != "engine":
            text += f" ({bound / engine_cert.bound:.8f}x)"
        print(f"{name:26s} {method:22s} {text} {timing}")
    print(f"{'':26s} engine: {engine_cert.summary()}")
    sys.stdout.flush()


def main() -> None:
    print(f"{'network':26s} {'method':22s} {'bound':>12s} {'time s':>9s} {'x engine':>9s}")
    for name, weights in networks():
        measure(name, weights)

if __name__ == "__main__":
    main()
