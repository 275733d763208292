"""Per-frame noise levels for training, shaped like the stream the model will run in (docs/design.md).

Most steps mirror inference: K context frames lightly noised and, optionally, shifted in colour as a whole
(augmentations against drift), then window blocks at the staggered levels s_1..s_L with jitter; sometimes
the context is shorter or absent and the window only partly filled, as when a stream starts from a prompt
or from a few real frames. The rest are diffusion forcing: every frame at its own random level, so any
schedule works. The layout (how many frames, which kind) is drawn once per step so a batch shares one clip length.
Scene cuts teach the prompt switch: some clips' context comes from another episode, with that episode's
prompt on those frames, and the window must become the scene of its own prompt (as after set_prompt).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from matrix_sim.stream.schedule import StreamConfig, level_schedule, shift_levels


@dataclass(frozen=True)
class LevelMix:
    """How training levels are drawn (the `levels` section of a config)."""

    forcing_prob: float          # share of steps with independent random levels per frame
    context_dropout: float       # share of full-window steps with fewer context frames (0..K-1): the ring filling
    partial_window: float        # share of stream steps whose window holds only the newest m < L blocks (a start)
    context_noise_max: float     # context frames get a level uniform in [0, this]
    level_jitter: float          # window levels move by up to +-jitter/2 of the gap to the next level
    scene_cut: float = 0.0       # share of clips with context whose context is another scene's: a prompt switch
    context_shift: float = 0.0   # std of a per-clip, per-channel offset on the context (units: the batch's spread)


def shift_context(x0: torch.Tensor, context: int, amount: float, generator: torch.Generator) -> torch.Tensor:
    """x0 (b, T, C, H, W) with one random offset per clip and channel added to its first `context` frames.

    A streamed context drifts as a whole (brighter, paler) long before it loses its shapes, and a model trained
    only on true context copies the drift on. Offsets as large as `amount` times the spread of the batch's
    frame means (per channel) teach it to pull a shifted context back to its prompt's scene."""
    if amount <= 0 or context == 0:
        return x0
    spread = x0.mean(dim=(3, 4)).flatten(0, 1).std(dim=0)                 # (C,)
    offset = torch.randn(x0.shape[0], 1, x0.shape[2], generator=generator) * amount * spread
    shifted = x0.clone()
    shifted[:, :context] += offset[..., None, None]
    return shifted


@dataclass(frozen=True)
class Layout:
    context: int                 # context frames at the clip's start
    blocks: int                  # window blocks after them (the newest levels)
    forcing: bool

    def frames(self, stream: StreamConfig) -> int:
        return self.context + self.blocks * stream.block_frames


def sample_layout(rng: np.random.Generator, stream: StreamConfig, mix: LevelMix) -> Layout:
    full = stream.context_frames
    if rng.random() < mix.forcing_prob:
        return Layout(full, stream.levels, forcing=True)
    if stream.levels > 1 and rng.random() < mix.partial_window:
        # the first L - 1 calls of a stream: started from the prompt alone (no context) or from real frames
        return Layout(int(rng.choice([0, full])), int(rng.integers(1, stream.levels)), forcing=False)
    context = int(rng.integers(full)) if full and rng.random() < mix.context_dropout else full
    return Layout(context, stream.levels, forcing=False)


def training_levels(layout: Layout, stream: StreamConfig, mix: LevelMix, batch: int,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """levels (batch, frames) in [0, 1] and loss mask (batch, frames): which frames the loss is taken on."""
    frames = layout.frames(stream)
    if layout.forcing:
        levels = shift_levels(torch.rand(batch, frames, generator=generator), stream.shift)
        return levels, torch.ones(batch, frames, dtype=torch.bool)
    schedule = level_schedule(stream.levels, stream.shift)
    index = torch.arange(stream.levels - layout.blocks + 1, stream.levels + 1)     # the newest levels, oldest first
    gap = schedule[index] - schedule[index - 1]
    jitter = (torch.rand(batch, layout.blocks, generator=generator) - 0.5) * mix.level_jitter * gap
    window = (schedule[index] + jitter).clamp(0.0, 1.0).repeat_interleave(stream.block_frames, dim=1)
    context = torch.rand(batch, layout.context, generator=generator) * mix.context_noise_max
    mask = torch.zeros(batch, frames, dtype=torch.bool)
    mask[:, layout.context:] = True
    return torch.cat([context, window], dim=1), mask
