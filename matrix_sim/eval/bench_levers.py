"""`python -m matrix_sim bench levers`: the stream's levers timed on the DiT alone, one JSON object.

Each variant runs the Swin-DPM sampler (steady state: full context, full window) on the config's DiT shape
(or a checkpoint's weights; timing does not depend on them) and reports the median time of a call, per
emitted frame, and the window latency (L calls: from an action entering the window to its frame leaving
it, before decode and display). Variants: as configured; context keys/values recomputed every call instead
of cached; RAIN's block size B halved and doubled (frames per level: bigger calls, fewer per frame, longer
latency); one noise level fewer (L - 1 denoising steps a frame: a window of fewer blocks); torch on one
thread instead of all; action guidance at w = 3 (two forwards a call: the cost a
distilled model saves, train/guidance.py). Variants that change the stream's output (guidance, levels) say how
far it moved from the configured one's (same seed, same calls). Each variant also gives the matrix MFLOPs of a
call (counted, eval/flops.py): the work a lever adds or saves, which unlike a time does not depend on what
else the machine is doing. `bench play` measures the whole loop; this isolates the model.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional

import torch
from tqdm import tqdm

from matrix_sim.actions import Action
from matrix_sim.device import describe, pick_device
from matrix_sim.client.options import DEFAULT_PROMPT
from matrix_sim.eval.bench_play import DEFAULT_CONFIG
from matrix_sim.eval.flops import count_flops
from matrix_sim.eval.timed_world import load_parts
from matrix_sim.stream.sampler import SwinSampler
from matrix_sim.stream.schedule import StreamConfig

DEFAULT_CALLS = 30
GUIDANCE_LEVER = 3.0             # the action guidance scale timed (two forwards a call)


@dataclass
class Variant:
    stream: StreamConfig
    threads: int


@dataclass
class Timing:
    call_s: float                    # median steady-state call
    warmup_s: float                  # the calls that fill the window
    latents: torch.Tensor            # the last call's emitted block: what the stream variants are compared on
    flops: int                       # matrix FLOPs of one steady-state call


def time_calls(sampler: SwinSampler, prompt: torch.Tensor, calls: int) -> Timing:
    """Steady-state sampler calls, timed after the window and the context have filled, then one more call under
    the FLOP counter (untimed: the counter slows it)."""
    action = torch.as_tensor(Action(forward=1.0).to_array())
    start = time.perf_counter()
    for _ in range(sampler.config.filling_calls):
        sampler.step(action, prompt)
    warmup = time.perf_counter() - start
    times, emitted = [], None
    for _ in range(calls):
        start = time.perf_counter()
        emitted = sampler.step(action, prompt)
        times.append(time.perf_counter() - start)
    flops = count_flops(lambda: sampler.step(action, prompt))[0]
    return Timing(statistics.median(times), warmup, emitted.latents, flops)


def variants(stream: StreamConfig, threads: int) -> dict[str, Variant]:
    flipped = "context_not_cached" if stream.cache_context else "context_cached"
    out = {"configured": Variant(stream, threads),
           flipped: Variant(replace(stream, cache_context=not stream.cache_context), threads)}
    for blocks in sorted({max(1, stream.block_frames // 2), stream.block_frames * 2} - {stream.block_frames}):
        out[f"block_frames_{blocks}"] = Variant(replace(stream, block_frames=blocks), threads)
    if stream.levels > 1:            # one denoising step fewer: less work a call, a shorter window, another stream
        out[f"levels_{stream.levels - 1}"] = Variant(replace(stream, levels=stream.levels - 1), threads)
    if threads > 1:
        out["one_thread"] = Variant(stream, 1)
    if not stream.guided:
        out[f"action_guidance_{GUIDANCE_LEVER:g}"] = Variant(replace(stream, action_guidance=GUIDANCE_LEVER), threads)
    return out


def bench_levers(config: str | Path = DEFAULT_CONFIG, checkpoint: Optional[str | Path] = None,
                 calls: int = DEFAULT_CALLS, device: Optional[str] = None, progress: bool = True,
                 stream_overrides: Optional[dict] = None) -> dict:
    torch_device = pick_device(device)
    parts = load_parts(config, checkpoint, stream_overrides=stream_overrides)
    dit = parts.dit.to(torch_device).eval()
    prompt = parts.prompts.embed(DEFAULT_PROMPT).to(torch_device)
    threads = torch.get_num_threads()
    results, reference, configured = {}, None, parts.info.stream
    try:
        for name, v in tqdm(variants(configured, threads).items(), desc="levers", disable=not progress):
            torch.set_num_threads(v.threads)
            sampler = SwinSampler(dit, v.stream, parts.info.latent_shape, torch_device)
            with torch.inference_mode():
                timing = time_calls(sampler, prompt, calls)
            reference = timing.latents if name == "configured" else reference
            results[name] = {"call_ms": round(1000 * timing.call_s, 2),
                             "ms_per_frame": round(1000 * timing.call_s / v.stream.block_frames, 2),
                             "window_latency_ms": round(1000 * timing.call_s * v.stream.levels, 1),
                             "warmup_s": round(timing.warmup_s, 2),
                             "block_frames": v.stream.block_frames, "cache_context": v.stream.cache_context,
                             "threads": v.threads, "action_guidance": v.stream.action_guidance,
                             "levels": v.stream.levels, "mflops_per_call": round(timing.flops / 1e6, 3)}
            if (v.stream.guided, v.stream.levels) != (configured.guided, configured.levels):   # another stream
                results[name]["output_rel_change"] = round(relative_change(timing.latents, reference), 5)
    finally:
        torch.set_num_threads(threads)
    return {"variants": results, "calls": calls, "stream": asdict(parts.info.stream), **parts.source,
            "device": describe(torch_device)}


def relative_change(latents: torch.Tensor, reference: torch.Tensor) -> float:
    """RMS of the difference over RMS of the reference: how far a variant moved the stream's output."""
    return float((latents - reference).pow(2).mean().sqrt() / reference.pow(2).mean().sqrt().clamp_min(1e-12))
