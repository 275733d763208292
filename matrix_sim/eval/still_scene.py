"""A stopped player: does the generated world hold still?

Drift over minutes of driving can hide the worst case of a stream that feeds on its own frames: a scene
that does not move, where every error lands on the same pixels call after call. Real footage: the source
world in a held-out clear-weather scene (no rain or snow, so the real picture is truly still), driven by the
exploration policy, then braking until `context` frames in a row are identical (a walker stops at once, a
car within a second). The model is primed with those still frames and continues under each held action: a
stopped player either keeps the brake down or lets go of every key (idle), and the two differ for a model
that learned an exaggerated brake (train/guidance.py). Per frame after the stop: PSNR to the real still picture (what the source world keeps showing) and edge
density (drift.frame_stats), beside the still picture through the autoencoder (the PSNR ceiling) and the
real picture's own edge density. A world that holds still keeps both flat.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from matrix_sim.actions import Action
from matrix_sim.eval.drift import EDGE, frame_stats
from matrix_sim.eval.metrics import psnr
from matrix_sim.eval.rollout import continue_frames
from matrix_sim.eval.vae_eval import reconstruct

STILL_PROMPTS = ("drive grassland by day", "drive desert at sunset", "walk forest by day", "drive city at night")
FRAMES_AFTER = (1, 8, 32, 128, 320)
HELDOUT_SEED = 2**31 + 500
DRIVE_FRAMES = 30            # of the exploration policy before the brake: the scene is in motion first
BRAKE_LIMIT = 96             # frames of braking allowed to reach a still picture
HELD = {"brake": Action(brake=1.0), "idle": Action()}
WHAT = ("the model primed with a still real scene (the player stopped) and run on under each held action "
        "(brake down, or idle): PSNR to the real still picture and edge density, by frames after the stop, "
        "averaged over scenes")


def still_footage(prompt: str, seed: int, context: int, width: int = 256, height: int = 144) -> np.ndarray:
    """(context, H, W, 3): the first `context` identical frames of a drive in the scene that then brakes."""
    from matrix_sim.data.policy import ExplorationPolicy
    from matrix_sim.world.engine import SourceWorld

    world = SourceWorld(width, height)
    try:
        frame = world.reset(prompt, seed)
        policy = ExplorationPolicy(seed + 1, seed, world.s.roads)
        for _ in range(DRIVE_FRAMES):
            frame = world.step(policy.act(frame))
        still = [frame.image]
        for _ in range(BRAKE_LIMIT):
            frame = world.step(HELD["brake"])
            still = still + [frame.image] if np.array_equal(frame.image, still[-1]) else [frame.image]
            if len(still) == context:
                return np.stack(still)
    finally:
        world.close()
    raise RuntimeError(f"{prompt!r} (seed {seed}): the picture did not stay still for {context} frames "
                       f"within {BRAKE_LIMIT} frames of braking")


def frames_after_up_to(longest: int) -> tuple[int, ...]:
    """FRAMES_AFTER cut at `longest`, which always ends the list."""
    if longest < 1:
        raise ValueError(f"need at least 1 frame after the stop, got {longest}")
    return tuple(h for h in FRAMES_AFTER if h < longest) + (longest,)


def hold_figures(generated: np.ndarray, still: np.ndarray, frames_after: Sequence[int]) -> dict:
    """PSNR to `still` and edge density of generated frame h (1-based) for each h in frames_after."""
    return {"psnr": [psnr(generated[h - 1], still) for h in frames_after],
            "edge_density": [float(frame_stats(generated[h - 1])[EDGE]) for h in frames_after]}


def still_eval(world, prompts: Sequence[str] = STILL_PROMPTS, frames_after: Sequence[int] = FRAMES_AFTER,
               context: int = 8, seed: int = 0, sheet: Optional[str | Path] = None,
               held: Sequence[str] = tuple(HELD)) -> dict:
    """Run `world` (a WorldModel) on from a still real scene per prompt, under each action named in `held`
    (keys of HELD); figures averaged over the prompts; sheet: also write a row per prompt and held action
    (the real still picture, then the generated frames at frames_after)."""
    unknown = [name for name in held if name not in HELD]
    if unknown:
        raise ValueError(f"unknown held action(s) {unknown}; known: {list(HELD)}")
    longest = max(frames_after)
    per_action = {name: [] for name in held}
    ceilings, real_edges, rows, labels = [], [], [], []
    for i, prompt in enumerate(prompts):
        images = still_footage(prompt, HELDOUT_SEED + i, context)
        still = images[-1]
        ceilings.append(psnr(reconstruct(world.vae, still[None])[0], still))
        real_edges.append(float(frame_stats(still)[EDGE]))
        for name in held:
            actions = np.repeat(HELD[name].to_array()[None], context + longest + world.sampler.config.window_frames,
                                axis=0)
            generated = continue_frames(world, images, actions, context, longest, prompt, seed + i)
            per_action[name].append(hold_figures(generated, still, frames_after))
            rows.append([still, *(generated[h - 1] for h in frames_after)])
            labels += [f"{prompt} (real, still)"] + [f"{name} held, +{h} frames" for h in frames_after]
    result = {"what": WHAT, "prompts": list(prompts), "frame_rate": world.frame_rate,
              "held": {name: {"psnr_by_frame": _mean_by_frame(figures, "psnr", frames_after, 2),
                              "edge_density_by_frame": _mean_by_frame(figures, "edge_density", frames_after, 4)}
                       for name, figures in per_action.items()},
              "codec_ceiling_psnr": round(float(np.mean(ceilings)), 2),
              "real_edge_density": round(float(np.mean(real_edges)), 4)}
    if sheet is not None:
        from matrix_sim.eval.sheets import save_grid

        result["sheet"] = str(save_grid([im for row in rows for im in row], labels, len(frames_after) + 1, sheet))
    return result


def _mean_by_frame(per_prompt: list[dict], key: str, frames_after: Sequence[int], digits: int) -> dict:
    return {str(h): round(float(np.mean([p[key][j] for p in per_prompt])), digits) for j, h in enumerate(frames_after)}
