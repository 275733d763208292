"""Scenes of the source world (biome + time of day + weather + mode), their preset prompts and captions.

A preset prompt is what the source world resets from; the captions are the paraphrased training text
the prompt encoder sees, so the world model learns to follow free text, not only the presets.
"""
from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from matrix_sim.config import ConfigError, from_dict, load_yaml, resource

BIOMES = ("desert", "grassland", "forest", "snowfield", "coast", "city")
TIMES = ("day", "sunset", "night")
WEATHERS = ("clear", "fog", "rain", "snow")
MODES = ("drive", "walk")
_SECTIONS = {"modes": MODES, "biomes": BIOMES, "times": TIMES, "weathers": WEATHERS}


class UnknownPrompt(ValueError):
    """The prompt names no scene preset of the source world."""


@dataclass(frozen=True)
class Wording:
    preset: str
    captions: list


@dataclass(frozen=True)
class Scene:
    biome: str
    time: str
    weather: str
    mode: str

    def __post_init__(self) -> None:
        for value, allowed in ((self.biome, BIOMES), (self.time, TIMES), (self.weather, WEATHERS), (self.mode, MODES)):
            if value not in allowed:
                raise ValueError(f"{value!r} is not one of {allowed}")

    @property
    def prompt(self) -> str:
        return scene_catalog().preset_prompt(self)

    def captions(self) -> list[str]:
        return scene_catalog().captions(self)

    def with_mode(self, mode: str) -> "Scene":
        return Scene(self.biome, self.time, self.weather, mode)


class SceneCatalog:
    """The wording of every scene, read from matrix_sim/resources/scenes.yaml."""

    def __init__(self, path: str | Path):
        data = load_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected sections {sorted(_SECTIONS)}")
        self.words: dict[str, dict[str, Wording]] = {}
        for section, names in _SECTIONS.items():
            entries = data.get(section)
            if not isinstance(entries, dict) or set(entries) != set(names):
                raise ConfigError(f"{path}: section {section!r} must define exactly {list(names)}")
            self.words[section] = {n: from_dict(Wording, entries[n], f"{path}: {section}.{n}") for n in names}
        self.scenes = [Scene(b, t, w, m) for m, b, t, w in itertools.product(MODES, BIOMES, TIMES, WEATHERS)]
        self._by_prompt = {_normalise(self.preset_prompt(s)): s for s in self.scenes}
        if len(self._by_prompt) != len(self.scenes):
            raise ConfigError(f"{path}: two scenes share a preset prompt")

    def preset_prompt(self, scene: Scene) -> str:
        parts = (self.words["modes"][scene.mode].preset, self.words["biomes"][scene.biome].preset,
                 self.words["times"][scene.time].preset, self.words["weathers"][scene.weather].preset)
        return " ".join(p for p in parts if p)

    def captions(self, scene: Scene) -> list[str]:
        combos = itertools.product(self.words["modes"][scene.mode].captions, self.words["biomes"][scene.biome].captions,
                                   self.words["times"][scene.time].captions, self.words["weathers"][scene.weather].captions)
        return [" ".join(c) for c in combos]

    def parse(self, prompt: str) -> Scene:
        """The scene whose preset prompt this is (case and spacing ignored)."""
        scene = self._by_prompt.get(_normalise(prompt))
        if scene is None:
            close = difflib.get_close_matches(_normalise(prompt), list(self._by_prompt), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else \
                f"; presets look like {self.preset_prompt(self.scenes[0])!r} (`python -m matrix_sim scenes` lists all)"
            raise UnknownPrompt(f"unknown scene prompt {prompt!r}{hint}")
        return scene

    @property
    def prompts(self) -> list[str]:
        return [self.preset_prompt(s) for s in self.scenes]


def _normalise(prompt: str) -> str:
    return " ".join(prompt.lower().split())


@lru_cache(maxsize=1)
def scene_catalog(path: str | Path = resource("scenes.yaml")) -> SceneCatalog:
    return SceneCatalog(path)


def parse_prompt(prompt: str) -> Scene:
    return scene_catalog().parse(prompt)
