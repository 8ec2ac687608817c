"""The ``pylip`` command line."""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import InputError, PylipError
from .train.cpu_arithmetic import request_avx2_mkl


def _cmd_counterexample(args: argparse.Namespace) -> int:
    from .experiments import counterexample

    print(counterexample.run(solver=args.solver).text())
    return 0


def _cmd_certify(args: argparse.Namespace) -> int:
    from .io import load_networks, network_sector
    from .lipsdp.certificate import certify
    from .lipsdp.sampling import sampled_lower_bound

    if len(args.file) > 1 or Path(args.file[0]).is_dir() or args.scheduler or args.workers is not None:
        return _certify_many(args)
    for net in load_networks(args.file[0]):
        sizes = "-".join(str(n) for n in [net.weights[0].shape[1], *(w.shape[0] for w in net.weights)])
        label, sector, activation = network_sector(net, args.activation)
        print(f"{net.name} ({sizes}, {label}):", flush=True)
        for form in ("neuron", "layer"):
            _progress(args, f"certifying {net.name} (LipSDP-{form}) ...")
            cert = certify(net.weights, form=form, solver=args.solver, **sector)
            print(f"  {_certificate_line(cert)}", flush=True)
        if activation is None:
            print(f"  sampled lower bound: not computed for {label} "
                  "(only for nets with one activation: tanh, relu or sigmoid)")
            continue
        _progress(args, f"sampling {args.samples} Jacobians of {net.name} ...")
        lower = sampled_lower_bound(
            net.weights, net.biases, activation=activation, n_samples=args.samples, rng=args.seed
        )
        print(f"  sampled lower bound (largest Jacobian norm over {args.samples} points): {lower:.6g}")
    return 0


def _progress(args: argparse.Namespace, message: str) -> None:
    """A progress line on stderr (stdout keeps only the results), unless --no-progress."""
    if not getattr(args, "no_progress", False):
        print(f"pylip: {message}", file=sys.stderr, flush=True)


STATUS_WORDS = {
    "optimal": "solver optimal",
    "optimal_inaccurate": "solver reported low accuracy, the bound is proven regardless",
}


def _certificate_line(cert: Any) -> str:
    """The certificate in words: bound, whether it is proven (and any repair), trivial bound, solver."""
    if cert.verified:
        verdict = f"proven ({cert.proof_method})"
        verdict += f", after a repair: {cert.repair}" if cert.repair else ", no repair needed"
    else:
        verdict = "NOT proven (checked in float64 only)"
    if any(note.startswith("trivial bound returned") for note in cert.notes):
        verdict += "; the SDP's bound was above the trivial bound, which is returned"
    status = STATUS_WORDS.get(cert.status, f"solver status {cert.status}")
    unsound = " UNSOUND" if not cert.sound else ""
    return (
        f"{cert.form:7s}{unsound} L = {cert.bound:.6g}  {verdict}  "
        f"(trivial {cert.trivial_bound:.6g}; {cert.solver}: {status}; {cert.solve_time:.3f} s)"
    )


def _cmd_verify(args: argparse.Namespace) -> int:
    from .io import load_certificate, load_networks
    from .lipsdp.proof import multiplier_diagonal, scaled_max_eigenvalue, verify

    stored = load_certificate(args.file)
    network = stored.network
    if args.weights is not None:
        nets = load_networks(args.weights)
        chosen = [n for n in nets if args.net in (None, n.name)]
        if not chosen:
            raise InputError(
                f"--net {args.net!r} is not in {args.weights}; it holds {', '.join(n.name for n in nets)}"
            )
        network = chosen[0]
    if network is None:
        raise InputError(f"{args.file} holds no weights: give the network with --weights FILE")
    activation = args.activation or stored.activation or "tanh"
    alpha = stored.alpha if args.activation is None else None
    beta = stored.beta if args.activation is None else None
    result = verify(network.weights, stored.L, stored.T, activation=activation, alpha=alpha, beta=beta,
                    exact=args.exact)
    sizes = "-".join(str(n) for n in [network.weights[0].shape[1], *(w.shape[0] for w in network.weights)])
    how = "exact rational arithmetic" if result.method == "exact" else "Rump's floating-point-safe test"
    if result.holds:
        margin = -scaled_max_eigenvalue(network.weights, multiplier_diagonal(stored.T, _hidden(network)),
                                        stored.L, *_sector(activation, alpha, beta, network.weights))
        print(
            f"proven: L = {stored.L:.17g} bounds the Lipschitz constant of {network.name} ({sizes}): "
            f"P(L^2, T) <= 0 holds for the exact values ({how}); margin about {margin:.3g} "
            "(-largest eigenvalue of P, exactly rescaled)"
        )
        return 0
    verdict = "is false" if result.method == "exact" else "cannot be proven (it fails, or holds too tightly)"
    print(f"NOT proven: L = {stored.L:.17g} for {network.name} ({sizes}): P(L^2, T) <= 0 {verdict} ({how})")
    return 1


def _hidden(network: Any) -> int:
    return int(sum(w.shape[0] for w in network.weights[:-1]))


def _sector(activation: str, alpha: Any, beta: Any, weights: Any) -> tuple[Any, Any]:
    from .lipsdp.certificate import slope_sector

    return slope_sector(activation, alpha, beta, [w.shape[0] for w in weights[:-1]])


def _certify_many(args: argparse.Namespace) -> int:
    """Several files or a folder: one row per network, on Dask with --scheduler / --workers N > 0."""
    import contextlib

    from .experiments import bulk_certify

    files = bulk_certify.network_files(args.file)
    options: dict[str, Any] = dict(
        activation=args.activation, solver=args.solver, samples=args.samples, seed=args.seed
    )
    if args.scheduler is None and args.workers in (None, 0):
        rows = bulk_certify.certify_files(files, **options)
    else:
        from .experiments.cluster import open_client

        with contextlib.ExitStack() as stack:
            client = stack.enter_context(open_client(args.scheduler, args.workers))
            print(f"Dask dashboard: {client.dashboard_link}", flush=True)
            rows = bulk_certify.certify_files(files, client=client, **options)
    print(bulk_certify.format_rows(rows))
    return 1 if any(row.get("error") for row in rows) else 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    """A grid of runs on Dask (pylip.sweep): records, tables and plots in the output folder."""
    from .experiments import sweep

    try:
        result = sweep.run_sweep(
            args.spec, out=args.out, scheduler=args.scheduler, workers=args.workers,
            retry_failed=args.retry_failed, progress=not args.no_progress,
            on_message=lambda message: print(message, flush=True),
        )
    except KeyboardInterrupt:
        print("pylip: interrupted: every finished run is saved; rerun the same command to finish",
              file=sys.stderr)
        return 130
    print(f"sweep: {len(result.records)} runs ({len(result.executed)} run now, {len(result.failed)} failed) "
          f"in {result.elapsed:.1f} s; wrote {', '.join(str(f) for f in result.files)}")
    print(result.table)
    return 1 if result.failed else 0


def _cmd_parity_report(args: argparse.Namespace) -> int:
    from .experiments import parity

    usable, skipped = parity.available_solvers()
    chosen = [s.upper() for s in args.solver] if args.solver else usable
    results = []
    for number, name in enumerate(chosen, 1):
        _progress(args, f"parity of {name} ({number} of {len(chosen)}) with the original's outputs ...")
        results.append(parity.solver_parity(name))
    print(parity.format_table(results, {} if args.solver else skipped))
    print(parity.format_versions())
    return 0 if all(r.within_tolerance for r in results) else 1


HYPER_OPTIONS = (
    ("--seed", "seed", int),
    ("--lr", "lr", float),
    ("--epochs", "epochs", int),
    ("--epochs-nom", "epochs_nom", int),
    ("--epochs-L2", "epochs_L2", int),
    ("--rho", "rho", float),
    ("--mu", "mu", float),
    ("--lmbd", "lmbd", float),
    ("--it-ADMM", "it_ADMM", int),
    ("--ind-Lip", "ind_Lip", int),
)


def _add_run_options(p: argparse.ArgumentParser, *, hyper: bool) -> None:
    p.add_argument("--scale", type=float, default=1.0, help="factor on every SGD step count (quick runs)")
    p.add_argument("--out", default="pylip-results", help="output folder (default: pylip-results)")
    p.add_argument("--solver", default=None, help="SDP solver (default: Clarabel or $PYLIP_SOLVER)")
    p.add_argument(
        "--log-certificate-every", type=int, default=1,
        help="certify every k-th logged step (1 = every 1,000 SGD steps as the original; 0 = never)",
    )
    p.add_argument(
        "--log-certificate-method", default="auto", choices=["auto", "sdp", "closed_form"],
        help="logging certificates: the SDP, or the exact closed form for 1-n-1 nets (auto)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    if hyper:
        group = p.add_argument_group("hyperparameters (the original's variable names; default: the script's)")
        for flag, dest, kind in HYPER_OPTIONS:
            group.add_argument(flag, dest=dest, type=kind, default=None)


def _add_cluster_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (tcp://host:8786)")
    p.add_argument(
        "--workers", type=int, default=None,
        help="processes of the embedded Dask cluster (default: one per core; 0: run in this process)",
    )


def _run_settings(args: argparse.Namespace) -> dict[str, object]:
    settings: dict[str, object] = dict(
        scale=args.scale,
        solver=args.solver,
        log_certificate_every=args.log_certificate_every,
        log_certificate_method=args.log_certificate_method,
        progress=not args.no_progress,
    )
    for _, dest, _ in HYPER_OPTIONS:
        if getattr(args, dest, None) is not None:
            settings[dest] = getattr(args, dest)
    return settings


def _print_phase(name: str) -> None:
    print(f"  {name}", flush=True)


def _print_example_phase(example: str, name: str) -> None:
    print(f"  {example}: {name}", flush=True)


def _phase_printer(example: str) -> functools.partial[None]:
    """A picklable progress printer for a worker process."""
    return functools.partial(_print_example_phase, example)


def _run_example(name: str, settings: dict[str, object], threads: int | None = None) -> tuple[object, float]:
    """Run one example (in this process or a worker) and time it."""
    from .experiments import examples

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    start = time.perf_counter()
    result = examples.run_example(examples.SPECS[name], **settings)  # type: ignore[arg-type]
    return result, time.perf_counter() - start


def _report(result: Any, elapsed: float, args: argparse.Namespace) -> bool:
    """Write a run's files and print its table; True if every cell is within tolerance."""
    from .experiments import examples

    files = examples.write_outputs(result, args.out)
    print(f"{result.example}: finished in {elapsed:.1f} s; wrote {', '.join(str(f) for f in files)}")
    cells = examples.compare(result)
    faithful = _faithful(args)
    print(examples.format_comparison(result, cells, judged=faithful))
    if not faithful:
        print("  (settings differ from the original run's: the comparison is for orientation only)")
        return True
    return all(c.ok for c in cells)


def _cmd_example(args: argparse.Namespace) -> int:
    print(f"{args.example}:", flush=True)
    result, elapsed = _run_example(args.example, {**_run_settings(args), "on_phase": _print_phase})
    return 0 if _report(result, elapsed, args) else 1


def _cmd_reproduce(args: argparse.Namespace) -> int:
    """Both examples, in parallel worker processes when ``--jobs`` > 1 (the default on 2+ cores)."""
    names = ("classifier_example", "sin_example")
    settings = _run_settings(args)
    start = time.perf_counter()
    jobs = _reproduce_jobs(args)
    if jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        settings["progress"] = False  # two bars from two processes would interleave
        print(f"running {', '.join(names)} in {jobs} worker processes ...", flush=True)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = [
                pool.submit(_run_example, name, {**settings, "on_phase": _phase_printer(name)}, 1)
                for name in names
            ]
            runs = [future.result() for future in futures]
    else:
        runs = []
        for name in names:
            print(f"{name}:", flush=True)
            runs.append(_run_example(name, {**settings, "on_phase": _print_phase}))
    verdicts = [_report(result, elapsed, args) for result, elapsed in runs]
    elapsed = time.perf_counter() - start
    print(f"reproduce: both examples in {elapsed:.1f} s; {reproduce_verdict(args, verdicts)}")
    from .experiments.parity import format_versions

    print(format_versions())  # a solver release can move the tables' numbers
    return 0 if all(verdicts) else 1


def reproduce_verdict(args: argparse.Namespace, verdicts: Sequence[bool]) -> str:
    """The closing words of ``pylip reproduce``: judged only with the original's settings."""
    if not _faithful(args):
        return "nothing was compared (settings differ from the original's: the tables are for orientation)"
    return "every cell within tolerance" if all(verdicts) else "SOME CELLS OUT OF TOLERANCE"


PARALLEL_MIN_SCALE = 0.5  # below, two worker processes' start-up (torch, cvxpy: ~20 s) outweighs the gain


def _reproduce_jobs(args: argparse.Namespace) -> int:
    """Worker processes: --jobs if given, else two for runs long enough to gain from them (2+ cores)."""
    if args.jobs is not None:
        return min(args.jobs, 2)
    return 2 if (os.cpu_count() or 1) >= 2 and args.scale >= PARALLEL_MIN_SCALE else 1


def _faithful(args: argparse.Namespace) -> bool:
    """Whether the run has the original's settings (then its cells are judged)."""
    return args.scale == 1.0 and all(getattr(args, d, None) is None for _, d, _ in HYPER_OPTIONS)


def _cmd_digits(args: argparse.Namespace) -> int:
    """The digits example: train, certify and attack; print the table, write JSON and PNG."""
    import torch

    from .experiments import digits

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    preset = "quick" if args.quick else args.preset
    changes: dict[str, object] = {}
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.solver is not None:
        changes["solver"] = args.solver
    settings = digits.DigitsSettings.preset_named(preset, **changes).validate()
    print(f"digits_example ({preset} preset, seed {settings.seed}):", flush=True)
    start = time.perf_counter()
    result = digits.run(settings, progress=not args.no_progress, on_phase=_print_phase)
    files = digits.write_outputs(result, args.out)
    print(
        f"digits_example: finished in {time.perf_counter() - start:.1f} s; "
        f"wrote {', '.join(str(f) for f in files)}"
    )
    print(digits.format_table(result))
    return 0


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

    p = sub.add_parser("certify", help="certify the networks stored in files (one row per net for several)")
    p.add_argument(
        "file", nargs="+",
        help="original res .mat, LipSDP weights .mat, .npz, torch state dict, or a whole torch model "
        "saved with torch.save(model) (loading one runs its pickled code: trusted files only); "
        "several, or a folder",
    )
    _add_cluster_options(p)
    p.add_argument(
        "--activation", default="tanh", choices=["tanh", "relu", "sigmoid"],
        help="the hidden layers' activation, which sets the slope sector (default: tanh)",
    )
    p.add_argument(
        "--solver", default=None,
        help="SDP solver: CLARABEL, SCS, CVXOPT or MOSEK (default: Clarabel or $PYLIP_SOLVER)",
    )
    p.add_argument(
        "--samples", type=int, default=10_000,
        help="Gaussian input points for the sampled lower bound (default: 10000)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled points (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd_certify)

    p = sub.add_parser(
        "verify", help="prove that a stored bound L with multiplier T holds for a network"
    )
    p.add_argument(
        "file", help="certificate: JSON with L and T (as `pylip certify --save` writes), or .mat/.npz "
        "with L (or Lipschitz) and T, optionally with the weights"
    )
    p.add_argument("--weights", default=None, help="the network's file, if FILE holds no weights")
    p.add_argument("--net", default=None, help="which network of --weights (e.g. Lip in a res .mat)")
    p.add_argument("--activation", default=None, choices=["tanh", "relu", "sigmoid"],
                   help="slope sector (default: the file's, else tanh)")
    p.add_argument("--exact", action="store_true", help="prove in exact rational arithmetic (small nets)")
    p.set_defaults(func=_cmd_verify)

    for example, command, what in (
        ("sin_example", "sin-example", "Table II / Fig. 2: sine fit with an enforced bound"),
        ("classifier_example", "classifier-example", "Table I / Fig. 1: classifier, Lipschitz regularised"),
    ):
        p = sub.add_parser(command, help=f"the original {example}.py ({what})")
        _add_run_options(p, hyper=True)
        p.set_defaults(func=_cmd_example, example=example)

    p = sub.add_parser("reproduce", help="run both examples and print Tables I and II side by side")
    _add_run_options(p, hyper=False)
    p.add_argument(
        "--jobs", type=int, default=None,
        help="worker processes, 1 or 2 (default: 2 on 2+ cores when --scale >= 0.5, else 1: "
        "starting the workers costs more than a short run gains)",
    )
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser(
        "digits-example",
        help="digits (scikit-learn): nominal, L2 and Lipschitz nets; certified vs. attacked accuracy",
    )
    p.add_argument("--quick", action="store_true", help="the reduced run (--preset quick; README: Run times)")
    p.add_argument(
        "--preset", default="full", choices=["full", "quick", "miniature"],
        help="settings (default: full; quick: reduced; miniature: seconds, for tests; README: Run times)",
    )
    p.add_argument("--out", default="pylip-results", help="output folder (default: pylip-results)")
    p.add_argument(
        "--seed", type=int, default=None, help="seed of the split, the nets and the attack (default 0)"
    )
    p.add_argument("--solver", default=None, help="SDP solver (default: Clarabel or $PYLIP_SOLVER)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_digits)

    p = sub.add_parser("sweep", help="a grid of Lipschitz-bounded trainings on Dask (TOML spec; README)")
    p.add_argument("spec", help="the sweep spec (.toml; schema: pylip.experiments.sweep_spec)")
    p.add_argument("--out", default=None, help="output folder (default: the spec's out, else sweep-results)")
    _add_cluster_options(p)
    p.add_argument("--retry-failed", action="store_true", help="run again the runs recorded as failed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser(
        "parity-report",
        help="compare every installed solver with the original's reference outputs",
    )
    p.add_argument("--solver", action="append", help="only this solver (repeatable; default: all installed)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd_parity_report)
    return parser


# (option, smallest value, what it is): checked before any work starts
ARGUMENT_MINIMA = (
    ("samples", 1, "points of the sampled lower bound"),
    ("seed", 0, "a seed"),
    ("threads", 1, "torch threads"),
    ("jobs", 1, "worker processes"),
    ("workers", 0, "Dask worker processes (0: run in this process)"),
    ("log_certificate_every", 0, "logged steps between certificates (0: never)"),
    ("epochs", 1, "SGD steps"),
    ("epochs_nom", 1, "SGD steps"),
    ("epochs_L2", 1, "SGD steps"),
    ("it_ADMM", 1, "ADMM iterations"),
)
POSITIVE_NUMBERS = ("scale", "lr", "rho")
NONNEGATIVE_NUMBERS = ("mu", "lmbd")
TRAINING_COMMANDS = ("reproduce", "sin-example", "classifier-example", "digits-example")


def check_arguments(args: argparse.Namespace) -> None:
    """Every option's value, the solver and torch (for training) checked before any work or output."""
    for dest, minimum, what in ARGUMENT_MINIMA:
        value = getattr(args, dest, None)
        if value is not None and value < minimum:
            flag = "--" + dest.replace("_", "-")
            raise InputError(f"{flag} must be >= {minimum} ({what}), got {value}")
    for dest in POSITIVE_NUMBERS:
        value = getattr(args, dest, None)
        if value is not None and not (value > 0 and value != float("inf")):
            raise InputError(f"--{dest} must be a finite number > 0, got {value}")
    for dest in NONNEGATIVE_NUMBERS:
        value = getattr(args, dest, None)
        if value is not None and not (value >= 0 and value != float("inf")):
            raise InputError(f"--{dest} must be a finite number >= 0, got {value}")
    if getattr(args, "ind_Lip", None) not in (None, 1, 2):
        raise InputError(
            f"--ind-Lip must be 1 (Lipschitz regularisation, eq. 9) or 2 (enforce L_des, eq. 12), "
            f"got {args.ind_Lip}"
        )
    if getattr(args, "jobs", None) is not None and args.jobs > 2:
        raise InputError(f"--jobs must be 1 or 2 (reproduce runs two examples), got {args.jobs}")
    _check_solvers(getattr(args, "solver", None))
    _check_output_folder(getattr(args, "out", None))
    if args.command in TRAINING_COMMANDS:
        require_torch(f"pylip {args.command}")


def _check_output_folder(out: str | None) -> None:
    """``--out`` names a folder (created if missing): not an existing file, nor inside one."""
    if out is None:
        return
    for path in (Path(out), *Path(out).parents):
        if path.exists():
            if not path.is_dir():
                raise InputError(f"--out {out}: {path} is a file, not a folder; give a folder for results")
            return


def _check_solvers(solver: str | list[str] | None) -> None:
    from .lipsdp.solvers import resolve_solver

    for name in solver if isinstance(solver, list) else [solver]:
        if name is not None:
            resolve_solver(name)


def require_torch(what: str) -> None:
    """Raise InputError naming the extra to install if torch is missing."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise InputError(
            f"{what} trains networks with torch, which is not installed: pip install 'pylip[train]'"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    request_avx2_mkl()  # the recorded runs' arithmetic on AVX-512 CPUs too (pylip.cpu_arithmetic)
    args = build_parser().parse_args(argv)
    try:
        check_arguments(args)
        return int(args.func(args))
    except PylipError as exc:
        print(f"pylip: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
