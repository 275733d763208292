"""Context from the model's own estimates, against drift: train on the blur the stream feeds itself.

In the stream every context frame is one the model made, and L Euler steps leave it softer than footage. A
model trained only on true (lightly noised) context copies that softness into the next frames, which come out
softer still, until over a few hundred frames the road, the trees and even the car dissolve. Here, in a share of the stream-shaped clips, the context frames are
replaced by the model's own one-shot estimate x0_hat = x_s - s * v(x_s) of them, from the true frame noised
to a level s drawn per frame (the stream's last Euler step is such an estimate, from s = 1 / L), while the
window keeps its true frames as targets: the model learns to make sharp frames after soft ones instead of
passing the softness on. The estimate is made with the EMA weights (what the stream plays), causally (context
frame k sees the noised frames before it, as in the stream), without gradients: one forward over the context.

With `unroll` > 0 the last `unroll` context frames are not estimates of true frames but the model's own
predictions, unrolled as the stream makes them (DIAMOND's recipe): block by block of B frames, each from pure
noise in the stream's L Euler steps, conditioned on the frames before it, the ones it made included. Their
errors compound over the unrolled frames as in play, where the one-shot estimate only ever softens.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from matrix_sim.device import autocast
from matrix_sim.stream.schedule import StreamConfig, euler_step, level_schedule
from matrix_sim.train.latents import ClipBatch


@dataclass(frozen=True)
class OwnContext:
    """The `own_context` section of a world-model config."""

    share: float                          # of the stream-shaped clips with context
    levels: tuple[float, float]           # s per context frame, uniform in [low, high]
    unroll: int = 0                       # last context frames the model predicts itself, block by block

    def __post_init__(self) -> None:
        if len(self.levels) != 2:
            raise ValueError(f"own_context.levels must be [low, high], got {list(self.levels)}")
        object.__setattr__(self, "levels", tuple(float(v) for v in self.levels))
        low, high = self.levels
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"own_context.share must lie in [0, 1], got {self.share}")
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"own_context.levels must be 0 < low <= high <= 1, got {list(self.levels)}")
        if self.unroll < 0:
            raise ValueError(f"own_context.unroll must be >= 0, got {self.unroll}")


@torch.no_grad()
def own_estimates(model: torch.nn.Module, latents: torch.Tensor, actions: torch.Tensor, prompts: torch.Tensor,
                  levels: tuple[float, float], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(b, K, C, H, W) true frames -> the model's one-shot estimates of them, on the CPU; prompts (b, K, P)."""
    low, high = levels
    s = low + (high - low) * torch.rand(latents.shape[:2], generator=generator)
    noise = torch.randn(latents.shape, generator=generator)
    s5 = s[..., None, None, None]
    noisy = (1 - s5) * latents + s5 * noise
    with autocast(device, training=True):
        v = model(noisy.to(device), s.to(device), actions.to(device), prompts.to(device))
    return noisy - s5 * v.float().cpu()


@torch.no_grad()
def unrolled(model: torch.nn.Module, latents: torch.Tensor, actions: torch.Tensor, prompts: torch.Tensor,
             frames: int, stream: StreamConfig, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(b, K, C, H, W) context -> the same with its last `frames` frames the model's own, made block by block
    from noise in the stream's L Euler steps behind the frames before them (at the stream's context level)."""
    schedule = level_schedule(stream.levels, stream.shift)
    out, total = latents.clone(), latents.shape[1]
    clean = stream.context_level
    for first in range(total - frames, total, stream.block_frames):
        last = min(first + stream.block_frames, total)
        before = (1 - clean) * out[:, :first] + clean * torch.randn(out[:, :first].shape, generator=generator)
        x = torch.randn(out[:, first:last].shape, generator=generator)
        for level in range(stream.levels, 0, -1):
            s = torch.cat([torch.full(out.shape[:1] + (first,), clean),
                           torch.full(out.shape[:1] + (last - first,), float(schedule[level]))], 1)
            with autocast(device, training=True):
                v = model(torch.cat([before, x], 1).to(device), s.to(device), actions[:, :last].to(device),
                          prompts[:, :last].to(device))
            x = euler_step(x, v[:, first:].float().cpu(), schedule[level], schedule[level - 1])
        out[:, first:last] = x
    return out


def with_own_context(model: torch.nn.Module, clips: ClipBatch, prompts: torch.Tensor, rows: np.ndarray, context: int,
                     settings: OwnContext, stream: StreamConfig, generator: torch.Generator,
                     device: torch.device) -> ClipBatch:
    """Clips whose first `context` frames are, in `rows`, the model's estimates of them (the last
    `settings.unroll` its unrolled predictions); prompts: (b, P) or per frame (b, T, P). The inputs are not
    changed."""
    if not rows.any():
        return clips
    picked = torch.from_numpy(rows)
    frame_prompts = prompts[:, :context] if prompts.dim() == 3 else prompts[:, None].expand(-1, context, -1)
    latents = clips.latents.clone()
    actions, frame_prompts = clips.actions[picked, :context], frame_prompts[picked]
    unroll = min(settings.unroll, context)
    own = latents[picked, :context]
    if unroll < context:                  # the unrolled frames replace their estimates: those are not made
        kept = context - unroll
        own[:, :kept] = own_estimates(model, own[:, :kept], actions[:, :kept], frame_prompts[:, :kept],
                                      settings.levels, generator, device)
    if unroll:
        own = unrolled(model, own, actions, frame_prompts, unroll, stream, generator, device)
    latents[picked, :context] = own
    return ClipBatch(latents, clips.actions, clips.texts)
