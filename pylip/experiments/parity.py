"""Solver parity against the original: the numbers behind ``pylip parity-report``.

For each installed solver, every recorded call of the original's
``calculate_Lipschitz.m`` and ``solve_sdp.m`` (``reference/``) is repeated and
the largest deviation is compared with its stated tolerance
(``reference/README.md``).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from .. import original as compat
from ..errors import PylipError
from ..lipsdp.solvers import SUPPORTED_SOLVERS, mosek_available, resolve_solver
from .reference_data import certificate_output, solve_sdp_arguments, solve_sdp_calls, unit_cases

# One set for every solver: SCS, with the settings in pylip.solvers, meets the
# interior-point tolerances on these cases, so none is loosened for it
# (measured per solver in reference/README.md, "Solvers").
TOLERANCES = {
    "certificate_bound": 1e-6,  # relative
    "step_W_bar": 1e-4,  # relative, Frobenius
    "step_Y": 1e-4,  # ||dY|| / (rho ||W_bar||)
    "step_bound": 1e-4,  # relative
}


@dataclass
class SolverParity:
    """Largest deviations of one solver from the original, and its median solve times."""

    solver: str
    deviations: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TOLERANCES, 0.0))
    certificate_times: list[float] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def within_tolerance(self) -> bool:
        return not self.errors and all(self.deviations[k] <= TOLERANCES[k] for k in TOLERANCES)

    def record(self, key: str, value: float) -> None:
        self.deviations[key] = max(self.deviations[key], float(value))


def _relative(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def solver_parity(solver: str) -> SolverParity:
    """Repeat every reference call with ``solver`` and record the largest deviations."""
    result = SolverParity(solver)
    compat.clear_step_cache()
    for case in unit_cases():
        expected = certificate_output(case)
        parameters = {k: case["inputs"][k] for k in ("W0", "W1", "b0", "b1")}
        try:
            start = time.perf_counter()
            out = compat.calculate_Lipschitz(parameters, case["dims"], solver=solver)
            result.certificate_times.append(time.perf_counter() - start)
            result.record("certificate_bound", abs(out["Lipschitz"] / expected["Lipschitz"] - 1))
        except PylipError as exc:
            result.errors.append(f"{case['name']} certificate: {exc}")
    for label, case, call in solve_sdp_calls():
        parameters, x = solve_sdp_arguments(case, call)
        reference = call["outputs"]
        try:
            start = time.perf_counter()
            out = compat.solve_sdp(parameters, x, solver=solver)
            result.step_times.append(time.perf_counter() - start)
        except PylipError as exc:
            result.errors.append(f"{label} step: {exc}")
            continue
        for i in (0, 1):
            W_bar = np.array(reference[f"W{i}_bar"])
            result.record("step_W_bar", _relative(out[f"W{i}_bar"], W_bar))
            dY = np.linalg.norm(out[f"Y{i}"] - np.array(reference[f"Y{i}"]))
            result.record("step_Y", dY / (x["rho"] * np.linalg.norm(W_bar)))
        result.record("step_bound", abs(out["Lipschitz"] / reference["Lipschitz"] - 1))
    return result


def available_solvers() -> tuple[list[str], dict[str, str]]:
    """Solvers that can run here, and the reason for each that cannot."""
    usable, skipped = [], {}
    for name in SUPPORTED_SOLVERS:
        if name == "MOSEK":
            ok, reason = mosek_available()
            if not ok:
                skipped[name] = reason
                continue
        try:
            resolve_solver(name)
        except PylipError as exc:
            skipped[name] = str(exc)
            continue
        usable.append(name)
    return usable, skipped


def format_table(results: list[SolverParity], skipped: dict[str, str]) -> str:
    """A Markdown table of deviations and median times, ready to paste into an issue."""
    n_cert, n_step = len(unit_cases()), len(solve_sdp_calls())
    header = (
        "| solver | bound (rel) | W_bar (rel) | Y (per rho*norm(W_bar)) | step bound (rel) "
        "| median certificate s | median step s | verdict |"
    )
    lines = [
        f"Deviation from the original (largest over {n_cert} calculate_Lipschitz and "
        f"{n_step} solve_sdp reference calls)",
        "",
        header,
        "|---|---|---|---|---|---|---|---|",
        "| tolerance | "
        + " | ".join(f"{TOLERANCES[k]:.0e}" for k in TOLERANCES)
        + " | | | |",
    ]
    for r in results:
        verdict = "ok" if r.within_tolerance else "EXCEEDS" if not r.errors else f"ERROR ({len(r.errors)})"
        cells = " | ".join(f"{r.deviations[k]:.1e}" for k in TOLERANCES)
        cert_t = statistics.median(r.certificate_times) if r.certificate_times else float("nan")
        step_t = statistics.median(r.step_times) if r.step_times else float("nan")
        lines.append(f"| {r.solver} | {cells} | {cert_t:.3f} | {step_t:.3f} | {verdict} |")
    for name, reason in skipped.items():
        lines.append(f"| {name} | skipped: {reason} | | | | | | |")
    for r in results:
        lines += [f"  {r.solver}: {e}" for e in r.errors]
    return "\n".join(lines)


VERSIONED_PACKAGES = ("pylip", "numpy", "scipy", "cvxpy", "clarabel", "scs", "cvxopt", "mosek")


def solver_versions() -> dict[str, str]:
    """The installed versions of pylip, numpy, scipy, cvxpy and the solvers (``-`` if absent)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "-"
    return found


def format_versions(versions: dict[str, str] | None = None) -> str:
    """One line naming the versions the report ran with (a solver release can move the numbers)."""
    found = solver_versions() if versions is None else versions
    return "Versions: " + ", ".join(f"{name} {version}" for name, version in found.items())
