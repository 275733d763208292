"""Doom as a source world: ViZDoom's engine and the Freedoom levels it ships, through the Gymnasium adapter.

Prompts: "doom map01" .. "doom map32" (freedoom2.wad) and "doom e1m1" .. "doom e4m9" (freedoom1.wad); plain
"doom" is MAP01. `pip install matrix-sim[doom]` brings vizdoom (engine and both WADs are in its wheel) and
gymnasium; nothing here imports either before an env is made.

DoomEnv is a Gymnasium env of its own (not vizdoom's gymnasium wrapper, whose Dict action space and config
files would hide the analog controls): ViZDoom renders 320x240 RGB (no status bar, the weapon shown), the
player is in god mode (exploration never ends in death), each step is FRAME_SKIP = 2 tics (35 tics/s: 17.5
steps/s, the world's frame rate 18). Its action space is Box(5): (move, turn, strafe, run, attack), played
through ViZDoom's delta buttons so analog input stays analog:
  move   -1..1   forward speed, units/tic: move * (25 walking .. 50 running)   (MOVE_FORWARD_BACKWARD_DELTA)
  turn   -1..1   turn * 4 degrees a tic, positive turns right                  (TURN_LEFT_RIGHT_DELTA)
  strafe -1..1   strafe * (24 walking .. 40 running) units/tic, positive right  (MOVE_LEFT_RIGHT_DELTA)
  run     0..1   blends walking into running speed
  attack  0..1   fires while >= 0.5                                              (ATTACK)
The declared mapping from the Action vector (DOOM_MAPPING, a LinearMapping) is the identity in field order:
forward -> move, turn -> turn, strafe -> strafe, boost -> run (shift, as in Doom) and brake -> attack (space
on the keyboard, the left trigger on a gamepad): Doom has no brake (letting go of forward stops the player),
and ACTION_DIM stays 5 for the trained models. Frames are cropped to 16:9 (the top and bottom 30 rows of 240
are cut) and shrunk to 256x144.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from matrix_sim.actions import Action
from matrix_sim.world.base import Frame
from matrix_sim.world.gym_world import GymSource, LinearMapping, register

NAME = "doom"
FRAME_SKIP = 2
FRAME_RATE = 18                        # 35 tics/s / FRAME_SKIP, rounded
WALK, RUN = 25.0, 50.0                 # forward units per tic
STRAFE_WALK, STRAFE_RUN = 24.0, 40.0
SETTLE_TICS = 4                        # idle tics after a level starts, before the first frame
TURN_DEG = 4.0                         # degrees per tic at full turn
RESOLUTION = "320X240"
DOOM2_LEVELS = tuple(f"map{i:02d}" for i in range(1, 33))
DOOM1_LEVELS = tuple(f"e{e}m{m}" for e in range(1, 5) for m in range(1, 10))
LEVELS = DOOM2_LEVELS + DOOM1_LEVELS
RECORD_LEVELS = DOOM2_LEVELS[:12] + DOOM1_LEVELS[:9]      # what `record --env doom` cycles through
DOOM_MAPPING = LinearMapping(tuple(tuple(float(i == j) for j in range(5)) for i in range(5)))


def wad_for(level: str) -> str:
    """The Freedoom WAD in the vizdoom package that holds the level."""
    import vizdoom

    name = "freedoom1.wad" if re.fullmatch(r"e\dm\d", level) else "freedoom2.wad"
    path = os.path.join(os.path.dirname(vizdoom.__file__), name)
    if not os.path.isfile(path):
        raise RuntimeError(f"{path} is missing: vizdoom >= 1.3 ships the Freedoom WADs (pip install 'matrix-sim[doom]')")
    return path


def _import_gymnasium():
    try:
        import gymnasium
        import vizdoom  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(f"Doom needs the doom extra ({exc}): pip install 'matrix-sim[doom]'") from None
    return gymnasium


def make_doom_env(level: str = "map01", resolution: str = RESOLUTION, frame_skip: int = FRAME_SKIP, skill: int = 3):
    """A DoomEnv (a gymnasium.Env) on the level."""
    gymnasium = _import_gymnasium()

    class DoomEnv(gymnasium.Env):
        metadata = {"render_modes": ["rgb_array"], "render_fps": 35 / frame_skip}

        def __init__(self):
            import vizdoom as vzd

            self.vzd = vzd
            self.render_mode = "rgb_array"
            width, height = (int(v) for v in resolution.split("X"))
            self.observation_space = gymnasium.spaces.Box(0, 255, (height, width, 3), np.uint8)
            self.action_space = gymnasium.spaces.Box(np.array([-1, -1, -1, 0, 0], np.float32),
                                                     np.array([1, 1, 1, 1, 1], np.float32), dtype=np.float32)
            self.game = None
            self.wad: Optional[str] = None
            self.level = level
            self.screen = np.zeros((height, width, 3), np.uint8)
            self.depth = np.full((height, width), 255, np.uint8)
            self.variables = np.zeros(5, np.float64)      # x, y, z, angle (degrees), health

        def _open(self, wad: str) -> None:
            vzd = self.vzd
            if self.game is not None:
                self.game.close()
            game = vzd.DoomGame()
            game.set_doom_game_path(wad)
            game.set_screen_resolution(getattr(vzd.ScreenResolution, f"RES_{resolution}"))
            game.set_screen_format(vzd.ScreenFormat.RGB24)
            game.set_depth_buffer_enabled(True)
            game.set_render_hud(False)
            game.set_render_crosshair(False)
            game.set_render_weapon(True)
            game.set_render_messages(False)
            game.set_window_visible(False)
            game.set_sound_enabled(False)
            game.set_doom_skill(skill)
            game.set_episode_timeout(0)
            game.set_mode(vzd.Mode.PLAYER)
            B = vzd.Button
            game.set_available_buttons([B.MOVE_FORWARD_BACKWARD_DELTA, B.TURN_LEFT_RIGHT_DELTA,
                                        B.MOVE_LEFT_RIGHT_DELTA, B.ATTACK])
            V = vzd.GameVariable
            game.set_available_game_variables([V.POSITION_X, V.POSITION_Y, V.POSITION_Z, V.ANGLE, V.HEALTH])
            game.add_game_args("+sv_cheats 1")
            game.set_doom_map(self.level)
            game.init()
            self.game, self.wad = game, wad

        def _read(self) -> None:
            state = self.game.get_state()
            if state is not None:           # None once the episode finished: keep the last picture
                self.screen = state.screen_buffer
                self.depth = state.depth_buffer
                self.variables = np.asarray(state.game_variables, np.float64)

        def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
            super().reset(seed=seed)
            self.level = (options or {}).get("level", self.level)
            wad = wad_for(self.level)
            if self.game is None or wad != self.wad:
                self._open(wad)
            self.game.set_doom_map(self.level)
            if seed is not None:
                self.game.set_seed(int(seed) % (2**31 - 1))
            self.game.new_episode()
            self.game.send_game_command("god")
            self.game.make_action([0.0] * 4, SETTLE_TICS)     # the first tics of a level take no input
            self._read()
            return self.screen, {"level": self.level}

        def step(self, action):
            move, turn, strafe, run, attack = (float(v) for v in np.clip(action, self.action_space.low,
                                                                          self.action_space.high))
            buttons = [move * (WALK + run * (RUN - WALK)), turn * TURN_DEG,
                       strafe * (STRAFE_WALK + run * (STRAFE_RUN - STRAFE_WALK)), float(attack >= 0.5)]
            reward = self.game.make_action(buttons, frame_skip)
            done = self.game.is_episode_finished()       # the level's exit (god mode: never death)
            self._read()
            return self.screen, float(reward), bool(done), False, {"level": self.level}

        def render(self):
            return self.screen

        def close(self):
            if self.game is not None:
                self.game.close()
                self.game = None

    return DoomEnv()


def doom_pose(env) -> np.ndarray:
    """(x, height, y, yaw in radians) from the game's variables (map units), the source world's order."""
    x, y, z, angle = (float(v) for v in env.variables[:4])
    return np.array([x, z, y, math.radians(angle)], np.float32)


# ---- the exploration policy -------------------------------------------------------------------------------------
@dataclass
class DoomExplorer:
    """Plays like a curious player, for training data: walks (sometimes runs) and steers toward the open side of
    the view (the depth buffer's far side), turns away before a wall fills the view, turns on the spot, strafes,
    fires in bursts, stands still a little, and backs up and turns when it stops moving while walking (stuck).
    Left and right stay balanced; deterministic for a seed (and the game's own seed)."""

    world: object
    seed: int
    wall: float = 14.0             # central depth (buffer units) below which the view ahead counts as a wall
    rng: np.random.Generator = field(init=False)
    behaviour: str = field(init=False, default="explore")
    left: int = field(init=False, default=0)
    params: dict = field(init=False, default_factory=dict)
    sign: float = field(init=False, default=1.0)
    last: Optional[np.ndarray] = field(init=False, default=None)
    slow: int = field(init=False, default=0)

    WEIGHTS = {"explore": 0.5, "spin": 0.12, "strafe": 0.12, "attack": 0.1, "idle": 0.05, "weave": 0.11}

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def _segment(self, behaviour: Optional[str] = None, frames: Optional[tuple[int, int]] = None) -> None:
        r = self.rng
        names = list(self.WEIGHTS)
        weights = np.array([self.WEIGHTS[n] for n in names])
        self.behaviour = behaviour or names[r.choice(len(names), p=weights / weights.sum())]
        lo, hi = frames or {"idle": (3, 10), "attack": (4, 12), "spin": (6, 24)}.get(self.behaviour, (8, 40))
        self.left = int(r.integers(lo, hi + 1))
        self.sign = -self.sign if r.random() < 0.7 else self.sign
        self.params = {"speed": float(r.choice([1.0, r.uniform(0.5, 1.0)])), "run": float(r.random() < 0.3),
                       "turn": self.sign * float(r.choice([1.0, r.uniform(0.3, 0.9)])),
                       "strafe": self.sign * float(r.uniform(0.5, 1.0)), "fire_walk": float(r.random() < 0.5)}

    def _depths(self) -> tuple[float, float, float]:
        depth = np.asarray(getattr(getattr(self.world, "unwrapped", self.world), "depth", None), np.float32)
        if depth.ndim != 2:
            return 255.0, 255.0, 255.0
        h, w = depth.shape
        band = depth[int(h * 0.35):int(h * 0.65)]
        centre = float(np.percentile(band[:, int(w * 0.4):int(w * 0.6)], 25))
        return float(band[:, :w // 3].mean()), centre, float(band[:, -(w // 3):].mean())

    def act(self, frame: Frame) -> Action:
        pose = np.asarray(frame.pose if frame.pose is not None else np.zeros(4), np.float64)
        step = float(np.hypot(*(pose[[0, 2]] - self.last))) if self.last is not None else 1e9
        self.last = pose[[0, 2]]
        left_d, centre, right_d = self._depths()
        if self.left <= 0:
            self._segment()
        walking = self.behaviour in ("explore", "weave", "strafe")
        self.slow = self.slow + 1 if walking and step < 1.5 else 0
        if self.slow >= 5:                               # walking, yet not moving: against something, back off
            self._segment("backup", (5, 12))
            self.slow = 0
        elif self.behaviour in ("explore", "weave") and centre < self.wall:  # a wall ahead: turn to the open side
            self._segment("avoid", (6, 16))
            self.params["turn"] = (1.0 if right_d > left_d else -1.0) * float(self.rng.uniform(0.6, 1.0))
        self.left -= 1
        p = self.params
        if self.behaviour == "explore":                  # steer toward the deeper side of the view
            steer = float(np.clip((right_d - left_d) / 40.0, -0.5, 0.5))
            return Action(forward=p["speed"], turn=steer, boost=p["run"])
        if self.behaviour == "weave":
            return Action(forward=p["speed"], turn=0.4 * p["turn"], boost=p["run"])
        if self.behaviour in ("spin", "avoid"):
            return Action(forward=0.2 if self.behaviour == "avoid" else 0.0, turn=p["turn"])
        if self.behaviour == "strafe":
            return Action(forward=0.3 * p["speed"], strafe=p["strafe"], turn=0.2 * p["turn"])
        if self.behaviour == "attack":
            return Action(forward=0.5 * p["fire_walk"], turn=0.15 * p["turn"], brake=1.0)
        if self.behaviour == "backup":
            return Action(forward=-1.0, turn=0.5 * p["turn"])
        return Action()


def register_doom() -> GymSource:
    """The "doom" source (gym_world's registry loads it by itself)."""
    return register(GymSource(
        name=NAME, make=lambda level: make_doom_env(level), mapping=DOOM_MAPPING, levels=LEVELS,
        record_levels=RECORD_LEVELS, default_level="map01", frame_rate=FRAME_RATE, fit="crop",
        policy=lambda world, seed: DoomExplorer(world, seed), pose=doom_pose, reset_level=True), replace=True)
