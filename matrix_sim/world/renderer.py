"""Offscreen moderngl renderer of the source world (EGL on Mesa llvmpipe where there is no display).

It draws what the engine hands it: terrain triangles, prop instances per mesh, the camera and the look
of the scene. One draw call per layer keeps llvmpipe fast enough to record hundreds of frames a second.
"""
from __future__ import annotations

import functools
from pathlib import Path

import moderngl
import numpy as np

from matrix_sim.world.geometry import box_mesh, cone_mesh, gl_matrix, rock_mesh
from matrix_sim.world.props import MESHES
from matrix_sim.world.settings import WorldSettings
from matrix_sim.world.terrain import road_phase

SHADER_DIR = Path(__file__).resolve().parent / "shaders"
_FULLSCREEN = np.array([-1, -1, 3, -1, -1, 3], dtype=np.float32)
_INSTANCE_LAYOUT = "3f 3f 1f 3f 1f/i"
_INSTANCE_ATTRS = ("i_offset", "i_size", "i_yaw", "i_color", "i_kind")


def create_context() -> moderngl.Context:
    """A headless GL 3.3 context: EGL first (no display needed), then whatever moderngl finds."""
    errors = []
    for kwargs in ({"backend": "egl"}, {}):
        try:
            return moderngl.create_standalone_context(require=330, **kwargs)
        except Exception as exc:  # moderngl raises plain Exception for missing backends
            errors.append(f"{kwargs or 'default'}: {exc}")
    raise RuntimeError("no OpenGL 3.3 context could be created (install Mesa EGL: apt-get install libegl1 "
                       "libegl-mesa0 libgl1-mesa-dri); tried " + "; ".join(errors))


def _current(method):
    """Run a GL method with this renderer's context current: a process may hold several contexts
    (a second world, the game window) and GL calls go to whichever was made current last."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.ctx:
            return method(self, *args, **kwargs)
    return wrapper


def _source(name: str) -> str:
    return (SHADER_DIR / name).read_text()


def _lit_fragment(name: str) -> str:
    return "#version 330\n" + _source("common.glsl") + _source(name)


class Renderer:
    def __init__(self, width: int, height: int, settings: WorldSettings, ctx: moderngl.Context | None = None):
        if width <= 0 or height <= 0:
            raise ValueError(f"render size must be positive, got {width}x{height}")
        self.width, self.height, self.s = width, height, settings
        self.ctx = ctx or create_context()
        self._build()

    @_current
    def _build(self) -> None:
        ctx, width, height = self.ctx, self.width, self.height
        self.fbo = ctx.framebuffer(color_attachments=[ctx.renderbuffer((width, height))],
                                   depth_attachment=ctx.depth_renderbuffer((width, height)))
        self.terrain_prog = ctx.program(vertex_shader=_source("terrain.vert"),
                                        fragment_shader=_lit_fragment("terrain.frag"))
        self.props_prog = ctx.program(vertex_shader=_source("props.vert"), fragment_shader=_lit_fragment("props.frag"))
        self.sky_prog = ctx.program(vertex_shader=_source("sky.vert"), fragment_shader=_source("sky.frag"))
        self.weather_prog = ctx.program(vertex_shader=_source("sky.vert"), fragment_shader=_source("weather.frag"))
        quad = ctx.buffer(_FULLSCREEN.tobytes())
        self.sky_vao = ctx.vertex_array(self.sky_prog, [(quad, "2f", "in_pos")])
        self.weather_vao = ctx.vertex_array(self.weather_prog, [(quad, "2f", "in_pos")])
        self.meshes = {"box": ctx.buffer(box_mesh().tobytes()), "cone": ctx.buffer(cone_mesh().tobytes()),
                       "rock": ctx.buffer(rock_mesh().tobytes())}
        self.terrain_vbo = None
        self.terrain_vao = None
        self.layers = {}
        self.water_prog = ctx.program(vertex_shader=_source("terrain.vert"), fragment_shader=_lit_fragment("water.frag"))
        self.water_vbo = ctx.buffer(reserve=6 * 6 * 4)
        self.water_vao = ctx.vertex_array(self.water_prog, [(self.water_vbo, "3f 12x", "in_pos")])
        self._look = None

    # ---- scene data ---------------------------------------------------------------------------
    @_current
    def set_look(self, biome: str, time: str, weather: str, seed: int) -> None:
        s, b, t, w = self.s, self.s.biomes[biome], self.s.times[time], self.s.weathers[weather]
        fog_color = np.asarray(t.sky_horizon) * np.asarray(w.fog_tint) * w.darken
        sun_dir = np.asarray(t.sun_dir) / np.linalg.norm(t.sun_dir)
        common = {
            "u_sun_dir": tuple(sun_dir), "u_sun_color": tuple(np.asarray(t.sun_color) * w.darken),
            "u_ambient": tuple(np.asarray(t.ambient) * w.darken), "u_fog_color": tuple(fog_color),
            "u_fog_density": w.fog_density, "u_lights_on": float(t.lights_on),
        }
        r = s.roads
        terrain = {
            "u_ground": tuple(b.ground), "u_ground_alt": tuple(b.ground_alt), "u_rock": tuple(b.rock),
            "u_seed_offset": float(road_phase(0, seed, 0) / (2 * np.pi)),
            "u_roads": (r.spacing, r.amplitude, r.wavelength, r.width),
            "u_water": float(b.water), "u_water_level": s.terrain.water_level,
        }
        sky = {"u_sky_top": tuple(np.asarray(t.sky_top) * w.darken), "u_sky_horizon": tuple(np.asarray(t.sky_horizon) * w.darken),
               "u_sun_dir": tuple(sun_dir), "u_sun_color": tuple(t.sun_color), "u_fog_color": tuple(fog_color),
               "u_fog_amount": min(1.0, w.fog_density * 25.0), "u_lights_on": float(t.lights_on)}
        props = {**common, "u_prop_range": s.terrain.prop_range}
        for prog, values in ((self.terrain_prog, {**common, **terrain}), (self.props_prog, props), (self.water_prog, common),
                             (self.sky_prog, sky)):
            for name, value in values.items():
                if name in prog:
                    prog[name].value = value
        self._look = (b, t, w)

    @_current
    def set_terrain(self, chunks: list) -> None:
        """Replace the drawn ground with these chunks, each (vertices, indices) from terrain.chunk_mesh."""
        offsets = np.cumsum([0] + [len(v) for v, _ in chunks[:-1]])
        verts = np.concatenate([v for v, _ in chunks])
        indices = np.concatenate([i + np.uint32(o) for (_, i), o in zip(chunks, offsets)])
        if self.terrain_vao is not None:
            self.terrain_vao.release()
            self.terrain_vbo.release()
            self.terrain_ibo.release()
        self.terrain_vbo = self.ctx.buffer(np.ascontiguousarray(verts, dtype=np.float32).tobytes())
        self.terrain_ibo = self.ctx.buffer(np.ascontiguousarray(indices, dtype=np.uint32).tobytes())
        self.terrain_vao = self.ctx.vertex_array(self.terrain_prog, [(self.terrain_vbo, "3f 3f", "in_pos", "in_normal")],
                                                 index_buffer=self.terrain_ibo, index_element_size=4)
        self.terrain_count = len(indices)

    @_current
    def set_instances(self, layer: str, instances: dict) -> None:
        """Replace one layer ('props' or 'dynamic') of instances: mesh name -> (N, 11) rows."""
        for mesh in MESHES:
            key = (layer, mesh)
            rows = np.ascontiguousarray(instances.get(mesh, np.zeros((0, 11))), dtype=np.float32)
            old = self.layers.get(key)
            if old is not None and old[1].size == rows.nbytes:
                old[1].write(rows.tobytes())      # same count (the car, every frame): reuse the buffer
                continue
            if old is not None:
                del self.layers[key]
                old[0].release()
                old[1].release()
            if len(rows):
                buf = self.ctx.buffer(rows.tobytes())
                vao = self.ctx.vertex_array(self.props_prog, [
                    (self.meshes[mesh], "3f 3f", "in_pos", "in_normal"),
                    (buf, _INSTANCE_LAYOUT, *_INSTANCE_ATTRS)])
                self.layers[key] = (vao, buf, len(rows))

    # ---- drawing ------------------------------------------------------------------------------
    @_current
    def render(self, view: np.ndarray, proj: np.ndarray, eye, head_pos, head_dir, yaw: float, time_s: float) -> np.ndarray:
        """Draw one frame and return it as an (H, W, 3) uint8 array, top row first."""
        if self._look is None:
            raise RuntimeError("Renderer.set_look must be called before render")
        ctx = self.ctx
        self.fbo.use()
        ctx.viewport = (0, 0, self.width, self.height)
        ctx.clear(0.0, 0.0, 0.0, 1.0, depth=1.0)
        view_proj = proj @ view
        inv = np.linalg.inv(view_proj)
        ctx.disable(moderngl.CULL_FACE | moderngl.BLEND)
        ctx.enable(moderngl.DEPTH_TEST)
        for prog in (self.terrain_prog, self.props_prog, self.water_prog):
            prog["u_view_proj"].write(gl_matrix(view_proj))
            prog["u_camera"].value = tuple(float(v) for v in eye)
            prog["u_head_pos"].value = tuple(float(v) for v in head_pos)
            prog["u_head_dir"].value = tuple(float(v) for v in head_dir)
        # roughly front to back (car, props, ground, sea, sky) so the depth test skips hidden pixels
        for layer in ("dynamic", "props"):
            for mesh in MESHES:
                if (layer, mesh) in self.layers:
                    vao, _, count = self.layers[(layer, mesh)]
                    vao.render(moderngl.TRIANGLES, instances=count)
        if self.terrain_vao is not None:
            self.terrain_vao.render(moderngl.TRIANGLES, vertices=self.terrain_count)
        biome, _, weather = self._look
        if biome.water:
            self._draw_water(eye, time_s)
        self.sky_prog["u_inv_view_proj"].write(gl_matrix(inv))
        self.sky_vao.render(moderngl.TRIANGLES)
        if weather.particles > 0:
            ctx.disable(moderngl.DEPTH_TEST)
            ctx.enable(moderngl.BLEND)
            ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
            prog = self.weather_prog
            prog["u_time"].value = time_s
            prog["u_kind"].value = float(weather.particle_kind)
            prog["u_yaw"].value = yaw
            prog["u_resolution"].value = (float(self.width), float(self.height))
            self.weather_vao.render(moderngl.TRIANGLES)
            ctx.disable(moderngl.BLEND)
        data = self.fbo.read(components=3, alignment=1)
        return np.frombuffer(data, dtype=np.uint8).reshape(self.height, self.width, 3)[::-1].copy()

    def _draw_water(self, eye, time_s: float) -> None:
        """A sea plane at water level that follows the camera to the far plane."""
        r, y = self.s.camera.far, self.s.terrain.water_level
        x, z = float(eye[0]), float(eye[2])
        corners = [(x - r, z - r), (x + r, z - r), (x + r, z + r), (x - r, z + r)]
        rows = [(cx, y, cz, 0.0, 1.0, 0.0) for cx, cz in (corners[0], corners[1], corners[2], corners[0], corners[2], corners[3])]
        self.water_vbo.write(np.asarray(rows, dtype=np.float32).tobytes())
        self.water_prog["u_time"].value = time_s
        self.water_vao.render(moderngl.TRIANGLES)

    def release(self) -> None:
        self.ctx.release()
