"""The ``pylip`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .errors import PylipError


def _cmd_counterexample(args: argparse.Namespace) -> int:
    from . import counterexample

    print(counterexample.run(solver=args.solver).text())
    return 0


def _cmd_certify(args: argparse.Namespace) -> int:
    from .certificate import certify
    from .io import load_networks
    from .sampling import sampled_lower_bound

    for net in load_networks(args.file):
        sizes = "-".join(str(n) for n in [net.weights[0].shape[1], *(w.shape[0] for w in net.weights)])
        print(f"{net.name} ({sizes}, {args.activation}):")
        for form in ("neuron", "layer"):
            cert = certify(net.weights, form=form, activation=args.activation, solver=args.solver)
            print(f"  {cert.summary()}")
        lower = sampled_lower_bound(
            net.weights, net.biases, activation=args.activation, n_samples=args.samples, rng=args.seed
        )
        print(f"  sampled lower bound (largest Jacobian norm over {args.samples} points): {lower:.6g}")
    return 0


def _cmd_parity_report(args: argparse.Namespace) -> int:
    from . import parity

    usable, skipped = parity.available_solvers()
    chosen = [s.upper() for s in args.solver] if args.solver else usable
    results = [parity.solver_parity(name) for name in chosen]
    print(parity.format_table(results, {} if args.solver else skipped))
    return 0 if all(r.within_tolerance for r in results) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pylip",
        description="Lipschitz certificates and Lipschitz-bounded training (Pauli et al. 2020).",
    )
    parser.add_argument("--version", action="version", version=f"pylip {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("counterexample", help="print the paper's Section II-C counterexample")
    p.add_argument("--solver", default=None, help="SDP solver (default: Clarabel or $PYLIP_SOLVER)")
    p.set_defaults(func=_cmd_counterexample)

    p = sub.add_parser("certify", help="certify the networks stored in a file")
    p.add_argument("file", help="original res .mat, LipSDP weights .mat, .npz or torch state dict")
    p.add_argument("--activation", default="tanh", choices=["tanh", "relu", "sigmoid"])
    p.add_argument("--solver", default=None)
    p.add_argument("--samples", type=int, default=10_000, help="points for the sampled lower bound")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_certify)

    p = sub.add_parser(
        "parity-report",
        help="compare every installed solver with the original's reference outputs",
    )
    p.add_argument("--solver", action="append", help="only this solver (repeatable)")
    p.set_defaults(func=_cmd_parity_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except PylipError as exc:
        print(f"pylip: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
