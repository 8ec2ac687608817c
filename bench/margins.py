"""Cost of all class-pair bounds against one global bound, measured in the same run.

For a one- and a two-hidden-layer classifier (digits-sized: 64 inputs, 10
classes) prints the time of the global certificate and of all 45 pair bounds
(plus the 10 logit bounds) by each route of :func:`pylip.certify_margins`:

* ``certify`` loop: :func:`pylip.certify` on every pair network (a fresh cvxpy
  compilation each);
* ``sdp``: one hidden layer, the pair SDP compiled once with the row as a
  parameter; two, ``W0`` reduced to its row space for each solve;
* ``fixed_T``: the global ``T`` with each pair's own smallest ``L``.

Also the tightness: mean ratio ``L_ij / (sqrt(2) L)`` (1 = no gain over the global rule).

Run from the repository root: ``PYTHONPATH=. python bench/margins.py [--hidden 16] [--skip-loop-deep]``.
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
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def measure(weights: list[np.ndarray], loop: bool) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-loop-deep", action="store_true", help="skip the certify loop on the deep net")
    args = parser.parse_args()
    for depth in (1, 2):
        weights = _net([64, *([args.hidden] * depth), 10], args.seed)
        measure(weights, loop=depth == 1 or not args.skip_loop_deep)


if __name__ == "__main__":
    main()
