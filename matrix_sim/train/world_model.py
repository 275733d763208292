"""`train(config)`: rectified-flow training of the world model on latent shards; alone or under torchrun.

Each step draws one clip layout (stream-shaped or diffusion forcing, see train/levels.py), clips of that
many frames with the actions that produced them and a random paraphrase of their scene, and regresses
v = noise - x0 on the frames the layout scores. The run folder holds the resumable state (saved often),
a log, and a playable bundle (EMA weights + autoencoder + preset prompt embeddings) that WorldModel loads.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tqdm import tqdm

from matrix_sim.config import make_folder
from matrix_sim.device import autocast, describe, pick_device
from matrix_sim.models.checkpoint import CheckpointError, save_model
from matrix_sim.models.dit import WorldDiT
from matrix_sim.models.loading import load_autoencoder
from matrix_sim.models.prompt import PromptBank
from matrix_sim.stream import bundle
from matrix_sim.stream.schedule import StreamConfig
from matrix_sim.stream.starts import STARTS_FILE, write_starts
from matrix_sim.train.distributed import Distributed, all_mean, init_distributed, log_finish, shutdown, wrap_model
from matrix_sim.train.detail import DetailMatch, change_loss, detail_loss
from matrix_sim.train.ema import EMA
from matrix_sim.train.guidance import GuidanceTeacher
from matrix_sim.train.latents import ClipBatch, LatentShards
from matrix_sim.train.levels import Layout, LevelMix, sample_layout, shift_context, training_levels
from matrix_sim.train.own_context import with_own_context
from matrix_sim.train.optim import optimizer_step, warmup_stable_cooldown
from matrix_sim.train.run_state import load_state, save_state, start_from
from matrix_sim.train.world_config import WorldModelConfig, load_config
from matrix_sim.world.gym_world import gym_prompts
from matrix_sim.world.scenes import scene_catalog

log = logging.getLogger(__name__)
TRAIN_PROMPTS = "prompts-train.safetensors"     # every caption of the data, embedded once per run
LOG_FILE = "train.log"
TRAINED_STREAM_KEYS = ("context_frames", "levels", "block_frames", "shift")


@dataclass(frozen=True)
class TrainSummary:
    run_dir: Path
    step: int
    first_loss: float          # mean loss of the first logging interval of this invocation
    last_loss: float           # mean loss of the last one


def flow_loss(model, clips: ClipBatch, prompts: torch.Tensor, layout: Layout, stream: StreamConfig, mix: LevelMix,
              generator: torch.Generator, device: torch.device, teacher: Optional[GuidanceTeacher] = None,
              detail: Optional[DetailMatch] = None) -> torch.Tensor:
    """The mean squared error of the predicted v = noise - x0 on the frames the layout scores (with a teacher,
    the target carries its guided action difference too: train/guidance.py; with `detail`, plus the detail
    and change terms on the one-shot estimate x_s - s * v: train/detail.py)."""
    frames = layout.frames(stream)
    x0 = clips.latents[:, :frames]
    if prompts.dim() == 3:                  # per-frame prompts (scene cuts)
        prompts = prompts[:, :frames]
    levels, mask = training_levels(layout, stream, mix, x0.shape[0], generator)
    noise = torch.randn(x0.shape, generator=generator)
    s = levels[..., None, None, None]
    if not layout.forcing:
        x0 = shift_context(x0, layout.context, mix.context_shift, generator)
    noisy, target = (1 - s) * x0 + s * noise, noise - x0
    noisy, levels, actions, prompts = (t.to(device) for t in (noisy, levels, clips.actions[:, :frames], prompts))
    mask, target = mask.to(device), target.to(device)
    if teacher is not None:
        target = target + teacher.target_shift(noisy, levels, actions, prompts, mask)
    with autocast(device, training=True):
        v = model(noisy, levels, actions, prompts)
    per_frame = (v.float() - target).pow(2).mean(dim=(2, 3, 4))
    loss = (per_frame * mask).sum() / mask.sum()
    if detail is not None and (detail.weight > 0 or detail.change > 0):
        estimate, truth = noisy - levels[..., None, None, None] * v.float(), x0.to(device)
        if detail.weight > 0:
            loss = loss + detail.weight * detail_loss(estimate, truth, levels, mask, detail.patches)
        if detail.change > 0:
            loss = loss + detail.change * change_loss(estimate, truth, levels, mask, detail.patches)
    return loss


def context_rows(rng: np.random.Generator, layout: Layout, share: float, batch: int) -> np.ndarray:
    """Which clips of a stream-shaped step with context get their context changed (`share` of them): another
    scene's (LevelMix.scene_cut) or the model's own estimates (OwnContext.share)."""
    if layout.forcing or layout.context == 0 or share <= 0:
        return np.zeros(batch, dtype=bool)
    return rng.random(batch) < share


def cut_scenes(clips: ClipBatch, prompts: torch.Tensor, other: ClipBatch, other_prompts: torch.Tensor,
               rows: np.ndarray, context: int) -> tuple[ClipBatch, torch.Tensor]:
    """Clips whose first `context` frames (and those frames' actions and prompt) come from `other` in `rows`;
    returns them with per-frame prompt embeddings (b, T, P)."""
    frames = clips.latents.shape[1]
    per_frame = prompts[:, None].expand(-1, frames, -1).clone()
    if not rows.any():
        return clips, per_frame
    cut = torch.from_numpy(rows)
    latents, actions = clips.latents.clone(), clips.actions.clone()
    latents[cut, :context] = other.latents[cut, :context]
    actions[cut, :context] = other.actions[cut, :context]
    per_frame[cut, :context] = other_prompts[cut, None]
    return ClipBatch(latents, actions, clips.texts), per_frame


def training_batch(cfg: WorldModelConfig, shards: LatentShards, prompts: PromptBank, ema_model: WorldDiT, step: int,
                   rank: int, batch: int, device: torch.device
                   ) -> tuple[Layout, ClipBatch, torch.Tensor, torch.Generator]:
    """Step `step`'s window layout, clips (scene cuts and own context applied), prompt embeddings and noise
    generator for process `rank`: drawn from the step number, so a resumed run draws what it would have."""
    layout = sample_layout(np.random.default_rng([cfg.train.seed, step]), cfg.stream, cfg.levels)
    rng = np.random.default_rng([cfg.train.seed, step, rank])
    clips = shards.sample(rng, batch, cfg.still_share)
    generator = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    embedded = prompts.embed_many(clips.texts)
    cuts = context_rows(rng, layout, cfg.levels.scene_cut, batch)
    if cuts.any():
        other = shards.sample(rng, batch)
        clips, embedded = cut_scenes(clips, embedded, other, prompts.embed_many(other.texts), cuts, layout.context)
    if cfg.own_context:
        clips = with_own_context(ema_model, clips, embedded, context_rows(rng, layout, cfg.own_context.share, batch),
                                 layout.context, cfg.own_context, cfg.stream, generator, device)
    return layout, clips, embedded, generator


def training_forward(model: torch.nn.Module, compile_it: bool) -> torch.nn.Module:
    """What flow_loss calls: the model itself, or (compile_it) its forward through torch.compile, which fuses the
    element-wise work around the matmuls (modulation, gates, norms; docs/performance.md has the figures). Each
    new window shape compiles once, then its steps run faster; the weights stay `model`'s, so the optimiser, the
    EMA and the checkpoints see no wrapper. On a CPU, inductor builds its kernels with a C++ compiler; without
    one the run stays eager and says so."""
    if not compile_it:
        return model
    on_cpu = next(model.parameters()).device.type == "cpu"
    if on_cpu and not any(shutil.which(cxx) for cxx in (os.environ.get("CXX", "g++"), "clang++", "c++")):
        log.warning("compile: no C++ compiler (g++, clang++ or $CXX) on this machine: training stays eager")
        return model
    log.info("compiling the training forward (torch.compile): each new window shape's first step takes longer")
    return torch.compile(model)


def training_stream(stream: StreamConfig) -> dict:
    """The stream settings the weights depend on (the window's shape and schedule); the rest (context level,
    caching, retargeting) are inference choices that a run may change without refusing to resume."""
    return {k: getattr(stream, k) for k in TRAINED_STREAM_KEYS}


def train(config_path: str | Path, steps: int | None = None, device: str | None = None,
          progress: bool = True, run_dir: str | Path | None = None, batch_size: int | None = None,
          minutes: float | None = None) -> TrainSummary:
    """Train (or resume) the config's run; run_dir and batch_size replace the config's, so one recipe runs on
    any machine (a GPU takes a larger batch: scripts/train-gpu.sh). minutes: a time budget instead of a step
    count; the last step is set from the rate measured over the first steps (TimeBudget)."""
    cfg = load_config(config_path)
    if run_dir is not None:
        cfg = replace(cfg, run_dir=str(run_dir))
    if batch_size is not None:
        cfg = replace(cfg, train=replace(cfg.train, batch_size=batch_size))
    d = init_distributed(pick_device(device))
    run_dir = Path(cfg.run_dir)
    try:
        budget = TimeBudget(minutes * 60) if minutes else None
        return _train(cfg, d, run_dir, steps or cfg.train.steps, progress and d.is_main, budget)
    finally:
        shutdown(d)


def _train(cfg: WorldModelConfig, d: Distributed, run_dir: Path, total_steps: int, progress: bool,
           budget: Optional["TimeBudget"] = None) -> TrainSummary:
    if cfg.train.batch_size % d.world_size:
        raise ValueError(f"batch_size {cfg.train.batch_size} does not split over {d.world_size} processes")
    if d.is_main:
        make_folder(run_dir, "run folder")
        _log_to(run_dir / LOG_FILE)
    shards = LatentShards(cfg.data, cfg.stream.clip_frames, progress=progress)
    if shards.latent_shape[0] != cfg.model_config()["in_channels"]:
        raise ValueError(f"the latents have {shards.latent_shape[0]} channels, model.in_channels is "
                         f"{cfg.model_config()['in_channels']}")
    prompts = _training_prompts(run_dir, shards.texts(), d, progress)
    torch.manual_seed(cfg.train.seed)
    model = WorldDiT(**cfg.model).to(d.device)
    ema = EMA(model, cfg.train.ema_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    identity = {"model": cfg.model_config(), "stream": training_stream(cfg.stream)}
    step = load_state(run_dir, model, ema.model, opt, identity)
    if step == 0 and cfg.init_from:
        start_from(Path(cfg.init_from) / bundle.DIT_DIR, WorldDiT, cfg.model_config(), model, ema, what="world model")
    teacher = GuidanceTeacher(cfg.guidance, cfg.model_config(), d.device) if cfg.guidance else None
    if d.is_main:
        _write_bundle_parts(run_dir, cfg, shards)
        if cfg.still_share:
            log.info("%.0f %% of the clips drawn from the %d still ones", 100 * cfg.still_share,
                     len(shards.still_starts()))
        if cfg.own_context:
            log.info("context from the model's own estimates in %.0f %% of the stream-shaped clips (levels %s, "
                     "the last %d frames unrolled)", 100 * cfg.own_context.share, list(cfg.own_context.levels),
                     cfg.own_context.unroll)
        log.info("training the world model (%.2fM parameters) on %s, %d process(es), from step %d to %d; run dir %s",
                 sum(p.numel() for p in model.parameters()) / 1e6, describe(d.device, training=True), d.world_size,
                 step, total_steps, run_dir)
    ddp = wrap_model(model, d)
    forward = training_forward(ddp, cfg.compile)
    per_process = cfg.train.batch_size // d.world_size
    schedule = replace(cfg.train, steps=total_steps)      # `train --steps N` moves the cooldown to N too
    bar = tqdm(total=total_steps, initial=step, desc="train world model", unit="step", disable=not progress)
    losses, intervals, interval_start = [], [], time.perf_counter()
    while step < total_steps:
        for group in opt.param_groups:
            group["lr"] = warmup_stable_cooldown(step, schedule)
        layout, clips, embedded, generator = training_batch(cfg, shards, prompts, ema.model, step, d.rank,
                                                            per_process, d.device)
        loss = flow_loss(forward, clips, embedded, layout, cfg.stream, cfg.levels, generator, d.device, teacher,
                         cfg.detail)
        optimizer_step(loss, model, opt, ema, step, cfg.train.grad_clip)
        step += 1
        bar.update(1)
        if budget is not None and (last := budget.last_step(step, d, schedule.cooldown_steps)) is not None:
            if d.is_main and abs(last - total_steps) > 0.01 * last:
                log.info("time budget %.1f min: the run ends at step %d", budget.seconds / 60, last)
            total_steps = last
            schedule = replace(schedule, steps=total_steps)
            bar.total = total_steps
            bar.refresh()
        losses.append(loss.item())
        if step % cfg.train.log_every == 0 or step == total_steps:
            intervals.append(all_mean(float(np.mean(losses)), d))
            rate = cfg.train.batch_size * len(losses) / max(1e-9, time.perf_counter() - interval_start)
            losses.clear()
            interval_start = time.perf_counter()
            bar.set_postfix(loss=f"{intervals[-1]:.4f}")
            if d.is_main:
                log.info("step %d loss %.5f lr %.2e (%.1f clips/s)", step, intervals[-1],
                         opt.param_groups[0]["lr"], rate)
        if d.is_main and (step % cfg.train.save_every == 0 or step == total_steps):
            _save(run_dir, step, model, ema, opt, identity)
    bar.close()
    log_finish(model, d, step)
    first, last = (intervals[0], intervals[-1]) if intervals else (math.nan, math.nan)
    return TrainSummary(run_dir, step, first, last)


class TimeBudget:
    """Ends a run after about `seconds`. The rate over the latest steps sets the last step: first TIMING_TO steps
    into the run (the first TIMING_FROM pay for warm-up), then again every TIMING_TO - TIMING_FROM steps until the
    cooldown begins, because a step's cost can change as a run goes and the cooldown has to land inside the
    budget."""

    TIMING_FROM, TIMING_TO = 5, 30

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started = time.monotonic()
        self.first_step: Optional[int] = None
        self.timing_start = 0.0
        self.last: Optional[int] = None

    def last_step(self, step: int, d: Distributed, cooldown_steps: int = 0) -> Optional[int]:
        """The run's last step where this step sets it anew; None at every other step."""
        if self.first_step is None:
            self.first_step = step - 1
        done, window = step - self.first_step, self.TIMING_TO - self.TIMING_FROM
        if done == self.TIMING_FROM:
            self.timing_start = time.monotonic()
        if done < self.TIMING_TO or (done - self.TIMING_TO) % window:
            return None
        if self.last is not None and step >= self.last - cooldown_steps:
            return None                                     # the cooldown has begun: the end stays
        now = time.monotonic()
        per_step = all_mean((now - self.timing_start) / window, d)
        remaining = all_mean(self.seconds - (now - self.started), d)
        self.timing_start = now
        self.last = step + max(0, int(remaining / per_step))
        return self.last


def _training_prompts(run_dir: Path, texts: list[str], d: Distributed, progress: bool) -> PromptBank:
    """Embeddings of every training text, computed once per run by the main process and shared through a file."""
    path = run_dir / TRAIN_PROMPTS
    if d.is_main:
        bank = PromptBank.load(path) if path.is_file() else PromptBank()
        if any(t not in bank for t in texts):
            bank.add(texts, progress=progress)
            bank.save(path)
    if d.active:
        torch.distributed.barrier()
    return PromptBank.load(path)


def _write_bundle_parts(run_dir: Path, cfg: WorldModelConfig, shards: LatentShards) -> None:
    """What the playable bundle needs besides the DiT: the stream shape, the autoencoder, preset prompts; for a
    model of a recorded environment also the level it opens on and start clips of each level."""
    recorded_levels = gym_prompts(shards.texts())          # "doom map01" etc. in the data
    source_world = set(shards.texts()) - set(recorded_levels)
    start = "" if source_world or not recorded_levels else recorded_levels[0]   # a model of another game opens it
    bundle.write_info(run_dir, bundle.BundleInfo(cfg.stream, shards.latent_shape, shards.frame_rate, start))
    playable = [*scene_catalog().prompts, *recorded_levels]
    PromptBank.load(run_dir / TRAIN_PROMPTS).subset(playable).save(run_dir / bundle.PROMPTS_FILE)
    if recorded_levels:       # the game starts these levels from the bundle's own clips (stream/starts.py)
        write_starts(run_dir / STARTS_FILE, shards, recorded_levels, cfg.stream.context_frames)
    vae_dir = run_dir / bundle.VAE_DIR
    source = Path(cfg.autoencoder)
    if not source.is_dir():
        log.warning("autoencoder %s not found: %s will not be playable until it holds %s/", source, run_dir, vae_dir)
        return
    vae = load_autoencoder(source)
    factors = (vae.config.scaling_factor, vae.config.shift_factor)
    if not np.allclose(factors, (shards.scale, shards.shift), rtol=1e-5):
        raise CheckpointError(f"autoencoder {source} has scaling/shift {factors}, but the latents in "
                              f"{cfg.data} were made with {(shards.scale, shards.shift)}: encode them again")
    if not vae_dir.is_dir():
        shutil.copytree(source, vae_dir)


def _save(run_dir: Path, step: int, model: WorldDiT, ema: EMA, opt, identity: dict) -> None:
    save_state(run_dir, step, model, ema.model, opt, identity)
    save_model(ema.model, run_dir / bundle.DIT_DIR)
    log.info("saved step %d to %s", step, run_dir)


def _log_to(path: Path) -> None:
    """Also write this package's log lines to the run's log file (once per file)."""
    root = logging.getLogger("matrix_sim")
    if any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path.resolve() for h in root.handlers):
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
