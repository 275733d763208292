"""Scenes of the source world (biome + time of day + weather + mode), their preset prompts and captions.

A preset prompt is what the source world resets from; the captions are the paraphrased training text
the prompt encoder sees, so the world model learns to follow free text, not only the presets.
"""
from __future__ import annotations

import difflib
import itertools
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from matrix_sim.config import ConfigError, from_dict, load_yaml, resource

BIOMES = ("desert", "grassland", "forest", "snowfield", "coast", "city")
TIMES = ("day", "sunset", "night")
WEATHERS = ("clear", "fog", "rain", "snow")
MODES = ("drive", "walk")
_SECTIONS = {"modes": MODES, "biomes": BIOMES, "times": TIMES, "weathers": WEATHERS}
_PARTS = {"modes": "mode", "biomes": "biome", "times": "time", "weathers": "weather"}
_PART_NAMES = {"mode": "mode (drive or walk)", "time": "time of day"}
TYPO_CUTOFF = 0.8         # a sentence this close to a preset is that preset mistyped ("drive desrt by day")


class UnknownPrompt(ValueError):
    """The prompt names no scene preset of the source world."""


@dataclass(frozen=True)
class Wording:
    preset: str
    captions: list
    words: list           # what a player may type for this part ("noon", "misty"), matched as whole words


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
        phrases = [(_tokens(w), part, option) for section, part in _PARTS.items()
                   for option, wording in self.words[section].items() for w in wording.words]
        self._phrases = sorted(phrases, key=lambda p: -len(p[0]))      # (tokens, part, option), longest first

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
            raise UnknownPrompt(f"unknown scene prompt {prompt!r}{self._hint(prompt)}")
        return scene

    def scene_named_by(self, text: str) -> Scene:
        """The scene of a preset, or of a sentence whose words name one ("a stroll in the woods at midnight")."""
        scene = self._by_prompt.get(_normalise(text))
        if scene is not None:
            return scene
        scenes = self._scenes_named_by(text)
        if len(scenes) == 1:
            return scenes[0]
        open_parts = [_PART_NAMES.get(part, part) for part in _PARTS.values()
                      if len({getattr(s, part) for s in scenes}) > 1]
        hint = self._hint(text, TYPO_CUTOFF, f": it does not say which {' or '.join(open_parts)} "
                                             "(`python -m matrix_sim scenes` lists the presets)")
        raise UnknownPrompt(f"unknown scene prompt {text!r}{hint}")

    def _hint(self, text: str, cutoff: float = 0.5, none_close: str = "") -> str:
        """The presets a mistyped prompt is closest to, else `none_close`, else what a preset looks like."""
        close = difflib.get_close_matches(_normalise(text), list(self._by_prompt), n=3, cutoff=cutoff)
        if close:
            return f"; did you mean {', '.join(repr(c) for c in close)}?"
        return none_close or (f"; presets look like {self.preset_prompt(self.scenes[0])!r} "
                              "(`python -m matrix_sim scenes` lists all)")

    @property
    def prompts(self) -> list[str]:
        return [self.preset_prompt(s) for s in self.scenes]

    def named_parts(self, text: str) -> dict[str, set[str]]:
        """Per part ("time"), the options whose words `text` uses most; a part it names none of is absent.

        The longest phrase is read first, and a word read for one part is not read again, so "snow covered"
        names the snowfield and not the weather."""
        tokens = _tokens(text)
        taken = [False] * len(tokens)
        counts: dict[str, Counter] = {}
        for phrase, part, option in self._phrases:
            n = len(phrase)
            for i in range(len(tokens) - n + 1):
                if tokens[i:i + n] == phrase and not any(taken[i:i + n]):
                    taken[i:i + n] = [True] * n
                    counts.setdefault(part, Counter())[option] += 1
        return {part: {o for o, c in count.items() if c == max(count.values())} for part, count in counts.items()}

    def presets_named_by(self, text: str) -> list[str]:
        """The preset prompts consistent with every part `text` names (any option of a part it does not name,
        but clear weather: a sentence that names no weather is clear, as a preset that names none is)."""
        return [self.preset_prompt(s) for s in self._scenes_named_by(text)]

    def _scenes_named_by(self, text: str) -> list[Scene]:
        named = self.named_parts(text)
        named.setdefault("weather", {"clear"})
        return [s for s in self.scenes if all(getattr(s, part) in options for part, options in named.items())]


def _normalise(prompt: str) -> str:
    return " ".join(prompt.lower().split())


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


@lru_cache(maxsize=1)
def scene_catalog(path: str | Path = resource("scenes.yaml")) -> SceneCatalog:
    return SceneCatalog(path)


def parse_prompt(prompt: str) -> Scene:
    return scene_catalog().parse(prompt)
