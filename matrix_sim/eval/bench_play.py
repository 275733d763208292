"""`python -m matrix_sim bench play`: the whole game loop, headless, on scripted actions; one JSON object.

The loop is the client's: the world thread (client.worker.WorldWorker, unpaced, so fps is what the machine
can do) steps the world model (DiT + Swin-DPM) and decodes (on a CPU, as the game's live play does, with
the DiT calls and the decodes on two threads that overlap: stream/decode_ahead.py, and the sampler in a
process of its own: stream/sampler_process.py); this thread draws the HUD, upscales to 1280x720 with the
display shader, reads the canvas back and hands it to the mp4 recorder, whose encoder runs in its own
thread, all on the same cores, as in the game. Actions come from a seeded script that changes the action
every 0.5-1 s, set at wall-clock times as a player's keys would be.

Latency is measured the way the HUD shows it, from the moment the action changed to the moment the first
frame conditioned on it (Frame.action, the sampler's bookkeeping of the action a frame was generated with)
has been composited and read back. The runs share the networks: Swin-DPM as the config sets
`retarget_actions` on the torch threads the game uses (device.game_threads: every core but one on a CPU),
Swin-DPM with retarget_actions flipped (the latency lever), Swin-DPM without decoding ahead (the overlap
lever), Swin-DPM with the sampler in the game's process (the GIL lever), Swin-DPM on torch's own thread
count (all cores: the thread lever), and the frame-by-frame baseline (timed_world.FrameByFrameSampler).
Model FLOPs are counted on one steady-state step of each, and the matmul peak they are held against is
measured in the same process, in the compute dtype the device uses, on all cores, before and after the
runs: the better of the two.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import statistics
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Iterator, Optional

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")   # stdout carries the JSON

import av
import numpy as np
import torch
from tqdm import tqdm

from matrix_sim.actions import IDLE, Action
from matrix_sim.client.display import AUTO, CANVAS_SIZE, Display
from matrix_sim.client.hud import Hud, HudState
from matrix_sim.client.options import DEFAULT_PROMPT
from matrix_sim.client.recorder import Recorder
from matrix_sim.client.worker import LiveSource, WorldWorker
from matrix_sim.client.worlds import WorldHandle
from matrix_sim.config import CONFIG_DIR
from matrix_sim.device import (compute_dtype, cpu_name, decodes_ahead, describe, game_threads, pick_device,
                               samples_in_process)
from matrix_sim.eval.flops import count_flops, matmul_peak
from matrix_sim.eval.timed_world import Parts, TimedWorldModel, load_parts, series
from matrix_sim.runtime import TORCH, prepare_runtime
from matrix_sim.world.renderer import create_context

log = logging.getLogger(__name__)
DEFAULT_CONFIG = CONFIG_DIR / "tiny-cpu.yaml"
DEFAULT_SECONDS = 20.0
SIDE_RUN_FRACTION = 0.5       # the retarget-flipped and baseline runs last this fraction of `seconds`
CHANGE_S = (0.5, 1.0)         # the scripted action changes this often
DISTINCT_CHANGES = 8          # a scripted action differs from the 8 before it
WARMUP_S = 1.0                # run (and discard) at least this long, and until the context is full
TAKE_POLL_S = 0.002
FPS_WINDOW_S = 1.0
THREAD_ENV = ("OMP_NUM_THREADS", "LP_NUM_THREADS", "MKL_NUM_THREADS")   # reported: they change the figures
LEVER_KEYS = ("fps", "latency_ms", "utilisation", "forward_ms")         # a lever's figures, on and off


def action_script(seed: int) -> Iterator[tuple[Action, float]]:
    """Endless (action, seconds to hold it): driving-like controls, each different from the last few, so a frame's
    action says which change it answers even when a slow machine shows a change after the next one began."""
    rng = random.Random(seed)
    recent: deque = deque(maxlen=DISTINCT_CHANGES)
    while True:
        action = Action(forward=rng.choice([1.0, 1.0, 0.5, 0.0, -0.5]), turn=rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0]),
                        boost=rng.choice([0.0, 0.0, 1.0]), brake=rng.choice([0.0, 0.0, 0.0, 1.0]))
        if action not in recent and not action.is_idle():     # the warm-up plays IDLE: a change must show
            recent.append(action)
            yield action, rng.uniform(*CHANGE_S)


def _median(values, scale: float = 1.0, digits: int = 2) -> Optional[float]:
    return round(scale * statistics.median(values), digits) if values else None


def _windowed_fps(times, start: float, end: float) -> float:
    """Median over consecutive windows of the frames generated per second (a 1 s window, shorter in short runs)."""
    width = min(FPS_WINDOW_S, (end - start) / 4)
    count = max(1, int((end - start) / width))
    bins = np.histogram(times, bins=count, range=(start, start + count * width))[0]
    return float(np.median(bins)) / width


def mp4_frames(path: str | Path) -> int:
    """Video frames in an mp4 (packets demuxed, nothing decoded)."""
    with av.open(str(path)) as container:
        return sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)


class Screen:
    """The client's display and HUD on a headless GL context, shared by the runs."""

    def __init__(self, upscaler: str):
        self.ctx = create_context()
        self.renderer = self.ctx.info["GL_RENDERER"]
        self.display = Display(self.ctx, upscaler)
        self.hud = Hud()

    def release(self) -> None:
        self.display.release()
        self.ctx.release()


class PlayRun:
    """One run of the game loop: warm up (idle action, until the context is full), then `seconds` of scripted
    play, timing each stage of every frame and each action change's way to the screen."""

    def __init__(self, world: TimedWorldModel, screen: Screen, seconds: float, video: Path, seed: int = 0,
                 prompt: str = DEFAULT_PROMPT):
        self.world, self.screen, self.seconds, self.video = world, screen, seconds, video
        self.live = LiveSource(prompt)
        self.handle = WorldHandle(world, "model", f"world model ({world.device})", world.frame_rate)
        self.worker = WorldWorker(lambda _progress: self.handle, self.live, seed, paced=False)
        self.script = action_script(seed)
        self.hud_state = HudState()
        self.recorder: Optional[Recorder] = None
        self.action, self.next_change = IDLE, math.inf
        self.pending: deque = deque()                  # (time, action) of changes not yet on screen
        self.taken, self.latencies, self.flicker, self.queued = series(), series(), series(), series()
        self.stages = {"hud": series(), "display": series(), "record_write": series()}
        self.missed, self.displayed = 0, 0
        self.start = self.end = None
        self._previous: Optional[np.ndarray] = None

    @property
    def measuring(self) -> bool:
        return self.start is not None

    def run(self, progress: bool = False, label: str = "play") -> dict:
        stream = self.world.sampler.config
        warm_frames = stream.context_frames + stream.window_frames
        bar = tqdm(total=round(self.seconds), desc=label, unit="s", disable=not progress, leave=False)
        self.worker.start()
        try:
            while not self.worker.ready.wait(0.05):
                self.worker.take()                 # raises if building the world failed
            self.recorder = Recorder(self.video, self.world.frame_rate, CANVAS_SIZE, self.worker.log.sidecar)
            opened = time.perf_counter()
            while True:
                now = time.perf_counter()
                if not self.measuring and self.displayed >= warm_frames and now - opened >= WARMUP_S:
                    self.start = self.next_change = now
                    self.world.clock.clear()
                    self.recorder.encode_times.clear()
                if self.measuring:
                    if now - self.start >= self.seconds:
                        break
                    bar.update(int(now - self.start) - bar.n)
                    if now >= self.next_change:
                        self._change(now)
                produced = self.worker.take(max(1e-4, min(TAKE_POLL_S, self.next_change - now)))
                if produced is not None:
                    self._show(produced)
            self.end = time.perf_counter()
        finally:
            bar.close()
            self.worker.stop()
            if self.recorder is not None:
                self.recorder.close()
            self.worker.join()
        return self.figures()

    def _change(self, now: float) -> None:
        self.action, hold = next(self.script)
        self.live.set_action(self.action, now)
        self.pending.append((now, self.action))
        self.next_change = now + hold

    def _show(self, produced) -> None:
        """What the game does with a new world frame: HUD, upscale + composite + read back, record."""
        t_taken = time.perf_counter()
        self.queued.append(self.worker.frames.qsize())
        frame, display = produced.frame, self.screen.display
        panels = self.screen.hud.panels(self.hud_state, device=self.handle.device, upscaler=display.upscaler,
                                        inputs="script", mode=frame.mode, prompt=frame.prompt, action=self.action,
                                        recording_s=self.recorder.elapsed, now=t_taken)
        t_hud = time.perf_counter()
        display.upload(frame.image)
        canvas = display.render_canvas(panels)
        t_shown = time.perf_counter()
        self.recorder.write(canvas, produced.number)
        t_written = time.perf_counter()
        self.displayed += 1
        self.hud_state.generated.tick(t_taken)
        self.hud_state.displayed.tick(t_shown)
        if frame.action is not None:
            self.hud_state.latencies.append(t_shown - produced.t_input)
        if not self.measuring:
            return
        self.taken.append(t_taken)
        self.stages["hud"].append(t_hud - t_taken)
        self.stages["display"].append(t_shown - t_hud)
        self.stages["record_write"].append(t_written - t_shown)
        answered = next((i for i, (_, a) in enumerate(self.pending) if a == frame.action), None)
        if answered is not None:                   # changes before it never showed (held shorter than a step)
            self.latencies.append(t_shown - self.pending[answered][0])
            self.missed += answered
            for _ in range(answered + 1):
                self.pending.popleft()
        image = frame.image.astype(np.int16)
        if self._previous is not None:
            self.flicker.append(float(np.abs(image - self._previous).mean()))
        self._previous = image

    def figures(self) -> dict:
        world, clock = self.world, self.world.clock
        steps = clock.times["dit_step"]
        stage_ms = {"dit": _median(steps, 1000 / world.frames_per_step), "decode": _median(clock.times["decode"], 1000),
                    "hud": _median(self.stages["hud"], 1000), "display": _median(self.stages["display"], 1000),
                    "encode": _median(list(self.recorder.encode_times), 1000),
                    "record_write": _median(self.stages["record_write"], 1000)}
        elapsed = self.end - self.start
        return {
            "fps": round(_windowed_fps(self.taken, self.start, self.end), 2),
            "fps_mean": round(len(self.taken) / elapsed, 2),
            "frames": len(self.taken),
            "seconds": round(elapsed, 2),
            "latency_ms": _median(self.latencies, 1000, 1),
            "latency_ms_p90": round(1000 * float(np.percentile(self.latencies, 90)), 1) if self.latencies else None,
            "latency_samples": len(self.latencies),
            "latency_missed": self.missed,
            "stage_ms": stage_ms,
            "dit_step_ms": _median(steps, 1000),
            "forward_ms": _median(steps, 1000 / world.forwards_per_step),
            "frames_per_step": world.frames_per_step,
            "torch_threads": clock.threads,
            "forwards_per_step": world.forwards_per_step,
            "flicker": round(statistics.fmean(self.flicker), 3) if self.flicker else None,
            "queue_frames": _median(self.queued, 1.0, 1),
            "video": str(self.recorder.path),
            "video_frames": self.recorder.frames,
        }


def play(world: TimedWorldModel, screen: Screen, seconds: float, video: Path, seed: int = 0,
         progress: bool = False, label: str = "play") -> dict:
    return PlayRun(world, screen, seconds, video, seed).run(progress, label)


def model_flops(parts: Parts, device: torch.device, prompt: str = DEFAULT_PROMPT) -> dict:
    """FLOPs of one steady-state step (full window, full context) of Swin-DPM and of the baseline, and of a decode."""
    out = {}
    embedding = parts.prompts.embed(prompt)
    action = torch.as_tensor(Action(forward=1.0).to_array())
    for kind in ("swin", "frame_by_frame"):
        world = dataclasses.replace(parts, runtime=TORCH).world(device, kind)     # the counter sees torch's ops
        world.reset(prompt, 0)
        for _ in range(world.sampler.config.filling_calls):
            world.sampler.step(action, embedding)
        flops, emitted = count_flops(lambda: world.sampler.step(action, embedding))
        out[kind] = flops / world.frames_per_step
        if kind == "swin":
            decode, _ = count_flops(lambda: world.decode(emitted))
            out["decode"] = decode / emitted.latents.shape[0]
    return out


def _summary(run: dict, gflop_per_frame: float, peak: float) -> dict:
    gflops = gflop_per_frame * run["fps"]
    return {"fps": run["fps"], "latency_ms": run["latency_ms"], "flicker": run["flicker"],
            "stage_ms": run["stage_ms"], "forward_ms": run["forward_ms"],
            "model_gflops_per_s": round(gflops, 2), "utilisation": round(gflops / peak, 4)}


def bench_play(seconds: float = DEFAULT_SECONDS, config: str | Path = DEFAULT_CONFIG,
               checkpoint: Optional[str | Path] = None, progress: bool = True, *, video: Optional[str | Path] = None,
               device: Optional[str] = None, threads: Optional[int] = None, upscaler: str = AUTO,
               frame_size: Optional[tuple[int, int]] = None, seed: int = 0,
               stream_overrides: Optional[dict] = None, runtime: Optional[str] = None) -> dict:
    """Play `seconds` of Swin-DPM as configured and as the game plays it (on a CPU decoding ahead, the sampler
    in its own process), then seconds / 2 each with retarget_actions flipped, of the frame-by-frame baseline,
    without decoding ahead, with the sampler in the game's process, and on torch's own thread count; returns
    the figures as one JSON-ready dict.

    checkpoint: a world-model bundle (else a random-weight model of `config`'s shape); video: keep the main
    run's mp4 here (else a temporary file); threads: torch's intra-op threads (default: as the game picks,
    device.game_threads); frame_size: (width, height) of generated frames when the config's latent data is
    absent (default 256x144); stream_overrides: StreamConfig fields to play instead of the model's (e.g. levels);
    runtime: what runs the DiT calls and decodes of the Swin-DPM runs, as the game's --runtime (default auto).
    """
    if seconds <= 0:
        raise ValueError(f"--seconds must be positive, got {seconds}")
    torch_device = pick_device(device)
    dtype = compute_dtype(torch_device)
    peaks = [matmul_peak(torch_device, dtype)]      # the whole machine's (all cores), whatever `threads` says
    old_threads = torch.get_num_threads()
    used_threads = game_threads(torch_device, threads) or old_threads
    try:
        parts = load_parts(config, checkpoint, seed=seed, frame_size=frame_size, stream_overrides=stream_overrides)
        parts.runtime = prepare_runtime(runtime, parts.dit, parts.vae, parts.info.stream, parts.info.latent_shape,
                                        checkpoint, torch_device, used_threads)
        flops = model_flops(parts, torch_device)
        screen = Screen(upscaler)
        renderer, used_upscaler = screen.renderer, screen.display.upscaler
        side = max(1.0, SIDE_RUN_FRACTION * seconds)
        configured = parts.info.stream.retarget_actions
        # as the game's live play does on this device: decode ahead, the sampler in a process of its own
        live = {"decode_ahead": decodes_ahead(torch_device), "sampler_process": samples_in_process(torch_device)}
        with tempfile.TemporaryDirectory() as tmp:
            main_video = Path(video) if video else Path(tmp) / "swin.mp4"
            try:
                # a world thread (or sampler process) takes torch's thread count when it starts: set it first
                torch.set_num_threads(used_threads)
                runs = {
                    "swin": play(parts.world(torch_device, **live), screen, seconds, main_video, seed,
                                 progress=progress, label="Swin-DPM"),
                    "swin_flipped": play(parts.world(torch_device, retarget=not configured, **live),
                                         screen, side, Path(tmp) / "flipped.mp4", seed, progress=progress,
                                         label=f"Swin-DPM, retarget_actions {not configured}"),
                    "baseline": play(parts.world(torch_device, "frame_by_frame", **live), screen, side,
                                     Path(tmp) / "baseline.mp4", seed, progress=progress, label="frame-by-frame"),
                }
                if live["decode_ahead"]:
                    runs["serial"] = play(parts.world(torch_device, **{**live, "decode_ahead": False}), screen, side,
                                          Path(tmp) / "serial.mp4", seed, progress=progress,
                                          label="Swin-DPM, decode not ahead")
                if live["sampler_process"]:
                    runs["in_game_process"] = play(parts.world(torch_device, **{**live, "sampler_process": False}),
                                                   screen, side, Path(tmp) / "in_game_process.mp4", seed,
                                                   progress=progress, label="Swin-DPM, sampler in the game's process")
                if old_threads != used_threads:
                    torch.set_num_threads(old_threads)
                    runs["other_threads"] = play(parts.world(torch_device, **live), screen, side,
                                                 Path(tmp) / "threads.mp4", seed, progress=progress,
                                                 label=f"Swin-DPM, {old_threads} threads")
            finally:
                screen.release()
            video_frames = mp4_frames(main_video)
        if not video:
            runs["swin"]["video"] = None
    finally:
        torch.set_num_threads(old_threads)
    # again after the runs, on all cores: the best of the two is the machine's peak, so a machine slowed for the
    # first measurement cannot inflate utilisation
    peaks.append(matmul_peak(torch_device, dtype))
    return {**_result(parts, runs, flops, max(peaks), dtype, video_frames, (used_threads, old_threads)),
            "peak_gflops_per_s_measured": [round(p, 1) for p in peaks], "seconds": seconds,
            "upscaler": used_upscaler, "runtime": parts.runtime.label.removeprefix("runtime "),
            "runtime_probe": parts.runtime.figures,
            **_machine(torch_device, used_threads, renderer)}


def _machine(device: torch.device, threads: int, renderer: str) -> dict:
    return {"device": describe(device), "cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": threads,
            "thread_env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ}, "gl_renderer": renderer,
            "torch": torch.__version__}


def _lever(runs: dict, off_run: str, summary: dict, gflop_per_frame: float, peak: float) -> dict:
    """A lever the game uses on this device: its figures on (the main run, as played) and off (`off_run`)."""
    if off_run not in runs:
        return {"used": False}
    off = _summary(runs[off_run], gflop_per_frame, peak)
    return {"used": True, "on": {k: summary[k] for k in LEVER_KEYS}, "off": {k: off[k] for k in LEVER_KEYS}}


def _result(parts: Parts, runs: dict, flops: dict, peak: float, dtype, video_frames: int,
            threads: tuple[int, int]) -> dict:
    """threads: (the count the main run used, torch's own count)."""
    main, flipped, base = runs["swin"], runs["swin_flipped"], runs["baseline"]
    swin_gflop = (flops["swin"] + flops["decode"]) / 1e9
    base_gflop = (flops["frame_by_frame"] + flops["decode"]) / 1e9
    summary = _summary(main, swin_gflop, peak)
    threads_lever = {"used": threads[0], "torch_default": threads[1]}
    if "other_threads" in runs:                                     # the game's thread count beside torch's own
        other = _summary(runs["other_threads"], swin_gflop, peak)
        threads_lever["used_run"] = {k: summary[k] for k in LEVER_KEYS}
        threads_lever["torch_default_run"] = {k: other[k] for k in LEVER_KEYS}
    decode_ahead = _lever(runs, "serial", summary, swin_gflop, peak)                # the overlap lever
    sampler_process = _lever(runs, "in_game_process", summary, swin_gflop, peak)    # the GIL lever
    stream = parts.info.stream
    by_retarget = {stream.retarget_actions: main, not stream.retarget_actions: flipped}
    dit_step_gflop = flops["swin"] * main["frames_per_step"] / 1e9
    dit_gflops = dit_step_gflop / (main["dit_step_ms"] / 1000) if main["dit_step_ms"] else None
    return {
        "fps": main["fps"],
        "latency_ms": main["latency_ms"],
        "stage_ms": main["stage_ms"],
        "model_gflops_per_s": summary["model_gflops_per_s"],
        "utilisation": summary["utilisation"],
        "peak_gflops_per_s": round(peak, 1),
        "compute_dtype": str(dtype).replace("torch.", ""),
        "gflop_per_frame": {"dit": round(flops["swin"] / 1e9, 3), "decode": round(flops["decode"] / 1e9, 3),
                            "baseline_dit": round(flops["frame_by_frame"] / 1e9, 3)},
        "dit_gflops_per_s": round(dit_gflops, 2) if dit_gflops else None,     # while the DiT runs, not over the run
        "dit_utilisation": round(dit_gflops / peak, 4) if dit_gflops else None,
        "flicker": main["flicker"],
        "targets_met": {"fps >= 16": main["fps"] >= 16, "latency_ms <= 300": (main["latency_ms"] or 1e9) <= 300,
                        "utilisation >= 0.4": summary["utilisation"] >= 0.4},       # the tiny-cpu targets
        "retarget_actions": {
            "configured": stream.retarget_actions,
            "off": {k: by_retarget[False][k] for k in ("latency_ms", "latency_ms_p90", "fps", "flicker")},
            "on": {k: by_retarget[True][k] for k in ("latency_ms", "latency_ms_p90", "fps", "flicker")},
        },
        "baseline": {**_summary(base, base_gflop, peak), "method": "frame-by-frame: each frame from pure noise, "
                     f"{stream.levels} steps over context + 1 frame, before the next frame starts"},
        "runs": runs,
        "threads": threads_lever,
        "decode_ahead": decode_ahead,
        "sampler_process": sampler_process,
        "video_frames": video_frames,
        **parts.source,
        "model": {**{k: parts.dit.config[k] for k in ("width", "depth", "heads", "patch_size")},
                  "params_m": round(sum(p.numel() for p in parts.dit.parameters()) / 1e6, 2)},
        "stream": dataclasses.asdict(stream),
        "latent_shape": list(parts.info.latent_shape),
    }
