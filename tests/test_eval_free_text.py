"""eval's free_text: held-out paraphrases of presets, resolved, played from and switched to."""
from collections import Counter

import numpy as np
import pytest

from matrix_sim.actions import Action
from matrix_sim.eval.free_text import PARAPHRASES, STARTED, SWITCHES, UNSEEN, resolution
from matrix_sim.eval.played_from_prompt import SOURCE_SEED, played_from_prompt
from matrix_sim.eval.prompt_switch import prompt_switch_eval
from matrix_sim.world.engine import SourceWorld
from matrix_sim.world.scenes import parse_prompt, scene_catalog

from wm_helpers import one_thread  # noqa: F401 (autouse fixture)

SHORT = {mode: (("straight", 0.25, Action(forward=1.0)), ("left", 0.25, Action(forward=1.0, turn=-1.0)),
                ("on", 0.0, Action(forward=1.0))) for mode in ("drive", "walk")}


def test_paraphrases_are_held_out_and_cover_every_part():
    catalog = scene_catalog()
    wording = {text.lower() for scene in catalog.scenes for text in (*scene.captions(), scene.prompt)}
    assert not {text.lower() for text in PARAPHRASES} & wording          # none is a training caption or a preset
    scenes = [parse_prompt(named) for named in PARAPHRASES.values()]
    for part, values in (("mode", ("drive", "walk")), ("time", ("day", "sunset", "night")),
                         ("weather", ("clear", "fog", "rain", "snow")),
                         ("biome", ("desert", "grassland", "forest", "snowfield", "coast", "city"))):
        assert {getattr(s, part) for s in scenes} == set(values)
    assert {parse_prompt(PARAPHRASES[t]).mode for t in STARTED} == {"drive", "walk"}
    for old, new in SWITCHES:
        assert new in PARAPHRASES and parse_prompt(old) != parse_prompt(PARAPHRASES[new])


def test_the_unseen_paraphrases_name_every_option_evenly_and_no_two_the_same_scene():
    scenes = [parse_prompt(named) for named in UNSEEN.values()]
    assert len(set(scenes)) == len(scenes) == 36
    wording = {text.lower() for scene in scene_catalog().scenes for text in (*scene.captions(), scene.prompt)}
    assert not {text.lower() for text in UNSEEN} & (wording | {t.lower() for t in PARAPHRASES})
    for part, per_option in (("mode", 18), ("biome", 6), ("time", 12)):
        assert set(Counter(getattr(s, part) for s in scenes).values()) == {per_option}
    assert Counter(s.weather for s in scenes) == {"clear": 12, "fog": 8, "rain": 8, "snow": 8}


def test_resolution_counts_the_whole_scene_and_each_part():
    named = dict(list(PARAPHRASES.items())[:2])     # a desert drive at sunset, a snowy city walk at night
    assert resolution(named.get, named)["share"] == 1.0
    wrong_biome = {text: scene.replace("desert", "grassland").replace("city", "forest") for text, scene in named.items()}
    result = resolution(wrong_biome.get, named)
    assert result["share"] == 0.0
    assert result["share_by_part"] == {"mode": 1.0, "biome": 0.0, "time": 1.0, "weather": 1.0}
    assert [row["resolved"] for row in result["paraphrases"]] == list(wrong_biome.values())


class NamedSource:
    """The source world that plays the scene a paraphrase names (or, `stuck`, always the same scene), as a
    world model that resolves free text perfectly would; prime and set_prompt as WorldModel has them."""

    frame_rate, frame_size = 16, (144, 256)

    def __init__(self, stuck: str | None = None):
        self.world, self.stuck = SourceWorld(256, 144), stuck

    def scene(self, prompt: str) -> str:
        return self.stuck or PARAPHRASES.get(prompt, prompt)

    def reset(self, prompt, seed):
        return self.world.reset(self.scene(prompt), seed)

    def prime(self, images, actions, prompt, seed):
        return self.reset(prompt, seed)

    def set_prompt(self, prompt):
        self.world.reset(self.scene(prompt), 5)

    def step(self, action):
        return self.world.step(action)


@pytest.fixture
def named_source():
    worlds = []
    yield lambda stuck=None: worlds.append(NamedSource(stuck)) or worlds[-1]
    for world in worlds:
        world.world.close()


def test_a_world_that_plays_the_named_scene_is_recognised_and_one_stuck_in_another_is_not(named_source):
    started = [STARTED[i] for i in (0, 2, 5)]       # drives: desert at sunset, grassland in rain, coast at night
    right = played_from_prompt(named_source(), started, seconds=2.0, window_s=0.5, scripts=SHORT, named=PARAPHRASES,
                               seed=SOURCE_SEED)          # the source world's own seeds: its very frames
    assert right["generated"]["scene_recognition_rate"] == 1.0
    assert [s.get("named_scene") for s in right["scenes"]] == [PARAPHRASES[t] for t in started]
    assert set(right["classifier_scenes"]) >= {PARAPHRASES[t] for t in started}
    stuck = played_from_prompt(named_source("walk forest at night"), started, seconds=2.0, window_s=0.5,
                               scripts=SHORT, named=PARAPHRASES)
    assert stuck["generated"]["scene_recognition_rate"] == 0.0
    assert stuck["reference"]["scene_recognition_rate"] == right["reference"]["scene_recognition_rate"] > 0.5


def test_a_switch_to_a_paraphrase_is_timed_against_the_scene_it_names(named_source):
    old, new = SWITCHES[0]
    result = prompt_switch_eval(named_source(), [(old, new)], context=4, before=4, after=12, persist=2,
                                named=PARAPHRASES)
    switch = result["prompt_switch"]["switches"][0]
    assert switch["to"] == new and switch["named_scene"] == PARAPHRASES[new] and switch["valid"]
    assert result["prompt_switch_s"] == round(1 / 16, 3)               # the first frame after the cut
    stuck = prompt_switch_eval(named_source(old), [(old, new)], context=4, before=4, after=12, persist=2,
                               named=PARAPHRASES)
    assert stuck["prompt_switch_s"] is None and stuck["prompt_switch"]["switches"][0]["new_after_switch"] == 0.0
    assert np.isfinite(stuck["prompt_switch"]["classifier_accuracy_real"])
