"""Start clips carried in the bundle: a few real context clips of each level a model of another game learned.

The game starts every scene from a short real clip (stream/starter.py). For the source world's scenes the
source world renders one; a model of a recorded Gymnasium environment (Doom) would need that environment
installed to do the same. So training writes, for each such level in its data, a few clips of context length
as latents (27 KB a clip at 4x18x32 in float16), and the starter decodes those: the model plays its levels on
an install without the game.

  starts.safetensors   latents (N, K, C, H, W) float16 raw (as `encode` wrote them), actions (N, K, A) float32
                       (the action taken at each frame); metadata "prompts": JSON list of the N clips' prompts
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from safetensors.torch import save_file

from matrix_sim.models.checkpoint import CheckpointError, read_tensors

STARTS_FILE = "starts.safetensors"
CLIPS_PER_PROMPT = 4


def write_starts(path: str | Path, shards, prompts: Sequence[str], frames: int) -> int:
    """Up to CLIPS_PER_PROMPT clips of `frames` frames per prompt from the latent shards (a LatentShards), spread
    over the episodes that show it and over their length; returns the number of clips written."""
    latents, actions, named = [], [], []
    for prompt in prompts:
        showing = [e for e in shards.episodes if prompt in e.texts and len(e.latents) > frames]
        for i in range(min(CLIPS_PER_PROMPT, 2 * len(showing))):
            episode = showing[i % len(showing)]
            start = (len(episode.latents) - frames) * (i // len(showing) + 1) // 3     # 1/3 and 2/3 in
            latents.append(episode.latents[start:start + frames])
            actions.append(episode.actions[start:start + frames])
            named.append(prompt)
    if not named:
        return 0
    tmp = Path(path).with_suffix(".tmp")
    save_file({"latents": torch.from_numpy(np.stack(latents)).to(torch.float16),
               "actions": torch.from_numpy(np.stack(actions)).float()}, str(tmp),
              metadata={"prompts": json.dumps(named)})
    os.replace(tmp, path)
    return len(named)


class BundleStarts:
    """The bundle's start clips, by prompt."""

    def __init__(self, latents: torch.Tensor, actions: torch.Tensor, prompts: list[str]):
        self.latents, self.actions = latents, actions
        self._clips: dict[str, list[int]] = {}
        for index, prompt in enumerate(prompts):
            self._clips.setdefault(prompt, []).append(index)

    @classmethod
    def load(cls, bundle_dir: str | Path) -> Optional["BundleStarts"]:
        """The bundle's start clips, or None where it has none (a model of the source world)."""
        path = Path(bundle_dir) / STARTS_FILE
        if not path.is_file():
            return None
        tensors, meta = read_tensors(path, "start-clip", tensors=("latents", "actions"), metadata=("prompts",))
        latents, actions, prompts = tensors["latents"], tensors["actions"], json.loads(meta["prompts"])
        if not len(latents) == len(actions) == len(prompts):
            raise CheckpointError(f"{path}: {len(latents)} clips, {len(actions)} action runs, {len(prompts)} prompts")
        return cls(latents, actions, prompts)

    def __contains__(self, prompt: str) -> bool:
        return prompt in self._clips

    def clip(self, prompt: str, seed: int) -> tuple[torch.Tensor, np.ndarray]:
        """(raw latents (K, C, H, W) float32, actions (K, A)) of one of the prompt's clips, chosen by the seed."""
        clips = self._clips[prompt]
        index = clips[seed % len(clips)]
        return self.latents[index].float(), self.actions[index].numpy()
