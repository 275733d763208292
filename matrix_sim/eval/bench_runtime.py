"""`python -m matrix_sim bench runtime`: the stream's DiT call and the frame decoder on each runtime, one JSON object.

Runtimes: eager PyTorch in float32 and under the bfloat16 autocast the project uses on CPUs with native bf16
(device.py; emulated, and slow, on CPUs without it: reported all the same), and every CPU inference engine
installed (matrix_sim/runtime: ONNX Runtime, OpenVINO in f32, and OpenVINO in bf16 where the CPU has native
bf16). Each runtime drives a Swin-DPM sampler of its own from the same primed context and seed, in lockstep
(call i of every runtime runs before call i + 1 of any, so a host whose load changes slows them alike), on the
torch thread count the game uses (device.game_threads, or --threads; the engines get as many intra-op threads).
Reported per runtime: the median steady-state sampler call (the DiT call and its Euler update) and decode of a
block, and how far its stream strays from eager float32's: max abs difference of the emitted latents over the
stream, of the decoded frames (uint8 levels, each runtime decoding its own latents), and of its decoder alone on
float32's latents. `auto` says what `--runtime auto` would pick from these figures (the fastest that agrees).
"""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import torch
from tqdm import tqdm

from matrix_sim.actions import Action
from matrix_sim.device import compute_dtype, cpu_has_native_bf16, cpu_name, describe, game_threads, pick_device
from matrix_sim.eval.bench_play import DEFAULT_CONFIG
from matrix_sim.eval.timed_world import load_parts
from matrix_sim.models.autoencoder import tensor_to_images
from matrix_sim.runtime.choice import AGREEMENT, cache_folder, cached_graph
from matrix_sim.runtime.engines import engine_version, installed_engines
from matrix_sim.runtime.graphs import StreamShape, export_decoder, export_stream, graph_key
from matrix_sim.runtime.stream import EngineDecoder, EngineStream, GraphSpec
from matrix_sim.stream.sampler import SwinSampler

DEFAULT_CALLS = 30
SEED = 0
ACTIONS = [Action(forward=1.0), Action(forward=1.0, turn=0.5), Action(forward=0.5, turn=-1.0), Action(brake=1.0)]


class TorchStream:
    """The DiT on eager torch in one number format, whatever autocast the sampler opened."""

    def __init__(self, dit, dtype: torch.dtype):
        self.dit, self.dtype, self.config = dit, dtype, dit.config

    def __call__(self, *args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.dtype == torch.bfloat16):
            return self.dit(*args, **kwargs).float()


def _torch_decoder(vae, dtype: torch.dtype):
    def decode(latents):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            return vae.decode(latents).float()
    return decode


def _median_ms(times: list[float]) -> Optional[float]:
    return round(1000 * statistics.median(times), 2) if times else None


def bench_runtime(config: str | Path = DEFAULT_CONFIG, checkpoint: Optional[str | Path] = None,
                  calls: int = DEFAULT_CALLS, threads: Optional[int] = None, progress: bool = True,
                  stream_overrides: Optional[dict] = None) -> dict:
    device = pick_device("cpu")
    parts = load_parts(config, checkpoint, stream_overrides=stream_overrides)
    dit, vae, stream, latent_shape = parts.dit.eval(), parts.vae.eval(), parts.info.stream, parts.info.latent_shape
    old_threads = torch.get_num_threads()
    used = game_threads(device, threads) or old_threads
    torch.set_num_threads(used)
    try:
        return _bench(parts, dit, vae, stream, latent_shape, checkpoint, calls, used, progress, device)
    finally:
        torch.set_num_threads(old_threads)


def _bench(parts, dit, vae, stream, latent_shape, checkpoint, calls, threads, progress, device) -> dict:
    shape = StreamShape.steady(stream, latent_shape)
    frames = stream.block_frames
    engines = installed_engines()
    export_s = None
    streams = {"torch_float32": TorchStream(dit, torch.float32), "torch_bfloat16": TorchStream(dit, torch.bfloat16)}
    decoders = {"torch_float32": _torch_decoder(vae, torch.float32),
                "torch_bfloat16": _torch_decoder(vae, torch.bfloat16)}
    if engines:
        folder = cache_folder(checkpoint)
        start = time.perf_counter()
        stream_path = cached_graph(folder, graph_key(dit, "stream", shape.key()),
                                   lambda p: export_stream(dit, shape, p))
        decoder_key = "x".join(map(str, (frames, *latent_shape)))
        decoder_path = cached_graph(folder, graph_key(vae, "decoder", decoder_key),
                                    lambda p: export_decoder(vae, frames, latent_shape, p))
        export_s = round(time.perf_counter() - start, 2)
        precisions = {"onnx": ["f32"], "openvino": ["f32", "bf16"] if cpu_has_native_bf16() else ["f32"]}
        for engine in engines:
            for precision in precisions[engine]:
                name = engine if precision == "f32" else f"{engine}_{precision}"
                spec = GraphSpec(engine, str(stream_path), threads, precision, shape)
                streams[name] = EngineStream(dit, spec)
                dspec = GraphSpec(engine, str(decoder_path), threads, precision)
                decoders[name] = EngineDecoder(vae, dspec, frames)

    # every runtime's stream starts from the same context and seed
    g = torch.Generator().manual_seed(SEED)
    context = torch.randn(stream.context_frames, *latent_shape, generator=g)
    context_actions = torch.zeros(stream.context_frames, dit.config.action_dim)
    prompt = parts.prompts.embed("drive desert at sunset")
    samplers = {}
    for name, model in streams.items():
        sampler = SwinSampler(model, stream, latent_shape, device)
        sampler.reset(SEED)
        sampler.prime(context, context_actions, prompt)
        samplers[name] = sampler
    warm = stream.levels + 1
    step_times = {name: [] for name in streams}
    emitted = {name: [] for name in streams}
    with torch.inference_mode():
        for i in tqdm(range(warm + calls), desc="runtime", disable=not progress):
            action = torch.as_tensor(ACTIONS[(i // 3) % len(ACTIONS)].to_array())
            for name, sampler in samplers.items():
                start = time.perf_counter()
                out = sampler.step(action, prompt)
                seconds = time.perf_counter() - start
                if out is not None:
                    emitted[name].append(out.latents)
                if i >= warm:
                    step_times[name].append(seconds)
        # decode: every runtime's decoder on float32's latents (timed, lockstep), and on its own stream's latents
        decode_times = {name: [] for name in decoders}
        images = {name: [] for name in decoders}
        for block in emitted["torch_float32"]:
            raw = vae.from_model_space(block).contiguous(memory_format=torch.channels_last)
            for name, decode in decoders.items():
                start = time.perf_counter()
                images[name].append(decode(raw).float())
                decode_times[name].append(time.perf_counter() - start)
        own_frames = {}
        for name in streams:
            decode = decoders[name]
            own_frames[name] = [torch.from_numpy(tensor_to_images(decode(
                vae.from_model_space(b).contiguous(memory_format=torch.channels_last)))).int() for b in emitted[name]]

    reference = emitted["torch_float32"]
    results = {}
    for name, model in streams.items():
        latent_diff = max(float((a - b).abs().max()) for a, b in zip(emitted[name], reference))
        first_diff = float((emitted[name][0] - reference[0]).abs().max())
        frame_diff = max(int((a - b).abs().max()) for a, b in zip(own_frames[name], own_frames["torch_float32"]))
        decoder_diff = max(float((a - b).abs().max()) for a, b in zip(images[name], images["torch_float32"]))
        results[name] = {
            "call_ms": _median_ms(step_times[name]),
            "ms_per_frame": round(_median_ms(step_times[name]) / frames, 2),
            "decode_ms_per_block": _median_ms(decode_times[name]),
            "latents_max_abs_diff": round(latent_diff, 6),
            "latents_max_abs_diff_first_block": round(first_diff, 6),
            "frames_max_abs_diff_uint8": frame_diff,
            "decoder_max_abs_diff": round(decoder_diff, 6),
        }
        if isinstance(model, EngineStream):
            results[name]["engine_calls"] = model.calls["engine"]
            results[name]["torch_calls"] = model.calls["torch"]
    return {"runtimes": results, "auto": _auto(results, device), "calls": calls, "blocks_compared": len(reference),
            "export_s": export_s, "engines": {e: engine_version(e) for e in engines}, "threads": threads,
            "device": describe(device), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
            "native_bf16": cpu_has_native_bf16(), "torch": torch.__version__, "stream": asdict(stream),
            "latent_shape": list(latent_shape), **parts.source}


def _auto(results: dict, device: torch.device) -> dict:
    """What `--runtime auto` would pick from these figures: per part, the fastest that agrees with eager float32
    (an engine within choice.AGREEMENT: on its first emitted block for the stream, on float32's latents for the
    decoder), torch counting in the dtype the project uses on this device."""
    used = f"torch_{str(compute_dtype(device)).replace('torch.', '')}"
    picks = {}
    for part, key, diff in (("stream", "call_ms", "latents_max_abs_diff_first_block"),
                            ("decoder", "decode_ms_per_block", "decoder_max_abs_diff")):
        agreeing = {n: r[key] for n, r in results.items() if r[key] is not None and (
            n == used or (not n.startswith("torch") and r[diff] <= AGREEMENT["bf16" if n.endswith("bf16") else "f32"]))}
        picks[part] = min(agreeing, key=agreeing.get) if agreeing else used
    return picks
