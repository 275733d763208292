"""The windowed game loop: input -> world thread -> upscaled frame + HUD on screen (and into recordings).

The loop polls input at INPUT_HZ and redraws only when something changed (a new world frame, the menu,
the HUD's notice, a resize), so the display runs at the world's rate and leaves the CPU to the world.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Optional

import moderngl
import numpy as np
import pygame

from matrix_sim.actions import IDLE
from matrix_sim.client.bindings import load_controls
from matrix_sim.client.display import CANVAS_SIZE, Display
from matrix_sim.client.hud import Hud, HudState, loading_panel
from matrix_sim.client.input import GLOBAL_COMMANDS, Input
from matrix_sim.client.menu import Menu, other_mode
from matrix_sim.client.options import Options
from matrix_sim.client.recorder import Recorder, RecordingError
from matrix_sim.client.session import load_replay
from matrix_sim.client.worker import LiveSource, Produced, ScriptSource, start_world
from matrix_sim.config import folder_problem
from matrix_sim.world.scenes import MODES, scene_catalog

log = logging.getLogger(__name__)
INPUT_HZ = 120
GL_VERSION = (3, 3)
HUD_REFRESH_S = 0.25      # the HUD's numbers are redrawn this often even without a new frame


class Game:
    def __init__(self, options: Options):
        self.o = options
        self.controls = load_controls(options.controls)
        self.running = False
        self.latest: Optional[Produced] = None
        self.recorder: Optional[Recorder] = None
        self.hud_state = HudState()
        self._dirty = True
        self._last_draw = 0.0
        self._screenshots = 0
        self.last_screenshot: Optional[Path] = None

    # ---- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        pygame.display.init()         # only what the game uses: no audio device is opened
        pygame.font.init()
        pygame.display.gl_set_attribute(pygame.GL_CONTEXT_MAJOR_VERSION, GL_VERSION[0])
        pygame.display.gl_set_attribute(pygame.GL_CONTEXT_MINOR_VERSION, GL_VERSION[1])
        pygame.display.gl_set_attribute(pygame.GL_CONTEXT_PROFILE_MASK, pygame.GL_CONTEXT_PROFILE_CORE)
        flags = pygame.OPENGL | pygame.DOUBLEBUF | pygame.RESIZABLE | (pygame.FULLSCREEN if self.o.fullscreen else 0)
        pygame.display.set_mode(self.o.window_size, flags)
        pygame.display.set_caption("matrix-sim")
        pygame.key.stop_text_input()   # SDL starts with text input on; the menu turns it on when typing
        self.ctx = moderngl.create_context(require=GL_VERSION[0] * 100 + GL_VERSION[1] * 10)
        log.info("window %dx%d on %s (%s)", *self.o.window_size, pygame.display.get_driver(),
                 self.ctx.info["GL_RENDERER"])
        self.display = Display(self.ctx, self.o.upscaler)
        self.input = Input(self.controls)
        self.hud = Hud()
        self.menu = Menu(scene_catalog().prompts)
        if self.o.replay:
            self.live = LiveSource(None)
            source = ScriptSource(load_replay(self.o.replay).ops, then=self.live)
        else:
            self.live = LiveSource(self.o.prompt)
            source = self.live
        self.worker = start_world(self.o, source, paced=True)
        self.clock = pygame.time.Clock()
        self.running = True

    def close(self) -> None:
        """Stop the world thread and finish any recording; runs on every exit path (finally)."""
        self.running = False
        try:
            if self.recorder is not None:
                self.recorder.close()
                self.recorder = None
        finally:
            self.worker.stop()
            self.worker.join()
            self.input.close()
            self.display.release()
            pygame.quit()

    def run(self) -> None:
        self.start()
        try:
            while self.tick():
                pass
        finally:
            self.close()

    # ---- one iteration -----------------------------------------------------------------------------------
    def tick(self) -> bool:
        """Handle input, take new world frames, redraw if needed; False once the game should end."""
        now = time.perf_counter()
        for event in pygame.event.get():
            self._event(event, now)
        self.live.set_action(self.action(), now)
        if self.o.record and self.recorder is None and self.worker.ready.is_set():
            self._cmd_record(now)     # --record: from the first frame on
        while (produced := self.worker.take()) is not None:
            self._new_frame(produced)
        if self.worker.finished.is_set() and self.worker.error is None and self.worker.frames.empty():
            self.running = False      # the world thread ended (it only does so when asked)
        while not self.worker.notices.empty():
            self.hud_state.say(self.worker.notices.get(), now)
            self._dirty = True
        if self._dirty or now - self._last_draw > HUD_REFRESH_S:
            self._draw(now)
        self.clock.tick(INPUT_HZ)
        return self.running

    def action(self):
        return IDLE if self.menu.open else self.input.action()

    def _new_frame(self, produced: Produced) -> None:
        self.latest = produced
        self.hud_state.generated.tick(time.perf_counter())
        self.display.upload(produced.frame.image)
        if self.recorder is not None:
            panels = self._panels(time.perf_counter()) if self.o.record_hud else []
            self.recorder.write(self.display.render_canvas(panels), produced.number)
        self._dirty = True

    def _panels(self, now: float) -> list:
        if self.latest is None:
            return [loading_panel(*self.worker.progress)]
        frame = self.latest.frame
        handle = self.worker.handle
        panels = self.hud.panels(self.hud_state, device=handle.device, upscaler=self.display.upscaler,
                                 inputs=self.input.devices, mode=frame.mode, prompt=frame.prompt,
                                 action=self.action(), now=now,
                                 recording_s=self.recorder.elapsed if self.recorder else None)
        return panels + ([self.menu.panel()] if self.menu.open else [])

    def _render(self, now: float) -> tuple[int, int]:
        size = pygame.display.get_window_size()
        self.display.draw(self.ctx.screen, size, self._panels(now))
        return size

    def _draw(self, now: float) -> None:
        self._render(now)
        pygame.display.flip()
        shown = time.perf_counter()
        if self._dirty and self.latest is not None and self.latest.frame.action is not None:
            self.hud_state.latencies.append(shown - self.latest.t_input)
        self.hud_state.displayed.tick(shown)
        self._dirty = False
        self._last_draw = shown

    # ---- events and commands -----------------------------------------------------------------------------
    def _event(self, event: pygame.event.Event, now: float) -> None:
        if event.type == pygame.QUIT:
            self.running = False
            return
        if event.type in (pygame.VIDEORESIZE, pygame.WINDOWSIZECHANGED, pygame.VIDEOEXPOSE):
            self._dirty = True
        if self.menu.open:
            self.menu.type(event)
        name = self.input.handle(event, in_menu=self.menu.open)
        if name is None:
            return
        self._dirty = True
        if self.menu.open and name not in GLOBAL_COMMANDS:
            self._menu_outcome(self.menu.command(name), now)
        else:
            getattr(self, f"_cmd_{name}")(now)

    def _menu_outcome(self, outcome: Optional[tuple], now: float) -> None:
        if outcome is None:
            return
        if outcome[0] == "quit":
            self.running = False
        elif outcome[0] == "prompt":
            self.set_prompt(outcome[1], now)
            self._resume()
        elif outcome[0] == "mode":
            self.set_mode(outcome[1], now)
            self.menu.mode = outcome[1]
        else:
            self._resume()

    def _resume(self) -> None:
        self.menu.close()
        self.live.paused = False

    def set_prompt(self, prompt: str, now: float) -> None:
        """Switch the scene on coming frames; the world thread reports a prompt it cannot play."""
        log.info("prompt -> %r", prompt)
        self.live.command(("prompt", prompt))
        self.hud_state.say(f"scene: {prompt}", now)

    def set_mode(self, mode: str, now: float) -> None:
        """Drive or walk the scene the world plays; the world thread names it or says why it cannot."""
        log.info("mode -> %s", mode)
        self.live.command(("mode", mode))
        self.hud_state.say(f"mode: {mode}", now)

    def _cmd_menu(self, now: float) -> None:
        frame = self.latest.frame if self.latest else None
        self.menu.show(frame.prompt if frame else self.o.prompt, frame.mode if frame else MODES[0])
        self.live.paused = True

    def _cmd_record(self, now: float) -> None:
        if self.recorder is not None:
            self.recorder.close()
            self.hud_state.say(f"saved {self.recorder.path} and {self.recorder.sidecar_path.name}", now)
            self.recorder = None
            return
        if self.worker.log is None:
            return
        path = self.o.record or self.o.recordings_dir / f"session-{datetime.now():%Y%m%d-%H%M%S}.mp4"
        self.o.record = None
        try:
            self.recorder = Recorder(path, self.worker.handle.frame_rate, CANVAS_SIZE, self.worker.log.sidecar)
        except RecordingError as exc:
            log.error("%s", exc)
            self.hud_state.say(str(exc), now)

    def screen_pixels(self) -> np.ndarray:
        """What the window shows now, (H, W, 3) uint8, top row first (redrawn: after a flip the back buffer is stale)."""
        size = self._render(time.perf_counter())
        pixels = np.frombuffer(self.ctx.screen.read(viewport=(0, 0, *size), components=3, alignment=1), np.uint8)
        return pixels.reshape(size[1], size[0], 3)[::-1]

    def _cmd_screenshot(self, now: float) -> None:
        self._screenshots += 1
        path = self.o.screenshots_dir / f"matrix-sim-{datetime.now():%Y%m%d-%H%M%S}-{self._screenshots}.png"
        problem = folder_problem(path.parent)
        if problem:
            log.error("cannot save a screenshot to %s: %s", path, problem)
            self.hud_state.say(f"cannot save a screenshot: {problem}", now)
            return
        self.last_screenshot = save_png(self.screen_pixels(), path)
        self.hud_state.say(f"screenshot: {path.name}", now)

    def _cmd_reset(self, now: float) -> None:
        self.live.command(("reset", None))
        self.hud_state.say("stream reset from the current prompt", now)

    def _cmd_mode(self, now: float) -> None:
        if self.latest is not None:                 # nothing plays yet: no mode to switch from
            self.set_mode(other_mode(self.latest.frame.mode), now)

    def _cmd_hud(self, now: float) -> None:
        self.hud.visible = not self.hud.visible

    def _cmd_fullscreen(self, now: float) -> None:
        try:
            pygame.display.toggle_fullscreen()
        except pygame.error as exc:
            self.hud_state.say(f"fullscreen is not available here: {exc}", now)

    def _cmd_upscaler(self, now: float) -> None:
        self.hud_state.say(f"upscaler: {self.display.next_upscaler()}", now)


def save_png(image: np.ndarray, path: Path) -> Path:
    """Write an (H, W, 3) uint8 picture, top row first, as PNG (into an existing folder)."""
    pygame.image.save(pygame.image.frombuffer(image.tobytes(), (image.shape[1], image.shape[0]), "RGB"), str(path))
    log.info("wrote %s", path)
    return path
