"""Headless runs: no window, no pacing; a script or a replay drives the world and frames go to an mp4.

For servers, tests and batch rendering; the frames are composited exactly as the game's recordings are.
"""
from __future__ import annotations

import logging
import time

from tqdm import tqdm

from matrix_sim.client.display import CANVAS_SIZE, Display
from matrix_sim.client.options import Options
from matrix_sim.client.recorder import Recorder
from matrix_sim.client.script import headless_ops, load_script
from matrix_sim.client.session import load_replay
from matrix_sim.client.worker import ScriptSource, start_world
from matrix_sim.world.renderer import create_context

log = logging.getLogger(__name__)
WAIT_POLL_S = 0.1


def run_headless(options: Options) -> dict:
    """Render the run; returns counts and timings (frames, fps, upscale and encode ms per frame)."""
    if options.replay:
        replay = load_replay(options.replay)
        ops, skip, total = replay.ops, replay.skip, replay.skip + replay.frames
    else:
        if not options.frames:
            raise ValueError("--headless needs --frames N (or --replay SESSION.json)")
        script = load_script(options.actions) if options.actions else []
        ops, skip, total = headless_ops(options.prompt, options.frames, script), 0, options.frames
    ctx = create_context()
    display = Display(ctx, options.upscaler)
    worker = start_world(options, ScriptSource(ops), paced=False)
    recorder = None
    upscale_s, started = 0.0, time.perf_counter()
    try:
        while not worker.ready.wait(WAIT_POLL_S):
            worker.take()          # raises if opening the world failed
        for index in tqdm(range(total), desc="rendering", unit="frame", disable=not options.progress):
            while (produced := worker.take(WAIT_POLL_S)) is None:
                if worker.done:
                    raise RuntimeError(f"the world stopped after {index} of {total} frames")
            if index < skip:
                continue
            display.upload(produced.frame.image)
            t = time.perf_counter()
            canvas = display.render_canvas([])
            upscale_s += time.perf_counter() - t
            # opened on the first frame: a world that fails to start leaves an earlier recording there untouched
            if options.record and recorder is None:
                recorder = Recorder(options.record, worker.handle.frame_rate, CANVAS_SIZE, worker.log.sidecar)
            if recorder is not None:
                recorder.write(canvas, produced.number)
    finally:
        worker.stop()
        if recorder is not None:
            recorder.close()
        worker.join()
        display.release()
    frames = total - skip
    result = {"frames": frames, "fps": frames / (time.perf_counter() - started),
              "upscale_ms": 1000 * upscale_s / max(1, frames), "upscaler": display.upscaler,
              "encode_ms": 1000 * recorder.encode_s / max(1, frames) if recorder else None,
              "output": str(options.record) if options.record else None}
    log.info("headless run: %s", result)
    return result
