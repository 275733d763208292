"""How fast a prompt switch shows: seconds from set_prompt until frames are classified as the new scene.

For each (old, new) pair of preset prompts: held-out real clips of both scenes fit a two-scene classifier
(matrix_sim.eval.scene_classifier: nearest centroid of colour histograms, fitted on the first half of each
clip and checked on the second half); the world model is primed with real frames of the old scene, runs
`before` frames under the clip's actions, gets set_prompt(new) and runs up to `after` more frames through the
World protocol (so the stream's own latency counts). The switch time is k / frame rate for the first k
(1 = the first frame after set_prompt) from which `persist` frames in a row are classified as the new scene;
None when that never happens within `after` frames. A switch counts only where the frames before it were
classified as the old scene (at most half as the new one): otherwise the classifier cannot see the switch.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, Optional

import numpy as np

from matrix_sim.actions import Action
from matrix_sim.eval.scene_classifier import SceneClassifier
from matrix_sim.world.scenes import parse_prompt

DEFAULT_SWITCHES = (
    ("drive desert by day", "drive snowfield at night"),
    ("walk forest by day", "walk city at sunset"),
    ("drive grassland by day", "walk coast at sunset"),
)
WHAT = ("seconds from set_prompt until `persist` frames in a row are classified as the new scene by a nearest-"
        "centroid classifier on colour histograms (4x4x4 RGB bins), fitted on held-out source-world frames of "
        "the old and the new scene; mean over the switches that happened and whose frames before the switch were "
        "classified as the old scene (null if none)")


def switch_frame(is_new: list[bool], persist: int) -> Optional[int]:
    """1-based index of the first frame from which `persist` frames in a row are the new scene, else None."""
    run = 0
    for i, new in enumerate(is_new):
        run = run + 1 if new else 0
        if run >= persist:
            return i - persist + 2
    return None


def prompt_switch_eval(world, switches=DEFAULT_SWITCHES, context: int = 8, before: int = 16, after: int = 64,
                       persist: int = 4, fit_frames: int = 32, seed: int = 0,
                       named: Mapping[str, str] = MappingProxyType({})) -> dict:
    """named: the preset each free-text prompt among the switches' new ones names (a preset names itself); the
    world gets the free text, the classifier looks for the named scene."""
    from matrix_sim.eval.heldout import heldout_clips

    rate = world.frame_rate
    switches = [(old, new, named.get(new, new)) for old, new in switches]
    scenes = [parse_prompt(p) for old, _, scene in switches for p in (old, scene)]
    length = max(fit_frames, context + before + after)
    clips = heldout_clips(length, scenes=scenes)
    details, accuracies = [], []
    for k, (old, new, scene) in enumerate(switches):
        real_old, real_new = clips[2 * k], clips[2 * k + 1]
        half = fit_frames // 2
        classifier = SceneClassifier.fit({old: real_old.frames[:half], scene: real_new.frames[:half]})
        accuracies.append(classifier.accuracy({old: real_old.frames[half:fit_frames],
                                               scene: real_new.frames[half:fit_frames]}))
        actions = real_old.actions
        world.prime(real_old.frames[:context], actions[:context], old, seed)
        pre = [world.step(Action.from_array(actions[(context + t) % len(actions)])).image for t in range(before)]
        world.set_prompt(new)
        post = [world.step(Action.from_array(actions[(context + before + t) % len(actions)])).image
                for t in range(after)]
        is_new_before = [c == scene for c in classifier.classify(np.stack(pre))] if pre else []
        is_new = [c == scene for c in classifier.classify(np.stack(post))]
        frame = switch_frame(is_new, persist)
        valid = not pre or float(np.mean(is_new_before)) <= 0.5
        details.append({"from": old, "to": new, **({"named_scene": scene} if scene != new else {}),
                        "seconds": None if frame is None else round(frame / rate, 3),
                        "valid": valid, "new_before_switch": round(float(np.mean(is_new_before)), 3) if pre else None,
                        "new_after_switch": round(float(np.mean(is_new)), 3)})
    times = [d["seconds"] for d in details if d["seconds"] is not None and d["valid"]]
    return {
        "prompt_switch_s": round(float(np.mean(times)), 3) if times else None,
        "prompt_switch": {"what": WHAT, "persist": persist, "max_s": round(after / rate, 3),
                          "counted": f"{len(times)}/{len(details)}", "switches": details,
                          "classifier_accuracy_real": round(float(np.mean(accuracies)), 4)},
    }
