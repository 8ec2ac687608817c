"""Robustness-accuracy sweeps on Dask (``pylip sweep SPEC``): every grid point one run, nothing lost.

:func:`run_sweep` expands a spec (:mod:`pylip.sweep_spec`), skips the runs
already in the output folder, runs the others on Dask (:mod:`pylip.cluster`;
an embedded LocalCluster by default, or ``client=`` / ``scheduler=`` for an
existing one) or serially in this process (``workers=0``), and writes:

* ``runs/KEY.json`` and ``runs/KEY.npz`` per run, as soon as it finishes, each
  written to a temporary file and renamed (a folder never holds half a record).
  ``KEY`` is a hash of the task and the run's parameters
  (:func:`pylip.sweep_spec.run_key`), so a rerun of the same spec resumes:
  finished runs are skipped, and so are failed ones unless ``retry_failed``;
* ``runs.parquet`` / ``runs.csv`` (one row per run), ``summary.csv`` (mean and
  std over seeds), ``sweep_table.txt`` and ``sweep_accuracy.png``
  (:mod:`pylip.sweep_results`), and ``spec.json`` (the expanded spec).

A record (``runs/KEY.json``) has ``key``, ``task``, ``status`` (``"ok"`` or
``"failed"``), ``point`` (the grid values), ``parameters`` (all of the run's
parameters), ``pylip_version``, and for a finished run ``layer_sizes``,
``bound`` (LipSDP-Neuron, checked, of the returned net), ``trivial_bound``,
``training_bound``, ``start_bound``, ``clean_accuracy`` (digits) or
``mse_train`` / ``mse_test`` / ``mse_sine`` (sin/classifier),
``certified_accuracy`` and ``attacked_accuracy`` (radius as a string ->
accuracy), ``timings`` and ``wall_time`` (seconds; the only entries that
depend on the machine); a failed run has ``error`` and ``traceback``. A run
whose worker dies is rescheduled by Dask; if it dies too often, the run is
recorded as failed (``KilledWorker``). After Ctrl-C every finished run is on
disk and rerunning the same command finishes the sweep.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import InputError
from .sweep_spec import SweepSpec, load_spec

RUNS_FOLDER = "runs"


@dataclass
class SweepResult:
    """What :func:`run_sweep` returns: the records of the spec's runs, the frames and the files."""

    spec: SweepSpec
    out: Path
    records: list[dict[str, Any]]
    executed: list[str]  # keys of the runs this call ran (the others were on disk)
    runs: Any = None  # pandas.DataFrame
    summary: Any = None
    table: str = ""
    files: list[Path] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] != "ok"]


def execute(task: str, params: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """Run one point (on a worker); never raises: a failure comes back as its error and traceback."""
    from .sweep_tasks import run_point

    try:
        record, arrays = run_point(task, params)
    except Exception as exc:
        return "failed", {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}, {}
    return "ok", record, arrays


def _write_atomically(path: Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Write into a temporary file beside ``path``, then rename it onto ``path``."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _save_arrays(file: Any, arrays: dict[str, np.ndarray]) -> None:
    np.savez(file, **arrays)  # type: ignore[arg-type]


def save_run(folder: Path, record: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """The net's arrays, then the record (its presence marks the run done), each written atomically."""
    if arrays:
        _write_atomically(folder / f"{record['key']}.npz", lambda f: _save_arrays(f, arrays), "wb")
    _write_atomically(folder / f"{record['key']}.json", lambda f: json.dump(record, f, indent=1))


def load_runs(folder: Path) -> dict[str, dict[str, Any]]:
    """The records on disk, by key (temporary files of interrupted writes are ignored)."""
    records = {}
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue  # not written by save_run (which renames only whole files)
        if isinstance(record, dict) and "key" in record:
            records[record["key"]] = record
    return records


def make_record(
    spec: SweepSpec, point: dict[str, Any], status: str, values: dict[str, Any]
) -> dict[str, Any]:
    """A run's JSON record: its identity, then what the run returned."""
    return {
        "key": spec.run_key(point),
        "task": spec.task,
        "status": status,
        "point": point,
        "parameters": spec.parameters(point),
        "pylip_version": __version__,
        **values,
    }


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="sweep", unit="run", disable=not enabled)


def _serial(
    spec: SweepSpec, todo: dict[str, dict[str, Any]]
) -> Iterator[tuple[str, Any, BaseException | None]]:
    for key, point in todo.items():
        yield key, execute(spec.task, spec.parameters(point)), None


def _on_dask(
    spec: SweepSpec, todo: dict[str, dict[str, Any]], client: Any, say: Callable[[str], None]
) -> Iterator[tuple[str, Any, BaseException | None]]:
    from .cluster import map_as_completed

    say(f"Dask dashboard: {client.dashboard_link}")
    # a fresh Dask key per submission: a key cancelled by an interrupted sweep may linger on the scheduler
    attempt = uuid.uuid4().hex[:8]
    runs = {f"pylip-run-{key}-{attempt}": key for key in todo}
    items = [(dask_key, (spec.task, spec.parameters(todo[key]))) for dask_key, key in runs.items()]
    for dask_key, result, error in map_as_completed(client, execute, items):
        yield runs[dask_key], result, error


def run_sweep(
    spec: SweepSpec | str | Path,
    client: Any = None,
    *,
    out: str | Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    on_message: Callable[[str], None] | None = None,
) -> SweepResult:
    """Run every missing grid point of ``spec`` and write the results (see the module docstring).

    Args:
        spec: a :class:`SweepSpec` or the path of a TOML spec.
        client: a ``distributed.Client`` to run on (then ``scheduler`` and ``workers`` must be None).
        out: output folder (default: the spec's ``out``, else ``sweep-results``).
        scheduler: address of a running Dask scheduler (``tcp://host:8786``).
        workers: processes of the embedded LocalCluster (default one per core); ``0`` runs the
            points one after another in this process, without Dask.
        retry_failed: run again the points recorded as failed.
        progress: a tqdm progress bar.
        on_message: receives one-line messages (the dashboard address, what is skipped).
    """
    from .cluster import open_client

    start = time.perf_counter()
    spec = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    if client is not None and (scheduler is not None or workers is not None):
        raise InputError("give either client= or scheduler=/workers=, not both")
    if workers is not None and workers < 0:
        raise InputError(f"workers must be >= 0 (0: run in this process), got {workers}")
    say = on_message or (lambda message: None)
    folder = Path(out or spec.out or "sweep-results")
    runs_folder = folder / RUNS_FOLDER
    runs_folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(json.dumps(spec.to_dict(), indent=1))
    points = {spec.run_key(p): p for p in spec.points}
    on_disk = load_runs(runs_folder)
    todo = {
        k: p for k, p in points.items()
        if k not in on_disk or (retry_failed and on_disk[k]["status"] != "ok")
    }
    if len(todo) < len(points):
        say(
            f"resuming: {len(points) - len(todo)} of {len(points)} runs are in {runs_folder}; "
            f"{len(todo)} to run"
        )
    executed: list[str] = []
    bar = _progress(len(todo), progress)
    try:
        if not todo:
            pass
        elif client is not None:
            _collect(spec, _on_dask(spec, todo, client, say), todo, runs_folder, executed, bar)
        elif workers == 0:
            _collect(spec, _serial(spec, todo), todo, runs_folder, executed, bar)
        else:
            with open_client(scheduler, workers) as own_client:
                _collect(spec, _on_dask(spec, todo, own_client, say), todo, runs_folder, executed, bar)
    finally:
        bar.close()
    loaded = load_runs(runs_folder)
    records = [loaded[k] for k in points]
    result = SweepResult(spec=spec, out=folder, records=records, executed=executed)
    write_results(result)
    result.elapsed = time.perf_counter() - start
    return result


def _collect(
    spec: SweepSpec,
    stream: Iterator[tuple[str, Any, BaseException | None]],
    todo: dict[str, dict[str, Any]],
    runs_folder: Path,
    executed: list[str],
    bar: Any,
) -> None:
    """Write each run as it arrives (a lost worker's error becomes a failed record)."""
    for key, result, error in stream:
        if error is not None:
            status, values, arrays = "failed", {
                "error": f"{type(error).__name__}: {error}",
                "traceback": "".join(traceback.format_exception(error)),
            }, {}
        else:
            status, values, arrays = result
        save_run(runs_folder, make_record(spec, todo[key], status, values), arrays)
        executed.append(key)
        bar.update(1)


def write_results(result: SweepResult) -> None:
    """runs.parquet, runs.csv, summary.csv, sweep_table.txt and sweep_accuracy.png."""
    from . import sweep_results

    folder = result.out
    runs = sweep_results.runs_frame(result.spec, result.records)
    summary = sweep_results.summary_frame(result.spec, runs)
    runs.to_parquet(folder / "runs.parquet", index=False)
    runs.to_csv(folder / "runs.csv", index=False)
    summary.to_csv(folder / "summary.csv", index=False)
    table = sweep_results.format_table(result.spec, summary, n_failed=len(result.failed))
    (folder / "sweep_table.txt").write_text(table + "\n")
    files = [folder / "runs.parquet", folder / "runs.csv", folder / "summary.csv", folder / "sweep_table.txt"]
    if len(summary):
        files.append(sweep_results.plot_summary(result.spec, summary, folder / "sweep_accuracy.png"))
    result.runs, result.summary, result.table, result.files = runs, summary, table, files
