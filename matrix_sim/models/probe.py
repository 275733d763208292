"""InverseDynamicsProbe: which action moved the camera between two consecutive frames.

It measures whether generated video follows the actions it was conditioned on: trained on the
source world's frame pairs, it predicts the action from (frame t, frame t + 1) alone; run on generated
frames, its agreement with the conditioning actions is `action_accuracy`.

What it predicts: two 3-way classes from the action taken at frame t (which produced frame t + 1):
  turn:    0 left (turn < -turn_threshold), 1 straight, 2 right (turn > turn_threshold)
  forward: 0 back (forward < -forward_threshold), 1 none, 2 forward (forward > forward_threshold)
Classes, not regression: the figure is an agreement rate, and a frame pair cannot tell a small steering
correction from none. In drive mode `forward` is throttle (it changes speed, not position), so it is
partly ambiguous from one pair: the probe's accuracy on real frames is the ceiling generated frames are
compared with.

It is cheap by design: frames are area-downsampled inside (256x144 -> 128x72 by default), and the network
sees (frame t, frame t + 1, their difference) through four strided convolutions and a small MLP.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

HEADS = ("turn", "forward")
ACTION_INDEX = {"turn": 1, "forward": 0}          # columns of the action vector (matrix_sim.actions)


def _conv(cin: int, cout: int, kernel: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride=2, padding=kernel // 2), nn.GroupNorm(4, cout), nn.SiLU())


class InverseDynamicsProbe(ModelMixin, ConfigMixin):
    """(frame t, frame t + 1) -> logits for the turn class and the forward class (3 each)."""

    @register_to_config
    def __init__(self, input_width: int = 128, input_height: int = 72, channels: tuple = (24, 48, 64, 96),
                 pooled: tuple = (3, 4), hidden: int = 128, turn_threshold: float = 0.2,
                 forward_threshold: float = 0.2):
        super().__init__()
        widths = [9, *channels]                         # frame t, frame t + 1, their difference: 3 channels each
        self.features = nn.Sequential(*[_conv(a, b, 5 if i == 0 else 3) for i, (a, b) in
                                        enumerate(zip(widths[:-1], widths[1:]))])
        self.pool = nn.AdaptiveAvgPool2d(tuple(pooled))     # keeps where motion is (left/right, top/bottom)
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(channels[-1] * pooled[0] * pooled[1], hidden), nn.SiLU())
        self.heads = nn.Linear(hidden, 3 * len(HEADS))      # one 3-way head per entry of HEADS

    # ---- inputs --------------------------------------------------------------------------------------
    def prepare(self, images) -> torch.Tensor:
        """(N, H, W, 3) uint8 (numpy or tensor, any size) -> (N, 3, input_height, input_width) float in [-1, 1].

        Frames already at the input size pass through; integer multiples are area-averaged (256x144 -> 128x72
        by 2x2 means), anything else is resized by area interpolation."""
        x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
        x = x.to(self.device).permute(0, 3, 1, 2).float()
        h, w = x.shape[-2:]
        size = (self.config.input_height, self.config.input_width)
        if (h, w) != size:
            if h % size[0] == 0 and w % size[1] == 0 and h // size[0] == w // size[1]:
                x = F.avg_pool2d(x, h // size[0])
            else:
                x = F.interpolate(x, size=size, mode="area")
        return x.div(127.5).sub(1.0)

    def forward(self, prev: torch.Tensor, nxt: torch.Tensor) -> dict[str, torch.Tensor]:
        """Prepared frames (N, 3, h, w) -> {"turn": (N, 3) logits, "forward": (N, 3) logits}."""
        hidden = self.mlp(self.pool(self.features(torch.cat([prev, nxt, nxt - prev], dim=1))))
        logits = self.heads(hidden).unflatten(1, (len(HEADS), 3))
        return {name: logits[:, i] for i, name in enumerate(HEADS)}

    # ---- labels and predictions ------------------------------------------------------------------------
    def labels(self, actions) -> dict[str, np.ndarray]:
        """Action vectors (N, 5) -> the class of each head (N,) int64, by this probe's thresholds."""
        actions = torch.from_numpy(np.atleast_2d(np.asarray(actions, dtype=np.float32)))
        return {name: v.numpy() for name, v in self.label_tensors(actions).items()}

    def label_tensors(self, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """labels() for a tensor of action vectors (..., 5), on its device: the classes as int64 tensors."""
        thresholds = {"turn": self.config.turn_threshold, "forward": self.config.forward_threshold}
        out = {}
        for name in HEADS:
            value, t = actions[..., ACTION_INDEX[name]], thresholds[name]
            out[name] = torch.where(value > t, 2, torch.where(value < -t, 0, 1)).long()
        return out

    @torch.no_grad()
    def predict(self, prev_images, next_images, batch: int = 256) -> dict[str, np.ndarray]:
        """Frame pairs (N, H, W, 3) uint8 -> predicted class per head (N,) int64."""
        if len(prev_images) != len(next_images):
            raise ValueError(f"need as many previous as next frames, got {len(prev_images)} and {len(next_images)}")
        out = {name: [] for name in HEADS}
        for i in range(0, len(prev_images), batch):
            logits = self(self.prepare(prev_images[i:i + batch]), self.prepare(next_images[i:i + batch]))
            for name in HEADS:
                out[name].append(logits[name].argmax(-1).cpu().numpy())
        return {name: np.concatenate(v) if v else np.zeros(0, np.int64) for name, v in out.items()}


def agreement(predicted: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict[str, float]:
    """Per-head accuracy and their mean ("mean"); nan where there are no pairs."""
    per = {name: float(np.mean(predicted[name] == labels[name])) if len(labels[name]) else float("nan")
           for name in HEADS}
    return {**per, "mean": float(np.mean(list(per.values())))}
