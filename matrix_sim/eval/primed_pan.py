"""Pan one frame ahead of real context: does the world model draw a turn when everything before it is right?

played_from_prompt's pan follows the generated world for many frames, and a picture that has lost its detail
has nothing left to pan, so a low figure there can mean either. Here each steering frame of the played script
is generated from the source world's own frames before it (WorldModel.prime with `context` real frames and the
actions that made them), and the pan of that one generated frame from the last real one is set against the
source world's pan at the same frame. Per scene and pooled: the correlation and the gain (least-squares slope:
1 turns as far as the source world, 0 not at all) of the generated pan on the source's.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from matrix_sim.eval.played_from_prompt import (PLAYED_PROMPTS, SCRIPTS, SOURCE_SEED, STEERING, _r, correlation,
                                                gain, luma_spectrum, pan_between, script_actions)
from matrix_sim.world.scenes import parse_prompt

PRIMED_CONTEXT = 6        # real frames before each generated one: the stream's context window
PRIMED_STARTS = 3         # source-world runs a scene, each at its own seed
PRIMED_EVERY = 2          # every other steering frame: neighbouring frames' pans are near duplicates
START_SEED_STRIDE = 100   # the source seed of run s of scene i: SOURCE_SEED + i + s * this
WHAT = ("each steering frame of the played script (every other one) made from the source world's frames before "
        "it; correlation and gain (least-squares slope) of that frame's pan (px) on the source world's pan there, "
        "pooled and per scene")


def script_until_steered(mode: str, frame_rate: float, scripts: dict = SCRIPTS):
    """The mode's script up to the end of its last steering segment: its actions and their segment names."""
    seconds, total = 0.0, 0.0
    for name, length, _ in scripts[mode]:
        total += length
        if name in STEERING:
            seconds = total
    return script_actions(mode, int(round(seconds * frame_rate)) + 1, frame_rate, scripts)


def primed_pan(world, prompts: Sequence[str] = PLAYED_PROMPTS, starts: int = PRIMED_STARTS,
               context: int = PRIMED_CONTEXT, every: int = PRIMED_EVERY, source_seed: int = SOURCE_SEED,
               scripts: dict = SCRIPTS) -> dict:
    """`world` (a WorldModel) primed with the source world's frames before every `every`-th steering frame of
    each prompt's script, `starts` runs a prompt; the pans of its first frames against the source world's."""
    from matrix_sim.world.engine import SourceWorld

    height, width = world.frame_size
    source = SourceWorld(width, height)
    generated, real, per_scene = [], [], {}
    try:
        for i, prompt in enumerate(prompts):
            actions, segments = script_until_steered(parse_prompt(prompt).mode, world.frame_rate, scripts)
            made = [a.to_array() for a in actions]            # made[t] makes frame t + 1
            scene_generated, scene_real = [], []
            for s in range(starts):
                frames = [source.reset(prompt, source_seed + i + s * START_SEED_STRIDE).image]
                frames += [source.step(action).image for action in actions]
                steered = [t for t in range(context, len(frames)) if segments[t - 1] in STEERING][::every]
                for t in steered:
                    first = world.prime(np.stack(frames[t - context:t]), np.stack(made[t - context:t]), prompt, t)
                    last = luma_spectrum(frames[t - 1])                  # both pans start from it
                    scene_generated.append(pan_between(last, luma_spectrum(first.image), width))
                    scene_real.append(pan_between(last, luma_spectrum(frames[t]), width))
            per_scene[prompt] = {"pan_correlation": _r(correlation(scene_generated, scene_real)),
                                 "pan_gain": _r(gain(scene_generated, scene_real)), "frames": len(scene_real)}
            generated += scene_generated
            real += scene_real
    finally:
        source.close()
    return {"what": WHAT, "context_frames": context, "frames": len(real),
            "pan_correlation": _r(correlation(generated, real)), "pan_gain": _r(gain(generated, real)),
            "per_scene": per_scene}
