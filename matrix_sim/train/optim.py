"""Optimiser settings and the update step shared by the training loops (autoencoder, world model)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from matrix_sim.train.ema import EMA


@dataclass(frozen=True)
class OptimSettings:
    """The `train` section of a training config."""

    batch_size: int = 8            # samples per step, over all processes together
    lr: float = 3e-4
    warmup_steps: int = 500
    steps: int = 100_000
    cooldown_steps: int = 0        # the last steps before `steps`, where the rate falls linearly to zero
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    log_every: int = 25
    save_every: int = 250
    seed: int = 0


def cooldown_factor(step: int, o: OptimSettings) -> float:
    """1 until the last `cooldown_steps` before `steps`, then linearly down to 0 at `steps`."""
    return max(0.0, min(1.0, (o.steps - step) / o.cooldown_steps)) if o.cooldown_steps else 1.0


def warmup_stable_cooldown(step: int, o: OptimSettings) -> float:
    """Linear warm-up, constant, then a linear cooldown to zero over the last `cooldown_steps`: a run can be
    stopped and resumed at a constant rate for as long as it takes, and ends on a cooldown when `steps` is set."""
    warm = min(1.0, (step + 1) / max(1, o.warmup_steps))
    return o.lr * min(warm, cooldown_factor(step, o))


def optimizer_step(loss: torch.Tensor, model: torch.nn.Module, opt: torch.optim.Optimizer, ema: EMA, step: int,
                   grad_clip: float) -> None:
    """Backward, clip the gradient norm, update, and fold the new weights into the EMA."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    ema.update(model, step)
