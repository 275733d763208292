"""An exploration policy that drives the source world like a curious player, for training data, held-out
footage and the game's scene starts (record_episode, drive).

The world model can only learn the actions it sees, so the policy mixes behaviours in segments: following
the road (with and without boost), sharp and gentle turns of both signs, stops, reversals, idling and, on
foot, strafing. Analog values stay analog, as from a gamepad.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from matrix_sim.actions import ACTION_DIM, Action
from matrix_sim.data.shards import Episode
from matrix_sim.world.base import Frame
from matrix_sim.world.terrain import road_heading

if TYPE_CHECKING:
    from matrix_sim.world.engine import SourceWorld

WARMUP_FRAMES = 16      # the exploration policy's first frames (pulling away), left out of footage used as is
BEHAVIOURS = ("follow", "turn", "stop", "reverse", "idle", "strafe")


@dataclass(frozen=True)
class PolicyWeights:
    follow: float = 0.55
    turn: float = 0.15
    stop: float = 0.06
    reverse: float = 0.06
    idle: float = 0.08
    strafe: float = 0.1      # walk mode only
    min_frames: int = 8
    max_frames: int = 64
    lookahead_m: float = 12.0
    steer_gain: float = 2.5


class ExplorationPolicy:
    """Picks a behaviour for a random number of frames, then the next; deterministic for a seed."""

    def __init__(self, seed: int, road_seed: int, roads, weights: PolicyWeights = PolicyWeights()):
        self.rng = np.random.default_rng(seed)
        self.road_seed, self.roads, self.w = road_seed, roads, weights
        self.behaviour, self.left, self.params = "follow", 0, {}
        self.stuck = 0
        self.turn_sign = 1.0       # alternates between turn segments, so left and right stay balanced

    def _next_segment(self, mode: str) -> None:
        weights = np.array([getattr(self.w, b) for b in BEHAVIOURS])
        if mode == "drive":
            weights[BEHAVIOURS.index("strafe")] = 0.0
        self.behaviour = BEHAVIOURS[self.rng.choice(len(BEHAVIOURS), p=weights / weights.sum())]
        self.left = int(self.rng.integers(self.w.min_frames, self.w.max_frames + 1))
        r = self.rng
        if self.behaviour in ("turn", "strafe"):
            self.turn_sign = -self.turn_sign
        self.params = {
            "throttle": float(r.choice([1.0, r.uniform(0.4, 1.0)])),
            "boost": float(r.random() < 0.25),
            "turn": self.turn_sign * float(r.choice([1.0, r.uniform(0.15, 0.8)])),
            "strafe": self.turn_sign * float(r.uniform(0.5, 1.0)),
            "reverse_turn": float(r.uniform(-1, 1)),
        }

    def act(self, frame: Frame) -> Action:
        x, _, z, yaw = (float(v) for v in frame.pose)
        moving_intent = self.behaviour in ("follow", "turn", "reverse", "strafe")
        self.stuck = self.stuck + 1 if moving_intent and abs(frame.speed) < 0.05 and frame.index > 0 else 0
        if self.left <= 0:
            self._next_segment(frame.mode)
        if self.stuck > 12 and self.behaviour != "reverse":      # against a tree or the sea: back off
            self.behaviour, self.left, self.stuck = "reverse", int(self.rng.integers(12, 32)), 0
        self.left -= 1
        p = self.params
        if self.behaviour == "follow":
            (tx, tz), _ = road_heading(x, z, yaw, self.road_seed, self.roads, self.w.lookahead_m)
            want = np.arctan2(tx - x, -(tz - z))
            error = (want - yaw + np.pi) % (2 * np.pi) - np.pi
            return Action(forward=p["throttle"], turn=float(np.clip(self.w.steer_gain * error, -1, 1)), boost=p["boost"])
        if self.behaviour == "turn":
            return Action(forward=p["throttle"] * 0.8, turn=p["turn"])
        if self.behaviour == "stop":
            return Action(brake=1.0)
        if self.behaviour == "reverse":
            return Action(forward=-1.0, turn=p["reverse_turn"])
        if self.behaviour == "strafe":
            return Action(forward=p["throttle"] * 0.5, strafe=p["strafe"], turn=p["turn"] * 0.3)
        return Action()


def drive(world: SourceWorld, prompt: str, seed: int, frames: int,
          warmup: int = WARMUP_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """`frames` images of the exploration policy in the scene after its first `warmup` (pulling away) and the
    actions taken at them: held-out footage and the game's scene starts."""
    episode = record_episode(world, prompt, seed, warmup + frames, {"prompt": prompt})
    return episode.frames[warmup:], episode.actions[warmup:]


def record_episode(world: SourceWorld, prompt: str, seed: int, frames: int, meta: dict, bar=None) -> Episode:
    """One episode of the policy in the scene from its reset: frames, actions and poses (bar: a tqdm to advance)."""
    frame = world.reset(prompt, seed)
    policy = ExplorationPolicy(seed + 1, seed, world.s.roads)
    images = np.empty((frames, world.height, world.width, 3), dtype=np.uint8)
    actions = np.empty((frames, ACTION_DIM), dtype=np.float32)
    poses = np.empty((frames, 4), dtype=np.float32)
    for t in range(frames):
        action = policy.act(frame)
        images[t], actions[t], poses[t] = frame.image, action.to_array(), frame.pose
        if t + 1 < frames:
            frame = world.step(action)
        if bar is not None:
            bar.update(1)
    return Episode(images, actions, poses, meta)
