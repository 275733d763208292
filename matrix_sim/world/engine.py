"""SourceWorld: the procedural game that renders training data and ground truth (World protocol)."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from matrix_sim.actions import Action
from matrix_sim.world.base import Frame
from matrix_sim.world.bodies import Car, Walker
from matrix_sim.world.geometry import heading, look_at, perspective
from matrix_sim.world.props import KIND_HEADLIGHT, KIND_TAILLIGHT, MESHES, PropPlacer
from matrix_sim.world.renderer import Renderer
from matrix_sim.world.scenes import Scene, scene_catalog
from matrix_sim.world.settings import WorldSettings, default_world_settings
from matrix_sim.world.terrain import chunk_mesh, height, road_centre

FOV_MARGIN_DEG = 8.0              # chunks just outside the view are drawn too (corners are a coarse test)
CHUNK_CACHE = 256                 # chunks kept in memory; bounded so an endless drive stays bounded
CAR_COLOR = (0.80, 0.12, 0.10)
CAR_PARTS = (                     # (forward, up, side) offset, (length, height, width) size, colour, kind
    ((0.0, 0.35, 0.0), (4.2, 0.8, 1.9), CAR_COLOR, 0.0),
    ((-0.3, 1.15, 0.0), (2.2, 0.6, 1.7), (0.15, 0.18, 0.22), 0.0),
    ((2.1, 0.6, 0.6), (0.1, 0.22, 0.35), (0.9, 0.9, 0.8), KIND_HEADLIGHT),
    ((2.1, 0.6, -0.6), (0.1, 0.22, 0.35), (0.9, 0.9, 0.8), KIND_HEADLIGHT),
    ((-2.1, 0.65, 0.65), (0.1, 0.18, 0.4), (0.6, 0.05, 0.05), KIND_TAILLIGHT),
    ((-2.1, 0.65, -0.65), (0.1, 0.18, 0.4), (0.6, 0.05, 0.05), KIND_TAILLIGHT),
    ((1.3, 0.0, 0.95), (0.7, 0.6, 0.25), (0.05, 0.05, 0.05), 0.0),
    ((1.3, 0.0, -0.95), (0.7, 0.6, 0.25), (0.05, 0.05, 0.05), 0.0),
    ((-1.3, 0.0, 0.95), (0.7, 0.6, 0.25), (0.05, 0.05, 0.05), 0.0),
    ((-1.3, 0.0, -0.95), (0.7, 0.6, 0.25), (0.05, 0.05, 0.05), 0.0),
)


class SourceWorld:
    """An endless, seeded, deterministic world: same prompt, seed and actions give the same frames."""

    def __init__(self, width: int = 256, height: int = 144, settings: WorldSettings | None = None, ctx=None):
        if width <= 0 or height <= 0 or abs(width * 9 - height * 16) > 16:
            raise ValueError(f"render size must be positive and 16:9, got {width}x{height}")
        self.s = settings or default_world_settings()
        self.width, self.height = width, height
        self.renderer = Renderer(width, height, self.s, ctx)
        self.proj = perspective(self.s.camera.fov_y_deg, width / height, self.s.camera.near, self.s.camera.far)
        self.scene: Scene | None = None
        self.prompt = ""
        self.seed = 0
        self._chunks: OrderedDict = OrderedDict()
        self._centre = None
        self._solids = np.zeros((0, 3))
        self._ring, self._drawn = [], None
        half_fov = np.arctan(np.tan(np.radians(self.s.camera.fov_y_deg) / 2) * width / height)
        self._cos_half_fov = float(np.cos(half_fov + np.radians(FOV_MARGIN_DEG)))

    # ---- World protocol ---------------------------------------------------------------------------
    def reset(self, prompt: str, seed: int) -> Frame:
        scene = scene_catalog().scene_named_by(prompt)
        self.seed = int(seed)
        self.index = 0
        self.scene = None            # a new seed is a new world: nothing cached may carry over
        self._apply_scene(scene, prompt)
        start_z = float(np.random.default_rng(self.seed).uniform(0, 10_000))
        x, slope = road_centre(0.0, start_z, self.seed, 0, self.s.roads)
        self.body = self._new_body()
        self.body.x, self.body.z = float(x), start_z
        self.body.yaw = float(np.arctan2(-slope, 1.0))   # facing -z along the road
        self._stream_chunks(force=True)
        return self._frame(None)

    def step(self, action: Action) -> Frame:
        if self.scene is None:
            raise RuntimeError("SourceWorld.step before reset")
        if self.scene.mode == "drive":
            self.body.step(action, self.s.dt, self.s.drive, self._blocked)
        else:
            self.body.step(action, self.s.dt, self.s.walk, self._blocked)
        self.index += 1
        self._stream_chunks()
        return self._frame(action)

    def preset_of(self, prompt: str) -> str:
        """The preset a prompt plays: itself, or the one a sentence's words name."""
        return scene_catalog().scene_named_by(prompt).prompt

    def set_prompt(self, prompt: str) -> None:
        """Switch scene on coming frames, keeping the place; a mode change swaps car and walker."""
        scene = scene_catalog().scene_named_by(prompt)
        if self.scene is None:
            raise RuntimeError("SourceWorld.set_prompt before reset")
        old = self.scene
        self._apply_scene(scene, prompt)
        if scene.mode != old.mode:
            body = self._new_body()
            body.x, body.z, body.yaw = self.body.x, self.body.z, self.body.yaw
            self.body = body
        if scene.biome != old.biome:
            self._stream_chunks(force=True)

    # ---- internals --------------------------------------------------------------------------------
    def _new_body(self):
        return Car() if self.scene.mode == "drive" else Walker()

    def _apply_scene(self, scene: Scene, prompt: str) -> None:
        if self.scene is None or scene.biome != self.scene.biome:
            self._chunks.clear()
            self._placer = PropPlacer(self.s, self.seed, scene.biome)
        self.scene, self.prompt = scene, prompt
        self.look = self.s.biomes[scene.biome]
        self.renderer.set_look(scene.biome, scene.time, scene.weather, self.seed)

    def ground(self, x, z):
        return height(x, z, self.seed, self.look, self.s.roads, self.s.terrain)

    def _blocked(self, x: float, z: float) -> bool:
        r = self.s.body_radius
        if self.look.water and float(self.ground(x, z)) < self.s.terrain.water_level + 0.3:
            return True
        solids = self._solids
        if not len(solids):
            return False
        return bool(np.any(np.hypot(solids[:, 0] - x, solids[:, 1] - z) < solids[:, 2] + r * 0.5))

    def _chunk(self, key):
        if key in self._chunks:
            self._chunks.move_to_end(key)
            return self._chunks[key]
        mesh = chunk_mesh(*key, self.seed, self.look, self.s.roads, self.s.terrain)
        instances, solids = self._placer.place(*key).arrays()
        self._chunks[key] = (mesh, instances, solids)
        while len(self._chunks) > CHUNK_CACHE:
            self._chunks.popitem(last=False)
        return self._chunks[key]

    def _stream_chunks(self, force: bool = False) -> None:
        """Load the ring of chunks around the body (and nearby solids) when it enters a new chunk."""
        size, n = self.s.terrain.chunk_size, self.s.terrain.view_chunks
        centre = (int(np.floor(self.body.x / size)), int(np.floor(self.body.z / size)))
        if centre == self._centre and not force:
            return
        self._centre = centre
        self._ring = [(centre[0] + dx, centre[1] + dz) for dz in range(-n, n + 1) for dx in range(-n, n + 1)]
        for key in self._ring:
            self._chunk(key)
        near = [self._chunk((centre[0] + dx, centre[1] + dz)) for dz in (-1, 0, 1) for dx in (-1, 0, 1)]
        self._solids = np.concatenate([c[2] for c in near])
        self._drawn = None

    def _draw_visible_chunks(self, eye: np.ndarray, forward: np.ndarray) -> None:
        """Hand the renderer only the chunks inside the horizontal field of view (llvmpipe is vertex bound)."""
        size = self.s.terrain.chunk_size
        keys = np.asarray(self._ring, dtype=np.float64)
        corners = np.concatenate([(keys + offset) * size for offset in ((0, 0), (0, 1), (1, 0), (1, 1), (0.5, 0.5))])
        rel = corners - eye[[0, 2]]
        cos_angle = (rel @ forward) / np.maximum(np.linalg.norm(rel, axis=1), 1e-6)
        seen = (cos_angle > self._cos_half_fov).reshape(5, -1).any(axis=0)
        centres = (keys + 0.5) * size - eye[[0, 2]]
        seen |= np.linalg.norm(centres, axis=1) < size
        drawn = tuple(k for k, v in zip(self._ring, seen) if v)
        if drawn == self._drawn:
            return
        self._drawn = drawn
        self.renderer.set_terrain([self._chunk(k)[0] for k in drawn])
        reach = self.s.terrain.prop_chunks
        with_props = [self._chunk(k) for k in drawn
                      if max(abs(k[0] - self._centre[0]), abs(k[1] - self._centre[1])) <= reach]
        self.renderer.set_instances("props", {m: np.concatenate([c[1][m] for c in with_props]) for m in MESHES})

    def _car_instances(self, base_y: float) -> np.ndarray:
        fx, fz = heading(self.body.yaw)
        rx, rz = -fz, fx
        yaw = -self.body.yaw
        rows = []
        for (f, u, side), (length, tall, width), color, kind in CAR_PARTS:
            x = self.body.x + fx * f + rx * side
            z = self.body.z + fz * f + rz * side
            rows.append((x, base_y + u, z, width, tall, length, yaw, *color, kind))
        return np.asarray(rows, dtype=np.float32)

    def _frame(self, action: Action | None) -> Frame:
        cam = self.s.camera
        b = self.body
        fx, fz = heading(b.yaw)
        behind = (b.x - fx * cam.chase_back, b.z - fz * cam.chase_back)
        y, y_behind = (float(v) for v in self.ground(np.array([b.x, behind[0]]), np.array([b.z, behind[1]])))
        if self.scene.mode == "drive":
            eye = np.array([behind[0], max(y_behind + 1.0, y + cam.chase_up), behind[1]])
            target = np.array([b.x + fx * 4.0, y + 1.0, b.z + fz * 4.0])
            head_pos = np.array([b.x + fx * 2.2, y + 0.7, b.z + fz * 2.2])
            self.renderer.set_instances("dynamic", {"box": self._car_instances(y)})
        else:
            eye = np.array([b.x, y + cam.eye_height, b.z])
            pitch = np.tan(np.radians(cam.walk_pitch_deg))
            target = eye + np.array([fx, pitch, fz])
            head_pos = eye - np.array([0.0, 0.3, 0.0])
            self.renderer.set_instances("dynamic", {})
        head_dir = np.array([fx, -0.12, fz])
        head_dir /= np.linalg.norm(head_dir)
        self._draw_visible_chunks(eye, np.array([fx, fz]))
        view = look_at(eye, target)
        image = self.renderer.render(view, self.proj, eye, head_pos, head_dir, b.yaw, self.index * self.s.dt)
        return Frame(image=image, index=self.index, prompt=self.prompt, mode=self.scene.mode, action=action,
                     pose=np.array([b.x, y, b.z, b.yaw], dtype=np.float32), speed=float(b.speed))

    def close(self) -> None:
        self.renderer.release()
