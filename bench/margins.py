"""Cost of all class-pair bounds and of local bounds against one global bound, measured in the same run.

For digits-sized classifiers (64 inputs, 10 classes; by default one and two
hidden layers of ``--hidden`` neurons, or the ``--networks`` given) prints the
time of the global certificate and of all 45 pair bounds (plus the 10 logit
bounds) by each route of :func:`pylip.certify_margins`:

* ``certify`` loop: :func:`pylip.certify` on every pair network (a fresh cvxpy
  compilation, or an engine solve, each);
* ``sdp``: one hidden layer below the engine's cone, the pair SDP compiled once
  with the row as a parameter; elsewhere the engine alone per pair
  (:func:`pylip.margins.auxiliary_certificate`);
* ``fixed_T``: the global ``T`` with each pair's own smallest ``L``.

Also the tightness: mean ratio ``L_ij / (sqrt(2) L)`` (1 = no gain over the global rule).
With ``--local N``: the mean time and ``L(x0, r) / L`` of ``N`` local bounds
(:func:`pylip.local.certify_local`, random ``x0`` in ``[0, 1]^64``, ``r = 0.1``) by
``"sdp"`` and by ``"fixed_T"``. Times are CPU seconds (``time.process_time``; the
machine is shared) with one BLAS thread in the engine.

Run from the repository root: ``OMP_NUM_THREADS=1 PYTHONPATH=. python bench/margins.py
[--hidden 16] [--networks 64-64-64-10,64-128-128-10] [--local 5] [--skip-loop-deep]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import pylip
from pylip.lipsdp.margins import certify_margins, difference_row


def _net(sizes: list[int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((m, n)) / np.sqrt(n) for n, m in zip(sizes[:-1], sizes[1:])]


def _timed(function):  # type: ignore[no-untyped-def]
    start = time.process_time()
    value = function()
    return value, time.process_time() - start


def measure_local(weights: list[np.ndarray], glob: pylip.Certificate, t_glob: float, points: int,
                  seed: int) -> None:
    """Print the mean time and ``L(x0, 0.1) / L`` of ``points`` local bounds by each method."""
    from pylip.lipsdp.local import certify_local

    rng = np.random.default_rng(seed)
    biases = [0.1 * rng.standard_normal(w.shape[0]) for w in weights]
    centres = rng.uniform(0.0, 1.0, (points, weights[0].shape[1]))
    for method in ("fixed_T", "sdp"):
        bounds, t = _timed(lambda m=method: [
            certify_local(weights, biases, x0, 0.1, method=m, global_certificate=glob).bound for x0 in centres
        ])
        per_ball = t / points
        print(f"  local {method:8s} {points} balls: {per_ball:7.2f} s per ball = {per_ball / t_glob:6.1f} x "
              f"global; mean L(x0, 0.1) / L = {np.mean(bounds) / glob.bound:.3f}")


def measure(weights: list[np.ndarray], loop: bool, local: int = 0, seed: int = 0) -> None:
    """Print the global bound's time and every pair route's time and tightness for one net."""
    sizes = [weights[0].shape[1], *(w.shape[0] for w in weights)]
    glob, t_glob = _timed(lambda: pylip.certify(weights))
    cap = np.sqrt(2) * glob.bound
    print(f"{'-'.join(map(str, sizes))}: global L = {glob.bound:.4g} in {t_glob:.2f} s")
    n_out = sizes[-1]
    rows = [difference_row(weights[-1], i, j)[0] for i in range(n_out) for j in range(i + 1, n_out)]
    if loop:
        bounds, t_loop = _timed(lambda: [pylip.certify([*weights[:-1], row]).bound for row in rows])
        print(f"  certify loop, {len(rows)} pairs: {t_loop:7.2f} s = {t_loop / t_glob:6.1f} x global; "
              f"mean L_ij / (sqrt2 L) = {np.mean(np.minimum(bounds, cap)) / cap:.3f}")
    for method in ("sdp", "fixed_T"):
        result, t = _timed(lambda m=method: certify_margins(weights, method=m, logits=False,
                                                            global_certificate=glob))
        pairs = result.pair_bounds[np.triu_indices(n_out, 1)]
        print(f"  {method:8s}     {len(rows)} pairs: {t:7.2f} s = {t / t_glob:6.1f} x global; "
              f"mean L_ij / (sqrt2 L) = {pairs.mean() / cap:.3f}")
    result, t = _timed(lambda: certify_margins(weights, global_certificate=glob))
    print(f"  auto ({result.method}), {len(rows)} pairs + {n_out} logits: {t:7.2f} s = "
          f"{t / t_glob:6.1f} x global")
    if local:
        measure_local(weights, glob, t_glob, local, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--networks", default=None, help="layer sizes, e.g. 64-64-64-10,64-128-128-10")
    parser.add_argument("--local", type=int, default=0, help="also time this many local bounds per net")
    parser.add_argument("--skip-loop-deep", action="store_true", help="skip the certify loop on deep nets")
    args = parser.parse_args()
    shapes = (
        [[int(n) for n in text.split("-")] for text in args.networks.split(",")] if args.networks
        else [[64, *([args.hidden] * depth), 10] for depth in (1, 2)]
    )
    for sizes in shapes:
        weights = _net(sizes, args.seed)
        measure(weights, loop=len(sizes) == 3 or not args.skip_loop_deep, local=args.local, seed=args.seed)


if __name__ == "__main__":
    main()
