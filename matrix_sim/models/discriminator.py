"""PatchDiscriminator: scores how much each patch of an image looks like source-world footage.

It trains the decoder adversarially (matrix_sim.train.adversarial).
Strided 4x4 convolutions, as pix2pix's PatchGAN, each under spectral normalisation, which keeps a hinge-loss
discriminator smooth enough to train from scratch against a generator that is already good. Three 2x steps see
patches about 40 pixels across: the scale of the edges the codec blurs (road lines, trunks, the car's outline).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    """Images in [-1, 1] (B, 3, H, W) -> realness scores (B, 1, H / 2^n, W / 2^n), n = len(channels)."""

    def __init__(self, channels: tuple = (32, 64, 128)):
        super().__init__()
        if not channels:
            raise ValueError("channels needs at least one width")
        layers, width = [], 3
        for out in channels:
            layers += [spectral_norm(nn.Conv2d(width, out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            width = out
        layers.append(spectral_norm(nn.Conv2d(width, 1, 3, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)
