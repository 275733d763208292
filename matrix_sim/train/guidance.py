"""Action guidance distilled into the world model: the guided stream at the cost of one forward.

Guidance at inference (StreamConfig.action_guidance, w) runs the window twice, with the actions and with the
idle action, and takes v(idle) + w * (v(action) - v(idle)) = v(action) + (w - 1) * (v(action) - v(idle)):
it made the tiny model follow actions visibly better (probe accuracy 0.663 -> 0.722 at w = 3) for twice the
DiT time, which a 2-core CPU cannot pay at 16 frames/s. Distillation moves the guided difference into the
training target instead: each scored frame's v = noise - x0 gets (w - 1) * (v_T(action) - v_T(idle)) added,
where v_T is a frozen teacher (the weights the run starts from) at the same noisy input, its scored frames'
actions set to idle. The teacher must stay frozen: a model that guided itself would amplify its own action
difference every step (its fixed point is 1 / (2 - w) times the data's, which diverges for w >= 2).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from matrix_sim.device import autocast
from matrix_sim.models.dit import WorldDiT
from matrix_sim.stream import bundle
from matrix_sim.train.run_state import load_same_architecture

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuidanceDistill:
    """The `guidance` section of a world-model config."""

    scale: float                 # w: the inference-time action guidance the model learns to stand in for
    teacher: str                 # a bundle (or DiT folder) whose DiT is the frozen teacher

    def __post_init__(self) -> None:
        if self.scale < 1.0:
            raise ValueError(f"guidance.scale must be >= 1 (1 adds nothing), got {self.scale}")


class GuidanceTeacher:
    """The frozen teacher; `target_shift` is what the guided target adds to v = noise - x0."""

    def __init__(self, settings: GuidanceDistill, architecture: dict, device: torch.device):
        path = Path(settings.teacher)
        dit_dir = path / bundle.DIT_DIR if (path / bundle.DIT_DIR).is_dir() else path
        self.model = load_same_architecture(dit_dir, WorldDiT, architecture, "guidance teacher", "guidance.teacher")
        self.model.to(device).eval().requires_grad_(False)
        self.scale, self.device = settings.scale, device
        log.info("distilling action guidance w = %g from the frozen teacher %s", self.scale, dit_dir)

    @torch.no_grad()
    def target_shift(self, noisy: torch.Tensor, levels: torch.Tensor, actions: torch.Tensor, prompts: torch.Tensor,
                     scored: torch.Tensor) -> torch.Tensor:
        """(w - 1) * (v_T(actions) - v_T(idle on the scored frames)), float32, shaped like `noisy`; one batched
        forward of both. scored: (B, T) bool, the frames the loss is taken on."""
        idle = actions.masked_fill(scored[..., None], 0.0)
        with autocast(self.device):
            v = self.model(torch.cat([noisy, noisy]), torch.cat([levels, levels]), torch.cat([actions, idle]),
                           torch.cat([prompts, prompts])).float()
        with_actions, with_idle = v.chunk(2)
        return (self.scale - 1.0) * (with_actions - with_idle)
