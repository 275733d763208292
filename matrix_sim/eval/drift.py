"""Long-run drift: does a long generated run keep looking like real footage of its scene, minute after minute?

Real footage: the source world in the scene (a held-out seed), driven by the exploration policy. Generated:
the world model primed with the first real frames and then fed the same actions, through the World
protocol (reset/prime/step), for as many frames. Per frame three statistics, each in [0, 1]:
  brightness     mean luma (0.299 R + 0.587 G + 0.114 B) / 255
  colourfulness  mean of (max - min over R, G, B) / 255
  edge_density   fraction of pixels whose luma gradient (|dx| + |dy|) exceeds 24 / 255
Per window (a minute: 60 s x frame rate frames) the mean of each. The real footage's spread is the band
from the 5th to the 95th percentile of its per-frame values; a generated minute is `inside` when its mean
lies in that band. Collapse (frames going flat, dark, washed out or to noise) leaves the band; a healthy
model stays inside it for every minute of the run. The numbers can hide how a run looks, so a sheet shows
the middle frame of every window, real above generated (`eval --drift-sheet`).

Every generated frame comes out of the autoencoder's decoder, which keeps only part of the footage's edges
(eval-vae). So the real footage also goes through the codec (encoded and decoded, `codec_reference`): the
statistics a world model that reproduced every true latent would score, which tells the codec's share of a
gap from the world model's.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from matrix_sim.actions import Action

STATS = ("brightness", "colourfulness", "edge_density")
EDGE = STATS.index("edge_density")
EDGE_THRESHOLD = 24
CODEC_BATCH = 64           # real frames round-tripped through the codec at a time
WHAT = ("per-minute means of frame brightness, colourfulness and edge density (each in [0, 1]) of a generated "
        "run vs real source-world footage of the same scene under the same actions; a minute is inside when its "
        "mean lies within the 5-95th percentile band of the real frames' values")


def frame_stats(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> [brightness, colourfulness, edge_density]."""
    x = image.astype(np.float32)
    luma = x @ np.array([0.299, 0.587, 0.114], np.float32)
    grad = np.abs(np.diff(luma, axis=1))[:-1] + np.abs(np.diff(luma, axis=0))[:, :-1]
    return np.array([luma.mean() / 255, (x.max(-1) - x.min(-1)).mean() / 255, (grad > EDGE_THRESHOLD).mean()])


def real_run(prompt: str, seed: int, frames: int, warmup: int = 16, width: int = 256,
             height: int = 144) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(image, action taken at it) for `frames` frames of the source world under the exploration policy."""
    from matrix_sim.data.policy import ExplorationPolicy
    from matrix_sim.world.engine import SourceWorld

    world = SourceWorld(width, height)
    try:
        frame = world.reset(prompt, seed)
        policy = ExplorationPolicy(seed + 1, seed, world.s.roads)
        for t in range(warmup + frames):
            action = policy.act(frame)
            if t >= warmup:
                yield frame.image, action.to_array()
            frame = world.step(action)
    finally:
        world.close()


def window_means(values: np.ndarray, window: int) -> np.ndarray:
    """(T, S) per-frame values -> (ceil(T / window), S) means; a last partial window counts if it holds at
    least half a window (or is the only one)."""
    chunks = [values[i:i + window] for i in range(0, len(values), window)]
    if len(chunks) > 1 and len(chunks[-1]) < window / 2:
        chunks = chunks[:-1]
    return np.stack([c.mean(0) for c in chunks])


def drift_eval(world, prompt: str, frames: int = 10_000, seed: int = 0, context: int = 8, window_s: float = 60.0,
               heldout_seed: int = 2**31 + 977, progress: Optional[Callable[[int], None]] = None,
               sheet: Optional[str | Path] = None,
               codec: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> dict:
    """Run `world` (a WorldModel) for `frames` frames after real context and compare per-window statistics;
    sheet: also write the middle frame of each window, real above generated (a PNG), here;
    codec: (N, H, W, 3) uint8 -> the same frames encoded and decoded: adds `codec_reference`."""
    rate = world.frame_rate
    window = max(1, int(round(window_s * rate)))
    shown = lambda t: sheet is not None and t % window == window // 2       # noqa: E731
    real_stats, actions, context_frames, real_shown, gen_shown = [], [], [], [], []
    codec_stats, pending = [], []
    for image, action in real_run(prompt, heldout_seed, frames + context):
        if len(context_frames) < context:
            context_frames.append(image)
        else:
            if shown(len(real_stats)):
                real_shown.append(image)
            real_stats.append(frame_stats(image))
            if codec is not None:
                pending.append(image)
                if len(pending) == CODEC_BATCH or len(real_stats) == frames:
                    codec_stats += [frame_stats(rebuilt) for rebuilt in codec(np.stack(pending))]
                    pending = []
        actions.append(action)
    actions = np.stack(actions)
    started = time.perf_counter()
    first = world.prime(np.stack(context_frames), actions[:context], prompt, seed)   # follows actions[context - 1]
    image = first.image
    gen_stats = []
    for t in range(frames):
        if t:
            image = world.step(Action.from_array(actions[context - 1 + t])).image
        if shown(t):
            gen_shown.append(image)
        gen_stats.append(frame_stats(image))
        if progress is not None:
            progress(t)
    seconds = time.perf_counter() - started
    real, gen = np.stack(real_stats), np.stack(gen_stats)
    real_windows, gen_windows = window_means(real, window), window_means(gen, window)
    low, high = np.percentile(real, 5, axis=0), np.percentile(real, 95, axis=0)
    inside = (gen_windows >= low) & (gen_windows <= high)          # (windows, stats)
    stats = {name: {"generated": _r(gen_windows[:, i]), "real": _r(real_windows[:, i]),
                    "real_band": _r([low[i], high[i]]), "inside": bool(inside[:, i].all())}
             for i, name in enumerate(STATS)}
    result = {
        "what": WHAT, "prompt": prompt, "frames": frames, "window_frames": window, "windows": len(gen_windows),
        "stats": stats, "inside_fraction": round(float(inside.mean()), 4),
        "inside_real_spread": bool(inside.all()), "generated_fps": round(frames / max(seconds, 1e-9), 2),
    }
    if codec is not None:
        result["codec_reference"] = _codec_reference(np.stack(codec_stats), window, low, high)
    if sheet is not None:
        from matrix_sim.eval.sheets import drift_sheet

        shown_windows = min(len(gen_windows), len(gen_shown))     # a short last window may lack its middle
        times = [(i * window + window // 2) / rate for i in range(shown_windows)]
        result["sheet"] = str(drift_sheet(real_shown[:shown_windows], gen_shown[:shown_windows], times,
                                          gen_windows[:shown_windows, STATS.index("edge_density")], sheet))
    return result


def _codec_reference(stats: np.ndarray, window: int, low: np.ndarray, high: np.ndarray) -> dict:
    """The real footage's per-window means after the codec, held against the same band as the generated run."""
    windows = window_means(stats, window)
    inside = (windows >= low) & (windows <= high)
    return {"what": "the real footage encoded and decoded by the bundle's autoencoder: what a world model that "
                    "reproduced every true latent would score",
            "stats": {name: {"per_window": _r(windows[:, i]), "inside": bool(inside[:, i].all())}
                      for i, name in enumerate(STATS)},
            "inside_fraction": round(float(inside.mean()), 4)}


def _r(values) -> list[float]:
    return [round(float(v), 4) for v in values]
