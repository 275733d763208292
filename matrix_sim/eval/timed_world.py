"""The generated world as `bench play` drives it: stage clocks, the frame-by-frame baseline, random weights.

- TimedWorldModel: WorldModel with the time of every sampler step (the DiT forward and its Euler update)
  and every decode recorded; the stream itself is unchanged.
- FrameByFrameSampler: the DIAMOND / GameNGen baseline with the same model: each new frame starts from pure
  noise and gets all L denoising steps (L forwards over context + 1 frame) before the next one starts; no
  shift window, so a frame's latency is one frame's L forwards, and one frame comes out per L forwards.
- load_parts: a world-model checkpoint (WorldModel bundle), or a random-weight model of a config's shape with
  the trained autoencoder when one exists; says which.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from array import array
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import torch

from matrix_sim.config import CONFIG_DIR, load_yaml
from matrix_sim.models.autoencoder import FrameAutoencoder
from matrix_sim.models.dit import WorldDiT
from matrix_sim.models.loading import load_autoencoder
from matrix_sim.models.prompt import PROMPT_DIM, PromptBank
from matrix_sim.runtime import TORCH, Runtime
from matrix_sim.stream import WorldModel, bundle
from matrix_sim.stream.sampler import Block, Emitted, SwinSampler
from matrix_sim.stream.sampler_process import SamplerProcess
from matrix_sim.stream.schedule import euler_step
from matrix_sim.train.world_config import load_config

log = logging.getLogger(__name__)
VAE_CONFIG = CONFIG_DIR / "vae-tiny.yaml"
FRAME_SIZE = (256, 144)          # the default generated frame (width, height) when the config's data is absent
VAE_FACTOR = 8                   # FrameAutoencoder: 8x smaller latents
RANDOM_INIT_STD = 0.02           # for the layers WorldDiT zero-initialises (else a random model predicts v = 0)


def series() -> array:
    """A growing run of float figures, 8 bytes each and no object per value: an hour of per-frame timings
    stays a few MB instead of pinning a float object (and its allocator pool) a frame."""
    return array("d")


class StageClock:
    """Durations (seconds) per stage, appended by the world thread, read by the bench after a run."""

    def __init__(self, device: torch.device):
        self.device = device
        self.times: dict[str, array] = defaultdict(series)
        self.threads: Optional[int] = None     # torch's thread count as the world thread saw it

    @contextmanager
    def time(self, stage: str, frames: int = 1):
        """Time the block; `frames` > 1 records the time per frame (a block of B frames decoded at once)."""
        self.sync()
        start = time.perf_counter()
        yield
        self.sync()
        self.times[stage].append((time.perf_counter() - start) / frames)

    def clear(self) -> None:
        self.times = defaultdict(series)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


class FrameByFrameSampler(SwinSampler):
    """The baseline: one frame at a time from pure noise, L Euler steps each, conditioned on one action."""

    def __init__(self, model: WorldDiT, config, latent_shape, device: torch.device):
        super().__init__(model, replace(config, block_frames=1, retarget_actions=False), latent_shape, device)

    @torch.inference_mode()
    def step(self, action: torch.Tensor, prompt: torch.Tensor) -> Emitted:
        action, prompt = action.to(self.device, torch.float32), prompt.to(self.device, torch.float32)
        noise = torch.randn((1, *self.latent_shape), generator=self.generator, device=self.device)
        block = Block(noise, self.config.levels, action.expand(1, -1))
        self.window = [block]
        while block.level > 0:       # the first forward also commits the newest context frame to the cache
            v = self._velocity(prompt)
            block.latents = euler_step(block.latents, v, self.schedule[block.level], self.schedule[block.level - 1])
            block.level -= 1
        self.window = []
        self._add_context(block.latents, block.actions, prompt)
        return Emitted(block.latents, block.actions)


class TimedSampler:
    """Mixin: every step() is timed as stage "dit_step" (the forward(s) and Euler updates of one step), and the
    thread count it ran on is noted."""

    clock: StageClock

    def step(self, action, prompt):
        self.clock.sync()
        start = time.perf_counter()
        emitted = super().step(action, prompt)
        self.clock.sync()
        seconds = time.perf_counter() - start
        self.clock.times["dit_step"].append(seconds)
        self.clock.threads = self.torch_threads()
        return emitted

    def torch_threads(self) -> int:
        """Torch's thread count the step ran on: the calling thread's."""
        return torch.get_num_threads()


class TimedSwinSampler(TimedSampler, SwinSampler):
    pass


class TimedFrameByFrameSampler(TimedSampler, FrameByFrameSampler):
    pass


class TimedSamplerProcess(TimedSampler, SamplerProcess):
    """A sampler process timed from the caller's side: the pipe's round trip counts, as it does in the game."""

    def torch_threads(self) -> int:
        return self.threads


SAMPLERS = {"swin": (SwinSampler, TimedSwinSampler), "frame_by_frame": (FrameByFrameSampler, TimedFrameByFrameSampler)}


class TimedWorldModel(WorldModel):
    """WorldModel with a timed sampler (Swin-DPM or the frame-by-frame baseline, in this process or its own)."""

    def __init__(self, dit, vae, prompts, info: bundle.BundleInfo, device: torch.device, sampler: str = "swin",
                 decode_ahead: bool = False, sampler_process: bool = False, runtime: Runtime = TORCH):
        self.clock = StageClock(device)
        self.kind = sampler
        super().__init__(dit, vae, prompts, info, device, decode_ahead=decode_ahead, sampler_process=sampler_process,
                         runtime=runtime)

    def _open_sampler(self, in_process: bool):
        hosted, timed = SAMPLERS[self.kind]
        stream, shape = self.info.stream, self.info.latent_shape
        runtime = self.runtime if self.kind == "swin" else TORCH     # the baseline's calls are of other shapes
        if in_process:
            sampler = TimedSamplerProcess(self.dit, stream, shape, self.torch_device, runtime.hosted(hosted))
        else:
            sampler = timed(runtime.stream_model(self.dit), stream, shape, self.torch_device)
        sampler.clock = self.clock
        return sampler

    @property
    def frames_per_step(self) -> int:
        """Frames one sampler step emits: B for Swin-DPM, 1 for the baseline."""
        return self.sampler.config.block_frames

    @property
    def forwards_per_step(self) -> int:
        return self.sampler.config.levels if self.kind == "frame_by_frame" else 1

    def decode(self, emitted: Emitted):
        with self.clock.time("decode", frames=emitted.latents.shape[0]):
            return super().decode(emitted)


@dataclass
class Parts:
    """What every world variant of one bench run shares: networks, prompts, the stream's shape, provenance."""

    dit: WorldDiT
    vae: FrameAutoencoder
    prompts: PromptBank
    info: bundle.BundleInfo
    source: dict          # weights, autoencoder, prompts, config / checkpoint: what the figures were measured with
    runtime: Runtime = TORCH        # what runs the Swin-DPM worlds' DiT calls and decodes (matrix_sim/runtime)

    def world(self, device: torch.device, sampler: str = "swin", retarget: Optional[bool] = None,
              decode_ahead: bool = False, sampler_process: bool = False) -> TimedWorldModel:
        info = self.info
        if retarget is not None:
            info = replace(info, stream=replace(info.stream, retarget_actions=retarget))
        return TimedWorldModel(self.dit, self.vae, self.prompts, info, device, sampler, decode_ahead, sampler_process,
                               self.runtime)


class HashEncoder:
    """Prompt vectors without the sentence encoder: a fixed pseudo-random unit vector per text (timing only)."""

    def encode(self, texts: list[str], progress: bool = False) -> torch.Tensor:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            vector = torch.randn(PROMPT_DIM, generator=torch.Generator().manual_seed(seed))
            rows.append(torch.nn.functional.normalize(vector, dim=0))
        return torch.stack(rows) if rows else torch.zeros(0, PROMPT_DIM)


def load_parts(config: str | Path, checkpoint: Optional[str | Path] = None, seed: int = 0,
               frame_size: Optional[tuple[int, int]] = None, stream_overrides: Optional[dict] = None) -> Parts:
    """A trained bundle when `checkpoint` is given, else a random-weight model of `config`'s shape;
    stream_overrides: StreamConfig fields to run instead of the bundle's or the config's."""
    if checkpoint is not None:
        world = WorldModel.from_pretrained(checkpoint, device="cpu", stream_overrides=stream_overrides)
        return Parts(world.dit, world.vae, world.prompts, world.info,
                     {"weights": "trained", "autoencoder": "trained", "prompts": "checkpoint",
                      "checkpoint": str(checkpoint), "config": None})
    cfg = load_config(config)
    torch.manual_seed(seed)
    dit = WorldDiT(**cfg.model)
    with torch.no_grad():
        for param in dit.parameters():
            if not param.any():
                param.normal_(0.0, RANDOM_INIT_STD)
    vae_dir = Path(cfg.autoencoder)
    if (vae_dir / "config.json").is_file():
        vae, vae_source = load_autoencoder(vae_dir), f"trained ({vae_dir})"
    else:
        vae, vae_source = FrameAutoencoder(**load_yaml(VAE_CONFIG)["model"]), f"random ({VAE_CONFIG.name} shape)"
    latent_shape, frame_rate = _latent_layout(cfg, vae, frame_size)
    prompts, prompt_source = _prompts(Path(cfg.run_dir))
    info = bundle.BundleInfo(replace(cfg.stream, **(stream_overrides or {})), latent_shape, frame_rate)
    return Parts(dit, vae, prompts, info, {"weights": "random", "autoencoder": vae_source, "prompts": prompt_source,
                                           "checkpoint": None, "config": str(config)})


def _latent_layout(cfg, vae: FrameAutoencoder, frame_size) -> tuple[tuple[int, int, int], int]:
    """The latent shape and frame rate of the config's data when it exists, else of `frame_size` at 16 fps."""
    manifest = Path(cfg.data) / "manifest.json"
    if frame_size is None and manifest.is_file():
        data = json.loads(manifest.read_text())
        return tuple(data["latent_shape"]), int(data["frame_rate"])
    width, height = frame_size or FRAME_SIZE
    return (vae.config.latent_channels, height // VAE_FACTOR, width // VAE_FACTOR), 16


def _prompts(run_dir: Path) -> tuple[PromptBank, str]:
    """The training run's prompt cache when it exists (no encoder to load), else hashed vectors."""
    from matrix_sim.train.world_model import TRAIN_PROMPTS

    for path in (run_dir / bundle.PROMPTS_FILE, run_dir / TRAIN_PROMPTS):
        if path.is_file():
            return PromptBank.load(path), f"cache ({path})"
    return PromptBank(encoder_factory=HashEncoder), "hashed (no prompt cache; timing is the same)"
