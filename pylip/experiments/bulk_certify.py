"""Certificates in bulk (``pylip certify FILE... | FOLDER``): one row per network, on Dask or in this process.

:func:`network_files` expands folders into the network files they hold;
:func:`certify_file` certifies every network of one file (LipSDP-Neuron and
-Layer bounds, eq. 6 and its layer-wise form; the trivial bound; a sampled
lower bound) and is what a Dask worker runs; :func:`certify_files` maps it
over the files (``client``: on a cluster, :mod:`pylip.cluster`; else
serially); :func:`format_rows` prints the rows.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError

NETWORK_SUFFIXES = (".mat", ".npz", ".pt", ".pth", ".onnx")


def network_files(paths: Sequence[str | Path]) -> list[Path]:
    """The files named, with each folder replaced by its network files (sorted; not recursive)."""
    files: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            found = sorted(p for p in given.iterdir() if p.is_file() and p.suffix.lower() in NETWORK_SUFFIXES)
            if not found:
                raise InputError(
                    f"folder {str(given)!r} holds no network file ({', '.join(NETWORK_SUFFIXES)})"
                )
            files += found
        elif given.is_file():
            files.append(given)
        else:
            raise InputError(f"{str(given)!r} is neither a file nor a folder; give network files or folders")
    return files


def certify_file(
    path: str, activation: str = "tanh", solver: str | None = None, samples: int = 10_000, seed: int = 0
) -> list[dict[str, Any]]:
    """One row per network in ``path``: its sizes, both LipSDP bounds, trivial and sampled lower bound.

    Never raises: a file that cannot be read or certified gives one row with ``error``.
    """
    from ..io import load_networks, network_sector
    from ..lipsdp.certificate import certify
    from ..lipsdp.sampling import sampled_lower_bound
    from .sweep_tasks import pin_threads

    pin_threads()
    try:
        rows = []
        for net in load_networks(path):
            start = time.perf_counter()
            sizes = [net.weights[0].shape[1], *(w.shape[0] for w in net.weights)]
            _, sector, sampled_activation = network_sector(net, activation)
            neuron = certify(net.weights, form="neuron", solver=solver, **sector)
            layer = certify(net.weights, form="layer", solver=solver, **sector)
            # None where pylip cannot evaluate the activation (leaky_relu, identity): shown as "-"
            lower = None if sampled_activation is None else float(sampled_lower_bound(
                net.weights, net.biases, activation=sampled_activation, n_samples=samples, rng=seed
            ))
            rows.append({
                "file": path, "net": net.name, "layers": "-".join(map(str, sizes)),
                "neuron_bound": neuron.bound, "layer_bound": layer.bound,
                "trivial_bound": neuron.trivial_bound, "sampled_lower_bound": lower,
                "time": time.perf_counter() - start, "error": None,
            })
        return rows
    except Exception as exc:
        return [{"file": path, "net": None, "error": f"{type(exc).__name__}: {exc}",
                 "traceback": traceback.format_exc()}]


def certify_files(
    files: Sequence[Path], *, client: Any = None, activation: str = "tanh", solver: str | None = None,
    samples: int = 10_000, seed: int = 0,
) -> list[dict[str, Any]]:
    """Certify every file (on ``client``'s cluster if given), rows in the order of ``files``."""
    arguments = [(str(f), activation, solver, samples, seed) for f in files]
    if client is None:
        return [row for args in arguments for row in certify_file(*args)]
    from .cluster import map_as_completed

    items = [(f"pylip-certify-{i}-{Path(args[0]).name}", args) for i, args in enumerate(arguments)]
    by_key: dict[str, list[dict[str, Any]]] = {}
    for key, rows, error in map_as_completed(client, certify_file, items):
        file = arguments[int(key.split("-")[2])][0]
        by_key[key] = rows if error is None else [
            {"file": file, "net": None, "error": f"{type(error).__name__}: {error}"}
        ]
    return [row for key, _ in items for row in by_key[key]]


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The rows as a table (a failed file shows its error)."""
    lines = [f"{'file':32s} {'net':14s} {'layers':>14s} {'neuron L':>10s} {'layer L':>10s} "
             f"{'trivial':>10s} {'sampled':>10s} {'time/s':>7s}"]
    for row in rows:
        name = Path(row["file"]).name
        if row.get("error"):
            lines.append(f"{name:32s} FAILED: {row['error']}")
            continue
        lower = row["sampled_lower_bound"]
        lines.append(
            f"{name:32s} {row['net']:14s} {row['layers']:>14s} {row['neuron_bound']:10.5g} "
            f"{row['layer_bound']:10.5g} {row['trivial_bound']:10.5g} "
            f"{'-' if lower is None else format(lower, '10.5g'):>10s} {row['time']:7.2f}"
        )
    lines.append("neuron / layer L: LipSDP bounds (checked); trivial: product of spectral norms; "
                 "sampled: largest Jacobian norm at random points (a lower bound)")
    return "\n".join(lines)
