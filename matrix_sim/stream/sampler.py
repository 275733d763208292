"""The Shift-Window Denoising Process Model (Swin-DPM) over latents, with RAIN's blocks of frames per level.

The window holds blocks of B frames at noise levels s_1 < ... < s_L = 1. Each call: a fresh pure-noise block
enters at s_L with the newest action and prompt, one model forward runs over the context frames and the
window, every block takes one Euler step down a level, and the block reaching s = 0 leaves the window: it
is emitted and becomes context. So one forward emits B frames, and a frame spends L calls in the window.
Memory is bounded: at most K context frames (or their cached keys/values) and L blocks are ever held.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterator, Optional

import torch

from matrix_sim.device import autocast
from matrix_sim.models.dit import TemporalCache, WorldDiT
from matrix_sim.stream.schedule import StreamConfig, euler_step, level_schedule


@dataclass
class Frames:
    """Per-frame tensors that travel together: latents (n, C, H, W), levels (n,), actions (n, A), prompts (n, P)."""

    latents: torch.Tensor
    levels: torch.Tensor
    actions: torch.Tensor
    prompts: torch.Tensor

    def __len__(self) -> int:
        return self.latents.shape[0]

    def fields(self) -> tuple[torch.Tensor, ...]:
        return self.latents, self.levels, self.actions, self.prompts

    def then(self, other: "Frames", keep: int) -> "Frames":
        """These frames followed by `other`, keeping only the newest `keep`."""
        start = max(0, len(self) + len(other) - keep)
        return Frames(*[torch.cat(pair)[start:] for pair in zip(self.fields(), other.fields())])

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.fields())


@dataclass
class Block:
    """B window frames sharing a noise level (an index into the schedule)."""

    latents: torch.Tensor
    level: int
    actions: torch.Tensor


@dataclass
class Emitted:
    """A block that reached s = 0: clean latents (B, C, H, W) in model space and the actions it followed."""

    latents: torch.Tensor
    actions: torch.Tensor


class SwinSampler:
    def __init__(self, model: WorldDiT, config: StreamConfig, latent_shape: tuple[int, int, int], device: torch.device):
        self.model, self.config, self.device = model, config, device
        self.latent_shape = tuple(latent_shape)
        self.schedule = level_schedule(config.levels, config.shift).to(device)
        self.reset(0)

    def reset(self, seed: int) -> None:
        """Empty window, no context: the next calls start the stream from noise (and the prompt) alone."""
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))
        self.window: list[Block] = []
        self.context = self._no_frames()     # context frames to feed next call (cached mode: not yet committed)
        self.cache = TemporalCache(self.config.context_frames) if self.config.cache_context else None

    def prime(self, latents: torch.Tensor, actions: torch.Tensor, prompt: torch.Tensor) -> None:
        """Use real frames as context: clean model-space latents (F, C, H, W), the actions that produced them."""
        self._add_context(latents.to(self.device), actions.to(self.device), prompt.to(self.device))

    @torch.inference_mode()
    def step(self, action: torch.Tensor, prompt: torch.Tensor) -> Optional[Emitted]:
        """One model call; returns the block that reached s = 0, or None while the window is still filling."""
        action, prompt = action.to(self.device, torch.float32), prompt.to(self.device, torch.float32)
        if self.config.retarget_actions:
            for block in self.window:
                block.actions = action.expand_as(block.actions)
        frames = self.config.block_frames
        noise = torch.randn((frames, *self.latent_shape), generator=self.generator, device=self.device)
        self.window.append(Block(noise, self.config.levels, action.expand(frames, -1)))
        velocity = self._velocity(prompt).split(frames)
        for block, v in zip(self.window, velocity):
            block.latents = euler_step(block.latents, v, self.schedule[block.level], self.schedule[block.level - 1])
            block.level -= 1
        if self.window[0].level > 0:
            return None
        done = self.window.pop(0)
        self._add_context(done.latents, done.actions, prompt)
        return Emitted(done.latents, done.actions)

    @contextmanager
    def overridden(self, **settings) -> Iterator[None]:
        """The stream with some settings changed for a while (an evaluation's), restored afterwards."""
        configured = self.config
        self.config = replace(configured, **settings)
        try:
            yield
        finally:
            self.config = configured

    def levels(self) -> list[float]:
        """The window's noise levels, oldest block first: the staggered schedule, for inspection."""
        return [float(self.schedule[b.level]) for b in self.window]

    def nbytes(self) -> int:
        """Memory the stream holds: window, pending context and cached keys/values."""
        window = sum(b.latents.numel() * b.latents.element_size() for b in self.window)
        return window + self.context.nbytes() + (self.cache.nbytes() if self.cache is not None else 0)

    def _velocity(self, prompt: torch.Tensor) -> torch.Tensor:
        """One forward over context + window; returns v for the window frames only. With action guidance the
        batch holds a second row whose window frames take the idle action (the context is the same in both
        rows, so both rows' cached keys/values are too)."""
        ctx, frames = self.context, self.config.block_frames
        window = Frames(torch.cat([b.latents for b in self.window]),
                        torch.cat([self.schedule[b.level].expand(frames) for b in self.window]),
                        torch.cat([b.actions for b in self.window]),
                        prompt.expand(len(self.window) * frames, -1))
        windows = [window]
        if self.config.guided:
            windows.append(replace(window, actions=torch.zeros_like(window.actions)))     # IDLE
        rows = [[torch.cat(pair) for pair in zip(ctx.fields(), w.fields())] for w in windows]
        inputs = [torch.stack(field) for field in zip(*rows)]
        commit = len(ctx) if self.cache is not None else 0
        with autocast(self.device):
            v = self.model(*inputs, cache=self.cache, commit_frames=commit).float()
        if self.cache is not None:
            self.context = self._no_frames()
        if self.config.guided:
            v = v[1] + self.config.action_guidance * (v[0] - v[1])
        else:
            v = v[0]
        return v[len(ctx):]

    def _add_context(self, latents: torch.Tensor, actions: torch.Tensor, prompt: torch.Tensor) -> None:
        """Clean frames become context, noised to the context level the model was trained to expect."""
        level = self.config.context_level
        noise = torch.randn(latents.shape, generator=self.generator, device=self.device)
        n = latents.shape[0]
        new = Frames((1 - level) * latents + level * noise, torch.full((n,), level, device=self.device),
                     actions, prompt.expand(n, -1))
        self.context = self.context.then(new, keep=self.config.context_frames)

    def _no_frames(self) -> Frames:
        return Frames(torch.zeros((0, *self.latent_shape), device=self.device), torch.zeros(0, device=self.device),
                      torch.zeros(0, self.model.config.action_dim, device=self.device),
                      torch.zeros(0, self.model.config.prompt_dim, device=self.device))
