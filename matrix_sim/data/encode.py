"""`python -m matrix_sim encode --data DIR`: recorded shards -> latent shards for world-model training.

Latent shards mirror the frame shards (manifest.json + one .npz per episode) with `latents`
(F, C, H/8, W/8) float16, raw (before the autoencoder's scaling), next to the same actions, poses and meta.
The manifest carries the scaling the world model applies: (latents - shift_factor) * scaling_factor.
Resumable: episodes already encoded are kept.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from matrix_sim.data.shards import Episode, read_episode, read_manifest, write_episode, write_manifest
from matrix_sim.models.autoencoder import images_to_tensor
from matrix_sim.config import DEFAULT_VAE_DIR
from matrix_sim.models.loading import load_autoencoder

LATENT_FORMAT = "matrix-sim-latents/1"
log = logging.getLogger(__name__)


@torch.no_grad()
def encode_frames(model, frames: np.ndarray, batch: int) -> np.ndarray:
    chunks = []
    for i in range(0, len(frames), batch):
        x = images_to_tensor(frames[i:i + batch]).contiguous(memory_format=torch.channels_last)
        chunks.append(model.encode(x).float().numpy().astype(np.float16))
    return np.concatenate(chunks)


def encode_dataset(data: str | Path, out: str | Path | None = None, checkpoint: str | Path = DEFAULT_VAE_DIR,
                   batch: int = 32, progress: bool = True) -> Path:
    data = Path(data)
    out = Path(out) if out else data / "latents"
    manifest = read_manifest(data)
    model = load_autoencoder(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    latents_manifest = {
        "format": LATENT_FORMAT, "source": str(data), "checkpoint": str(checkpoint),
        "scaling_factor": model.config.scaling_factor, "shift_factor": model.config.shift_factor,
        "frame_rate": manifest["frame_rate"], "action_fields": manifest["action_fields"], "episodes": [],
    }
    for entry in tqdm(manifest["episodes"], desc="encoding", disable=not progress):
        target = out / entry["file"]
        if not target.exists():
            episode = read_episode(data / entry["file"])
            latents = encode_frames(model, episode.frames, batch)
            write_latent_episode(target, latents, episode)
        latents_manifest["episodes"].append(entry)
    shape = list(np.load(out / manifest["episodes"][0]["file"])["latents"].shape[1:])
    latents_manifest["latent_shape"] = shape
    write_manifest(out, latents_manifest)
    log.info("encoded %d episodes to %s (latents %s)", len(manifest["episodes"]), out, shape)
    return out


def write_latent_episode(path: Path, latents: np.ndarray, episode: Episode) -> None:
    """Same shard writer as the frames (deterministic, atomic), with latents in place of frames."""
    write_episode(path, Episode(frames=latents, actions=episode.actions, poses=episode.poses, meta=episode.meta),
                  frames_key="latents")
