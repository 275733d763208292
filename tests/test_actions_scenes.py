"""Actions and scene wording: the contracts every other part relies on."""
import numpy as np
import pytest

from matrix_sim.actions import ACTION_DIM, Action
from matrix_sim.config import ConfigError
from matrix_sim.world.scenes import BIOMES, MODES, SceneCatalog, UnknownPrompt, parse_prompt, scene_catalog
from matrix_sim.world.settings import load_world_settings


def test_action_round_trips_and_clamps():
    a = Action(forward=2.0, turn=-0.25, strafe=0.5, boost=-1.0, brake=0.3)
    assert a.forward == 1.0 and a.boost == 0.0
    np.testing.assert_allclose(Action.from_array(a.to_array()).to_array(), a.to_array())
    assert a.to_array().shape == (ACTION_DIM,)
    assert Action().is_idle() and not a.is_idle()


def test_action_refuses_nan_and_wrong_length():
    with pytest.raises(ValueError, match="finite"):
        Action(forward=float("nan"))
    with pytest.raises(ValueError, match="5 values"):
        Action.from_array([0.0, 1.0])


def test_every_scene_has_a_unique_preset_and_several_captions():
    catalog = scene_catalog()
    assert len(catalog.scenes) == 6 * 3 * 4 * 2
    assert len(set(catalog.prompts)) == len(catalog.scenes)
    for scene in catalog.scenes:
        assert parse_prompt(scene.prompt) == scene
        assert len(set(scene.captions())) >= 3
    assert {s.biome for s in catalog.scenes} == set(BIOMES) and {s.mode for s in catalog.scenes} == set(MODES)


def test_prompt_parsing_ignores_case_and_spacing():
    assert parse_prompt("  WALK   city at NIGHT in rain ") == parse_prompt("walk city at night in rain")
    with pytest.raises(UnknownPrompt):
        parse_prompt("a purple ocean on mars")


def test_free_text_words_narrow_to_the_presets_they_name():
    catalog = scene_catalog()
    assert catalog.presets_named_by("cruising in my car over a snow-covered plain at dusk") == \
        ["drive snowfield at sunset"]                 # "snow covered" is the ground, not the weather; no weather: clear
    assert catalog.presets_named_by("a stroll down town streets at noon as snowflakes fall") == ["walk city by day in snow"]
    assert catalog.named_parts("a drive in fog or rain")["weather"] == {"fog", "rain"}       # a tie keeps both
    open_ended = catalog.presets_named_by("somewhere quiet in fog")          # names only the weather
    assert len(open_ended) == len(MODES) * len(BIOMES) * 3 and all(p.endswith("in fog") for p in open_ended)


def test_a_sentence_that_names_every_part_is_a_scene_and_one_that_does_not_says_what_is_missing():
    catalog = scene_catalog()
    assert catalog.scene_named_by("a stroll through the woods at midnight") == parse_prompt("walk forest at night")
    assert catalog.scene_named_by("Drive  Desert by day") == parse_prompt("drive desert by day")
    with pytest.raises(UnknownPrompt, match="does not say which biome or time of day"):
        catalog.scene_named_by("walk on the moon")
    with pytest.raises(UnknownPrompt, match="did you mean 'drive desert by day'"):           # a mistyped preset
        catalog.scene_named_by("drive desrt by day")


def test_malformed_scene_config_names_the_file(tmp_path):
    bad = tmp_path / "scenes.yaml"
    bad.write_text("modes: [drive\n")
    with pytest.raises(ConfigError, match="scenes.yaml"):
        SceneCatalog(bad)
    bad.write_text("modes: {drive: {preset: drive, captions: []}}\n")
    with pytest.raises(ConfigError, match="must define exactly"):
        SceneCatalog(bad)


def test_world_config_rejects_unknown_keys(tmp_path):
    import yaml

    from matrix_sim.config import resource

    data = yaml.safe_load(resource("world.yaml").read_text())
    data["drive"]["warp_speed"] = 9
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="warp_speed"):
        load_world_settings(path)
