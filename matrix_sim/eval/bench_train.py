"""`python -m matrix_sim bench train`: training throughput of a config's world-model recipe; one JSON object.

A step is the training loop's (train/world_model.py), built from the same pieces in the same order: a seeded
clip layout, a batch of clips, scene cuts, context from the EMA model's own estimates (own_context:), the flow
loss with the guidance teacher's term where the config has one, backward, gradient clip, AdamW and the EMA
update. The clips are synthetic latents of the config's shape (no data set needed) or the config's own latent
shards (`data="real"`); prompts are hashed vectors (the loop looks its embeddings up in a cache, so the cost is
the same). Steps are numbered from the end of the warm-up, so the steady state is timed.

Each variant builds a fresh model, runs WARMUP_STEPS, then times `steps` steps (the same step numbers, hence the
same layouts, in every variant): clips/s is the batch over the median step time. The levers, side by side:
batch size (the config's, half, double), autocast (the dtype device.py picks for training, against the other of
float32 / bfloat16, through MATRIX_SIM_DTYPE), torch.compile of the training forward (the config's `compile`
against the other; a compiled variant first runs its timed steps once untimed, so every window shape is compiled
before the clock starts, and reports that pass's seconds), and torch threads (every core, one less). Model FLOPs
are counted per step (torch's FlopCounterMode outside inference mode: forward, backward, attention by flops.py's
formulas; element-wise work and the optimiser are not matrix FLOPs) over the same step numbers at each batch size,
and held against the matmul peak measured in the variant's dtype on all cores, before and after the runs (the
better of the two).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tqdm import tqdm

from matrix_sim.device import (DTYPE_ENV, compute_dtype, cpu_cores, cpu_description, cpu_has_native_bf16, describe,
                               pick_device)
from matrix_sim.eval.flops import PEAK_SIZE, count_flops, matmul_peak
from matrix_sim.eval.timed_world import FRAME_SIZE, RANDOM_INIT_STD, VAE_FACTOR, HashEncoder
from matrix_sim.models.dit import WorldDiT
from matrix_sim.models.prompt import PromptBank
from matrix_sim.train.ema import EMA
from matrix_sim.train.guidance import GuidanceTeacher
from matrix_sim.train.latents import MANIFEST, ClipBatch, LatentShards
from matrix_sim.train.levels import sample_layout
from matrix_sim.train.optim import optimizer_step
from matrix_sim.train.world_config import WorldModelConfig, load_config
from matrix_sim.train.world_model import flow_loss, training_batch, training_forward
from matrix_sim.world.scenes import scene_catalog

log = logging.getLogger(__name__)
DEFAULT_CONFIG = "configs/tiny-cpu.yaml"
DEFAULT_STEPS = 6             # timed steps per variant
WARMUP_STEPS = 2
VARIANT_CAP_S = 30.0          # a variant stops timing after this long (2 steps at least): emulated bf16 is slow
ACTION_FIELDS = 5
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")
DTYPES = {torch.float32: "float32", torch.bfloat16: "bfloat16"}
PROBE_SIZE = 256              # the bf16 probe's square matmul: 34 MFLOP, under a second even where bf16 is emulated
BF16_USABLE_SLOWDOWN = 20.0   # slower than float32 by more than this, bf16 is emulated and not timed (a step
                              # would take minutes; docs/performance.md)


class SyntheticClips:
    """Stands in for LatentShards: random latents of the data's shape, random actions, a scene prompt per clip."""

    def __init__(self, latent_shape: tuple, clip_frames: int):
        self.latent_shape, self.clip_frames = tuple(latent_shape), clip_frames
        self.prompts = scene_catalog().prompts

    def texts(self) -> list[str]:
        return list(self.prompts)

    def sample(self, rng: np.random.Generator, batch: int, still_share: float = 0.0) -> ClipBatch:
        latents = rng.standard_normal((batch, self.clip_frames, *self.latent_shape), dtype=np.float32)
        actions = rng.uniform(-1, 1, (batch, self.clip_frames, ACTION_FIELDS)).astype(np.float32)
        texts = [self.prompts[int(i)] for i in rng.integers(len(self.prompts), size=batch)]
        return ClipBatch(torch.from_numpy(latents), torch.from_numpy(actions), texts)


class RecipeTrainer:
    """A fresh model, AdamW, EMA (and the config's teacher) stepping the training loop's steps."""

    def __init__(self, cfg: WorldModelConfig, clips, bank: PromptBank, device: torch.device, batch: int,
                 compiled: bool = False):
        self.cfg, self.clips, self.bank, self.device, self.batch = cfg, clips, bank, device, batch
        torch.manual_seed(cfg.train.seed)
        self.model = WorldDiT(**cfg.model).to(device)
        with torch.no_grad():           # the zero-initialised layers random too, as a trained model's are
            for param in self.model.parameters():
                if not param.any():
                    param.normal_(0.0, RANDOM_INIT_STD)
        self.forward = training_forward(self.model, compiled)
        self.ema = EMA(self.model, cfg.train.ema_decay)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        self.teacher = GuidanceTeacher(cfg.guidance, cfg.model_config(), device) if cfg.guidance else None

    def step(self, step: int) -> float:
        """One training step numbered `step` (its layout, clips and noise follow from the number); its loss."""
        cfg = self.cfg
        layout, clips, embedded, generator = training_batch(cfg, self.clips, self.bank, self.ema.model, step, 0,
                                                            self.batch, self.device)
        loss = flow_loss(self.forward, clips, embedded, layout, cfg.stream, cfg.levels, generator, self.device,
                         self.teacher, cfg.detail)
        optimizer_step(loss, self.model, self.opt, self.ema, step, cfg.train.grad_clip)
        return loss.item()

    def forward_flops(self, step: int) -> int:
        """FLOPs of step `step`'s flow-loss forward alone (no backward, no own-context estimates)."""
        cfg, batch = self.cfg, self.batch
        layout = sample_layout(np.random.default_rng([cfg.train.seed, step]), cfg.stream, cfg.levels)
        rng = np.random.default_rng([cfg.train.seed, step, 0])
        clips = self.clips.sample(rng, batch, cfg.still_share)
        generator = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
        flops, _ = count_flops(lambda: flow_loss(self.model, clips, self.bank.embed_many(clips.texts), layout,
                                                 cfg.stream, cfg.levels, generator, self.device))
        return flops


@contextmanager
def _dtype(name: Optional[str]):
    """Autocast in `name` (MATRIX_SIM_DTYPE) for the block; None: as device.py picks."""
    old = os.environ.get(DTYPE_ENV)
    if name is not None:
        os.environ[DTYPE_ENV] = name
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(DTYPE_ENV, None)
        else:
            os.environ[DTYPE_ENV] = old


def cpu_info() -> dict:
    """The CPU's model name, the vector / matrix flags that decide its bf16 speed, and its core counts."""
    name, flags = cpu_description()
    return {"model": name, "flags": {flag: flag in flags for flag in CPU_FLAGS},
            "native_bf16": cpu_has_native_bf16(), "cpu_count": os.cpu_count(), "cores_usable": cpu_cores()}


def _latent_shape(cfg: WorldModelConfig) -> tuple:
    """The config's data's latent shape when its manifest is there, else the default frame's (256x144)."""
    manifest = Path(cfg.data) / MANIFEST
    if manifest.is_file():
        return tuple(json.loads(manifest.read_text())["latent_shape"])
    width, height = FRAME_SIZE
    return cfg.model_config()["in_channels"], height // VAE_FACTOR, width // VAE_FACTOR


def _time_variant(make, steps: list[int], warmup: list[int], threads: int, dtype: Optional[str],
                  cap_s: float, rehearse: bool = False) -> tuple[list[float], Optional[float]]:
    """Seconds of each timed step of a fresh trainer (after the warm-up), on `threads` threads in `dtype`; with
    `rehearse`, the timed steps run once untimed first (a compiled forward compiles each window shape then), and
    the seconds of that pass come back too (None without)."""
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with _dtype(dtype):
            trainer = make()
            for step in warmup:
                trainer.step(step)
            rehearsal = None
            if rehearse:
                began = time.perf_counter()
                for step in steps:
                    trainer.step(step)
                rehearsal = time.perf_counter() - began
            times, began = [], time.perf_counter()
            for step in steps:
                start = time.perf_counter()
                trainer.step(step)
                times.append(time.perf_counter() - start)
                if len(times) >= 2 and time.perf_counter() - began > cap_s:
                    break
    finally:
        torch.set_num_threads(old_threads)
    return times, rehearsal


def _count(make, steps: list[int], threads: int) -> tuple[list[int], int]:
    """FLOPs of each of `steps` (forward + backward + update) on a fresh trainer, and of the first one's forward."""
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        trainer = make()
        forward = trainer.forward_flops(steps[0])
        return [count_flops(lambda: trainer.step(step), inference=False)[0] for step in steps], forward
    finally:
        torch.set_num_threads(old_threads)


def bench_train(config: str | Path = DEFAULT_CONFIG, steps: int = DEFAULT_STEPS, data: str = "synthetic",
                progress: bool = True, *, device: Optional[str] = None, threads: Optional[int] = None,
                latent_shape: Optional[tuple] = None, warmup_steps: int = WARMUP_STEPS,
                peak_size: int = PEAK_SIZE, cap_s: float = VARIANT_CAP_S) -> dict:
    """Time the config's training step in each lever's variant; returns the figures as one JSON-ready dict.

    data: "synthetic" (random latents of the data's shape, or of `latent_shape`) or "real" (the config's latent
    shards); threads: the all-cores count (default: the cores this process may use); cap_s: a variant's timed
    steps stop after this many seconds (at least 2 run)."""
    if steps < 1:
        raise ValueError(f"--steps must be positive, got {steps}")
    if data not in ("synthetic", "real"):
        raise ValueError(f"--data must be synthetic or real, got {data!r}")
    cfg = load_config(config)
    torch_device = pick_device(device)
    if data == "real":
        clips = LatentShards(cfg.data, cfg.stream.clip_frames, progress=progress)
        if clips.latent_shape[0] != cfg.model_config()["in_channels"]:
            raise ValueError(f"the latents in {cfg.data} have {clips.latent_shape[0]} channels, model.in_channels "
                             f"is {cfg.model_config()['in_channels']}")
    else:
        clips = SyntheticClips(latent_shape or _latent_shape(cfg), cfg.stream.clip_frames)
    bank = PromptBank(encoder_factory=HashEncoder)
    bank.add(clips.texts())
    training_dtype = compute_dtype(torch_device, training=True)
    configured_dtype = DTYPES.get(training_dtype, str(training_dtype))
    other_dtype = "bfloat16" if configured_dtype == "float32" else "float32"
    all_threads = threads or cpu_cores()
    probe = _bf16_probe(torch_device, all_threads)
    bf16_usable = probe["slowdown"] <= BF16_USABLE_SLOWDOWN
    peak_dtypes = (torch.float32, torch.bfloat16) if bf16_usable else (torch.float32,)
    peaks = {DTYPES.get(dt, str(dt)): [_peak(torch_device, dt, peak_size, all_threads)] for dt in peak_dtypes}

    # steady state: numbered after the schedule's warm-up
    first = cfg.train.warmup_steps
    warmup = list(range(first, first + warmup_steps))
    timed = list(range(first + warmup_steps, first + warmup_steps + steps))
    batch = cfg.train.batch_size
    batches = {"configured": batch, "batch_half": max(1, batch // 2), "batch_double": 2 * batch}
    compiles = cfg.compile
    other_compile = "eager" if compiles else "compiled"
    plan = {name: (size, all_threads, None, compiles) for name, size in batches.items()
            if name == "configured" or size != batch}
    skipped = {}
    if other_dtype == "bfloat16" and not bf16_usable:
        skipped[other_dtype] = {"batch_size": batch, "threads": all_threads, "dtype": other_dtype, "skipped":
                                f"bfloat16 matmuls run {probe['slowdown']:.0f}x slower than float32 here "
                                f"(native bf16: {cpu_has_native_bf16()}): not timed"}
    else:
        plan[other_dtype] = (batch, all_threads, other_dtype, compiles)
    plan[other_compile] = (batch, all_threads, None, not compiles)
    if all_threads > 1:
        plan[f"threads_{all_threads - 1}"] = (batch, all_threads - 1, None, compiles)

    def maker(size: int, compiled: bool = False):
        return lambda: RecipeTrainer(cfg, clips, bank, torch_device, size, compiled)

    variants = {}
    sizes = sorted({size for size, _, _, _ in plan.values()})
    bar = tqdm(total=len(plan) + len(sizes), desc="bench train", unit="run", disable=not progress)
    for name, (size, n_threads, dtype, compiled) in plan.items():
        bar.set_postfix_str(name)
        times, rehearsal = _time_variant(maker(size, compiled), timed, warmup, n_threads, dtype, cap_s, compiled)
        variants[name] = {"batch_size": size, "threads": n_threads, "dtype": dtype or configured_dtype,
                          "compiled": compiled, "step_s": [round(t, 4) for t in times]}
        if rehearsal is not None:
            variants[name]["first_pass_s"] = round(rehearsal, 2)
        bar.update(1)
    counted = {}
    for size in sizes:
        bar.set_postfix_str(f"FLOPs, batch {size}")
        counted[size] = _count(maker(size), timed, all_threads)
        bar.update(1)
    bar.close()
    for dt in peak_dtypes:                  # again after the runs: the better of the two is the machine's peak
        peaks[DTYPES.get(dt, str(dt))].append(_peak(torch_device, dt, peak_size, all_threads))
    peak = {name: max(values) for name, values in peaks.items()}

    for name, figures in variants.items():
        per_step, _ = counted[figures["batch_size"]]
        figures.update(_figures(figures, per_step, peak.get(figures["dtype"])))
    variants.update(skipped)
    per_step, forward = counted[batch]
    main = variants["configured"]
    return {
        "clips_per_s": main["clips_per_s"],
        "step_ms": main["step_ms"],
        "model_gflops_per_s": main["model_gflops_per_s"],
        "utilisation": main["utilisation"],
        "compute_dtype": configured_dtype,
        "compiled": compiles,
        "peak_gflops_per_s": {name: round(value, 1) for name, value in peak.items()},
        "peak_gflops_per_s_measured": {name: [round(v, 1) for v in values] for name, values in peaks.items()},
        "bf16_probe": probe,
        "gflop_per_step": round(float(np.mean(per_step)) / 1e9, 4),
        "gflop_per_clip": round(float(np.mean(per_step)) / batch / 1e9, 4),
        "gflop_forward_first_step": round(forward / 1e9, 4),
        "step_over_forward": round(per_step[0] / forward, 3) if forward else None,
        "variants": variants,
        "levers": _levers(variants, other_dtype, other_compile, all_threads),
        "steps": steps, "warmup_steps": warmup_steps, "first_step": first,
        "data": "synthetic" if data == "synthetic" else f"real ({cfg.data})",
        "config": str(config),
        "recipe": {"batch_size": batch, "clip_frames": cfg.stream.clip_frames,
                   "own_context": cfg.own_context is not None,
                   "guidance": cfg.guidance is not None, "still_share": cfg.still_share,
                   "scene_cut": cfg.levels.scene_cut, "forcing_prob": cfg.levels.forcing_prob},
        "latent_shape": list(clips.latent_shape),
        "model": {**{k: cfg.model_config()[k] for k in ("width", "depth", "heads", "patch_size")},
                  "params_m": round(sum(p.numel() for p in WorldDiT(**cfg.model).parameters()) / 1e6, 3)},
        "stream": dataclasses.asdict(cfg.stream),
        "device": describe(torch_device, training=True),
        "cpu": cpu_info(),
        "torch": torch.__version__,
        "torch_threads": all_threads,
    }


def _peak(device: torch.device, dtype: torch.dtype, size: int, threads: int) -> float:
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return matmul_peak(device, dtype, size=size)
    finally:
        torch.set_num_threads(old)


def _bf16_probe(device: torch.device, threads: int, size: int = PROBE_SIZE) -> dict:
    """GFLOP/s of one small square matmul in float32 (best of 3) and in bfloat16 (one call: an emulated one is
    slow), and how many times slower bfloat16 is."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    rates = {}
    try:
        with torch.inference_mode():
            for dtype, repeats in ((torch.float32, 3), (torch.bfloat16, 1)):
                a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))
                torch.mm(a[:8], b)                      # kernel choice, allocation, on a sliver
                best = float("inf")
                for _ in range(repeats):
                    start = time.perf_counter()
                    torch.mm(a, b)
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    best = min(best, time.perf_counter() - start)
                rates[DTYPES[dtype]] = 2 * size ** 3 / best / 1e9
    finally:
        torch.set_num_threads(old)
    return {"size": size, "float32_gflops_per_s": round(rates["float32"], 2),
            "bfloat16_gflops_per_s": round(rates["bfloat16"], 3),
            "slowdown": round(rates["float32"] / rates["bfloat16"], 2)}


def _figures(variant: dict, per_step: list[int], peak: Optional[float]) -> dict:
    """clips/s over the median step; model GFLOP/s as the median of the steps' own rates (each step's FLOPs
    over its time), and its share of the variant dtype's matmul peak."""
    times = variant["step_s"]
    median = statistics.median(times)
    rates = [flops / 1e9 / seconds for flops, seconds in zip(per_step, times)]
    gflops = statistics.median(rates)
    return {"step_ms": round(1000 * median, 2), "clips_per_s": round(variant["batch_size"] / median, 3),
            "clips_per_s_mean": round(variant["batch_size"] * len(times) / sum(times), 3),
            "timed_steps": len(times), "model_gflops_per_s": round(gflops, 3),
            "utilisation": round(gflops / peak, 4) if peak else None}


def _levers(variants: dict, other_dtype: str, other_compile: str, threads: int) -> dict:
    """Each lever's figures side by side (the configured run is every lever's reference)."""
    keys = ("batch_size", "threads", "dtype", "compiled", "step_ms", "clips_per_s", "model_gflops_per_s",
            "utilisation", "first_pass_s")

    def pick(*names):
        return {name: {k: variants[name][k] for k in (*keys, "skipped") if k in variants[name]}
                for name in names if name in variants}

    return {"batch_size": pick("batch_half", "configured", "batch_double"),
            "autocast": pick("configured", other_dtype),
            "compile": pick("configured", other_compile),
            "threads": pick("configured", f"threads_{threads - 1}")}
