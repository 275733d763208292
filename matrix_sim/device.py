"""Which device and number format to run the networks in, and why.

CUDA first, then Apple's MPS, then the CPU (DESIGN.md: users who ran on the CPU by accident never knew).
bfloat16 pays only where the hardware has it: on a CPU without AVX-512 BF16 or AMX it is emulated and
measured 5-30x slower than float32 for convolutions here (AMD EPYC, AVX2 only), so it is not used there.
"""
from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)
_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in _NATIVE_BF16_FLAGS)


def pick_device(requested: str | None = None) -> torch.device:
    """The requested device, or the best one present."""
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def compute_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on CUDA and on CPUs with native bf16; float32 everywhere else."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


def autocast(device: torch.device):
    """An autocast context in the compute dtype (a no-op where that is float32)."""
    dtype = compute_dtype(device)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def describe(device: torch.device) -> str:
    """One line for logs and the HUD: which device, which format."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type.upper()
    return f"{name} ({str(compute_dtype(device)).replace('torch.', '')})"
