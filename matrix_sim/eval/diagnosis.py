"""Diagnosis of the first generated frame: what the model believes before sampling, beside what sampling makes.

On the held-out runs of psnr_by_horizon (the same clips, starts and seeds), the stream is primed with the
real context as the rollout primes it (WorldModel.load_context: the context noised to the stream's
context_level) and one DiT forward runs over the context and a block entering the window as pure noise at
s = 1, exactly the stream's first call after priming (SwinSampler._velocity: the same cache and action
guidance). Under rectified flow (x_s = (1 - s) x0 + s noise, v = noise - x0) the estimate of the clean
frames from there is x0_hat = x_1 - 1 * v: for a well-trained model the mean of what could come next
given the context (the posterior mean). Decoded by the world's autoencoder, frame 1 is compared with the true
frame 1 and pooled over the runs (metrics.pooled_psnr) like every other horizon figure.

Reading it: near copy-last, the model has learned "repeat the last frame"; well above the sampled frame's
PSNR (psnr_by_horizon[1]), sampling adds the error (a blurred mean scores higher PSNR than any sharp sample,
so some gap is expected; a large one points at the sampler or the few-step schedule).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from matrix_sim.eval.metrics import mse, pooled_psnr
from matrix_sim.stream.sampler import Block, Emitted

WHAT = ("PSNR at h = 1 of the model's one-shot estimate from pure noise (x0_hat = x_1 - v, one DiT forward over "
        "the real context and a window block at s = 1, decoded) on the horizon runs, beside the sampled frame, "
        "copy-last, copy-last through the codec and the codec ceiling at h = 1: near copy-last = the model "
        "repeats the last frame; well above the sampled frame = sampling adds the error")


@torch.inference_mode()
def one_shot_estimate(world, images: np.ndarray, actions: np.ndarray, context: int, prompt: str,
                      seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Prime `world` (a WorldModel) with images[:context] as continue_frames does, then one forward over the
    context and a block of B pure-noise frames at the top level (s = 1) with actions[context - 1:] (the
    last repeated where short); returns (x0_hat latents (B, C, H, W) in model space, their decoded frames
    (B, H, W, 3) uint8). The WorldModel needs reset or prime before its next step."""
    if not 1 <= context <= len(images) or len(actions) < context:
        raise ValueError(f"need 1 <= context <= {len(images)} frames with their actions, got context={context}")
    world.load_context(images[:context], actions[:context], prompt, seed)
    sampler = world.sampler
    frames, top = sampler.config.block_frames, sampler.config.levels
    taken = np.asarray(actions[context - 1:context - 1 + frames], dtype=np.float32)
    taken = np.concatenate([taken, np.repeat(taken[-1:], frames - len(taken), axis=0)])
    block_actions = torch.from_numpy(taken).to(sampler.device)
    embedding = world.prompts.embed(prompt).to(sampler.device, torch.float32)
    noise = torch.randn((frames, *sampler.latent_shape), generator=sampler.generator, device=sampler.device)
    sampler.window = [Block(noise, top, block_actions)]          # what sampler.step's first call holds
    try:
        v = sampler._velocity(embedding)
    finally:
        sampler.window = []
    estimate = noise - sampler.schedule[top] * v                  # x0 = x_s - s v, s = 1
    return estimate, np.stack(world.decode(Emitted(estimate, block_actions)))


def posterior_mean_psnr(world, clips, context: int, span: int, starts_per_scene: int = 1, seed: int = 0) -> dict:
    """Pooled PSNR of the one-shot estimate's frame 1 vs the true frame 1 over the runs horizon_eval scores
    (run i: clip, start s * span, seed + i)."""
    runs = [(clip, s * span) for clip in clips for s in range(starts_per_scene)]
    errors = []
    for i, (clip, start) in enumerate(runs):
        images, taken = clip.frames[start:], clip.actions[start:]
        _, decoded = one_shot_estimate(world, images, taken, context, clip.prompt, seed + i)
        errors.append(mse(decoded[0], images[context]))
    return {"psnr": round(float(pooled_psnr(errors)), 2), "runs": len(runs)}


def diagnosis_block(posterior: dict, figures: dict) -> dict:
    """The diagnosis as eval reports it: the estimate's PSNR beside horizon_eval's figures at h = 1."""
    def at_1(key: str) -> Optional[float]:
        return figures.get(key, {}).get("1")

    return {"what": WHAT,
            "posterior_mean_psnr_h1": posterior["psnr"],
            "psnr_by_horizon_h1": at_1("psnr_by_horizon"),
            "copy_last_psnr_by_horizon_h1": at_1("copy_last_psnr_by_horizon"),
            "copy_last_through_codec_psnr_by_horizon_h1": at_1("copy_last_through_codec_psnr_by_horizon"),
            "codec_ceiling_psnr_by_horizon_h1": at_1("codec_ceiling_psnr_by_horizon"),
            "runs": posterior["runs"]}


def diagnosis_eval(world, clips, context: int, horizons: Sequence[int], starts_per_scene: int, seed: int,
                   figures: dict) -> dict:
    """posterior_mean_psnr on horizon_eval's runs (span = context + the longest horizon), as diagnosis_block."""
    return diagnosis_block(posterior_mean_psnr(world, clips, context, context + max(horizons), starts_per_scene,
                                               seed), figures)
