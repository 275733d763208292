"""The folder the game plays: everything the generated world needs, written by training, read by WorldModel.

  world_model.json       {"format", "stream": StreamConfig, "latent_shape": [C, H, W], "frame_rate",
                          "start_prompt" (optional: the scene the game opens, for a model of another game)}
  dit/                   WorldDiT (config.json + diffusion_pytorch_model.safetensors), EMA weights
  vae/                   FrameAutoencoder, the one the training latents were encoded with
  prompts.safetensors    cached prompt embeddings of the scene presets (PromptBank)
  starts.safetensors     optional: start clips of the recorded levels a model of another game plays (stream/starts.py)
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from matrix_sim.config import from_dict, read_json, write_atomic
from matrix_sim.models.checkpoint import CheckpointError
from matrix_sim.stream.schedule import StreamConfig

FORMAT = "matrix-sim-world-model/1"
MANIFEST = "world_model.json"
DIT_DIR = "dit"
VAE_DIR = "vae"
PROMPTS_FILE = "prompts.safetensors"


@dataclass(frozen=True)
class BundleInfo:
    stream: StreamConfig
    latent_shape: tuple
    frame_rate: int
    start_prompt: str = ""     # empty: the game's default scene; "doom e1m1" for a model of Doom


def bundle_root(path: str | Path) -> Path:
    """The bundle folder: `path` itself, or its parent when given one of its parts (dit/, vae/)."""
    path = Path(path)
    for candidate in (path, path.parent):
        if (candidate / MANIFEST).is_file():
            return candidate
    raise CheckpointError(f"not a world-model checkpoint: missing file {path / MANIFEST}")


def write_info(directory: str | Path, info: BundleInfo) -> None:
    path = Path(directory) / MANIFEST
    data = {"format": FORMAT, "stream": dataclasses.asdict(info.stream), "latent_shape": list(info.latent_shape),
            "frame_rate": info.frame_rate}
    if info.start_prompt:
        data["start_prompt"] = info.start_prompt
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def read_info(directory: str | Path) -> BundleInfo:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"not a world-model checkpoint: missing file {path}")
    data = read_json(path, FORMAT, CheckpointError)
    try:
        return BundleInfo(from_dict(StreamConfig, data["stream"], f"{path}: stream"), tuple(data["latent_shape"]),
                          int(data["frame_rate"]), str(data.get("start_prompt", "")))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: malformed manifest ({exc.__class__.__name__}: {exc})") from None
