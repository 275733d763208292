"""Frames from recorded shards, held in memory as one uint8 tensor for fast random crops."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from matrix_sim.data.shards import read_episode, read_manifest

log = logging.getLogger(__name__)


class FrameBank:
    """Every `stride`-th frame of every episode in the given shard directories: (N, H, W, 3) uint8."""

    def __init__(self, dirs: list[str | Path], stride: int = 1, progress: bool = True):
        if stride <= 0:
            raise ValueError(f"frame stride must be positive, got {stride}")
        entries = []
        for directory in dirs:
            manifest = read_manifest(directory)
            entries += [Path(directory) / e["file"] for e in manifest["episodes"]]
        if not entries:
            raise ValueError(f"no episodes in {list(map(str, dirs))}")
        chunks = [read_episode(p).frames[::stride] for p in tqdm(entries, desc="loading frames", disable=not progress)]
        self.frames = torch.from_numpy(np.concatenate(chunks))
        log.info("loaded %d frames (%.1f GB) from %d episodes", len(self.frames), self.frames.nbytes / 1e9, len(entries))

    def __len__(self) -> int:
        return len(self.frames)

    def random_crops(self, generator: torch.Generator, batch: int, crop: tuple[int, int]) -> torch.Tensor:
        """(batch, crop_h, crop_w, 3) uint8 crops at even offsets (the codec works on 2x2 pixel groups)."""
        n, h, w, _ = self.frames.shape
        ch, cw = crop
        if ch > h or cw > w:
            raise ValueError(f"crop {crop} is larger than the frames ({h}x{w})")
        idx = torch.randint(0, n, (batch,), generator=generator)
        ys = torch.randint(0, (h - ch) // 2 + 1, (batch,), generator=generator) * 2
        xs = torch.randint(0, (w - cw) // 2 + 1, (batch,), generator=generator) * 2
        return torch.stack([self.frames[i, y:y + ch, x:x + cw] for i, y, x in zip(idx, ys, xs)])
