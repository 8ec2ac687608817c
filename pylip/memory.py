"""Memory estimates of the SDP formulations, checked before anything is built.

An interior-point solver (Clarabel, CVXOPT, MOSEK) keeps, for a PSD cone of
size ``N``, a dense block of its KKT system over the cone's ``m = N (N + 1) / 2``
vectorised entries: ``8 m^2`` bytes, that is about ``2 N^4``. This is exactly
what Clarabel asked the allocator for in the runs that died (dense eq. 5 of
1-500-1: ``N = 501``, 126 GB; 1-1000-1: 2 TB; the structured LMI of
20-300-300-10: ``N = 630``, 316 GB). Measured peaks (resident, ``certify`` in
a fresh process, Clarabel) are about three times the block
(:data:`INTERIOR_POINT_FACTOR`) plus the interpreter's ~150 MB. SCS works on
the sparse constraint matrix and one ``N x N`` eigendecomposition per cone:
``O(N^2)`` per cone, far less, at the price of many iterations.

:func:`require_fits` compares the estimate with the memory this machine has
available and raises :class:`~pylip.errors.InputError` at once, with the
estimate, the machine's memory and the formulation (or solver) that fits.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InputError

INTERIOR_POINT_FACTOR = 3.0  # measured peak / 8 m^2 (10-30-30-10 .. 10-60-60-10 structured, Clarabel)
FIRST_ORDER_BYTES_PER_ENTRY = 200  # SCS: sparse data, iterates and eigendecompositions per entry of the cone
BASE_BYTES = 200 * 2**20  # interpreter, numpy, cvxpy and torch already loaded
FIT_FRACTION = 0.8  # leave room for the rest of the process and the system
FIRST_ORDER_SOLVERS = ("SCS",)


@dataclass(frozen=True)
class Estimate:
    """Bytes a formulation needs with a solver, and the cone sizes behind the number."""

    what: str
    solver: str
    cone_sizes: tuple[int, ...]
    bytes: float


def estimate(what: str, cone_sizes: Sequence[int], solver: str) -> Estimate:
    """Peak bytes of solving PSD cones of ``cone_sizes`` with ``solver`` (see the module docstring)."""
    entries = [n * (n + 1) / 2 for n in cone_sizes]
    if solver.upper() in FIRST_ORDER_SOLVERS:
        need = FIRST_ORDER_BYTES_PER_ENTRY * sum(entries)
    else:
        need = INTERIOR_POINT_FACTOR * 8.0 * sum(m * m for m in entries)
    return Estimate(what, solver.upper(), tuple(int(n) for n in cone_sizes), BASE_BYTES + need)


def available_bytes() -> float:
    """Memory available to this process: ``MemAvailable`` of /proc/meminfo, else the physical memory."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return float("inf")


def human(n_bytes: float) -> str:
    """``n_bytes`` as ``'3.2 GB'`` (powers of 1000, as the allocators report them)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n_bytes >= size:
            return f"{n_bytes / size:.3g} {unit}"
    return f"{n_bytes / 1e3:.3g} kB"


def require_fits(needed: Estimate, alternatives: Sequence[Estimate] = (), *, hint: str = "") -> None:
    """Raise :class:`InputError` if ``needed`` exceeds the available memory; name what would fit."""
    available = available_bytes()
    if needed.bytes <= FIT_FRACTION * available:
        return
    fitting = [a for a in alternatives if a.bytes <= FIT_FRACTION * available]
    if fitting:
        best = min(fitting, key=lambda a: a.bytes)
        advice = f"{best.what} with {best.solver} would fit (about {human(best.bytes)})"
    else:
        advice = "no formulation pylip has fits on this machine" + (f"; {hint}" if hint else "")
    sizes = ", ".join(str(n) for n in needed.cone_sizes)
    raise InputError(
        f"the {needed.what} with {needed.solver} needs about {human(needed.bytes)} of memory (PSD cone "
        f"of size {sizes}; an interior-point solver keeps a dense block of about 2 N^4 bytes per cone) "
        f"but this machine has {human(available)} available: {advice}"
    )
