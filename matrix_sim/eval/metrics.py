"""Image quality figures shared by every evaluation."""
from __future__ import annotations

from typing import Sequence

import numpy as np

PEAK = 255.0
MSE_FLOOR = 1e-10       # identical images: a finite figure (148 dB) where the true one is infinite


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error of two uint8 images (or stacks), in squared grey levels."""
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def psnr_of_mse(error: float) -> float:
    return float(10 * np.log10(PEAK**2 / max(error, MSE_FLOOR)))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (or stacks), peak 255."""
    return psnr_of_mse(mse(a, b))


def pooled_psnr(errors: Sequence[float]) -> float:
    """PSNR of the mean squared error over many comparisons: where one of them is exact (its own PSNR infinite,
    MSE_FLOOR's 148 dB here), it adds an error of 0, not a figure set by the floor, as a mean of dB would."""
    return psnr_of_mse(float(np.mean(errors)))


def grouped_mean(values: list[float], keys: list[str]) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for key, value in zip(keys, values):
        groups.setdefault(key, []).append(value)
    return {k: round(float(np.mean(v)), 2) for k, v in sorted(groups.items())}
