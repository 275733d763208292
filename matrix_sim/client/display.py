"""The moderngl display: the world frame upscaled by a selectable shader, with HUD and menu panels on top.

It draws into any framebuffer (the window, or the fixed 1280x720 canvas that recordings and headless
runs read back), letterboxed to 16:9 so a resized or fullscreen window never stretches the picture.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import moderngl
import numpy as np

SHADER_DIR = Path(__file__).resolve().parent / "shaders"
UPSCALERS = ("lanczos", "edge", "bilinear")   # "edge" is the FSR-style edge-adaptive upscaler
AUTO = "auto"                                  # bilinear on a software rasteriser, lanczos on a GPU
UPSCALER_CHOICES = (AUTO, *UPSCALERS)
SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "swiftshader")
CANVAS_SIZE = (1280, 720)                      # recordings, screenshots in headless runs, HUD layout units
EDGE_SHARPNESS = 0.35
_TRIANGLE = np.array([-1, -1, 3, -1, -1, 3], dtype=np.float32)
_UNIT_QUAD = np.array([0, 0, 1, 0, 0, 1, 1, 1], dtype=np.float32)


@dataclass
class Panel:
    """An RGBA picture (top row first) placed at (x, y) in canvas pixels; `key` lets an unchanged panel skip re-upload."""

    rgba: bytes
    size: tuple[int, int]
    pos: tuple[int, int]
    key: object = None


def letterbox(width: int, height: int, aspect: float = CANVAS_SIZE[0] / CANVAS_SIZE[1]) -> tuple[int, int, int, int]:
    """The largest centred viewport of the given aspect inside a width x height target."""
    w = min(width, round(height * aspect))
    h = min(height, round(w / aspect))
    return (width - w) // 2, (height - h) // 2, w, h


def resolve_upscaler(name: str, renderer: str) -> str:
    """`auto` picks by the GL renderer: a software rasteriser (Mesa's llvmpipe on a CPU-only machine) shares the
    cores with the world model, and its lanczos pass costs several bilinear ones at 1280x720 (`bench play`
    measures both), so it gets bilinear; a GPU gets lanczos."""
    if name != AUTO:
        return name
    software = any(s in renderer.lower() for s in SOFTWARE_RENDERERS)
    return "bilinear" if software else "lanczos"


def _program(ctx: moderngl.Context, vert: str, frag: str) -> moderngl.Program:
    return ctx.program(vertex_shader=(SHADER_DIR / vert).read_text(), fragment_shader=(SHADER_DIR / frag).read_text())


class Display:
    def __init__(self, ctx: moderngl.Context, upscaler: str = AUTO):
        self.ctx = ctx
        self.upscaler = self._check(resolve_upscaler(upscaler, ctx.info["GL_RENDERER"]))
        triangle = ctx.buffer(_TRIANGLE.tobytes())
        self._upscale = {}
        for name in UPSCALERS:
            prog = _program(ctx, "quad.vert", f"{name}.frag")
            self._upscale[name] = ctx.vertex_array(prog, [(triangle, "2f", "in_pos")])
        self._stage: moderngl.Framebuffer | None = None   # lanczos' horizontal pass: output width x frame height
        self._upscale["edge"].program["sharpness"].value = EDGE_SHARPNESS
        overlay = _program(ctx, "overlay.vert", "overlay.frag")
        self._overlay = ctx.vertex_array(overlay, [(ctx.buffer(_UNIT_QUAD.tobytes()), "2f", "in_pos")])
        self._frame: moderngl.Texture | None = None
        self._panels: dict[int, tuple[object, moderngl.Texture]] = {}
        self._canvas = ctx.framebuffer(color_attachments=[ctx.renderbuffer(CANVAS_SIZE)])

    @staticmethod
    def _check(name: str) -> str:
        if name not in UPSCALERS:
            raise ValueError(f"unknown upscaler {name!r}; choose one of {list(UPSCALERS)}")
        return name

    def next_upscaler(self) -> str:
        self.upscaler = UPSCALERS[(UPSCALERS.index(self.upscaler) + 1) % len(UPSCALERS)]
        return self.upscaler

    def upload(self, image: np.ndarray) -> None:
        """Take a world frame (H, W, 3) uint8, top row first."""
        h, w = image.shape[:2]
        if self._frame is None or self._frame.size != (w, h):
            if self._frame is not None:
                self._frame.release()
            self._frame = self.ctx.texture((w, h), 3)
            self._frame.repeat_x = self._frame.repeat_y = False
            self._frame.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self._frame.write(np.ascontiguousarray(image, dtype=np.uint8).tobytes())

    def draw(self, fbo: moderngl.Framebuffer, size: tuple[int, int], panels: list[Panel]) -> None:
        """Clear `fbo` (size in pixels), draw the upscaled frame letterboxed, then the panels over it."""
        fbo.use()
        self.ctx.viewport = (0, 0, *size)
        fbo.clear(0.0, 0.0, 0.0, 1.0)
        view = letterbox(*size)
        self.ctx.viewport = view
        if self._frame is not None:
            self._draw_frame(fbo, view)
        self.ctx.enable(moderngl.BLEND)
        self.ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
        for slot, panel in enumerate(panels):
            self._panel_texture(slot, panel).use(0)
            x, y = panel.pos
            pw, ph = panel.size
            cw, ch = CANVAS_SIZE
            self._overlay.program["rect"].value = (2 * x / cw - 1, 1 - 2 * (y + ph) / ch,
                                                   2 * (x + pw) / cw - 1, 1 - 2 * y / ch)
            self._overlay.render(moderngl.TRIANGLE_STRIP)
        self.ctx.disable(moderngl.BLEND)

    def _draw_frame(self, fbo: moderngl.Framebuffer, view: tuple[int, int, int, int]) -> None:
        vao = self._upscale[self.upscaler]
        vao.program["into_texture"].value = False
        if self.upscaler != "lanczos":
            self._frame.use(0)
            vao.render(moderngl.TRIANGLES)
            return
        stage_size = (view[2], self._frame.size[1])
        if self._stage is None or self._stage.size != stage_size:
            if self._stage is not None:
                self._stage.release()
            self._stage = self.ctx.framebuffer(color_attachments=[self.ctx.texture(stage_size, 3, dtype="f2")])
        self._stage.use()
        self.ctx.viewport = (0, 0, *stage_size)
        self._frame.use(0)
        vao.program["axis"].value = (1, 0)
        vao.program["into_texture"].value = True
        vao.render(moderngl.TRIANGLES)
        fbo.use()
        self.ctx.viewport = view
        self._stage.color_attachments[0].use(0)
        vao.program["axis"].value = (0, 1)
        vao.program["into_texture"].value = False
        vao.render(moderngl.TRIANGLES)

    def _panel_texture(self, slot: int, panel: Panel) -> moderngl.Texture:
        key, tex = self._panels.get(slot, (None, None))
        if tex is not None and tex.size != panel.size:
            tex.release()
            tex = None
        if tex is None:
            tex = self.ctx.texture(panel.size, 4)
            tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
            key = None
        if panel.key is None or panel.key != key:
            tex.write(panel.rgba)
        self._panels[slot] = (panel.key, tex)
        return tex

    def render_canvas(self, panels: list[Panel]) -> np.ndarray:
        """Draw into the 1280x720 canvas and read it back as (720, 1280, 3) uint8, top row first."""
        self.draw(self._canvas, CANVAS_SIZE, panels)
        data = self._canvas.read(components=3, alignment=1)
        return np.frombuffer(data, dtype=np.uint8).reshape(CANVAS_SIZE[1], CANVAS_SIZE[0], 3)[::-1]

    def release(self) -> None:
        for _, tex in self._panels.values():
            tex.release()
        if self._frame is not None:
            self._frame.release()
        self._canvas.release()
        if self._stage is not None:
            self._stage.release()
