"""Action accuracy as the game plays: frames from WorldModel.step, scored against the action each reports.

horizon_eval's action_accuracy conditions every frame on exactly the action that produced its true
counterpart (the sampler driven directly). A player goes through the World protocol instead: an action
enters the Swin-DPM window with a fresh noise block and its frame comes out L calls later. With
`retarget_actions` the frames still in the window take the newest action, so a frame reaches the screen
sooner after a key change (a latency lever), but its early, high-noise steps followed older
actions. Whether its motion follows the action it reports (Frame.action) is what this measures, with the
lever off and on, on the same held-out clips and actions; the probe on the true frames is the ceiling.
"""
from __future__ import annotations

import numpy as np

from matrix_sim.actions import Action
from matrix_sim.models.probe import InverseDynamicsProbe, agreement


def played_frames(world, clip, context: int, frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Prime with the clip's first `context` frames, then step through its next actions as a player would;
    returns the generated images (frames + 1, H, W, 3) and the action each reports (frames + 1, A)."""
    first = world.prime(clip.frames[:context], clip.actions[:context], clip.prompt, seed)
    played = [first] + [world.step(Action.from_array(a)) for a in clip.actions[context:context + frames]]
    return np.stack([f.image for f in played]), np.stack([f.action.to_array() for f in played])


def played_accuracy(world, probe: InverseDynamicsProbe, clips, context: int, frames: int, seed: int = 0) -> dict:
    """The probe's agreement on consecutive played frames with the action the second one reports, with
    retarget_actions off and on (the world's stream config is restored afterwards)."""
    result = {}
    for retarget in (False, True):
        with world.sampler.overridden(retarget_actions=retarget):
            before, after, reported = [], [], []
            for i, clip in enumerate(clips):
                images, actions = played_frames(world, clip, context, frames, seed + i)
                before.append(images[:-1]), after.append(images[1:]), reported.append(actions[1:])
        labels = probe.labels(np.concatenate(reported))
        scores = agreement(probe.predict(np.concatenate(before), np.concatenate(after)), labels)
        result["on" if retarget else "off"] = round(scores["mean"], 4)
    return result
