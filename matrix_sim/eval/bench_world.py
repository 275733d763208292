"""`python -m matrix_sim bench world`: how fast the source world records, policy included."""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from matrix_sim.data.policy import record_episode
from matrix_sim.data.shards import write_episode
from matrix_sim.world.engine import SourceWorld

# one scene per biome, both modes, every time of day and weather: the median covers the mix
BENCH_PROMPTS = ("drive desert by day", "walk grassland at sunset in rain", "drive forest at night",
                 "walk snowfield by day in snow", "drive coast at sunset in fog", "walk city at night")


def bench_world(runs: int = 6, frames: int = 300, width: int = 256, height: int = 144, seed: int = 0,
                progress: bool = True) -> dict:
    if runs <= 0 or frames <= 0:
        raise ValueError(f"--runs and --frames must be positive, got {runs} and {frames}")
    world = SourceWorld(width, height)
    per_run, prompts = [], []
    try:
        for run in tqdm(range(runs), desc="bench world", disable=not progress):
            prompt = BENCH_PROMPTS[run % len(BENCH_PROMPTS)]
            start = time.perf_counter()
            episode = record_episode(world, prompt, seed + run, frames, {"prompt": prompt})
            per_run.append(frames / (time.perf_counter() - start))
            prompts.append(prompt)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            write_episode(Path(tmp) / "bench.npz", episode)
            write_ms = (time.perf_counter() - start) * 1000 / frames
    finally:
        world.close()
    return {
        "frames_per_s": round(statistics.median(per_run), 1),
        "runs_frames_per_s": [round(v, 1) for v in per_run],
        "prompts": prompts,
        "frames_per_run": frames,
        "width": width,
        "height": height,
        "shard_write_ms_per_frame": round(write_ms, 3),
        "recording_frames_per_s": round(1000.0 / (1000.0 / statistics.median(per_run) + write_ms), 1),
    }
