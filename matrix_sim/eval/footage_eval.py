"""`python -m matrix_sim eval --data DIR`: the world model scored on recorded footage instead of the source world.

For a game the project did not write (a Gymnasium environment such as Doom, recorded by `record --env`), the
source world's held-out scenes, action probe, drift, still-scene and played runs do not apply. What does is
GameNGen's protocol: PSNR of the next frame from real context (h = 1, teacher-forced) and of auto-regressive
continuations under the recorded actions (h = 4 / 8 / 16), beside copy-last, copy-last through the codec and
the codec ceiling (world_model_eval.horizon_eval), and the one-shot diagnosis. Record the footage with a seed
no training recording used (`record --seed`), so its trajectories are unseen.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from matrix_sim.data.shards import read_episode, read_manifest
from matrix_sim.eval.diagnosis import diagnosis_eval
from matrix_sim.eval.sheets import rollout_sheet
from matrix_sim.eval.world_model_eval import HORIZONS, SHEET_ROWS, clip_frames, horizon_eval


@dataclass(frozen=True)
class FootageClip:
    """One recorded episode as horizon_eval reads a held-out clip."""

    prompt: str
    frames: np.ndarray      # (T, H, W, 3) uint8
    actions: np.ndarray     # (T, 5) float32; frames[t + 1] is what actions[t] produced


def footage_clips(directory: str | Path, frames: int, size: tuple[int, int]) -> list[FootageClip]:
    """Every episode of a `record` directory, cut to its first `frames` frames; `size` is the model's (H, W)."""
    manifest = read_manifest(directory)
    clips = []
    for entry in manifest["episodes"]:
        episode = read_episode(Path(directory) / entry["file"])
        if len(episode) < frames:
            raise ValueError(f"{directory}/{entry['file']}: {len(episode)} frames, the eval needs {frames} "
                             "(fewer --starts-per-scene, or record longer episodes)")
        if episode.frames.shape[1:3] != tuple(size):
            raise ValueError(f"{directory}/{entry['file']}: frames of {episode.frames.shape[1:3]}, the model makes "
                             f"{tuple(size)}")
        clips.append(FootageClip(entry["prompt"], episode.frames[:frames], episode.actions[:frames]))
    if not clips:
        raise ValueError(f"{directory}: no episodes")
    return clips


def eval_on_footage(checkpoint: str | Path, data: str | Path, horizons: Sequence[int] = HORIZONS, context: int = 8,
                    starts_per_episode: int = 2, seed: int = 0, device: Optional[str] = None, progress: bool = True,
                    sheet: Optional[str | Path] = None, stream_overrides: Optional[dict] = None) -> dict:
    """Horizon figures and the diagnosis of the bundle at `checkpoint` on the episodes in `data`, as one dict."""
    from matrix_sim.stream import WorldModel

    started = time.perf_counter()
    world = WorldModel.from_pretrained(checkpoint, device=device, stream_overrides=stream_overrides)
    try:
        clips = footage_clips(data, clip_frames(world, horizons, context, starts_per_episode), world.frame_size)
        rollouts, figures = horizon_eval(world, None, clips, horizons, context, starts_per_episode, seed, progress,
                                         sheet_rows=SHEET_ROWS if sheet else 0)
        result = {"checkpoint": str(checkpoint), "data": str(data), "episodes": len(clips),
                  "device": world.device, "threads": torch.get_num_threads(), "frame_rate": world.frame_rate,
                  "context_frames": context, "stream": dataclasses.asdict(world.sampler.config),
                  "protocol": "h = 1 is the next frame from real context (teacher-forced); longer horizons "
                              "continue on the model's own frames under the recorded actions",
                  **figures}
        result["diagnosis"] = diagnosis_eval(world, clips, context, horizons, starts_per_episode, seed, figures)
        if sheet:
            result["sheet"] = str(rollout_sheet(rollouts, sheet, horizons))
    finally:
        world.close()
    result["eval_s"] = round(time.perf_counter() - started, 1)
    return result
