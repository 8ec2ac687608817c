"""pylip sweep: a miniature digits sweep on a 2-worker LocalCluster; faults, resume, determinism, bad specs.

The spec checks need neither Dask nor torch and run in every tox cell. The
tests on a cluster need the ``cluster`` extra (Dask, pandas, pyarrow): they
skip with that reason where it is missing (tox's SDP cells); the digits runs
need torch and scikit-learn and are marked ``torch`` (tox's py311-train cell
installs the cluster extra too).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pylip.cli import main
from pylip.errors import InputError
from pylip.experiments.sweep_spec import SweepSpec, validate_spec

REFERENCE = Path(__file__).resolve().parents[2] / "reference" / "original"

# seconds per run: 400 training images, 64-8-10 / 64-8-8-10, one ADMM iteration
MINIATURE = {
    "task": "digits",
    "settings": {"preset": "miniature", "epochs": 5, "admm_iterations": 1, "pgd_steps": 5},
    "grid": {"L_des": [2.0, 4.0], "hidden": [[8], [8, 8]], "seed": [0, 1]},
}
RECORD_KEYS = {
    "key", "task", "status", "point", "parameters", "pylip_version", "layer_sizes", "clean_accuracy",
    "bound", "trivial_bound", "training_bound", "start_bound", "certified_accuracy", "attacked_accuracy",
    "timings", "wall_time",
}
MACHINE_DEPENDENT = ("timings", "wall_time")


def _needs_cluster() -> Any:
    return pytest.importorskip("distributed", reason="needs the cluster extra: pip install 'pylip[cluster]'")


def _needs_digits() -> None:
    pytest.importorskip("torch", reason="the digits task needs the train extra (torch)")
    pytest.importorskip("sklearn", reason="the digits task needs the train extra (scikit-learn)")
    pytest.importorskip("pandas", reason="needs the cluster extra: pip install 'pylip[cluster]'")


@pytest.fixture(scope="module")
def client() -> Any:
    """One 2-worker LocalCluster (pylip's embedded form) for the whole module."""
    _needs_cluster()
    from pylip.experiments.cluster import open_client

    with open_client(workers=2) as dask_client:
        yield dask_client


def _spec(**changes: Any) -> SweepSpec:
    return validate_spec({**MINIATURE, **changes})


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in MACHINE_DEPENDENT}


def _serial_record(spec: SweepSpec, point: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    from pylip.experiments.sweep import execute, make_record

    status, values, arrays = execute(spec.task, spec.parameters(point))
    return json.loads(json.dumps(make_record(spec, point, status, values))), arrays


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


# -- the spec: every error before any run, naming the key and the fix -------------------


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"grid": {"Ldes": [2.0], "seed": [0]}}, ["grid.Ldes", "not a parameter", "L_des"]),
        ({"workers": 2}, ["'workers'", "the keys are"]),
        ({"grid": {"L_des": ["two"]}}, ["grid.L_des", "finite number", "'two'"]),
        ({"grid": {"L_des": 2.0}}, ["grid.L_des", "list", "L_des = [2.0]"]),
        ({"grid": {"hidden": [8], "L_des": [2.0]}}, ["grid.hidden", "list of hidden-layer widths"]),
        ({"grid": {}}, ["grid is empty", "seed = [0]"]),
        ({"grid": {"L_des": [], "seed": [0]}}, ["grid.L_des", "empty list"]),
        ({"grid": {"L_des": [2.0, -1.0]}}, ["grid.L_des", "> 0", "-1.0"]),
        ({"task": "mnist"}, ["task must be one of", "'digits'", "'mnist'"]),
        ({"settings": {"preset": "miniature"}, "grid": {"seed": [0]}},
         ["needs L_des", "mode = 'regularize'"]),
        ({"task": "sin_example", "settings": {}, "grid": {"L_des": [1.0]}}, ["grid.L_des", "L2 net's bound"]),
        ({"grid": {"seed": {"start": 0}, "L_des": [2.0]}}, ["grid.seed", "range table"]),
    ],
)
def test_bad_spec_names_the_key_and_the_fix(change: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(InputError) as caught:
        validate_spec({**MINIATURE, **change})
    for word in words:
        assert word in str(caught.value)


def test_ranges_expand_and_duplicates_run_once() -> None:
    spec = validate_spec({
        "task": "digits", "settings": {"preset": "miniature"},
        "grid": {
            "L_des": {"start": 1.0, "stop": 8.0, "num": 4, "log": True},
            "seed": {"start": 0, "stop": 3},
        },
        "points": [{"L_des": 1.0, "seed": 0}, {"L_des": 3.0, "seed": 7}],
    })
    assert sorted({p["L_des"] for p in spec.points}) == pytest.approx([1.0, 2.0, 3.0, 4.0, 8.0])
    assert sorted({p["seed"] for p in spec.points}) == [0, 1, 2, 7]
    assert len(spec.points) == 4 * 3 + 1  # the first explicit point is already in the product
    assert len({spec.run_key(p) for p in spec.points}) == len(spec.points)


def test_bad_spec_file_fails_before_any_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tomllib", reason="reading TOML needs Python 3.11 (or tomli, the cluster extra)")
    spec = tmp_path / "bad.toml"
    spec.write_text('task = "digits"\n[grid]\nL_des = [-2.0]\nseed = [0]\n')
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "0"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("pylip: error: grid.L_des must be > 0") and "\n" not in message
    assert not out.exists()


# -- on a 2-worker LocalCluster ---------------------------------------------------------


@pytest.mark.torch
def test_miniature_sweep_writes_every_run_once(client: Any, tmp_path: Path) -> None:
    _needs_digits()
    import pandas as pd

    from pylip.experiments.sweep import run_sweep

    spec = _spec()
    result = run_sweep(spec, client, out=tmp_path, progress=False)
    keys = {spec.run_key(p) for p in spec.points}
    assert len(keys) == 8 and set(result.executed) == keys and len(result.executed) == 8
    assert {p.stem for p in (tmp_path / "runs").glob("*.json")} == keys
    assert {p.stem for p in (tmp_path / "runs").glob("*.npz")} == keys
    assert not list((tmp_path / "runs").glob(".*"))  # no temporary file left
    for record in result.records:
        assert record["status"] == "ok", record.get("traceback")
        assert RECORD_KEYS <= set(record)
        assert set(record["certified_accuracy"]) == set(record["attacked_accuracy"]) == {"0.1", "0.5"}
        assert record["bound"] <= record["parameters"]["L_des"] * (1 + 1e-6)  # enforced (problem 12)
        for eps, share in record["certified_accuracy"].items():
            assert share <= record["attacked_accuracy"][eps] <= record["clean_accuracy"]
    runs = pd.read_parquet(tmp_path / "runs.parquet")
    assert sorted(runs["key"]) == sorted(keys) and len(pd.read_csv(tmp_path / "runs.csv")) == 8
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert len(summary) == 4 and list(summary["n_seeds"]) == [2, 2, 2, 2]
    group = runs[(runs["L_des"] == 2.0) & (runs["hidden"] == "8")]
    row = summary[(summary["L_des"] == 2.0) & (summary["hidden"].astype(str) == "8")].iloc[0]
    assert row["clean_accuracy_mean"] == pytest.approx(group["clean_accuracy"].mean())
    assert row["clean_accuracy_std"] == pytest.approx(group["clean_accuracy"].std())
    plot = tmp_path / "sweep_accuracy.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    assert "certified@0.1" in result.table and result.table.count("\n") == 5


@pytest.mark.torch
def test_interrupted_sweep_resumes_with_only_the_missing_runs(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _needs_digits()
    from pylip.experiments import sweep

    spec = _spec(grid={"L_des": [2.0, 4.0], "hidden": [[8]], "seed": [0, 1]})
    save = sweep.save_run
    saved: list[str] = []

    def save_then_interrupt(folder: Path, record: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if len(saved) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the third run arrives
        save(folder, record, arrays)
        saved.append(record["key"])

    monkeypatch.setattr(sweep, "save_run", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(spec, client, out=tmp_path, progress=False)
    monkeypatch.setattr(sweep, "save_run", save)
    before = {p.name: p.read_text() for p in (tmp_path / "runs").glob("*.json")}
    assert sorted(Path(n).stem for n in before) == sorted(saved)
    result = sweep.run_sweep(spec, client, out=tmp_path, progress=False)
    keys = {spec.run_key(p) for p in spec.points}
    assert sorted(result.executed) == sorted(keys - set(saved))
    assert all(r["status"] == "ok" for r in result.records) and len(result.records) == 4
    assert all((tmp_path / "runs" / name).read_text() == text for name, text in before.items())
    assert sweep.run_sweep(spec, client, out=tmp_path, progress=False).executed == []


@pytest.mark.torch
def test_same_point_on_either_worker_and_serially_gives_the_same_record(client: Any) -> None:
    _needs_digits()
    from pylip.experiments.sweep import execute, make_record

    spec = _spec()
    point = spec.points[-1]  # two hidden layers
    params = spec.parameters(point)
    workers = sorted(client.scheduler_info()["workers"])
    assert len(workers) == 2
    futures = [
        client.submit(execute, spec.task, params, workers=[w], allow_other_workers=False, pure=False)
        for w in workers
    ]
    runs = [f.result() for f in futures] + [execute(spec.task, params)]
    records = [_comparable(make_record(spec, point, status, values)) for status, values, _ in runs]
    assert records[0]["status"] == "ok"
    assert records[0] == records[1] == records[2]
    for _, _, arrays in runs[1:]:
        assert arrays.keys() == runs[0][2].keys()
        assert all(np.array_equal(arrays[k], runs[0][2][k]) for k in arrays)


def _kill_a_worker_in_a_run(client: Any, stop: threading.Event) -> list[str]:
    """SIGKILL the first worker seen running a sweep task; the keys it was running."""
    while not stop.is_set():
        for address, keys in client.processing().items():
            running = [k for k in keys if str(k).startswith("pylip-run-")]
            if running:
                pid = client.run(os.getpid, workers=[address])[address]
                os.kill(pid, signal.SIGKILL)
                return [str(k)[len("pylip-run-"):][:16] for k in running]
        time.sleep(0.02)
    return []


@pytest.mark.torch
def test_killed_worker_run_is_retried_and_equals_a_serial_run(client: Any, tmp_path: Path) -> None:
    _needs_digits()
    from pylip.experiments.sweep import run_sweep

    spec = _spec(grid={"L_des": [2.5, 3.5], "hidden": [[8, 8]], "seed": [3]})
    stop = threading.Event()
    killed: list[str] = []
    killer = threading.Thread(target=lambda: killed.extend(_kill_a_worker_in_a_run(client, stop)))
    killer.start()
    try:
        result = run_sweep(spec, client, out=tmp_path, progress=False)
    finally:
        stop.set()
        killer.join()
    assert killed, "no worker was seen running a task"
    keys = [spec.run_key(p) for p in spec.points]
    assert sorted(result.executed) == sorted(keys)  # each grid point once
    assert sorted(p.stem for p in (tmp_path / "runs").glob("*.json")) == sorted(keys)
    assert all(r["status"] == "ok" for r in result.records), [r.get("error") for r in result.records]
    point = next(p for p in spec.points if spec.run_key(p) == killed[0])
    serial, serial_arrays = _serial_record(spec, point)
    on_disk = json.loads((tmp_path / "runs" / f"{killed[0]}.json").read_text())
    assert _comparable(on_disk) == _comparable(serial)
    arrays = _arrays(tmp_path / "runs" / f"{killed[0]}.npz")
    assert all(np.array_equal(arrays[k], serial_arrays[k]) for k in serial_arrays)
    client.wait_for_workers(2, timeout=60)


@pytest.mark.torch
def test_a_failing_run_is_recorded_with_its_error(tmp_path: Path) -> None:
    _needs_digits()
    from pylip.experiments.sweep import run_sweep

    # an unknown solver name is only found when the run asks for it: the run raises, the sweep records it
    spec = _spec(grid={"L_des": [2.0], "seed": [0], "solver": ["NO_SUCH_SOLVER"]})
    result = run_sweep(spec, out=tmp_path, workers=0, progress=False)
    (record,) = result.records
    assert record["status"] == "failed" and "NO_SUCH_SOLVER" in record["error"]
    assert "Traceback" in record["traceback"]
    assert "FAILED" in result.table or len(result.summary) == 0


@pytest.mark.torch
def test_sin_example_sweep_records_the_w_bar_nets_mse_and_bound(tmp_path: Path) -> None:
    _needs_digits()
    from pylip.experiments.sweep import run_sweep

    spec = validate_spec({
        "task": "sin_example", "settings": {"scale": 0.0005, "it_ADMM": 2}, "grid": {"rho": [1.0, 2.0]},
    })
    result = run_sweep(spec, out=tmp_path, workers=0, progress=False)
    assert len(result.records) == 2
    for record in result.records:
        assert record["status"] == "ok", record.get("traceback")
        assert {"mse_train", "mse_test", "mse_sine", "bound", "trivial_bound", "L_des"} <= set(record)
        assert 0 < record["bound"] <= record["trivial_bound"]
        assert record["training_bound"] <= record["L_des"] * (1 + 1e-6)  # Lip2 <= L_des (mode 2)
    assert list(result.summary["n_seeds"]) == [1, 1]
    assert (tmp_path / "sweep_accuracy.png").stat().st_size > 10_000 and "mse_train" in result.table


def test_certify_several_files_on_the_cluster_gives_one_row_per_net(
    client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from pylip.experiments.bulk_certify import certify_files, network_files

    files = network_files([REFERENCE])
    assert [f.name for f in files] == ["classifier_example_res.mat", "sin_example_res.mat"]
    on_cluster = certify_files(files, client=client, samples=50)
    serial = certify_files(files, samples=50)
    assert len(on_cluster) == 8 and all(row["error"] is None for row in on_cluster)
    assert [(r["file"], r["net"], r["neuron_bound"]) for r in on_cluster] == [
        (r["file"], r["net"], r["neuron_bound"]) for r in serial
    ]
    assert main(["certify", str(REFERENCE), "--samples", "50", "--workers", "0"]) == 0
    assert capsys.readouterr().out.count("_res.mat") == 8
