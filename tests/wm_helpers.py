"""Tiny world-model pieces for the tests: synthetic latent shards, configs, prompt caches and bundles."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from matrix_sim.device import DTYPE_ENV
from matrix_sim.models.autoencoder import FrameAutoencoder
from matrix_sim.models.dit import WorldDiT
from matrix_sim.eval.timed_world import HashEncoder
from matrix_sim.models.prompt import PromptBank
from matrix_sim.stream import bundle
from matrix_sim.stream.schedule import StreamConfig
from matrix_sim.train.latents import FORMAT
from matrix_sim.world.scenes import scene_catalog

TINY_MODEL = {"width": 32, "depth": 1, "heads": 2, "mlp_ratio": 2.0}
TINY_VAE = {"channels": (8, 8, 8), "decoder_blocks": (1, 1, 1), "encoder_blocks": (1, 1, 1)}
TINY_STREAM = {"context_frames": 2, "levels": 3, "block_frames": 1, "context_level": 0.02}
TINY_LATENT = (4, 4, 6)
FRAME_LATENT = (4, 18, 32)        # 256x144 frames
SCENE = {"biome": "desert", "time": "day", "weather": "clear", "mode": "drive"}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models are overhead-bound: one thread is fastest, and it does not fight other work for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def float32(monkeypatch):
    """Eager torch in float32 on every host: where the matmul race picks bfloat16 (AVX-512 BF16, AMX), autocast's
    rounding (~1e-2) would decide comparisons that are meant to hold to 1e-4 or 1e-5."""
    monkeypatch.setenv(DTYPE_ENV, "float32")


def hash_bank(texts) -> PromptBank:
    bank = PromptBank(encoder_factory=HashEncoder)
    bank.add(texts)
    return bank


def write_latent_shards(directory: Path, episodes: int = 2, frames: int = 12, shape=TINY_LATENT,
                        scale: float = 2.0, shift: float = 0.5, seed: int = 0) -> Path:
    """Shards in the `encode` format: smooth random latents, random actions, the desert scene."""
    rng = np.random.default_rng(seed)
    walks = [(np.cumsum(rng.normal(0, 0.2, (frames, *shape)), axis=0) + rng.normal(0, 1, shape),
              rng.uniform(-1, 1, (frames, 5)).astype(np.float32)) for _ in range(episodes)]
    return save_latent_episodes(directory, walks, scale, shift)


def save_latent_episodes(directory: Path, episodes, scale: float = 2.0, shift: float = 0.5) -> Path:
    """(model-space latents (F, C, H, W), actions (F, 5)) per episode -> shards in the `encode` format, the
    desert scene."""
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for index, (latents, actions) in enumerate(episodes):
        name = f"episode_{index:06d}.npz"
        np.savez(directory / name, latents=(latents / scale + shift).astype(np.float16), actions=actions,
                 poses=np.zeros((len(latents), 4), np.float32), meta=np.array(json.dumps({"index": index})))
        entries.append({"file": name, "frames": len(latents), "prompt": "drive desert by day", "seed": index,
                        **SCENE})
    manifest = {"format": FORMAT, "scaling_factor": scale, "shift_factor": shift,
                "latent_shape": list(episodes[0][0].shape[1:]), "frame_rate": 16,
                "action_fields": ["forward", "turn", "strafe", "boost", "brake"], "episodes": entries}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def training_texts() -> list[str]:
    scene = scene_catalog().parse("drive desert by day")
    return [*scene_catalog().prompts, *scene.captions()]


def write_config(tmp_path: Path, data: Path, run_dir: Path, autoencoder: Path, steps: int = 4, model=None,
                 stream=None, levels=None, init_from: str = "", guidance=None, own_context=None,
                 detail=None, compiled: bool = False, **train) -> Path:
    """A tiny config; the run folder gets a prompt cache first, so training never loads the real encoder."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "prompts-train.safetensors").exists():
        hash_bank(training_texts()).save(run_dir / "prompts-train.safetensors")
    config = {
        "data": str(data), "run_dir": str(run_dir), "autoencoder": str(autoencoder), "init_from": init_from,
        "model": model or TINY_MODEL,
        "stream": stream or TINY_STREAM,
        "levels": levels or {"forcing_prob": 0.25, "context_dropout": 0.1, "partial_window": 0.1,
                             "context_noise_max": 0.05, "level_jitter": 0.5, "scene_cut": 0.5},
        "train": {"batch_size": 4, "steps": steps, "lr": 1e-3, "warmup_steps": 1, "log_every": 2, "save_every": 2,
                  **train},
    }
    if compiled:
        config["compile"] = True
    optional = (("guidance", guidance), ("own_context", own_context), ("detail", detail))
    for name, section in optional:
        if section is not None:
            config[name] = section
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def save_tiny_vae(directory: Path, scale: float = 2.0, shift: float = 0.5) -> Path:
    torch.manual_seed(0)
    FrameAutoencoder(**TINY_VAE, scaling_factor=scale, shift_factor=shift).save_pretrained(directory)
    return directory


def lively_dit(model: dict = TINY_MODEL, std: float = 0.2, seed: int = 1) -> WorldDiT:
    """A random DiT whose zero-initialised layers are random too, so its output depends on its inputs
    (actions included); a fresh WorldDiT predicts v = 0 whatever it is given."""
    torch.manual_seed(seed)
    dit = WorldDiT(**model)
    with torch.no_grad():
        for param in dit.parameters():
            if not param.any():
                param.normal_(0.0, std)
    return dit


def make_bundle(directory: Path, stream: dict = TINY_STREAM, model: dict = TINY_MODEL, lively: bool = False) -> Path:
    """A playable world-model folder with random weights at the real frame size (256x144); `lively`: a DiT
    whose output depends on its inputs (see lively_dit)."""
    torch.manual_seed(0)
    (lively_dit(model) if lively else WorldDiT(**model)).save_pretrained(directory / bundle.DIT_DIR)
    save_tiny_vae(directory / bundle.VAE_DIR)
    hash_bank(scene_catalog().prompts).save(directory / bundle.PROMPTS_FILE)
    bundle.write_info(directory, bundle.BundleInfo(StreamConfig(**stream), FRAME_LATENT, 16))
    return directory
