"""Held-out source-world footage: seeds no recording ever uses, every biome, mode and time of day.

`record` draws world seeds below 2**31 - 1, so seeds from HELDOUT_SEED_BASE up were never trained on.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from matrix_sim.data.policy import WARMUP_FRAMES, drive
from matrix_sim.world.engine import SourceWorld
from matrix_sim.world.scenes import BIOMES, MODES, TIMES, WEATHERS, Scene

HELDOUT_SEED_BASE = 2**31


@dataclass
class HeldoutClip:
    scene: Scene
    frames: np.ndarray      # (T, H, W, 3) uint8
    actions: np.ndarray     # (T, 5) float32; frames[t + 1] is what actions[t] produced

    @property
    def prompt(self) -> str:
        return self.scene.prompt


def heldout_scenes() -> list[Scene]:
    """Every biome x mode x time once, weathers cycled through them: 36 scenes."""
    combos = list(itertools.product(BIOMES, MODES, TIMES))
    return [Scene(b, t, WEATHERS[i % len(WEATHERS)], m) for i, (b, m, t) in enumerate(combos)]


def heldout_clips(frames: int, warmup: int = WARMUP_FRAMES, scenes: list[Scene] | None = None, width: int = 256,
                  height: int = 144) -> list[HeldoutClip]:
    """One clip per scene, driven by the exploration policy after `warmup` frames of it."""
    world = SourceWorld(width, height)
    clips = []
    try:
        for i, scene in enumerate(scenes or heldout_scenes()):
            seed = HELDOUT_SEED_BASE + i
            clips.append(HeldoutClip(scene, *drive(world, scene.prompt, seed, frames, warmup)))
    finally:
        world.close()
    return clips
