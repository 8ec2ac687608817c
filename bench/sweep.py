"""Sweeps on Dask (issue 13): speed-up of a 2-worker sweep over the serial loop, and Dask's per-run overhead.

One miniature digits grid (default 8 runs of a few seconds) is run three
times, each into a fresh folder, in the same process:

* serially (``run_sweep(workers=0)``: the points one after another here);
* on a 2-worker embedded LocalCluster (``run_sweep(client=...)``), target >= 1.7x;
* on a 1-worker LocalCluster: ``(time - sum of the runs' own wall times) / runs``
  is the Dask path's overhead per run (submit, pickling, scheduling, collection,
  writing), target < 0.5 s. The runs' own time is printed for both paths: on a
  loaded machine a run in a worker can be slower than here (CPU contention),
  which is not an overhead of the Dask path.

Cluster start-up is timed apart (paid once per sweep), and every side is warmed
up first (torch, scikit-learn and pylip imported, one run done), so the ratios
compare steady-state runs. Ratios come from one run; on a shared machine they
are noisy.

    python bench/sweep.py               # about a minute or two
    python bench/sweep.py --seeds 4     # a longer grid
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's pylip, also in the workers

from pylip.experiments.cluster import open_client  # noqa: E402
from pylip.experiments.sweep import execute, run_sweep  # noqa: E402
from pylip.experiments.sweep_spec import SweepSpec, validate_spec  # noqa: E402


def grid(seeds: int) -> SweepSpec:
    """2 bounds x 2 architectures x ``seeds`` seeds of the miniature digits task."""
    return validate_spec({
        "task": "digits",
        "settings": {"preset": "miniature", "epochs": 10, "admm_iterations": 2},
        "grid": {"L_des": [2.0, 4.0], "hidden": [[8], [8, 8]], "seed": list(range(seeds))},
    })


def warm_up(spec: SweepSpec, client: Any = None) -> None:
    """One run per worker (or here), so imports and first-call costs are out of the timings."""
    params = spec.parameters(spec.points[0])
    if client is None:
        execute(spec.task, params)
        return
    workers = list(client.scheduler_info()["workers"])
    futures = [client.submit(execute, spec.task, params, workers=[w], pure=False) for w in workers]
    for future in futures:
        future.result()


def timed_sweep(spec: SweepSpec, workers: int | None, root: Path) -> tuple[float, float, float]:
    """Wall time of the sweep, the runs' own time (sum of wall_time), and the cluster start-up."""
    out = Path(tempfile.mkdtemp(dir=root))
    startup = 0.0
    if workers is None:
        warm_up(spec)
        start = time.perf_counter()
        result = run_sweep(spec, out=out, workers=0, progress=False)
        elapsed = time.perf_counter() - start
    else:
        start = time.perf_counter()
        with open_client(workers=workers) as client:
            startup = time.perf_counter() - start
            warm_up(spec, client)
            start = time.perf_counter()
            result = run_sweep(spec, client, out=out, progress=False)
            elapsed = time.perf_counter() - start
    assert len(result.executed) == len(spec.points) and not result.failed
    return elapsed, sum(r["wall_time"] for r in result.records), startup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="seeds per point (runs = 4 x seeds)")
    args = parser.parse_args()
    spec = grid(args.seeds)
    n = len(spec.points)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        serial, serial_runs, _ = timed_sweep(spec, None, root)
        two, _, startup_two = timed_sweep(spec, 2, root)
        one, one_runs, startup_one = timed_sweep(spec, 1, root)
    overhead = (one - one_runs) / n
    print(f"sweep benchmark: {n} miniature digits runs (cores here: {os.cpu_count()}; shared machine: noisy)")
    print(f"  serial loop (this process)        {serial:7.1f} s   runs {serial_runs / n:5.2f} s each")
    print(f"  Dask, 2 workers                   {two:7.1f} s   speed-up {serial / two:4.2f}x "
          f"(target >= 1.7x){'' if serial / two >= 1.7 else '  BELOW TARGET'}")
    print(f"  Dask, 1 worker                    {one:7.1f} s   runs {one_runs / n:5.2f} s each; "
          f"overhead outside the runs {overhead:+.3f} s/run (target < 0.5 s)"
          f"{'' if overhead < 0.5 else '  ABOVE TARGET'}")
    print(f"  Dask, 1 worker against the serial loop: {(one - serial) / n:+.3f} s/run")
    print(f"  cluster start-up (once per sweep) {startup_two:7.1f} s (2 workers), "
          f"{startup_one:.1f} s (1 worker)")


if __name__ == "__main__":
    main()
