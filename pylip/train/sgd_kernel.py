"""A compiled SGD engine for the examples' ``1 - n_h - 1`` tanh networks.

The original trains with PyTorch at about 230 us per full-batch SGD step; the
paper's two examples need about 5.5 million steps. This kernel does the same
float32 arithmetic in a numba-compiled loop (a few microseconds per step) and
is written to reproduce PyTorch 2.13's CPU kernels operation by operation:

* ``tanh`` through MKL's ``vmsTanh`` (the routine ``torch.tanh`` calls for
  float32 on x86), taken from torch's own library when it exports it;
  otherwise float64 ``tanh`` rounded to float32 (a rounding-level difference);
* sums in ATen's order (8 AVX2 lanes; 4-way cascaded row sums);
* ``nn.Linear`` on 10 hidden units with MKL's summation tree;
* fused multiply-adds where PyTorch's vectorised kernels use them
  (``tanh_backward``, ``p.add_(g, alpha=-lr)``, the L2 norm).

The arithmetic it replays is that of torch 2.13 on an AVX2 CPU, the
arithmetic of the authors' recorded runs (``reference/original/``). On AVX2
CPUs its weights equal the torch loop's bit for bit. On AVX-512 CPUs MKL's
``vmsTanh`` takes an AVX-512 code path that rounds differently (and torch's
own vector kernels differ too): there the kernel replays the recorded AVX2
runs exactly when MKL runs in its AVX2 reproducibility mode
(:func:`pylip.cpu_arithmetic.request_avx2_mkl`, ``MKL_CBWR=AVX2``, which the ``pylip`` command sets),
and otherwise agrees to rounding level. Gradients are those of the original's
loss: ``MSE (+ lmbd * l2_reg) (+ Lip_reg(rho, W_bar, Y))``.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

import numpy as np

from .cpu_arithmetic import torch_cpu_function

try:
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic
except ImportError:  # pragma: no cover - numba is part of the train extra
    njit = None  # type: ignore[assignment]

F32 = np.float32
VML_MODE = 0x2 | 0x140000 | 0x100  # VML_HA | VML_FTZDAZ_OFF | VML_ERRMODE_IGNORE: torch's flags
TANH_MKL, TANH_ROUNDED = 0, 1


def available() -> bool:
    """Whether numba is installed (the kernel needs it)."""
    return njit is not None


@functools.cache
def mkl_tanh() -> Any:
    """``vmsTanh`` from torch's CPU library (a ctypes function), or None where it is not exported."""
    function = torch_cpu_function("vmsTanh")
    if function is None:
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_longlong]
    function.restype = None
    return function


def tanh_kind() -> int:
    """``TANH_MKL`` where torch's MKL routine can be called, else ``TANH_ROUNDED``."""
    return TANH_MKL if mkl_tanh() is not None else TANH_ROUNDED


if njit is not None:

    @intrinsic
    def _fma32(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
        """Single-precision fused multiply-add (llvm.fma): ``a * b + c`` rounded once."""
        signature = types.float32(types.float32, types.float32, types.float32)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            float_type = ir.FloatType()
            fma = builder.module.declare_intrinsic(
                "llvm.fma", [float_type], ir.FunctionType(float_type, [float_type] * 3)
            )
            return builder.call(fma, args)

        return signature, codegen

    @njit(inline="always", cache=False)
    def _row_sum(x: Any, start: int, stride: int, n: int, acc: Any) -> Any:
        """ATen's float32 row sum: 4 interleaved accumulators, cascaded in levels."""
        n_ilp = n // 4
        for a in range(4):
            for b in range(4):
                acc[a, b] = 0
        depth = 0
        while (1 << depth) < n_ilp:
            depth += 1
        level_bits = max(4, depth // 4)
        level_size = 1 << level_bits
        mask = level_size - 1
        i = 0
        while i + level_size <= n_ilp:
            for _ in range(level_size):
                for k in range(4):
                    acc[0, k] += x[start + (4 * i + k) * stride]
                i += 1
            for j in range(1, 4):
                for k in range(4):
                    acc[j, k] += acc[j - 1, k]
                    acc[j - 1, k] = 0
                if (i & (mask << (j * level_bits))) != 0:
                    break
        while i < n_ilp:
            for k in range(4):
                acc[0, k] += x[start + (4 * i + k) * stride]
            i += 1
        for j in range(1, 4):
            for k in range(4):
                acc[0, k] += acc[j, k]
        total = acc[0, 0]
        for t in range(n_ilp * 4, n):
            total += x[start + t * stride]
        for k in range(1, 4):
            total += acc[0, k]
        return total

    @njit(inline="always", cache=False)
    def _sum(x: Any, n: int, acc: Any) -> Any:
        """``torch.sum`` of ``n`` contiguous float32: 8 lanes, each a row sum, plus the tail."""
        n_vec = n // 8
        total = F32(0)
        for k in range(n_vec * 8, n):
            total += x[k]
        for lane in range(8):
            total += _row_sum(x, lane, 8, n_vec, acc)
        return total

    @njit(inline="always", cache=False)
    def _norm2(p: Any, n: int) -> Any:
        """``torch.linalg.vector_norm(p, 2)`` for contiguous float32 (8 fma lanes)."""
        lanes = np.zeros(8, np.float32)
        d = 0
        n_vec = n - (n % 8)
        while d < n_vec:
            for lane in range(8):
                lanes[lane] = _fma32(p[d + lane], p[d + lane], lanes[lane])
            d += 8
        total = lanes[0]
        for lane in range(1, 8):
            total = total + lanes[lane]
        while d < n:
            total = _fma32(p[d], p[d], total)
            d += 1
        return np.sqrt(total)


@functools.cache
def _kernel(tanh: int) -> Any:
    """The compiled SGD loop with the given tanh (numba needs the MKL routine as a constant)."""
    vms_tanh = mkl_tanh() if tanh == TANH_MKL else None
    if vms_tanh is not None:

        @njit(inline="always")
        def tanh_into(z: Any, h: Any, n: int) -> None:
            vms_tanh(n, z.ctypes, h.ctypes, VML_MODE)

    else:

        @njit(inline="always")
        def tanh_into(z: Any, h: Any, n: int) -> None:
            for k in range(n):
                h[k] = F32(np.tanh(np.float64(z[k])))

    @njit(cache=False)
    def sgd(
        W0: Any, b0: Any, W1: Any, b1: Any, x: Any, t: Any, steps: int, lr: float, lmbd: float,
        admm: bool, Wb0: Any, Y0: Any, Wb1: Any, Y1: Any, rho: float,
    ) -> None:
        """``steps`` SGD steps in place on float32 ``W0 (H,), b0 (H,), W1 (H,), b1 (1,)``."""
        n = x.size
        hidden = W0.size
        z = np.empty(n * hidden, np.float32)
        h = np.empty(n * hidden, np.float32)
        grad_out = np.empty(n, np.float32)
        grad_z = np.empty(n * hidden, np.float32)
        gW0 = np.empty(hidden, np.float32)
        gb0 = np.empty(hidden, np.float32)
        gW1 = np.empty(hidden, np.float32)
        acc = np.zeros((4, 4), np.float32)
        half_rho = F32(rho / 2.0)
        minus_lr = F32(-lr)
        mse_scale = F32(2.0 / n)
        one = F32(1)
        two = F32(2)
        l2 = F32(lmbd)
        half_l2 = F32(l2 * F32(0.5))
        mkl_tree = hidden == 10
        for _ in range(steps):
            for i in range(n):
                for j in range(hidden):
                    z[i * hidden + j] = x[i] * W0[j] + b0[j]
            tanh_into(z, h, n * hidden)
            for i in range(n):
                o = i * hidden
                if mkl_tree:  # MKL's order for a 10-term dot product
                    a = ((h[o] * W1[0] + h[o + 1] * W1[1]) + h[o + 2] * W1[2]) + h[o + 6] * W1[6]
                    b = h[o + 4] * W1[4] + h[o + 8] * W1[8]
                    c = h[o + 3] * W1[3] + h[o + 7] * W1[7]
                    d = h[o + 5] * W1[5] + h[o + 9] * W1[9]
                    s = (a + b) + (c + d)
                else:
                    s = F32(0)
                    for j in range(hidden):
                        s += h[o + j] * W1[j]
                grad_out[i] = mse_scale * ((s + b1[0]) - t[i])
            for j in range(hidden):
                gW1[j] = 0
                gW0[j] = 0
            for i in range(n):
                g = grad_out[i]
                o = i * hidden
                for j in range(hidden):
                    hj = h[o + j]
                    gW1[j] += g * hj
                    grad_z[o + j] = (g * W1[j]) * _fma32(-hj, hj, one)
                    gW0[j] += grad_z[o + j] * x[i]
            gb1 = _sum(grad_out, n, acc)
            for j in range(hidden):
                gb0[j] = _row_sum(grad_z, j, hidden, n, acc)
            if lmbd != 0.0:
                for j in range(hidden):
                    gW0[j] = gW0[j] + l2 * W0[j]
                norm = _norm2(b0, hidden)
                scale = half_l2 * (two * norm)
                for j in range(hidden):
                    gb0[j] = gb0[j] + scale * (b0[j] / norm)
                norm = _norm2(W1, hidden)
                scale = half_l2 * (two * norm)
                for j in range(hidden):
                    gW1[j] = gW1[j] + scale * (W1[j] / norm)
                norm = _norm2(b1, 1)
                gb1 = gb1 + (half_l2 * (two * norm)) * (b1[0] / norm)
            if admm:
                for j in range(hidden):
                    gW0[j] = gW0[j] + (half_rho * (two * (W0[j] - Wb0[j])) + Y0[j])
                    gW1[j] = gW1[j] + (half_rho * (two * (W1[j] - Wb1[j])) + Y1[j])
            for j in range(hidden):
                W0[j] = _fma32(minus_lr, gW0[j], W0[j])
                b0[j] = _fma32(minus_lr, gb0[j], b0[j])
                W1[j] = _fma32(minus_lr, gW1[j], W1[j])
            b1[0] = _fma32(minus_lr, gb1, b1[0])

    return sgd


def sgd_steps(
    params: list[np.ndarray],
    x: np.ndarray,
    t: np.ndarray,
    steps: int,
    lr: float,
    *,
    lmbd: float | None = None,
    rho: float | None = None,
    multipliers: list[tuple[np.ndarray, np.ndarray]] | None = None,
    tanh: int | None = None,
) -> None:
    """Run ``steps`` SGD steps in place on ``params = [W0, b0, W1, b1]`` (float32 arrays).

    ``x`` and ``t`` are the ``N`` inputs and targets (float32); ``lmbd`` adds
    the L2 penalty; ``rho`` with ``multipliers = [(W0_bar, Y0), (W1_bar, Y1)]``
    adds the augmented-Lagrangian terms of (10a).
    """
    if njit is None:  # pragma: no cover
        raise ImportError("the compiled SGD engine needs numba: pip install 'pylip[train]'")
    W0, b0, W1, b1 = (p.reshape(-1) for p in params)
    if multipliers is None:
        Wb0 = Y0 = Wb1 = Y1 = np.zeros_like(W0)
    else:
        (Wb0, Y0), (Wb1, Y1) = ((w.reshape(-1), y.reshape(-1)) for w, y in multipliers)
    _kernel(tanh_kind() if tanh is None else tanh)(
        W0, b0, W1, b1, x.reshape(-1), t.reshape(-1), int(steps), float(lr),
        0.0 if lmbd is None else float(lmbd), multipliers is not None,
        Wb0, Y0, Wb1, Y1, 0.0 if rho is None else float(rho),
    )
