"""`python -m matrix_sim bench soak`: the game loop for minutes on end, headless and recording; one JSON object.

The run is `bench play`'s main one (eval/bench_play.py PlayRun: the client's world thread, the sampler in its own
process and the decode ahead on a CPU, the display shader, the HUD and the mp4 recorder, on the scripted
actions) lasting `minutes`. Alongside, a thread samples the resident memory of this process and of every
process under it (the sampler's, and the forkserver it comes from) every SAMPLE_S; afterwards the measured
time is cut into windows of `window_s` (60 by default: per minute) with the frames generated per second and
the memory at each window's end. The recording is then checked with ffprobe (every frame decoded and
counted; PyAV where there is no ffprobe): its frame count against the frames the game handed the recorder,
its duration against frames / frame rate.

Targets: memory growth from the end of the first window to the end of the run < 50 MB; every full window's
frames/s within 10 % of the first window's; the mp4 valid and complete. What grows by design is counted in:
the session log the recording's sidecar is made from (one JSON text an op), the bench's per-frame timings (packed
floats, timed_world.series) and the memory samples themselves.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")   # stdout carries the JSON

import av
import numpy as np
import torch

from matrix_sim.client.display import AUTO
from matrix_sim.config import DEFAULT_CHECKPOINT
from matrix_sim.device import decodes_ahead, describe, game_threads, pick_device, samples_in_process
from matrix_sim.eval.bench_play import DEFAULT_CONFIG, PlayRun, Screen
from matrix_sim.eval.bench_train import cpu_info
from matrix_sim.eval.timed_world import load_parts

log = logging.getLogger(__name__)
DEFAULT_WINDOW_S = 60.0
SAMPLE_S = 1.0                  # memory sampled this often (more often in short windows: a tenth of one)
GROWTH_LIMIT_MB = 50.0
FPS_TOLERANCE = 0.10
FULL_WINDOW = 0.5               # a last, partial window shorter than this share of one is not held to the fps target
WINDOW_SLACK = 0.05             # a remainder this short (the loop's overshoot past `minutes`) joins the last window
MB = 1024 * 1024


def _rss_proc(pid: int) -> Optional[int]:
    """VmRSS of a process in bytes (None when it is gone or has none: a zombie)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _descendants(pid: int) -> list[int]:
    """Every process under `pid` (children, their children, ...), from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()       # after "pid (comm) ": state, ppid, ...
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], list(children.get(pid, []))
    while queue:
        child = queue.pop()
        found.append(child)
        queue.extend(children.get(child, []))
    return found


def memory_now() -> dict:
    """Resident memory (bytes) of this process and of all the processes under it (psutil where installed)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        me = psutil.Process()
        children, kids = me.children(recursive=True), 0
        for child in children:
            try:
                kids += child.memory_info().rss
            except psutil.Error:
                pass
        return {"self": me.memory_info().rss, "children": kids, "processes": 1 + len(children)}
    pids = _descendants(os.getpid())
    kids = [rss for rss in (_rss_proc(pid) for pid in pids) if rss is not None]
    return {"self": _rss_proc(os.getpid()) or 0, "children": sum(kids), "processes": 1 + len(kids)}


class MemorySampler(threading.Thread):
    """Samples memory_now() every `interval` seconds until stopped: [(perf_counter time, sample)]."""

    def __init__(self, interval: float):
        super().__init__(name="memory-sampler", daemon=True)
        self.interval = interval
        self.samples: list[tuple[float, dict]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append((time.perf_counter(), memory_now()))
            if self._stop_event.wait(self.interval):
                break

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.samples.append((time.perf_counter(), memory_now()))


def probe_mp4(path: str | Path, frames_written: int, frame_rate: int) -> dict:
    """Decode every frame of the mp4 (ffprobe -count_frames, or PyAV without ffprobe): count, duration, errors;
    complete when the count is the frames written and the duration within a frame of frames / frame rate."""
    path = Path(path)
    out = {"path": str(path), "bytes": path.stat().st_size if path.is_file() else 0, "frames_written": frames_written}
    ffprobe = shutil.which("ffprobe")
    if ffprobe:
        run = subprocess.run([ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                              "stream=nb_read_frames,codec_name,width,height:format=duration", "-of", "json",
                              str(path)], capture_output=True, text=True)
        errors = run.stderr.strip().splitlines()
        try:
            info = json.loads(run.stdout or "{}")
            stream = info["streams"][0]
            frames, duration = int(stream["nb_read_frames"]), float(info["format"]["duration"])
            codec, size = stream.get("codec_name"), [stream.get("width"), stream.get("height")]
        except (KeyError, IndexError, ValueError, json.JSONDecodeError):
            frames, duration, codec, size = 0, math.nan, None, None
            errors.append(f"ffprobe exit {run.returncode}: no video stream read")
        out["tool"] = "ffprobe"
        decodes = run.returncode == 0 and not errors
    else:
        frames, errors, codec, size = 0, [], None, None
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                codec, size = stream.codec_context.name, [stream.width, stream.height]
                duration = container.duration / av.time_base if container.duration else math.nan
                for _ in container.decode(stream):
                    frames += 1
        except (av.error.FFmpegError, IndexError, OSError) as exc:
            duration = math.nan
            errors.append(str(exc))
        out["tool"] = "pyav"
        decodes = not errors
    expected_s = frames_written / frame_rate
    duration_ok = math.isfinite(duration) and abs(duration - expected_s) <= 1.5 / frame_rate
    out.update({"frames": frames, "duration_s": round(duration, 3) if math.isfinite(duration) else None,
                "expected_duration_s": round(expected_s, 3), "codec": codec, "size": size, "decodes": decodes,
                "errors": errors[:5], "frames_match": frames == frames_written, "duration_matches": duration_ok,
                "valid": decodes and frames > 0, "complete": decodes and frames == frames_written and duration_ok})
    return out


def windows(taken: list[float], start: float, end: float, window_s: float, samples: list[tuple[float, dict]]) -> list:
    """Per window of the measured time: frames, frames/s, memory at its end (the last sample by then)."""
    out, times = [], np.asarray(taken)
    count = max(1, math.ceil((end - start) / window_s - WINDOW_SLACK))
    for index in range(count):
        low = start + index * window_s
        high = end if index == count - 1 else start + (index + 1) * window_s
        frames = int(((times >= low) & (times < high)).sum()) if index < count - 1 else int((times >= low).sum())
        at_end = [sample for t, sample in samples if t <= high + 1e-3] or [samples[0][1]]
        memory = at_end[-1]
        out.append({"window": index, "from_s": round(low - start, 2), "to_s": round(high - start, 2),
                    "frames": frames, "fps": round(frames / (high - low), 2) if high > low else None,
                    "full": (high - low) >= FULL_WINDOW * window_s,
                    "rss_mb": round((memory["self"] + memory["children"]) / MB, 1),
                    "rss_self_mb": round(memory["self"] / MB, 1), "rss_children_mb": round(memory["children"] / MB, 1),
                    "processes": memory["processes"]})
    return out


def verdicts(per_window: list[dict], recording: dict) -> dict:
    """The soak's targets, each True / False (None: not measurable, a run of one window)."""
    first, last = per_window[0], per_window[-1]
    growth = round(last["rss_mb"] - first["rss_mb"], 1) if len(per_window) > 1 else None
    held = [w for w in per_window[1:] if w["full"]]
    fps_ok = (all(abs(w["fps"] - first["fps"]) <= FPS_TOLERANCE * first["fps"] for w in held)
              if held and first["fps"] else None)
    worst = max((abs(w["fps"] - first["fps"]) / first["fps"] for w in held), default=None) if first["fps"] else None
    targets = {f"memory growth after the first window < {GROWTH_LIMIT_MB:g} MB":
               None if growth is None else growth < GROWTH_LIMIT_MB,
               f"every window's fps within {100 * FPS_TOLERANCE:g} % of the first's": fps_ok,
               "mp4 valid and complete": recording["valid"] and recording["complete"]}
    return {"rss_growth_mb": growth, "fps_worst_change": round(worst, 4) if worst is not None else None,
            "targets_met": targets, "passed": all(v is True for v in targets.values())}


def bench_soak(minutes: float, checkpoint: str | Path = DEFAULT_CHECKPOINT, window_s: float = DEFAULT_WINDOW_S,
               progress: bool = True, *, video: Optional[str | Path] = None, device: Optional[str] = None,
               threads: Optional[int] = None, upscaler: str = AUTO, seed: int = 0) -> dict:
    """Play `minutes` of the world model as the game does, recording; returns the per-window figures, the
    recording's check and the verdicts as one JSON-ready dict.

    checkpoint: a world-model bundle; video: keep the mp4 here (else a temporary file); threads: torch threads
    (default: as the game picks, device.game_threads)."""
    if minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {minutes}")
    if window_s <= 0:
        raise ValueError(f"--window-s must be positive, got {window_s}")
    if not Path(checkpoint).is_dir():
        raise ValueError(f"no world-model checkpoint at {checkpoint}")
    seconds = 60.0 * minutes
    torch_device = pick_device(device)
    parts = load_parts(DEFAULT_CONFIG, checkpoint, seed=seed)
    live = {"decode_ahead": decodes_ahead(torch_device), "sampler_process": samples_in_process(torch_device)}
    old_threads = torch.get_num_threads()
    used_threads = game_threads(torch_device, threads) or old_threads
    screen = Screen(upscaler)
    sampler = MemorySampler(min(SAMPLE_S, window_s / 10))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(video) if video else Path(tmp) / "soak.mp4"
            torch.set_num_threads(used_threads)       # the world thread / sampler process take it when they start
            run = PlayRun(parts.world(torch_device, **live), screen, seconds, path, seed)
            sampler.start()
            try:
                figures = run.run(progress, label=f"soak {minutes:g} min")
            finally:
                sampler.stop()
            recording = probe_mp4(path, run.recorder.queued, parts.info.frame_rate)
            recording["frames_encoded"] = run.recorder.frames
            if not video:
                recording["path"] = None
        renderer, used_upscaler = screen.renderer, screen.display.upscaler
    finally:
        screen.release()
        torch.set_num_threads(old_threads)
    per_window = windows(run.taken, run.start, run.end, window_s, sampler.samples)
    before = sampler.samples[0][1]
    figures["video"] = recording["path"]
    return {
        "minutes": minutes, "window_s": window_s, "seconds": round(run.end - run.start, 2),
        "fps": figures["fps_mean"], "frames": figures["frames"],
        "windows": per_window,
        "rss_start_mb": round((before["self"] + before["children"]) / MB, 1),
        "rss_peak_mb": round(max(s["self"] + s["children"] for _, s in sampler.samples) / MB, 1),
        "memory_source": "psutil" if _has_psutil() else "/proc (VmRSS of this process and every one under it)",
        **verdicts(per_window, recording),
        "recording": recording,
        "play": {k: v for k, v in figures.items() if k not in ("video",)},
        **parts.source,
        "stream": {k: getattr(parts.info.stream, k) for k in ("context_frames", "levels", "block_frames")},
        "frame_rate": parts.info.frame_rate,
        "live": live, "upscaler": used_upscaler, "gl_renderer": renderer,
        "device": describe(torch_device), "torch_threads": used_threads, "cpu": cpu_info(), "torch": torch.__version__,
    }


def _has_psutil() -> bool:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False
    return True
