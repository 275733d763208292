"""`python -m matrix_sim bench levers`: issue 6's stream levers timed on the DiT alone, one JSON object.

Each variant runs the Swin-DPM sampler (steady state: full context, full window) on the config's DiT shape
(or a checkpoint's weights; timing does not depend on them) and reports the median time of a call, per
emitted frame, and the window latency (L calls: from an action entering the window to its frame leaving
it, before decode and display). Variants: as configured; context keys/values recomputed every call instead
of cached; RAIN's block size B halved and doubled (frames per level: bigger calls, fewer per frame, longer
latency); torch on one thread instead of all. `bench play` measures the whole loop; this isolates the model.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional

import torch
from tqdm import tqdm

from matrix_sim.actions import Action
from matrix_sim.device import pick_device
from matrix_sim.client.options import DEFAULT_PROMPT
from matrix_sim.eval.bench_play import DEFAULT_CONFIG
from matrix_sim.eval.timed_world import load_parts
from matrix_sim.stream.sampler import SwinSampler
from matrix_sim.stream.schedule import StreamConfig

DEFAULT_CALLS = 30


def time_calls(sampler: SwinSampler, prompt: torch.Tensor, calls: int) -> float:
    """Median seconds of a steady-state sampler call (after the window and the context have filled)."""
    action = torch.as_tensor(Action(forward=1.0).to_array())
    for _ in range(sampler.config.filling_calls):
        sampler.step(action, prompt)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        sampler.step(action, prompt)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def variants(stream: StreamConfig, threads: int) -> dict[str, tuple[StreamConfig, int]]:
    """name -> (stream config, torch threads)."""
    flipped = "context_not_cached" if stream.cache_context else "context_cached"
    out = {"configured": (stream, threads), flipped: (replace(stream, cache_context=not stream.cache_context), threads)}
    for blocks in sorted({max(1, stream.block_frames // 2), stream.block_frames * 2} - {stream.block_frames}):
        out[f"block_frames_{blocks}"] = (replace(stream, block_frames=blocks), threads)
    if threads > 1:
        out["one_thread"] = (stream, 1)
    return out


def bench_levers(config: str | Path = DEFAULT_CONFIG, checkpoint: Optional[str | Path] = None,
                 calls: int = DEFAULT_CALLS, device: Optional[str] = None, progress: bool = True) -> dict:
    torch_device = pick_device(device)
    parts = load_parts(config, checkpoint)
    dit = parts.dit.to(torch_device).eval()
    prompt = parts.prompts.embed(DEFAULT_PROMPT).to(torch_device)
    threads = torch.get_num_threads()
    results = {}
    try:
        for name, (stream, n) in tqdm(variants(parts.info.stream, threads).items(), desc="levers",
                                      disable=not progress):
            torch.set_num_threads(n)
            sampler = SwinSampler(dit, stream, parts.info.latent_shape, torch_device)
            call = time_calls(sampler, prompt, calls)
            results[name] = {"call_ms": round(1000 * call, 2),
                             "ms_per_frame": round(1000 * call / stream.block_frames, 2),
                             "window_latency_ms": round(1000 * call * stream.levels, 1),
                             "block_frames": stream.block_frames, "cache_context": stream.cache_context,
                             "threads": n}
    finally:
        torch.set_num_threads(threads)
    return {"variants": results, "calls": calls, "stream": asdict(parts.info.stream), **parts.source,
            "device": str(torch_device)}
