"""The CPU arithmetic of the authors' recorded runs: torch 2.13 with MKL's AVX2 code paths.

The recordings in ``reference/original/`` were made on an AVX2 CPU. On an
AVX-512 CPU, MKL (inside torch) takes AVX-512 code paths whose ``tanh`` rounds
differently, so the compiled SGD kernel (:mod:`pylip.sgd_kernel`) would drift
from the recordings in the 8th digit after a few thousand steps. MKL's
conditional numerical reproducibility mode ``MKL_CBWR=AVX2`` restores the
AVX2 paths; it is read once, at MKL's first call in a process.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

MKL_CBWR_ENV_VAR = "MKL_CBWR"
MKL_CBWR_AVX2 = 10  # mkl_cbwr.h: MKL_CBWR_AVX2


def request_avx2_mkl() -> None:
    """Ask MKL for its AVX2 code paths (``MKL_CBWR=AVX2``) unless the variable is already set.

    MKL reads the variable when it first runs, so this works only before the
    process's first MKL call (importing torch is not one). It changes MKL's
    arithmetic for the whole process, which is why only the ``pylip`` command
    and the test suite call it, never the library on import.
    """
    os.environ.setdefault(MKL_CBWR_ENV_VAR, "AVX2")


def torch_cpu_function(name: str) -> Any:
    """Function ``name`` of torch's CPU library (its MKL routines); None without torch or it."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    library = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    try:
        return getattr(ctypes.CDLL(library), name)
    except (OSError, AttributeError):
        return None


def mkl_runs_avx2() -> bool:
    """Whether torch's MKL computes with its AVX2 code paths (the recorded runs' arithmetic)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    if torch.backends.cpu.get_cpu_capability() == "AVX2":
        return True
    cbwr_get = torch_cpu_function("mkl_serv_cbwr_get")
    if cbwr_get is None:
        return False
    cbwr_get.restype = ctypes.c_int
    return bool(cbwr_get(1) == MKL_CBWR_AVX2)  # 1: MKL_CBWR_BRANCH
