"""An action critic in training: the model's estimate of each new frame must show the action that made it.

The flow loss scores every pixel of a frame alike, and the few that tell a left turn from going straight (the
horizon sliding, the road bending) are a small part of them: the shipped tiny model's frames follow the
actions at 0.89 of real footage's rate (eval's action_accuracy), and neither more steps nor stronger distilled
guidance moved that (sessions 9-10). Here a frozen inverse-dynamics probe trained on the encoded footage
(`train-probe --data <latents>`: the same network as eval's pixel probe, reading latents) looks at pairs
(true frame t - 1, the model's one-shot estimate x0_hat = x_s - s * v of frame t) for every scored frame at a
level s <= max_level, and the cross-entropy of its verdict against the action that produced frame t is added
to the loss with `weight`. Gradients reach the model through x0_hat; the probe does not learn.
Eval keeps its own pixel probe, trained separately, so its figure is not the loss the model was trained on.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from matrix_sim.models.checkpoint import CheckpointError, load_model
from matrix_sim.models.probe import HEADS, InverseDynamicsProbe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActionLoss:
    """The `action_loss` section of a world-model config."""

    probe: str                 # a latent probe folder (`python -m matrix_sim train-probe --data <latents>`)
    weight: float              # of the probe's cross-entropy (summed over its heads) beside the flow loss
    max_level: float = 1.0     # frames noisier than this are not scored: their one-shot estimate is a blur

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"action_loss.weight must be >= 0, got {self.weight}")
        if not 0.0 < self.max_level <= 1.0:
            raise ValueError(f"action_loss.max_level must lie in (0, 1], got {self.max_level}")


class ActionCritic:
    """The frozen latent probe and the loss it gives a batch of estimates."""

    def __init__(self, settings: ActionLoss, latent_shape: tuple, device: torch.device):
        self.probe = load_model(InverseDynamicsProbe, Path(settings.probe), what="latent probe (action_loss.probe)")
        wanted = tuple(latent_shape)
        got = (self.probe.config.in_channels, self.probe.config.input_height, self.probe.config.input_width)
        if got != wanted:
            raise CheckpointError(f"action_loss.probe {settings.probe} reads latents of (channels, height, width) "
                                  f"{got}, the data's are {wanted}: train it on these latents "
                                  f"(python -m matrix_sim train-probe --data <latents> --out {settings.probe})")
        self.probe.to(device).eval().requires_grad_(False)
        self.settings = settings
        log.info("action critic %s on the model's estimates (weight %g, levels <= %g)", settings.probe,
                 settings.weight, settings.max_level)

    def loss(self, x0: torch.Tensor, estimate: torch.Tensor, levels: torch.Tensor, actions: torch.Tensor,
             scored: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the pairs (x0[:, t - 1], estimate[:, t]) whose frame t is scored and at a level
        <= max_level; actions[:, t] made frame t. Zero (still part of the graph) when no pair qualifies."""
        pick = (scored & (levels <= self.settings.max_level))[:, 1:]
        if not pick.any():
            return estimate.sum() * 0.0
        prev, nxt = x0[:, :-1][pick], estimate[:, 1:][pick]
        labels = self.probe.label_tensors(actions[:, 1:][pick])
        logits = self.probe(prev.float(), nxt.float())
        return sum(F.cross_entropy(logits[h], labels[h]) for h in HEADS)
