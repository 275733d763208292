"""Bring your own game: a Gymnasium environment as a source world behind the World protocol.

An environment with an RGB picture (render_mode="rgb_array", or RGB observations) and a Discrete, MultiDiscrete,
MultiBinary or Box action space becomes a World: reset(prompt, seed), step(action), set_prompt(prompt). What the
Action vector (forward, turn, strafe, boost, brake) does to the environment is DECLARED, not learned:

  RuleMapping    Discrete / MultiDiscrete / MultiBinary: the first rule whose condition holds gives the env action,
                 e.g. {"when": "forward > 0.3", "action": 1}; none holding gives `default`.
  ButtonMapping  MultiBinary / MultiDiscrete: each dimension has its own rules (a button pressed while its
                 condition holds), so buttons combine (forward + turn + attack at once).
  LinearMapping  Box: env action = clip(matrix @ action + bias) to the space's bounds; columns follow
                 ACTION_FIELDS.

Conditions are clauses "FIELD OP NUMBER" joined by "and" (OP: < <= > >=), e.g. "forward > 0.3 and turn < -0.3".
mapping_from_dict builds any of them from a YAML / JSON dict ({"kind": "rules" | "buttons" | "linear", ...}).

Frames are resized to the recording size (256x144) by `fit`: "crop" (the default: scaled to cover, the centre
kept; a 4:3 game loses a band at top and bottom) or "letterbox" (scaled to fit, black bars at the sides).

A registered environment (GymSource) owns a prompt prefix: "doom map01" is level "map01" of the source "doom".
set_prompt to another level of the same source switches the scene on the coming frames (the env is made or
reset on that level at the next step); a level of another source, or a source-world preset, is refused (the
client turns that into a notice). An episode that ends (death, time limit) is reset on the same level, so the
world goes on forever as the protocol wants. Nothing here imports gymnasium: only making an env does.
"""
from __future__ import annotations

import logging
import operator
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from matrix_sim.actions import ACTION_DIM, ACTION_FIELDS, Action
from matrix_sim.world.base import Frame

log = logging.getLogger(__name__)
FITS = ("crop", "letterbox")
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_CLAUSE = re.compile(r"^\s*(\w+)\s*(<=|>=|<|>)\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*$")


class UnknownLevel(ValueError):
    """The prompt names no level of a registered environment (or names another source)."""


# ---- the declared mapping from the Action vector to env actions ------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """Clauses (field, op, threshold), all of which must hold; no clause always holds."""

    clauses: tuple[tuple[str, str, float], ...] = ()

    @classmethod
    def parse(cls, text: str) -> "Condition":
        clauses = []
        for part in filter(None, (p.strip() for p in re.split(r"\band\b", text or ""))):
            m = _CLAUSE.match(part)
            if m is None or m.group(1) not in ACTION_FIELDS:
                raise ValueError(f"bad condition {part!r}: write FIELD OP NUMBER with FIELD one of {ACTION_FIELDS} "
                                 f"and OP one of {sorted(_OPS)}")
            clauses.append((m.group(1), m.group(2), float(m.group(3))))
        return cls(tuple(clauses))

    def holds(self, values: dict[str, float]) -> bool:
        return all(_OPS[op](values[name], threshold) for name, op, threshold in self.clauses)


@dataclass(frozen=True)
class Rule:
    when: Condition
    action: Any              # an env action (int, or a list for MultiDiscrete / MultiBinary), or a button value

    @classmethod
    def of(cls, when: str, action) -> "Rule":
        return cls(Condition.parse(when), action)


def _values(action: Action) -> dict[str, float]:
    return dict(zip(ACTION_FIELDS, action.to_array().tolist()))


@dataclass(frozen=True)
class RuleMapping:
    """First matching rule wins; `default` when none matches (Discrete, MultiDiscrete, MultiBinary)."""

    rules: tuple[Rule, ...]
    default: Any = 0

    def __call__(self, action: Action):
        values = _values(action)
        for rule in self.rules:
            if rule.when.holds(values):
                return _as_env_action(rule.action)
        return _as_env_action(self.default)

    def check(self, space) -> None:
        for value in [self.default, *(r.action for r in self.rules)]:
            _check_contains(space, _as_env_action(value))


@dataclass(frozen=True)
class ButtonMapping:
    """Per dimension (MultiBinary / MultiDiscrete): the first matching rule of dims[i] gives value i, else
    default[i] (0 when no default is given)."""

    dims: tuple[tuple[Rule, ...], ...]
    default: Optional[tuple[int, ...]] = None

    def __call__(self, action: Action) -> np.ndarray:
        values = _values(action)
        out = np.array(self.default if self.default is not None else [0] * len(self.dims), dtype=np.int64)
        for i, rules in enumerate(self.dims):
            for rule in rules:
                if rule.when.holds(values):
                    out[i] = int(rule.action)
                    break
        return out

    def check(self, space) -> None:
        shape = tuple(getattr(space, "shape", ()) or ())
        if shape != (len(self.dims),):
            raise ValueError(f"a button mapping of {len(self.dims)} dimensions does not fit the action space {space}")
        _check_contains(space, self(Action()))
        for i, rules in enumerate(self.dims):      # each rule's value alone must be a valid value of its dim
            for rule in rules:
                probe = self(Action())
                probe[i] = int(rule.action)
                _check_contains(space, probe)


@dataclass(frozen=True)
class LinearMapping:
    """Box: env action = clip(matrix @ action + bias, low, high); matrix is (n, 5), columns ACTION_FIELDS."""

    matrix: tuple[tuple[float, ...], ...]
    bias: Optional[tuple[float, ...]] = None

    def __call__(self, action: Action) -> np.ndarray:
        m = np.asarray(self.matrix, dtype=np.float64)
        out = m @ action.to_array().astype(np.float64)
        if self.bias is not None:
            out = out + np.asarray(self.bias, dtype=np.float64)
        out = out.astype(np.float32)
        low, high = getattr(self, "_low", None), getattr(self, "_high", None)
        return out if low is None else np.clip(out, low, high).astype(np.float32)

    def check(self, space) -> None:
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.ndim != 2 or m.shape[1] != ACTION_DIM:
            raise ValueError(f"a linear mapping's matrix must be (n, {ACTION_DIM}) (columns {ACTION_FIELDS}), "
                             f"got {m.shape}")
        if tuple(space.shape) != (m.shape[0],):
            raise ValueError(f"a linear mapping to {m.shape[0]} values does not fit the action space {space}")
        if self.bias is not None and len(self.bias) != m.shape[0]:
            raise ValueError(f"bias has {len(self.bias)} values, the matrix {m.shape[0]} rows")
        object.__setattr__(self, "_low", np.asarray(space.low, dtype=np.float32))
        object.__setattr__(self, "_high", np.asarray(space.high, dtype=np.float32))


Mapping = RuleMapping | ButtonMapping | LinearMapping


def _as_env_action(value):
    return np.asarray(value, dtype=np.int64) if isinstance(value, (list, tuple)) else int(value)


def _check_contains(space, value) -> None:
    if not space.contains(np.asarray(value, dtype=space.dtype) if isinstance(value, np.ndarray) else value):
        raise ValueError(f"mapped action {value!r} is not in the action space {space}")


def mapping_from_dict(data: dict) -> Mapping:
    """A mapping from YAML / JSON:
      {"kind": "rules", "rules": [{"when": "forward > 0.3", "action": 1}, ...], "default": 0}
      {"kind": "buttons", "dims": [[{"when": "forward > 0.3", "action": 1}], ...], "default": [0, 0]}
      {"kind": "linear", "matrix": [[1, 0, 0, 0, 0], ...], "bias": [0, ...]}"""
    kind = data.get("kind")
    if kind == "rules":
        return RuleMapping(tuple(Rule.of(r.get("when", ""), r["action"]) for r in data["rules"]), data.get("default", 0))
    if kind == "buttons":
        default = data.get("default")
        return ButtonMapping(tuple(tuple(Rule.of(r.get("when", ""), r["action"]) for r in dim) for dim in data["dims"]),
                             tuple(default) if default is not None else None)
    if kind == "linear":
        bias = data.get("bias")
        return LinearMapping(tuple(tuple(float(v) for v in row) for row in data["matrix"]),
                             tuple(float(v) for v in bias) if bias is not None else None)
    raise ValueError(f"unknown mapping kind {kind!r}: one of 'rules', 'buttons', 'linear'")


def check_mapping(mapping: Mapping, space) -> None:
    """Refuse a mapping that does not fit the env's action space (kind, size, values) before it plays."""
    kind = type(space).__name__
    allowed = {RuleMapping: ("Discrete", "MultiDiscrete", "MultiBinary"), ButtonMapping: ("MultiBinary", "MultiDiscrete"),
               LinearMapping: ("Box",)}[type(mapping)]
    if kind not in allowed:
        raise ValueError(f"a {type(mapping).__name__} maps to {' / '.join(allowed)} action spaces, not {kind}")
    mapping.check(space)


# ---- frames ------------------------------------------------------------------------------------------------------
def fit_frame(image: np.ndarray, width: int, height: int, fit: str = "crop") -> np.ndarray:
    """An (h, w, 3) uint8 picture as (height, width, 3): `crop` covers the frame and keeps the centre,
    `letterbox` fits it inside with black bars; area-averaged (Pillow's box filter) when shrinking."""
    from PIL import Image

    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an RGB picture (h, w, 3), got shape {image.shape}")
    image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    scale = max(width / w, height / h) if fit == "crop" else min(width / w, height / h)
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = np.asarray(Image.fromarray(image).resize((sw, sh), Image.BOX if scale < 1 else Image.BILINEAR))
    if fit == "crop":
        top, left = (sh - height) // 2, (sw - width) // 2
        return np.ascontiguousarray(resized[top:top + height, left:left + width])
    out = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - sh) // 2, (width - sw) // 2
    out[top:top + sh, left:left + sw] = resized
    return out


def env_picture(env, observation) -> np.ndarray:
    """The env's RGB picture: render() for render_mode "rgb_array", else an RGB observation (or its
    "screen" / "rgb" / "pixels" entry of a dict observation)."""
    if getattr(env, "render_mode", None) == "rgb_array":
        picture = env.render()
        if picture is not None:
            return np.asarray(picture)
    if isinstance(observation, dict):
        for key in ("screen", "rgb", "pixels", "image"):
            if key in observation:
                observation = observation[key]
                break
    picture = np.asarray(observation)
    if picture.ndim == 3 and picture.shape[2] in (3, 4) and picture.dtype == np.uint8:
        return picture
    raise ValueError(f"{env}: no RGB picture (make it with render_mode='rgb_array', or give RGB observations); "
                     f"its observation is {picture.dtype} {picture.shape}")


# ---- registered environments ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GymSource:
    """A Gymnasium environment playable as a source world under a prompt prefix.

    make(level) -> gymnasium.Env (rendering RGB); mapping: the declared Action -> env action map; levels: the
    level names a prompt may take ("doom map01"); record_levels: those `record --env NAME` cycles through;
    policy(world, seed): an exploration policy (act(frame) -> Action) for recording, default RandomPolicy;
    pose(env) -> (x, y, z, yaw) where the env knows it; frame_rate: env steps per second; reset_level: the env
    switches level on reset(options={"level": L}) (else a level switch makes a new env)."""

    name: str
    make: Callable[[str], Any]
    mapping: Mapping
    levels: Sequence[str] = ("default",)
    record_levels: Optional[Sequence[str]] = None
    default_level: Optional[str] = None
    frame_rate: int = 16
    fit: str = "crop"
    policy: Optional[Callable[["GymWorld", int], Any]] = None
    pose: Optional[Callable[[Any], np.ndarray]] = None
    reset_level: bool = False

    def prompt(self, level: Optional[str] = None) -> str:
        return f"{self.name} {level or self.default}"

    @property
    def default(self) -> str:
        return self.default_level or self.levels[0]

    def level_of(self, prompt: str) -> str:
        words = prompt.lower().split()
        if not words or words[0] != self.name:
            raise UnknownLevel(f"{prompt!r} is not a prompt of {self.name!r} (they look like {self.prompt()!r})")
        level = " ".join(words[1:]) or self.default
        if level not in self.levels:
            shown = ", ".join(list(self.levels)[:8]) + (" ..." if len(self.levels) > 8 else "")
            raise UnknownLevel(f"{self.name} has no level {level!r} (levels: {shown})")
        return level


_SOURCES: dict[str, GymSource] = {}
_BUILTINS_LOADED = False


def register(source: GymSource, replace: bool = False) -> GymSource:
    """Make a source playable under its prompt prefix (`record --env NAME`, `--prompt "NAME LEVEL"`)."""
    if source.fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {source.fit!r}")
    name = source.name.lower()
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name) or name in ("drive", "walk"):
        raise ValueError(f"bad source name {source.name!r}: one lower-case word, not a source-world mode")
    if name in _SOURCES and not replace:
        raise ValueError(f"a source named {name!r} is registered already")
    _SOURCES[name] = source
    return source


def unregister(name: str) -> None:
    _SOURCES.pop(name.lower(), None)


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        from matrix_sim.world import doom      # registers "doom"; imports vizdoom only when an env is made

        doom.register_doom()


def sources() -> dict[str, GymSource]:
    _load_builtins()
    return dict(_SOURCES)


def get_source(name: str) -> GymSource:
    found = sources().get(name.lower())
    if found is None:
        raise UnknownLevel(f"no environment named {name!r}; registered: {sorted(sources())}")
    return found


def source_of(prompt: Optional[str]) -> Optional[GymSource]:
    """The registered source whose prefix the prompt starts with, or None (a source-world prompt)."""
    if not prompt or not prompt.split():
        return None
    return sources().get(prompt.split()[0].lower())


def is_gym_prompt(prompt: Optional[str]) -> bool:
    return source_of(prompt) is not None


def gym_prompts(texts) -> list[str]:
    """The texts that are prompts of registered environments (e.g. a bundle's playable prompts)."""
    return [t for t in texts if is_gym_prompt(t)]


# ---- the world -------------------------------------------------------------------------------------------------------
class GymWorld:
    """A registered Gymnasium environment behind the World protocol; frames are width x height RGB."""

    mode = "walk"

    def __init__(self, source: GymSource | str, width: int = 256, height: int = 144):
        self.source = get_source(source) if isinstance(source, str) else source
        self.width, self.height = width, height
        self.frame_rate = int(self.source.frame_rate)
        self.env = None
        self.level: Optional[str] = None
        self.prompt = ""
        self.index = -1
        self._pending: Optional[str] = None
        self._seed = 0
        self._episodes = 0
        self._picture: Optional[np.ndarray] = None

    # World protocol
    def reset(self, prompt: str, seed: int) -> Frame:
        level = self.source.level_of(prompt)
        self._seed, self._episodes, self._pending = int(seed), 0, None
        self._start(level, prompt, self._seed)
        self.index = 0
        return self._frame(None)

    def step(self, action: Action) -> Frame:
        if self.env is None:
            raise RuntimeError("GymWorld.step before reset")
        if self._pending is not None:           # a scene switch: the coming frame is the new level's first
            prompt, self._pending = self._pending, None
            self._episodes += 1
            self._start(self.source.level_of(prompt), prompt, self._seed + self._episodes)
        else:
            observation, _, terminated, truncated, _ = self.env.step(self.source.mapping(action))
            if terminated or truncated:         # the world goes on: a new episode of the same level
                self._episodes += 1
                observation, _ = self.env.reset(seed=self._seed + self._episodes, **self._level_options(self.level))
            self._picture = env_picture(self.env, observation)
        self.index += 1
        return self._frame(action)

    def set_prompt(self, prompt: str) -> None:
        """Another level of this environment, from the next step on; refuses what is not one."""
        self.source.level_of(prompt)
        self._pending = prompt

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None

    # internals
    @property
    def unwrapped(self):
        return getattr(self.env, "unwrapped", self.env)

    def _level_options(self, level: str) -> dict:
        return {"options": {"level": level}} if self.source.reset_level else {}

    def _start(self, level: str, prompt: str, seed: int) -> None:
        if self.env is None or (level != self.level and not self.source.reset_level):
            self.close()
            self.env = self.source.make(level)
            check_mapping(self.source.mapping, self.env.action_space)
            log.info("%s: level %s (%s action space %s)", self.source.name, level, type(self.env.action_space).__name__,
                     self.env.action_space)
        observation, _ = self.env.reset(seed=seed, **self._level_options(level))
        self.level, self.prompt = level, " ".join(prompt.lower().split())
        self._picture = env_picture(self.env, observation)

    def _frame(self, action: Optional[Action]) -> Frame:
        pose = self.source.pose(self.unwrapped) if self.source.pose is not None else np.zeros(4, np.float32)
        return Frame(image=fit_frame(self._picture, self.width, self.height, self.source.fit), index=self.index,
                     prompt=self.prompt, mode=self.mode, action=action, pose=np.asarray(pose, np.float32))


# ---- a default exploration policy --------------------------------------------------------------------------------
@dataclass
class RandomPolicy:
    """Holds a random analog Action for a random number of frames, then another; deterministic for a seed."""

    seed: int
    min_frames: int = 3
    max_frames: int = 16
    rng: np.random.Generator = field(init=False)
    left: int = field(init=False, default=0)
    held: Action = field(init=False, default=Action())

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def act(self, frame: Frame) -> Action:
        if self.left <= 0:
            r = self.rng
            self.left = int(r.integers(self.min_frames, self.max_frames + 1))
            self.held = Action(forward=r.choice([-1.0, 0.0, 1.0, r.uniform(-1, 1)]), turn=r.choice([-1.0, 0.0, 1.0]),
                               strafe=r.choice([-1.0, 0.0, 0.0, 1.0]), boost=float(r.random() < 0.2),
                               brake=float(r.random() < 0.15))
        self.left -= 1
        return self.held


def policy_for(world: GymWorld, seed: int):
    factory = world.source.policy
    return factory(world, seed) if factory is not None else RandomPolicy(seed)
