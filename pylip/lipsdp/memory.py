"""Memory estimates of the SDP formulations, checked before anything is built.

An interior-point solver (Clarabel, CVXOPT, MOSEK) keeps, for a PSD cone of
size ``N``, a dense block of its KKT system over the cone's ``m = N (N + 1) / 2``
vectorised entries: ``8 m^2`` bytes, that is about ``2 N^4``. This is exactly
what Clarabel asked the allocator for in the runs that died (dense eq. 5 of
1-500-1: ``N = 501``, 126 GB; 1-1000-1: 2 TB; the structured LMI of
20-300-300-10: ``N = 630``, 316 GB). Measured peaks, resident, in a fresh
process with Clarabel, less the ~150 MB the imports take: 245 MB for the
structured LMI of 10-30-30-10 (``N = 80``, block 84 MB: 2.9 times) and 1.85 GB for
dense eq. (5) of 10-100-10 (``N = 110``, block 298 MB: 6.2 times; README's
scale table); :data:`INTERIOR_POINT_FACTOR` takes the larger. SCS works on
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

from ..errors import InputError

INTERIOR_POINT_FACTOR = 6.2  # measured peak / 8 m^2: 2.9 (N = 80, structured) and 6.2 (N = 110, dense)
FIRST_ORDER_BYTES_PER_ENTRY = 200  # SCS: sparse data, iterates and eigendecompositions per entry of the cone
BASE_BYTES = 200 * 2**20  # interpreter, numpy, cvxpy and torch already loaded
FIT_FRACTION = 0.8  # leave room for the rest of the process and the system
FIRST_ORDER_SOLVERS = ("SCS",)
ENGINE_FACTOR = 16  # pylip.engine: peak / 8 (N^2 + n_h^2) measured 8.6 (10-64x4-10) and 8.2 (100-200-200-10)


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
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
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
        advice = f"{best.what} with {best.solver} would fit (about {human(best.bytes)}; slow if first order)"
        advice += f"; or {hint}" if hint else ""
    else:
        advice = "no formulation pylip has fits on this machine" + (f"; {hint}" if hint else "")
    sizes = ", ".join(str(n) for n in needed.cone_sizes)
    raise InputError(
        f"the {needed.what} with {needed.solver} needs about {human(needed.bytes)} of memory (PSD cone "
        f"of size {sizes}; an interior-point solver keeps a dense block of about 2 N^4 bytes per cone) "
        f"but this machine has {human(available)} available: {advice}"
    )


def certificate_cone_sizes(formulation: str, layer_sizes: Sequence[int]) -> tuple[int, ...]:
    """The PSD cone sizes of the certificate SDP (6) in ``formulation`` (:func:`pylip.certify`)."""
    n_x, n_y = layer_sizes[0], layer_sizes[-1]
    if formulation == "reduced":
        n_h = layer_sizes[1]
        return (min(n_x, n_h) + min(n_y, n_h),)
    if formulation == "original":
        return (n_x + layer_sizes[1],)
    return (int(sum(layer_sizes)),)  # structured: input, every hidden layer, output (Schur complement)


def engine_estimate(layer_sizes: Sequence[int]) -> Estimate:
    """Peak bytes of :mod:`pylip.engine`: dense ``N x N`` matrices and the ``n_h x n_h`` Newton matrix."""
    n, n_hidden = int(sum(layer_sizes)), int(sum(layer_sizes[1:-1]))
    need = ENGINE_FACTOR * 8.0 * (n * n + n_hidden * n_hidden)
    return Estimate("certificate SDP (formulation='engine')", "PYLIP-ENGINE", (n,), BASE_BYTES + need)


def require_certificate_fits(formulation: str, layer_sizes: Sequence[int], solver: str) -> None:
    """Check the certificate SDP fits in memory before it is built; name the formulation that fits."""
    if formulation == "engine":
        require_fits(engine_estimate(layer_sizes))
        return
    applicable = ["structured"] + (["reduced", "original"] if len(layer_sizes) == 3 else [])
    alternatives = [
        estimate(f"certificate SDP (formulation={name!r})", certificate_cone_sizes(name, layer_sizes), kind)
        for name in applicable
        for kind in (solver, "SCS")
        if (name, kind) != (formulation, solver)
    ]
    what = f"certificate SDP (formulation={formulation!r})"
    needed = estimate(what, certificate_cone_sizes(formulation, layer_sizes), solver)
    require_fits(
        needed, alternatives,
        hint="certify smaller blocks with pylip.certify_split(weights, layers_per_block=1) "
        "(LipSDP's split; a looser bound)" if len(layer_sizes) > 3 else "",
    )


def require_step_fits(what: str, layer_sizes: Sequence[int], solver: str, *, fast_available: bool) -> None:
    """Check a Lipschitz step's SDP (LMI 7 or its multi-layer form) fits in memory before it is solved."""
    size = (int(sum(layer_sizes)),)
    alternatives = [estimate(what, size, "SCS")] if solver.upper() != "SCS" else []
    hint = (
        "build the step without naming a solver (fast=None): wide layers are then solved by "
        "pylip.fast_step, whose multiplier is only (n_x + n_y)-square"
        if fast_available
        else ""
    )
    require_fits(estimate(what, size, solver), alternatives, hint=hint)
