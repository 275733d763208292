"""Which device and number format to run the networks in, and why.

CUDA first, then Apple's MPS, then the CPU, and the log says which, so nobody runs on the CPU by accident
without knowing. On a CPU, bfloat16 pays only where it runs faster: without AVX-512 BF16 or AMX it is emulated
(several times slower than float32), and even with AVX-512 BF16 but no AMX float32 matmuls can win; with AMX
bfloat16 matmuls are several times faster. So where the CPU has native bf16, the choice is a short race of a
model-shaped matmul in both formats, run once per process. The race stands for the whole call only if the
model's matmuls are plain ones (a strided input makes bfloat16 copy weights per row; models/dit.py, WorldBlock).
MATRIX_SIM_DTYPE=float32|bfloat16 overrides the choice (for measuring one against the other).
"""
from __future__ import annotations

import logging
import os
import platform
import time
from functools import lru_cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)
_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
DTYPE_ENV = "MATRIX_SIM_DTYPE"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
RACE_SHAPE = (1152, 128, 512)     # tokens x width x MLP hidden: one of the world model's matmuls
RACE_REPEATS = 20
RACE_MARGIN = 1.1                 # bfloat16 must be this much faster to be worth its lost precision
GAME_RESERVED_CORES = 1           # the game's display, HUD and mp4 encoder run beside the world model


@lru_cache(maxsize=1)
def cpu_description() -> tuple[str, frozenset[str]]:
    """The CPU's model name (the machine type where /proc/cpuinfo has none) and its flags: what every benchmark
    names its host by."""
    name, flags = "", frozenset()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not name:
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = frozenset(value.split())
    except OSError:
        pass
    return name or platform.processor() or platform.machine(), flags


def cpu_name() -> str:
    return cpu_description()[0]


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in _NATIVE_BF16_FLAGS)


def _matmul_seconds(dtype: torch.dtype) -> float:
    rows, inner, cols = RACE_SHAPE
    a, b = torch.randn(rows, inner).to(dtype), torch.randn(inner, cols).to(dtype)
    best = float("inf")
    with torch.inference_mode():
        a @ b                                           # first call: allocation, kernel choice
        for _ in range(RACE_REPEATS):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    return best


@lru_cache(maxsize=1)
def cpu_bf16_is_faster() -> bool:
    """Whether bfloat16 beats float32 on this CPU by RACE_MARGIN (measured, once per process)."""
    if not cpu_has_native_bf16():
        return False
    fp32, bf16 = _matmul_seconds(torch.float32), _matmul_seconds(torch.bfloat16)
    log.info("CPU matmul race: float32 %.3f ms, bfloat16 %.3f ms", 1e3 * fp32, 1e3 * bf16)
    return bf16 * RACE_MARGIN < fp32


def _dtype_override() -> torch.dtype | None:
    name = os.environ.get(DTYPE_ENV)
    if not name:
        return None
    if name not in _DTYPES:
        raise ValueError(f"{DTYPE_ENV}={name!r}: expected one of {', '.join(_DTYPES)}")
    return _DTYPES[name]


def pick_device(requested: str | None = None) -> torch.device:
    """The requested device, or the best one present."""
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def compute_dtype(device: torch.device, training: bool = False) -> torch.dtype:
    """bfloat16 on CUDA and, for inference, on CPUs where it measures faster; float32 everywhere else (or as
    MATRIX_SIM_DTYPE says). Training on a CPU stays in float32: the matmul race speaks for the forward pass only,
    and a training step's backward, optimizer and reductions in bfloat16 run slower than float32 even with AMX
    (`bench train` times both)."""
    override = _dtype_override()
    if override is not None:
        return override
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device.type == "cpu" and not training and cpu_bf16_is_faster():
        return torch.bfloat16
    return torch.float32


def autocast(device: torch.device, training: bool = False):
    """An autocast context in the compute dtype (a no-op where that is float32)."""
    dtype = compute_dtype(device, training)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def cpu_cores() -> int:
    """Cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                               # not on Linux
        return os.cpu_count() or 1


def game_threads(device: torch.device, requested: int | None = None) -> int | None:
    """Torch threads for the world model while the game draws and records on the same CPU: every core but
    GAME_RESERVED_CORES, so the display and the encoder never stall the model's OpenMP team mid-layer (a team
    that shares its cores with them waits for its slowest thread; `bench play` shows the difference).
    `requested` wins; None (torch's own choice) off the CPU."""
    if requested:
        return requested
    if device.type != "cpu":
        return None
    return max(1, cpu_cores() - GAME_RESERVED_CORES)


def decodes_ahead(device: torch.device) -> bool:
    """Whether the game overlaps the DiT's next call with the last block's decode (stream/decode_ahead.py): on a
    CPU each gets a core of its own; on a GPU both would queue on one stream."""
    return device.type == "cpu"


def samples_in_process(device: torch.device) -> bool:
    """Whether the game hosts the sampler in a process of its own (stream/sampler_process.py): on a CPU its
    hundreds of small ops a call wait for the GIL while the display's GL calls hold it; a GPU call is a few
    kernel launches, and a second process would need a CUDA context of its own."""
    return device.type == "cpu"


def describe(device: torch.device, training: bool = False) -> str:
    """One line for logs and the HUD: which device, which format."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type.upper()
    return f"{name} ({str(compute_dtype(device, training)).replace('torch.', '')})"
