"""`python -m matrix_sim encode --data DIR`: recorded shards -> latent shards for world-model training.

Latent shards mirror the frame shards (manifest.json + one .npz per episode) with `latents`
(F, C, H/8, W/8) float16, raw (before the autoencoder's scaling), next to the same actions, poses and meta.
The manifest carries the scaling the world model applies: (latents - shift_factor) * scaling_factor.
Resumable: episodes already encoded are kept.
"""
from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from matrix_sim.data.shards import Episode, read_episode, read_manifest, write_episode, write_manifest
from matrix_sim.models.autoencoder import images_to_tensor
from matrix_sim.config import DEFAULT_VAE_DIR, make_folder
from matrix_sim.device import pick_device
from matrix_sim.models.loading import load_autoencoder

LATENT_FORMAT = "matrix-sim-latents/1"
READ_AHEAD = 4                 # episodes read ahead of the encoder
log = logging.getLogger(__name__)


@torch.no_grad()
def encode_frames(model, frames: np.ndarray, batch: int) -> np.ndarray:
    chunks = []
    for i in range(0, len(frames), batch):
        x = images_to_tensor(frames[i:i + batch]).to(model.device).contiguous(memory_format=torch.channels_last)
        chunks.append(model.encode(x).float().cpu().numpy().astype(np.float16))
    return np.concatenate(chunks)


def encode_dataset(data: str | Path, out: str | Path | None = None, checkpoint: str | Path = DEFAULT_VAE_DIR,
                   batch: int = 32, progress: bool = True) -> Path:
    data = Path(data)
    out = Path(out) if out else data / "latents"
    manifest = read_manifest(data, ("frame_rate", "action_fields"))
    if not manifest["episodes"]:
        raise ValueError(f"{data}: the manifest lists no episodes to encode")
    model = load_autoencoder(checkpoint, pick_device())          # a GPU where there is one: encoding is its work
    make_folder(out, "latent folder")
    latents_manifest = {
        "format": LATENT_FORMAT, "source": str(data), "checkpoint": str(checkpoint),
        "scaling_factor": model.config.scaling_factor, "shift_factor": model.config.shift_factor,
        "frame_rate": manifest["frame_rate"], "action_fields": manifest["action_fields"], "episodes": [],
    }
    todo = [data / entry["file"] for entry in manifest["episodes"] if not (out / entry["file"]).exists()]
    for path, episode in tqdm(zip(todo, read_ahead(todo)), total=len(todo), desc="encoding", disable=not progress):
        write_latent_episode(out / path.name, encode_frames(model, episode.frames, batch), episode)
    latents_manifest["episodes"] = list(manifest["episodes"])
    shape = list(np.load(out / manifest["episodes"][0]["file"])["latents"].shape[1:])
    latents_manifest["latent_shape"] = shape
    write_manifest(out, latents_manifest)
    log.info("encoded %d episodes to %s (latents %s)", len(manifest["episodes"]), out, shape)
    return out


def read_ahead(paths: list[Path], depth: int = READ_AHEAD) -> Iterator[Episode]:
    """The episodes in order, each read (and decompressed) by a thread while earlier ones are encoded."""
    with ThreadPoolExecutor(depth) as pool:
        pending = deque(pool.submit(read_episode, path) for path in paths[:depth])
        for path in paths[depth:]:
            episode = pending.popleft().result()
            pending.append(pool.submit(read_episode, path))
            yield episode
        while pending:
            yield pending.popleft().result()


def write_latent_episode(path: Path, latents: np.ndarray, episode: Episode) -> None:
    """Same shard writer as the frames (deterministic, atomic), with latents in place of frames."""
    write_episode(path, Episode(frames=latents, actions=episode.actions, poses=episode.poses, meta=episode.meta),
                  frames_key="latents")
