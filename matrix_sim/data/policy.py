"""An exploration policy that drives the source world like a curious player, for training data, held-out
footage and the game's scene starts (record_episode, drive).

The world model can only learn the actions it sees, so the policy mixes behaviours in segments, as a player
does: following the road most of the time (with and without boost), gentle and sharp turns of both signs,
leaving the road to drive or walk across open ground (then finding a road again), spinning (hard steer held
for 1-4 s at a crawl; on foot, turning on the spot), reversing (straight and while steering), stops (short,
and long ones of 3-10 s, braked or idle), idling and, on foot, strafing. Analog values stay analog, as from
a gamepad. Everything is a function of the seed and the frames seen: same arguments, same actions.

`behaviour_shares` measures what share of an episode's frames each kind of play is, and `simulate_episode`
runs the policy on the world's bodies and collisions without rendering (thousands of frames a second), for
tests and for sizing the mix.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from matrix_sim.actions import ACTION_DIM, Action
from matrix_sim.data.shards import Episode
from matrix_sim.world.base import Frame
from matrix_sim.world.terrain import road_distance, road_heading

if TYPE_CHECKING:
    from matrix_sim.world.engine import SourceWorld

POLICY_VERSION = 2      # in a recording's arguments: footage of another policy is not resumed as if it were this one's
WARMUP_FRAMES = 16      # the exploration policy's first frames (pulling away), left out of footage used as is
BEHAVIOURS = ("follow", "turn", "offroad", "spin", "stop", "reverse", "idle", "strafe")
SHARE_CATEGORIES = ("on_road_following", "off_road", "open_ground", "turning_hard", "spinning", "reversing", "stopped",
                    "long_stop", "strafing")
HARD_TURN = 0.6           # |turn| above this is a hard turn (behaviour_shares)
LONG_STOP_FRAMES = 48     # 3 s at 16 fps
SPIN_FRAMES = 16          # a hard turn one way held 1 s or more, slowly: spinning, turning on the spot
SPIN_SPEED = 6.0          # m/s: below it a car at full lock turns a circle of under ~7 m
STUCK_FRAMES = 8          # pushing without moving this long: against a tree, a wall or the sea


@dataclass(frozen=True)
class PolicyWeights:
    """Segment probabilities (normalised; strafe only on foot) and segment lengths in frames."""

    follow: float = 0.44
    turn: float = 0.09
    offroad: float = 0.12
    spin: float = 0.12
    stop: float = 0.14
    reverse: float = 0.06
    idle: float = 0.08
    strafe: float = 0.09     # walk mode only
    min_frames: int = 8      # turn, idle and strafe segments
    max_frames: int = 64
    follow_frames: tuple = (24, 128)
    spin_frames: tuple = (16, 64)          # 1-4 s
    reverse_frames: tuple = (16, 96)
    short_stop_frames: tuple = (8, 40)
    long_stop_frames: tuple = (48, 160)    # 3-10 s
    long_stop_p: float = 0.7
    offroad_drive_frames: tuple = (48, 192)  # across open ground, after turning off the road
    offroad_walk_frames: tuple = (128, 320)
    offroad_walk_factor: float = 1.5         # on foot, open country is more of the point
    leave_max_frames: int = 40               # turning away from the road, at most
    return_max_frames: int = 192             # finding a road again after an off-road segment, at most
    lookahead_m: float = 12.0
    steer_gain: float = 2.5


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def _aim(x: float, z: float, tx: float, tz: float) -> float:
    """The yaw that faces (tx, tz) from (x, z); yaw 0 looks along -z, positive turns right."""
    return float(np.arctan2(tx - x, -(tz - z)))


class ExplorationPolicy:
    """Picks a behaviour for a random number of frames, then the next; deterministic for a seed."""

    def __init__(self, seed: int, road_seed: int, roads, weights: PolicyWeights = PolicyWeights()):
        self.rng = np.random.default_rng(seed)
        self.road_seed, self.roads, self.w = road_seed, roads, weights
        self.behaviour, self.left, self.params = "follow", 0, {}
        self.stuck = 0
        self.turn_sign = 1.0       # alternates between turn segments, so left and right stay balanced
        self.phase = ""            # within a segment: offroad "leave" / "cross", stop "brake" / "idle"
        self.on_road_frames = 0    # frames in a row on the road while returning to it
        self.then_return = False   # after off road (or backing out of an obstacle there): find a road next
        self.last = Action()

    # ---- segments ---------------------------------------------------------------------------------
    def _span(self, lo_hi) -> int:
        return int(self.rng.integers(lo_hi[0], lo_hi[1] + 1))

    def _next_segment(self, mode: str) -> None:
        w, r = self.w, self.rng
        if self.then_return:        # back to a road before anything else
            self.then_return = False
            self.behaviour, self.left = "return", w.return_max_frames
        else:
            weights = np.array([getattr(w, b) for b in BEHAVIOURS])
            if mode == "drive":
                weights[BEHAVIOURS.index("strafe")] = 0.0
            else:
                weights[BEHAVIOURS.index("offroad")] *= w.offroad_walk_factor
            self.behaviour = BEHAVIOURS[r.choice(len(BEHAVIOURS), p=weights / weights.sum())]
            lengths = {"follow": w.follow_frames, "spin": w.spin_frames, "reverse": w.reverse_frames,
                       "offroad": (w.leave_max_frames, w.leave_max_frames)}
            if self.behaviour == "stop":
                lengths["stop"] = w.long_stop_frames if r.random() < w.long_stop_p else w.short_stop_frames
            self.left = self._span(lengths.get(self.behaviour, (w.min_frames, w.max_frames)))
        if self.behaviour in ("turn", "strafe", "spin", "offroad"):
            self.turn_sign = -self.turn_sign
        s = self.turn_sign
        self.phase = {"offroad": "leave", "stop": "brake"}.get(self.behaviour, "")
        self.on_road_frames = 0
        cross = w.offroad_drive_frames if mode == "drive" else w.offroad_walk_frames
        self.params = {
            "throttle": float(r.choice([1.0, r.uniform(0.4, 1.0)])),
            "boost": float(r.random() < 0.25),
            "turn": s * float(r.choice([1.0, r.uniform(0.15, 0.8)])),
            "strafe": s * float(r.uniform(0.5, 1.0)),
            # reversing: straight back or while steering, either way
            "reverse": -float(r.choice([1.0, r.uniform(0.5, 1.0)])),
            "reverse_turn": float(r.uniform(-0.15, 0.15)) if r.random() < 0.4 else float(r.choice([-1, 1]) * r.uniform(0.3, 1.0)),
            # off road: the angle away from the road's heading, how long across open ground, a slow wander
            "away": s * float(r.uniform(np.radians(35 if mode == "drive" else 60), np.radians(110))),
            "cross_frames": self._span(cross),
            "wander": float(r.uniform(0.05, 0.3)), "wander_rate": float(r.uniform(0.01, 0.05)),
            "wander_phase": float(r.uniform(0, 2 * np.pi)),
            # spinning: hard steer held, at a crawl in the car; on foot mostly on the spot
            "spin_turn": s * float(r.uniform(0.7, 1.0)),
            "spin_speed": float(r.uniform(2.0, 5.0)),
            "spin_throttle": float(r.uniform(0.1, 0.4)),
            "spin_walk": float(r.uniform(0.1, 0.35)) if r.random() < 0.3 else 0.0,
            # stops: brake held throughout, or brake to a standstill then let go
            "brake": float(r.choice([1.0, r.uniform(0.6, 1.0)])),
            "release": bool(r.random() < 0.5),
        }
        self.params["target_yaw"] = None

    # ---- steering helpers ----------------------------------------------------------------------------
    def _road_yaw(self, x: float, z: float, yaw: float) -> float:
        """The heading along the nearest road, in the direction closest to `yaw`."""
        (ax, az), _ = road_heading(x, z, yaw, self.road_seed, self.roads, 0.0)
        (bx, bz), _ = road_heading(x, z, yaw, self.road_seed, self.roads, self.w.lookahead_m)
        return _aim(ax, az, bx, bz)

    def _steer_to(self, yaw: float, want: float) -> float:
        return float(np.clip(self.w.steer_gain * _wrap(want - yaw), -1, 1))

    def _follow(self, x: float, z: float, yaw: float) -> float:
        (tx, tz), _ = road_heading(x, z, yaw, self.road_seed, self.roads, self.w.lookahead_m)
        return self._steer_to(yaw, _aim(x, z, tx, tz))

    # ---- the policy --------------------------------------------------------------------------------
    def act(self, frame: Frame) -> Action:
        action = self._act(frame)
        self.last = action
        return action

    def _act(self, frame: Frame) -> Action:
        x, _, z, yaw = (float(v) for v in frame.pose)
        speed, walk = float(frame.speed), frame.mode == "walk"
        last = self.last
        pushing = (abs(last.forward) > 0.05 or abs(last.strafe) > 0.05) and last.brake < 0.5
        self.stuck = self.stuck + 1 if pushing and abs(speed) < 0.05 and frame.index > 0 else 0
        if self.left <= 0:
            self.then_return |= self.behaviour == "offroad"
            self._next_segment(frame.mode)
        if self.stuck > STUCK_FRAMES and self.behaviour != "reverse":      # against a tree, a wall or the sea: back off
            # off road, then look for a road again rather than push on into the obstacle
            self.then_return |= self.behaviour in ("offroad", "return")
            self.behaviour, self.left, self.stuck = "reverse", int(self.rng.integers(12, 32)), 0
        elif self.stuck > STUCK_FRAMES:       # backed into something: pull forward, steering away
            self.behaviour, self.left, self.stuck = "turn", int(self.rng.integers(12, 32)), 0
        self.left -= 1
        p = self.params
        b = self.behaviour
        if b == "follow":
            return Action(forward=p["throttle"], turn=self._follow(x, z, yaw), boost=p["boost"])
        if b == "return":
            on_road = float(road_distance(x, z, self.road_seed, self.roads)) < self.roads.width * 0.5
            self.on_road_frames = self.on_road_frames + 1 if on_road else 0
            if self.on_road_frames >= 8:
                self.left = 0
            return Action(forward=p["throttle"], turn=self._follow(x, z, yaw), boost=p["boost"] * (not walk))
        if b == "offroad":
            return self._offroad(x, z, yaw, walk)
        if b == "turn":
            return Action(forward=p["throttle"] * 0.8, turn=p["turn"])
        if b == "spin":
            if walk:
                return Action(forward=p["spin_walk"], turn=p["spin_turn"])
            if speed > p["spin_speed"] + 1.5:        # too fast for a tight circle: brake, steer held
                return Action(turn=p["spin_turn"], brake=float(np.clip((speed - p["spin_speed"]) / 6.0, 0.3, 1.0)))
            return Action(forward=p["spin_throttle"] if speed < p["spin_speed"] else 0.0, turn=p["spin_turn"])
        if b == "stop":
            if self.phase == "brake" and p["release"] and abs(speed) < 0.05 and frame.index > 0:
                self.phase = "idle"
            return Action() if self.phase == "idle" else Action(brake=p["brake"])
        if b == "reverse":
            return Action(forward=p["reverse"], turn=p["reverse_turn"])
        if b == "strafe":
            return Action(forward=p["throttle"] * 0.5, strafe=p["strafe"], turn=p["turn"] * 0.3)
        return Action()

    def _offroad(self, x: float, z: float, yaw: float, walk: bool) -> Action:
        """Turn away from the road's heading, then hold that heading (with a slow wander) across open ground;
        the next segment finds a road again."""
        p = self.params
        throttle = p["throttle"] * (0.8 if walk else 1.0)
        boost = p["boost"] if not walk else float(p["boost"] > 0 and p["throttle"] > 0.7)
        if p["target_yaw"] is None:
            p["target_yaw"] = _wrap(self._road_yaw(x, z, yaw) + p["away"])
        if self.phase == "leave":
            error = _wrap(p["target_yaw"] - yaw)
            if abs(error) < np.radians(8) or self.left <= 0:
                self.phase, self.left = "cross", p["cross_frames"]
            return Action(forward=throttle, turn=self._steer_to(yaw, p["target_yaw"]), boost=0.0)
        p["wander_phase"] += 2 * np.pi * p["wander_rate"]
        want = p["target_yaw"] + p["wander"] * np.sin(p["wander_phase"])
        return Action(forward=throttle, turn=self._steer_to(yaw, want), boost=boost)


# ---- measuring the mix --------------------------------------------------------------------------------
def _runs(mask: np.ndarray, min_length: int) -> np.ndarray:
    """The frames of `mask` that lie in runs of at least `min_length` True frames in a row."""
    out = np.zeros_like(mask)
    start = None
    for t, value in enumerate(list(mask) + [False]):
        if value and start is None:
            start = t
        elif not value and start is not None:
            if t - start >= min_length:
                out[start:t] = True
            start = None
    return out


def behaviour_flags(actions, poses=None, road_seed: int | None = None, roads=None,
                    frame_rate: float = 16.0) -> dict[str, np.ndarray]:
    """Per frame, which kinds of play it is (SHARE_CATEGORIES; a frame can be several, e.g. off road and
    reversing). actions: (F, 5) in ACTION_FIELDS order; poses: (F, 4) x, y, z, yaw as recorded, where known.

    on_road_following: on the road (the body's centre on the asphalt), forward > 0.1, |turn| <= 0.6, no brake.
    off_road: the body's centre off the asphalt. open_ground: off road and beyond the verge (where the
    terrain's bumps are back in full, roads.flatten past the asphalt): across country, not a wide corner.
    These need poses, road_seed and roads (else all False).
    turning_hard: |turn| > 0.6. spinning: a hard turn one way held SPIN_FRAMES (1 s) or more, not reversing,
    and (with poses) under SPIN_SPEED: tight circles and turning on the spot, not a wide bend. reversing: forward < -0.1. strafing: |strafe| > 0.3.
    stopped: brake > 0.5, or nothing pressed, or (with poses) neither moving (< 0.1 m/s) nor turning.
    long_stop: stopped frames in runs of at least LONG_STOP_FRAMES (3 s).
    """
    a = np.asarray(actions, dtype=np.float64).reshape(len(actions), -1)
    forward, turn, strafe, _boost, brake = a.T
    frames = len(a)
    stopped = (brake > 0.5) | np.all(np.abs(a) < 1e-6, axis=1)
    slow = np.ones(frames, dtype=bool)
    on_road = np.zeros(frames, dtype=bool)
    off_road = np.zeros(frames, dtype=bool)
    open_ground = np.zeros(frames, dtype=bool)
    if poses is not None and frames:
        poses = np.asarray(poses, dtype=np.float64)
        # action t produced frame t + 1: its motion is pose t -> t + 1 (the last frame repeats the one before)
        step = np.hypot(np.diff(poses[:, 0]), np.diff(poses[:, 2])) * frame_rate
        spin = np.abs((np.diff(poses[:, 3]) + np.pi) % (2 * np.pi) - np.pi) * frame_rate
        step, spin = (np.append(v, v[-1] if len(v) else 0.0) for v in (step, spin))
        stopped |= (step < 0.1) & (spin < 0.05)
        slow = step < SPIN_SPEED
        if roads is not None and road_seed is not None:
            distance = road_distance(poses[:, 0], poses[:, 2], road_seed, roads)
            on_road, off_road = distance < roads.width * 0.5, distance >= roads.width * 0.5
            open_ground = distance >= roads.width * 0.5 + roads.flatten
    return {
        "on_road_following": on_road & (forward > 0.1) & (np.abs(turn) <= HARD_TURN) & (brake <= 0.5),
        "off_road": off_road,
        "open_ground": open_ground,
        "turning_hard": np.abs(turn) > HARD_TURN,
        "spinning": (_runs(turn > HARD_TURN, SPIN_FRAMES) | _runs(turn < -HARD_TURN, SPIN_FRAMES)) & slow
                    & (forward >= -0.1),
        "reversing": forward < -0.1,
        "stopped": stopped,
        "long_stop": _runs(stopped, LONG_STOP_FRAMES),
        "strafing": np.abs(strafe) > 0.3,
    }


def behaviour_shares(actions, poses=None, road_seed: int | None = None, roads=None,
                     frame_rate: float = 16.0) -> dict[str, float]:
    """The share of frames (0..1) in each of SHARE_CATEGORIES (see behaviour_flags); they overlap, so they
    need not sum to 1. Road categories are NaN without poses, road_seed and roads."""
    flags = behaviour_flags(actions, poses, road_seed, roads, frame_rate)
    knows_road = poses is not None and road_seed is not None and roads is not None
    shares = {}
    for name, mask in flags.items():
        if name in ("on_road_following", "off_road", "open_ground") and not knows_road:
            shares[name] = float("nan")
        else:
            shares[name] = float(mask.mean()) if len(mask) else 0.0
    return shares


# ---- the policy without rendering --------------------------------------------------------------------
def simulate_episode(prompt: str, seed: int, frames: int, settings=None,
                     weights: PolicyWeights = PolicyWeights()) -> tuple[np.ndarray, np.ndarray]:
    """(actions (F, 5), poses (F, 4)) of the policy over `frames` frames in the scene, seeded as the recorder
    seeds it, on the source world's bodies, start pose and collisions (props and sea) but without a renderer:
    the same motion as `record`, up to the pose's ground height, at thousands of frames a second."""
    from matrix_sim.world.bodies import Car, Walker
    from matrix_sim.world.props import PropPlacer
    from matrix_sim.world.scenes import parse_prompt
    from matrix_sim.world.settings import default_world_settings
    from matrix_sim.world.terrain import height, road_centre

    s = settings or default_world_settings()
    scene = parse_prompt(prompt)
    look, placer = s.biomes[scene.biome], PropPlacer(s, seed, scene.biome)
    start_z = float(np.random.default_rng(seed).uniform(0, 10_000))
    x0, slope = road_centre(0.0, start_z, seed, 0, s.roads)
    body = Car() if scene.mode == "drive" else Walker()
    body.x, body.z, body.yaw = float(x0), start_z, float(np.arctan2(-slope, 1.0))
    chunks: dict = {}
    size = s.terrain.chunk_size

    def solids_near(x: float, z: float) -> np.ndarray:
        cx, cz = int(np.floor(x / size)), int(np.floor(z / size))
        near = []
        for key in [(cx + dx, cz + dz) for dz in (-1, 0, 1) for dx in (-1, 0, 1)]:
            if key not in chunks:
                chunks[key] = placer.place(*key).arrays()[1]
            near.append(chunks[key])
        return np.concatenate(near)

    solids = solids_near(body.x, body.z)

    def blocked(x: float, z: float) -> bool:     # as SourceWorld._blocked
        if look.water and float(height(x, z, seed, look, s.roads, s.terrain)) < s.terrain.water_level + 0.3:
            return True
        return bool(len(solids)) and bool(np.any(np.hypot(solids[:, 0] - x, solids[:, 1] - z)
                                                 < solids[:, 2] + s.body_radius * 0.5))

    policy = ExplorationPolicy(seed + 1, seed, s.roads, weights)
    actions = np.empty((frames, 5), dtype=np.float32)
    poses = np.empty((frames, 4), dtype=np.float32)
    centre = None
    for t in range(frames):
        pose = np.array([body.x, 0.0, body.z, body.yaw], dtype=np.float32)
        frame = Frame(image=None, index=t, prompt=prompt, mode=scene.mode, pose=pose, speed=float(body.speed))
        action = policy.act(frame)
        actions[t], poses[t] = action.to_array(), pose
        key = (int(np.floor(body.x / size)), int(np.floor(body.z / size)))
        if key != centre:
            centre, solids = key, solids_near(body.x, body.z)
        body.step(action, s.dt, s.drive if scene.mode == "drive" else s.walk, blocked)
    return actions, poses


def drive(world: SourceWorld, prompt: str, seed: int, frames: int,
          warmup: int = WARMUP_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """`frames` images of the exploration policy in the scene after its first `warmup` (pulling away) and the
    actions taken at them: held-out footage and the game's scene starts."""
    episode = record_episode(world, prompt, seed, warmup + frames, {"prompt": prompt})
    return episode.frames[warmup:], episode.actions[warmup:]


def record_episode(world: SourceWorld, prompt: str, seed: int, frames: int, meta: dict, bar=None) -> Episode:
    """One episode of the exploration policy in the scene from its reset (bar: a tqdm to advance)."""
    return play_episode(world, prompt, seed, frames, meta, lambda: ExplorationPolicy(seed + 1, seed, world.s.roads),
                        bar)


def play_episode(world, prompt: str, seed: int, frames: int, meta: dict, make_policy: Callable[[], object],
                 bar=None) -> Episode:
    """`frames` frames of a world from its reset under a policy (made after the reset, from the world it sees):
    images, the actions taken at them and poses, in the shard convention (frames[t + 1] is what actions[t]
    produced)."""
    frame = world.reset(prompt, seed)
    policy = make_policy()
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
