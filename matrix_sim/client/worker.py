"""The world thread: builds the World (behind the loading screen), then runs ops at the world's frame rate.

The World lives entirely in this thread (its GL context or model is current here), so a slow model step
never blocks input or drawing. Ops come from a source: the player (LiveSource) or a script / replay
(ScriptSource); frames go out through a bounded queue that the game loop drains.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

from tqdm import tqdm

from matrix_sim.actions import IDLE, Action
from matrix_sim.client.session import SessionLog
from matrix_sim.client.worlds import WorldHandle, choose_kind, open_world
from matrix_sim.world.gym_world import is_gym_prompt
from matrix_sim.world.base import Frame
from matrix_sim.world.scenes import parse_prompt

log = logging.getLogger(__name__)
FINISHED = "finished"
QUEUE_FRAMES = 8          # frames the world may run ahead of the display / recorder
PAUSE_POLL_S = 0.02       # how often a paused world thread looks for work
PUT_POLL_S = 0.1          # how often a world thread blocked on a full queue checks for stop
PROGRESS_STEPS = 100


@dataclass
class Produced:
    frame: Frame
    number: int           # frame number in the session log
    t_input: float        # perf_counter when the input that produced it was sampled


class LiveSource:
    """The player's ops: queued commands first, else a step with the latest action, unless paused."""

    def __init__(self, prompt: Optional[str]):
        """`prompt` starts the stream; None when a script or replay has started it already."""
        self._commands: deque = deque([("reset", prompt)] if prompt is not None else [])
        self._action = (IDLE, time.perf_counter())
        self.paused = False
        self.steer: Optional[Callable[[Action], None]] = None    # the world's, if it takes actions between steps

    def set_action(self, action: Action, t: float) -> None:
        self._action = (action, t)
        if self.steer is not None:
            self.steer(action)

    def command(self, op: tuple) -> None:
        """Queue ("prompt", text), ("mode", "walk") or ("reset", None); None resets from the world's current
        prompt."""
        self._commands.append(op)

    def next(self):
        if self._commands:
            return self._commands.popleft(), time.perf_counter()
        if self.paused:
            return None
        action, t = self._action
        return ("step", action), t


class ScriptSource:
    """Ops from a list (action script or replay); afterwards `then` (the player) takes over, or it finishes."""

    def __init__(self, ops: list[tuple], then: Optional[LiveSource] = None):
        self._ops = deque(ops)
        self.then = then

    def next(self):
        if self._ops:
            return self._ops.popleft(), time.perf_counter()
        return self.then.next() if self.then else FINISHED

    @property
    def paused(self) -> bool:
        return self.then.paused if self.then else False

    @paused.setter
    def paused(self, value: bool) -> None:
        if self.then:
            self.then.paused = value


class WorldWorker(threading.Thread):
    def __init__(self, opener: Callable[..., WorldHandle], source, seed: int, paced: bool, bar: bool = True):
        super().__init__(name="world", daemon=True)
        self._opener, self.source, self.seed, self.paced, self._bar = opener, source, seed, paced, bar
        self.frames: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
        self.notices: queue.Queue = queue.Queue()
        self.progress = (0.0, "starting")
        self.handle: Optional[WorldHandle] = None
        self.log: Optional[SessionLog] = None
        self.prompt = ""
        self.error: Optional[BaseException] = None
        self.ready = threading.Event()
        self.finished = threading.Event()
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def take(self, timeout: float = 0.0) -> Optional[Produced]:
        """The next frame, or None if none came within `timeout`; re-raises the world thread's error here."""
        try:
            return self.frames.get(timeout=timeout) if timeout > 0 else self.frames.get_nowait()
        except queue.Empty:
            if self.error is not None:
                raise self.error
            return None

    @property
    def done(self) -> bool:
        """The thread ended and every frame it made has been taken."""
        return self.finished.is_set() and self.frames.empty()

    def run(self) -> None:
        bar = tqdm(total=PROGRESS_STEPS, desc="loading world", leave=False, disable=not self._bar)

        def progress(fraction: float, text: str) -> None:
            self.progress = (fraction, text)
            bar.set_postfix_str(text)
            bar.update(round(fraction * PROGRESS_STEPS) - bar.n)
            log.info("loading: %s", text)

        try:
            self.handle = self._opener(progress)
            if isinstance(self.source, LiveSource):      # the player's keys reach a model's calls between frames
                self.source.steer = getattr(self.handle.world, "steer", None)
            self.log = SessionLog(self.handle.kind, self.seed, self.handle.frame_rate, self.handle.checkpoint)
            bar.close()
            self.ready.set()
            log.info("playing %s at %d fps", self.handle.device, self.handle.frame_rate)
            self._loop()
        except BaseException as exc:  # handed to the game loop, which re-raises it there
            self.error = exc
        finally:
            bar.close()
            if self.handle is not None:
                self.handle.close()
            self.finished.set()

    def _loop(self) -> None:
        period = 1.0 / self.handle.frame_rate
        next_tick = time.perf_counter()
        while not self._halt.is_set():
            if self.paced:
                time.sleep(max(0.0, next_tick - time.perf_counter()))
            item = self.source.next()
            if item == FINISHED:
                return
            if item is None:
                time.sleep(PAUSE_POLL_S)
                next_tick = time.perf_counter()
                continue
            op, t_input = item
            frame = self._run(op)
            if frame is None:
                continue
            self._put(Produced(frame, self.log.add(op if op[0] == "step" else ("reset", self.prompt)), t_input))
            next_tick = max(next_tick + period, time.perf_counter())

    def _run(self, op: tuple) -> Optional[Frame]:
        """Apply one op to the world; a prompt the world refuses becomes a notice, not a crash. A mode switch
        becomes the prompt of the scene the world plays, in the other mode (the log keeps that prompt)."""
        kind, value = op
        world = self.handle.world
        if kind == "step":
            return world.step(value)
        prompt = value if value is not None else self.prompt
        switched = kind == "mode"
        try:
            if switched:
                kind, prompt = "prompt", self._in_mode(world, value)
            if kind == "prompt":
                world.set_prompt(prompt)
            else:
                frame = world.reset(prompt, self.seed)
        except ValueError as exc:
            if not self.prompt:        # the first reset: nothing to fall back to
                raise
            self.notices.put(str(exc))
            return None
        playing = self._playing(world, prompt)
        if switched or playing != prompt:
            self.notices.put(f"scene: {playing}")
        self.prompt = prompt
        if kind == "prompt":
            self.log.add(("prompt", prompt))
            return None
        return frame

    @staticmethod
    def _playing(world, prompt: str) -> str:
        """The preset a world plays for `prompt` (its preset_of resolves free text); an environment plays its own."""
        preset_of = getattr(world, "preset_of", None)
        return preset_of(prompt) if preset_of is not None else prompt

    def _in_mode(self, world, mode: str) -> str:
        if is_gym_prompt(self.prompt):
            raise ValueError(f"{self.prompt!r} has no {mode} mode")
        return parse_prompt(self._playing(world, self.prompt)).with_mode(mode).prompt

    def _put(self, item: Produced) -> None:
        while not self._halt.is_set():
            try:
                self.frames.put(item, timeout=PUT_POLL_S)
                return
            except queue.Full:
                continue


def start_world(options, source, paced: bool) -> WorldWorker:
    """Decide which world to play (errors now, before any loading) and start its thread; the player's real-time
    play is `live` (a replay or a script keeps each frame to its op's action)."""
    kind, checkpoint = choose_kind(options.world, options.checkpoint)
    live = paced and isinstance(source, LiveSource)
    env = {"prompt": options.prompt} if is_gym_prompt(options.prompt) else {}    # an environment's ("doom map01")
    worker = WorldWorker(lambda progress: open_world(kind, checkpoint, progress, options.threads, live=live,
                                                     runtime=options.runtime, **env),
                         source, options.seed, paced, bar=options.progress)
    worker.start()
    return worker
