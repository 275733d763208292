"""Free-text prompts: does a paraphrase of a scene start and switch to the scene it names?

PARAPHRASES are held-out sentences in the style of the scene captions (matrix_sim/resources/scenes.yaml) but in
none of their wording, each naming one scene: every biome twice, both modes, every time of day and weather.
Three figures:

  resolved    the share whose preset the world resolves them to (WorldModel.preset_of: what the game's starter
              plays the real frames of) is the named scene, and the share right in each part (mode, biome,
              time, weather); resolved_unseen the same for UNSEEN, sentences written apart from the words
              scenes.yaml lists for each part, so the word lists cannot have been fitted to them
  started     the world model started from the paraphrase alone and played by played_from_prompt's script:
              the share of 2-s windows the scene classifier recognises as the named scene (the source world
              of that scene at another seed, under the same actions, is the reference)
  switched    prompt_switch_eval with a paraphrase as the new prompt: seconds until the frames are classified
              as the named scene
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from matrix_sim.config import load_yaml, resource
from matrix_sim.eval.played_from_prompt import played_from_prompt
from matrix_sim.eval.prompt_switch import prompt_switch_eval
from matrix_sim.world.scenes import parse_prompt

PARAPHRASES: dict[str, str] = {
    "a car cruising over sand dunes as the sun goes down, the sky cloudless": "drive desert at sunset",
    "strolling on foot down snowy town streets late at night as snowflakes fall": "walk city at night in snow",
    "a car rolling past lush green meadows at noon in a downpour": "drive grassland by day in rain",
    "a walk between tall pine trees in daylight with mist all around": "walk forest by day in fog",
    "a first-person stroll over frozen white hills as evening falls, the sky clear": "walk snowfield at sunset",
    "a car on a road by the sea after dark while rain pours down": "drive coast at night in rain",
    "wandering through a sunny desert full of cactus plants on a bright cloudless afternoon": "walk desert by day",
    "a car heading down a downtown avenue among skyscrapers in the evening glow, fog rolling in":
        "drive city at sunset in fog",
    "hiking through woods of tall conifers at midnight while snow comes down": "walk forest at night in snow",
    "a car crossing a snowy plain in broad daylight with mist hanging over it": "drive snowfield by day in fog",
    "on foot along a sandy beach next to the waves at twilight in a shower of rain": "walk coast at sunset in rain",
    "a car speeding across green prairie at night, the sky clear and starry": "drive grassland at night",
}
STARTED = tuple(PARAPHRASES)[:6]          # the played runs: both modes, every biome, time and weather
SWITCHES = (("drive grassland by day", tuple(PARAPHRASES)[0]),
            ("walk forest by day", tuple(PARAPHRASES)[1]),
            ("drive desert by day", tuple(PARAPHRASES)[5]))
UNSEEN: dict[str, str] = load_yaml(resource("free_text_unseen.yaml"))["paraphrases"]
DEFAULT_SECONDS = 8.0
PARTS = ("mode", "biome", "time", "weather")
WHAT = ("held-out paraphrases of scene presets in the captions' style: resolved = share the world resolves to the "
        "named preset (and per part), resolved_unseen = the same for sentences written apart from scenes.yaml's word "
        "lists; started = share of 2-s windows of the world model played from a paraphrase "
        "alone that the scene classifier recognises as the named scene (reference: the source world of that "
        "scene); switched = seconds from set_prompt(paraphrase) until the frames are the named scene")


def resolution(resolve, paraphrases: dict[str, str] = PARAPHRASES) -> dict:
    """resolve: free text -> a preset prompt. The share resolved to the named scene, in all and per part."""
    rows = []
    for text, named in paraphrases.items():
        got = resolve(text)
        rows.append({"text": text, "named": named, "resolved": got,
                     **{part: getattr(parse_prompt(got), part) == getattr(parse_prompt(named), part)
                        for part in PARTS}})
    return {"share": round(float(np.mean([r["resolved"] == r["named"] for r in rows])), 4),
            "share_by_part": {part: round(float(np.mean([r[part] for r in rows])), 4) for part in PARTS},
            "paraphrases": rows}


def free_text_eval(world, seconds: float = DEFAULT_SECONDS, seed: int = 0, context: int = 8,
                   switch_frames: int = 64, switch_persist: int = 4, started: Sequence[str] = STARTED,
                   switches=SWITCHES, paraphrases: dict[str, str] = PARAPHRASES) -> dict:
    """The three figures (module docstring) for a WorldModel."""
    played = played_from_prompt(world, started, seconds, seed, named=paraphrases)
    switched = prompt_switch_eval(world, switches, context, after=switch_frames, persist=switch_persist, seed=seed,
                                  named=paraphrases)
    return {"what": WHAT,
            "resolved": resolution(world.preset_of, paraphrases),
            "resolved_unseen": resolution(world.preset_of, UNSEEN),
            "started": {"recognised": played["generated"]["scene_recognition_rate"],
                        "reference_recognised": played["reference"]["scene_recognition_rate"],
                        "seconds": played["seconds"], "played": played},
            "switched": {"seconds": switched["prompt_switch_s"], **switched["prompt_switch"]}}
