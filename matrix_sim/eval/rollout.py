"""Open-loop generation aligned with ground truth: the world model continues real frames under real actions.

For quality figures each generated frame must be conditioned on the very action that produced its true
counterpart. Through the World protocol that is not so: a frame leaves the Swin-DPM window L calls after
its action entered, so `WorldModel.step(a)` returns a frame conditioned on an earlier action (the play
latency, which `bench play` measures). Here the sampler is driven directly instead: each block entering the
window takes the true actions of the frames it will become, so generated frame j is conditioned on
actions[context + j - 1] exactly like true frame context + j (shard convention: frames[t + 1] is what
actions[t] produced), whatever the stream's retarget_actions (a play-time lever, measured by played_actions).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Rollout:
    """One held-out continuation as eval scored it, kept for the contact sheet."""

    prompt: str
    last_context: np.ndarray     # the last real frame the model was shown
    truth: np.ndarray            # (horizon, H, W, 3): the source world's next frames
    generated: np.ndarray        # (horizon, H, W, 3): the model's


@torch.inference_mode()
def continue_frames(world, images: np.ndarray, actions: np.ndarray, context: int, frames: int, prompt: str,
                    seed: int = 0) -> np.ndarray:
    """Prime `world` (a WorldModel) with images[:context] and generate `frames` more, frame j conditioned on
    actions[context - 1 + j]; returns (frames, H, W, 3) uint8, to compare with images[context:context + frames].

    `actions` needs context - 1 + frames + L * B entries (the window runs L calls ahead of what it emits);
    beyond the given ones the last action is repeated. The WorldModel needs reset or prime before its next step.
    """
    if not 1 <= context <= len(images) or len(actions) < context:
        raise ValueError(f"need 1 <= context <= {len(images)} frames with their actions, got context={context}")
    world.load_context(images[:context], actions[:context], prompt, seed)
    sampler, block = world.sampler, world.sampler.config.block_frames
    embedding = world.prompts.embed(prompt).to(world.torch_device)
    pending = np.asarray(actions[context - 1:], dtype=np.float32)
    needed = frames + sampler.config.window_frames
    if len(pending) < needed:
        pending = np.concatenate([pending, np.repeat(pending[-1:], needed - len(pending), axis=0)])
    out, cursor = [], 0
    # retarget_actions would hand the blocks still in the window the entering block's actions, which here are
    # those of frames B to (L - 1) * B ahead: the play-time latency lever (the newest key held) is a look into
    # the future when the sampler runs ahead of a known action sequence
    with sampler.overridden(retarget_actions=False):
        while sum(len(x) for x in out) < frames:
            emitted = sampler.step(torch.from_numpy(pending[cursor:cursor + block]), embedding)
            cursor += block
            if emitted is not None:
                out.append(np.stack(world.decode(emitted)))
    return np.concatenate(out)[:frames]
