"""FLOPs of a model call (counted by torch's FlopCounterMode) and this machine's matmul peak (measured).

FlopCounterMode counts matmuls and convolutions, but on the CPU it sees scaled_dot_product_attention as one
op it has no formula for (CUDA's flash / efficient kernels it knows), so attention is added here:
2 * (q @ k^T) + 2 * (attn @ v) multiply-adds per query-key pair, causal or masked pairs included (the kernels
compute them), and its backward (count_flops(..., inference=False), a training step) at twice that: dV, dP, dQ and dK
are four such products. Element-wise work (norms, activations, modulation) is not counted: FLOP/s here means
matrix FLOP/s, the figure a matmul peak is comparable with.
"""
from __future__ import annotations

import contextlib
import math
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

PEAK_SIZE = 2048           # square matmul for the peak: 17 GFLOP, large enough to run at full speed
PEAK_REPEATS = 5


def _attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """(..., Lq, E) x (..., Lk, E) x (..., Lk, Ev): QK^T and AV."""
    batch = math.prod(query[:-2])
    return 2 * batch * query[-2] * key[-2] * (query[-1] + value[-1])


def _attention_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    """The backward of one attention: dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q, twice the forward."""
    return 2 * _attention_flops(query, key, value)


def _attention_mapping() -> dict:
    mapping = {}
    ops = (("scaled_dot_product_attention", _attention_flops),
           ("_scaled_dot_product_flash_attention_for_cpu", _attention_flops),
           ("_scaled_dot_product_flash_attention_for_cpu_backward", _attention_backward_flops))
    for name, formula in ops:
        packet = getattr(torch.ops.aten, name, None)
        if packet is not None:
            # the counter looks an op up by its overload, then counts it under the overload packet: key both
            mapping[packet] = formula
            mapping[packet.default] = formula
    return mapping


def count_flops(fn: Callable[[], object], inference: bool = True) -> tuple[int, object]:
    """Run `fn()` once under the counter (inside inference_mode, as the stream runs; inference=False for work
    with a backward, a training step); returns (FLOPs, result)."""
    with (torch.inference_mode() if inference else contextlib.nullcontext()), \
            FlopCounterMode(display=False, custom_mapping=_attention_mapping()) as counter:
        result = fn()
    return counter.get_total_flops(), result


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int = PEAK_SIZE, repeats: int = PEAK_REPEATS) -> float:
    """Best GFLOP/s of a size x size matmul in `dtype` on `device` (the ceiling a model's FLOP/s is held against)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    flops = 2 * size ** 3
    best = float("inf")
    with torch.inference_mode():
        torch.mm(a, b)                       # first call: allocation, kernel choice
        _sync(device)
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            _sync(device)
            best = min(best, time.perf_counter() - start)
    return flops / best / 1e9
