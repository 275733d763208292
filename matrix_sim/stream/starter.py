"""Real first frames for the generated world: the source world renders a few frames of the prompt's scene.

A stream started from the prompt alone has to invent a whole scene in L denoising steps with no context;
the shipped tiny model does that poorly (murky: its model card), while it continues real context well. So
the game starts each scene, and cuts to a new one on a prompt switch, from a short source-world drive of
that scene (the nearest preset's for free text); every frame after those is generated. A model of a recorded
environment (Doom) starts from the clips its bundle carries (stream/starts.py). Evaluation drives
WorldModel without a starter and measures the model alone.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

from matrix_sim.models.autoencoder import tensor_to_images
from matrix_sim.stream.starts import BundleStarts


class SourceStarter:
    def __init__(self, frames: int, width: int, height: int, starts: Optional[BundleStarts] = None,
                 decode: Optional[Callable[[torch.Tensor], np.ndarray]] = None):
        self.frames, self.width, self.height = frames, width, height
        self.starts, self.decode = starts, decode    # the bundle's own clips (stream/starts.py), and their decoder
        self._world = None
        self._gym = None               # a GymWorld, for a registered environment's prompt

    def clip(self, preset: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(frames, H, W, 3) uint8 images of the preset's scene and the (frames, A) actions taken at them; a
        registered Gymnasium environment's prompt ("doom map01") takes the bundle's start clip of that level
        where it has one, else plays that environment's level."""
        from matrix_sim.data.policy import drive
        from matrix_sim.world.gym_world import source_of

        if self.starts is not None and preset in self.starts:
            latents, actions = self.starts.clip(preset, seed)
            return self.decode(latents[-self.frames:]), actions[-self.frames:]
        source = source_of(preset)
        if source is not None:
            from matrix_sim.data.gym_record import drive_gym
            from matrix_sim.world.gym_world import GymWorld

            if self._gym is None or self._gym.source.name != source.name:
                self.close()
                self._gym = GymWorld(source, self.width, self.height)
            return drive_gym(self._gym, preset, seed, self.frames)
        from matrix_sim.world.engine import SourceWorld

        if self._world is None:        # built on first use, in the thread that steps the world
            self._world = SourceWorld(self.width, self.height)
        return drive(self._world, preset, seed, self.frames)

    def close(self) -> None:
        if self._gym is not None:
            self._gym.close()
            self._gym = None
        if self._world is not None:
            self._world.close()
            self._world = None


def starter_for(world, frames: Optional[int] = None, starts: Optional[BundleStarts] = None) -> SourceStarter:
    """A starter sized for a WorldModel: its frame size, (by default) its full context, and the bundle's start
    clips decoded by its autoencoder."""
    height, width = world.frame_size

    @torch.inference_mode()
    def decode(latents: torch.Tensor) -> np.ndarray:
        return tensor_to_images(world.vae.decode(latents.to(world.torch_device)))

    return SourceStarter(frames or world.sampler.config.context_frames, width, height, starts, decode)
