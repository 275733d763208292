"""H.264 mp4 recording (PyAV) with a sidecar JSON, built to survive the game ending badly.

The mp4 is fragmented (a self-contained fragment per keyframe, one keyframe a second), so even a killed
process leaves a playable file missing at most the last second; a normal exit, an exception or
SIGTERM/SIGINT closes it cleanly (callers use try/finally; atexit catches the rest). Encoding runs in its
own thread so the game loop only pays for reading the picture back. The sidecar names the frames that
thread has encoded, never the ones queued: a signal that lands inside write() (a frame counted but not
queued) cannot make the sidecar and the mp4 disagree.
"""
from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Optional

import av
import numpy as np

from matrix_sim.config import folder_problem, write_atomic

log = logging.getLogger(__name__)
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
X264_OPTIONS = {"preset": "ultrafast", "crf": "20"}
ENCODE_QUEUE = 32          # frames waiting for the encoder before write() blocks
ENCODE_TIMES = 4096        # per-frame encode times kept (the newest), for `bench play`'s median
_open: set["Recorder"] = set()

Sidecar = Callable[[int, int, str], str]    # (first frame, last frame, video name) -> sidecar JSON
SIDECAR_SHARE = 0.02       # of the game loop's time the sidecar's rewrites may take: the interval grows with it


class RecordingError(RuntimeError):
    """A recording could not be opened (an unwritable folder, a full disk): the game says so and plays on."""


class Recorder:
    def __init__(self, path: str | Path, fps: int, size: tuple[int, int], sidecar: Optional[Sidecar] = None):
        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise ValueError(f"recordings are mp4 files, got {self.path}")
        self.fps, self.size, self._sidecar = fps, size, sidecar
        problem = folder_problem(self.path.parent)
        if problem:
            raise RecordingError(f"cannot record to {self.path}: {problem}")
        try:
            self.container = av.open(str(self.path), "w", options={"movflags": MOVFLAGS, "flush_packets": "1"})
        except OSError as exc:
            raise RecordingError(f"cannot record to {self.path}: {exc.strerror or exc}") from None
        self.stream = self.container.add_stream("libx264", rate=fps)
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {**X264_OPTIONS, "g": str(fps)}
        self.queued = 0                     # frames handed to write()
        self.frames = 0                     # frames encoded into the mp4; first..last are their session numbers
        self.first: Optional[int] = None
        self.last: Optional[int] = None
        self.started = time.monotonic()
        self._next_sidecar = self.started + 1.0
        self.encode_s = 0.0
        self.encode_times: deque = deque(maxlen=ENCODE_TIMES)   # seconds per frame, newest last
        self._queue: queue.Queue = queue.Queue(maxsize=ENCODE_QUEUE)
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._encode, name="recorder", daemon=True)
        self._thread.start()
        self.closed = False
        _open.add(self)
        log.info("recording to %s (%dx%d at %d fps)", self.path, *size, fps)

    @property
    def sidecar_path(self) -> Path:
        return self.path.with_suffix(".json")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def write(self, image: np.ndarray, number: int = 0) -> None:
        """Queue one (H, W, 3) uint8 picture, top row first; `number` is its frame number in the session."""
        if self._error is not None:
            raise RuntimeError(f"recording to {self.path} failed: {self._error}") from self._error
        if image.shape != (self.size[1], self.size[0], 3):
            raise ValueError(f"recorder expects {self.size[0]}x{self.size[1]} RGB, got {image.shape}")
        self._queue.put((np.ascontiguousarray(image), number))
        self.queued += 1
        if time.monotonic() >= self._next_sidecar:
            self._write_sidecar()

    def _encode(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                image, number = item
                t = time.perf_counter()
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                for packet in self.stream.encode(frame):
                    self.container.mux(packet)
                self.first = number if self.first is None else self.first
                self.last = number
                self.frames += 1
                seconds = time.perf_counter() - t
                self.encode_s += seconds
                self.encode_times.append(seconds)
            for packet in self.stream.encode():
                self.container.mux(packet)
        except BaseException as exc:  # reported by the next write() or by close()
            self._error = exc

    def _write_sidecar(self) -> None:
        """Rewrite the sidecar (what a crash leaves is at most this interval behind the mp4); the next one
        waits a second, or longer once a rewrite costs more than SIDECAR_SHARE of that."""
        if self._sidecar is not None and self.first is not None:
            t = time.monotonic()
            write_atomic(self.sidecar_path, self._sidecar(self.first, self.last, self.path.name))
            now = time.monotonic()
            self._next_sidecar = now + max(1.0, (now - t) / SIDECAR_SHARE)

    def close(self) -> None:
        """Flush the encoder and finish the file; safe to call twice and from atexit."""
        if self.closed:
            return
        self.closed = True
        _open.discard(self)
        self._queue.put(None)
        self._thread.join()
        self.container.close()
        self._write_sidecar()
        if self._error is not None:
            raise RuntimeError(f"recording to {self.path} failed: {self._error}") from self._error
        per_frame = 1000 * self.encode_s / max(1, self.frames)
        log.info("recorded %d frames (%.1f s of video, encode %.1f ms/frame) to %s", self.frames,
                 self.frames / self.fps, per_frame, self.path)


@atexit.register
def _close_open_recorders() -> None:
    for recorder in list(_open):
        recorder.close()
