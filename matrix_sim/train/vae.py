"""`python -m matrix_sim train-vae --config configs/vae-tiny.yaml`: train the frame autoencoder.

Reconstruction loss (MSE for PSNR, L1 and an image-gradient term for crisp edges) on random crops of
recorded frames, and optionally a discriminator's judgement (matrix_sim.train.adversarial); EMA weights are
what ships. Resumes from RUN_DIR/latest.pt; under torchrun every rank draws its own crops and DDP averages the
gradients. With `freeze_encoder` only the decoder learns: the latents, their normalisation and so every world
model trained on them stay valid while the decoder improves.

A config may hold a recipe of several runs: `stages` names runs that each change the top-level settings (their
mappings merge key by key into those), typically one starting `init_from` the run before; `--stage NAME` trains
that one, no stage the top-level run.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from tqdm import tqdm

from matrix_sim.config import ConfigError, from_dict, load_yaml, make_folder, merged
from matrix_sim.data.frames import FrameBank
from matrix_sim.device import autocast, describe, pick_device
from matrix_sim.models.autoencoder import FrameAutoencoder, images_to_tensor
from matrix_sim.train.adversarial import FIGURES as ADVERSARIAL_FIGURES, Adversary, AdversarialSettings
from matrix_sim.train.distributed import init_distributed, log_finish, shutdown, wrap_model
from matrix_sim.train.optim import OptimSettings, optimizer_step
from matrix_sim.train.ema import EMA
from matrix_sim.train.run_state import load_same_architecture, save_torch, start_from

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LossWeights:
    mse: float = 1.0
    l1: float = 0.5
    edge: float = 0.5


@dataclass(frozen=True)
class VaeData:
    dirs: list
    frame_stride: int = 1
    crop: list = field(default_factory=lambda: [72, 128])


@dataclass(frozen=True)
class VaeConfig:
    model: dict
    data: VaeData
    train: OptimSettings
    loss: LossWeights
    run_dir: str              # latest.pt (resume) and vae/ (EMA weights, what ships: copy it to checkpoints/)
    init_from: str = ""       # a fresh run starts from these weights (e.g. the shipped checkpoints/vae)
    freeze_encoder: bool = False   # train the decoder alone, on init_from's encoder and latent normalisation
    adversarial: AdversarialSettings = field(default_factory=AdversarialSettings)


def load_vae_config(path: str | Path, stage: Optional[str] = None) -> VaeConfig:
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping")
    raw = dict(raw)
    stages = raw.pop("stages", None) or {}
    if stage is not None:
        if stage not in stages:
            raise ConfigError(f"{path}: no stage {stage!r}; stages: {sorted(stages) or 'none'}")
        if not isinstance(stages[stage], dict):
            raise ConfigError(f"{path}: stages.{stage}: expected a mapping of the settings it changes")
        raw = merged(raw, stages[stage])
    raw["data"] = from_dict(VaeData, raw.get("data"), f"{path}: data")
    raw["train"] = from_dict(OptimSettings, raw.get("train", {}), f"{path}: train")
    raw["loss"] = from_dict(LossWeights, raw.get("loss", {}), f"{path}: loss")
    raw["adversarial"] = from_dict(AdversarialSettings, raw.get("adversarial", {}), f"{path}: adversarial")
    config = from_dict(VaeConfig, raw, str(path))
    if config.freeze_encoder and not config.init_from:
        raise ConfigError(f"{path}: freeze_encoder needs init_from, the codec whose encoder and latents to keep")
    try:
        FrameAutoencoder(**config.model)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: model: {exc}") from None
    return config


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, w: LossWeights) -> tuple[torch.Tensor, dict]:
    mse = F.mse_loss(recon, target)
    l1 = F.l1_loss(recon, target)
    edge = sum(F.l1_loss(a, b) for a, b in zip(image_gradients(recon), image_gradients(target)))
    total = w.mse * mse + w.l1 * l1 + w.edge * edge
    # PSNR of images in [-1, 1]: the peak-to-peak range is 2
    return total, {"loss": total.item(), "mse": mse.item(), "psnr": 10 * math.log10(4.0 / max(mse.item(), 1e-10))}


def learning_rate(step: int, o: OptimSettings) -> float:
    """Linear warm-up, then cosine decay to a tenth."""
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    t = min(1.0, (step - o.warmup_steps) / max(1, o.steps - o.warmup_steps))
    return o.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def train_vae(config_path: str | Path, steps: int | None = None, device: str | None = None, progress: bool = True,
              stage: Optional[str] = None) -> Path:
    cfg = load_vae_config(config_path, stage)
    d = init_distributed(pick_device(device))
    run_dir = Path(cfg.run_dir)
    if d.is_main:
        make_folder(run_dir, "run folder")
        log.info("training the autoencoder on %s, %d process(es); run dir %s", describe(d.device, training=True),
                 d.world_size, run_dir)
    total_steps = steps or cfg.train.steps
    torch.manual_seed(cfg.train.seed)
    model = FrameAutoencoder(**cfg.model).to(d.device).to(memory_format=torch.channels_last)
    ema = EMA(model, cfg.train.ema_decay)
    if cfg.freeze_encoder:
        model.encoder.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.train.lr,
                            weight_decay=cfg.train.weight_decay)
    adversary = Adversary(cfg.adversarial, model.decoder_output_layer.weight, d) if cfg.adversarial.weight else None
    step = _resume(run_dir / "latest.pt", model, ema, opt, d.device, adversary)
    if step == 0 and cfg.init_from:
        start_from(cfg.init_from, FrameAutoencoder, cfg.model, model, ema, what="autoencoder")
    fixed_statistics = _frozen_latent_statistics(cfg) if cfg.freeze_encoder else None
    ddp = wrap_model(model, d)
    bank = FrameBank(cfg.data.dirs, cfg.data.frame_stride, progress=progress and d.is_main)
    gen = torch.Generator().manual_seed(cfg.train.seed * 1000 + d.rank + step)
    per_process_batch = max(1, cfg.train.batch_size // d.world_size)
    bar = tqdm(total=total_steps, initial=step, desc="train-vae", disable=not (progress and d.is_main))
    stats, started = {}, time.perf_counter()
    while step < total_steps:
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, cfg.train)
        crops = bank.random_crops(gen, per_process_batch, tuple(cfg.data.crop))
        x = images_to_tensor(crops).to(d.device).contiguous(memory_format=torch.channels_last)
        with autocast(d.device, training=True):
            recon = ddp(x).float()
        loss, stats = reconstruction_loss(recon, x, cfg.loss)
        if adversary is not None:
            loss, judged = adversary.generator_loss(recon, loss, step)
            stats.update(judged, loss=loss.item())
        optimizer_step(loss, model, opt, ema, step, cfg.train.grad_clip)
        if adversary is not None:
            stats.update(adversary.update(x, recon))
        step += 1
        bar.update(1)
        if d.is_main and (step % cfg.train.log_every == 0 or step == total_steps):
            rate = step / max(1e-9, time.perf_counter() - started)
            bar.set_postfix(psnr=f"{stats['psnr']:.2f}", loss=f"{stats['loss']:.4f}")
            judged = "".join(f" {key} {stats[key]:.4f}" for key in ADVERSARIAL_FIGURES if key in stats)
            log.info("step %d loss %.5f mse %.6f psnr %.2f dB%s lr %.2e (%.2f steps/s)", step, stats["loss"],
                     stats["mse"], stats["psnr"], judged, opt.param_groups[0]["lr"], rate)
        if d.is_main and (step % cfg.train.save_every == 0 or step == total_steps):
            _save(run_dir, model, ema, opt, step, bank, fixed_statistics, adversary)
    bar.close()
    log_finish(model, d, step)
    shutdown(d)
    return run_dir / "vae"


def _resume(path: Path, model, ema, opt, device, adversary: Adversary | None = None) -> int:
    if not path.exists():
        return 0
    state = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    ema.model.load_state_dict(state["ema"])
    opt.load_state_dict(state["optimizer"])
    log.info("resumed from %s at step %d", path, state["step"])
    if adversary is not None and not adversary.load_state_dict(state):
        log.info("%s holds no discriminator: a new one starts", path)
    return int(state["step"])


@torch.no_grad()
def latent_statistics(model: FrameAutoencoder, bank: FrameBank, samples: int = 256, seed: int = 0) -> tuple[float, float]:
    """Mean and 1/std of latents over sample frames: the world model works on unit-variance latents."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(bank), (samples,), generator=gen)
    device = next(model.parameters()).device
    z = torch.cat([model.encode(images_to_tensor(bank.frames[idx[i:i + 32]]).to(device)) for i in range(0, samples, 32)])
    return float(z.mean()), float(1.0 / z.std())


def _frozen_latent_statistics(cfg: VaeConfig) -> tuple[float, float]:
    """The latent normalisation of the codec whose encoder a decoder-only run keeps: the world models trained on
    its latents expect exactly these, not a re-estimate from another sample of frames."""
    kept = load_same_architecture(cfg.init_from, FrameAutoencoder, cfg.model, "autoencoder", "init_from")
    return float(kept.config.shift_factor), float(kept.config.scaling_factor)


def _save(run_dir: Path, model, ema, opt, step: int, bank: FrameBank,
          fixed_statistics: tuple[float, float] | None = None, adversary: Adversary | None = None) -> None:
    state = {"model": model.state_dict(), "ema": ema.model.state_dict(), "optimizer": opt.state_dict(), "step": step}
    save_torch({**state, **(adversary.state_dict() if adversary is not None else {})}, run_dir / "latest.pt")
    shift, scale = fixed_statistics or latent_statistics(ema.model, bank)
    ema.model.register_to_config(shift_factor=shift, scaling_factor=scale)
    ema.model.save_pretrained(run_dir / "vae")
    log.info("saved step %d to %s (latent shift %.3f, scale %.3f)", step, run_dir, shift, scale)
