"""FrameAutoencoder: a TAESD-style codec (diffusers' AutoencoderTinyBlock) slimmed for real-time decoding.

diffusers' AutoencoderTiny keeps one channel count at every level, so its full-resolution convolutions
cost most of the decode. This codec narrows the channels as resolution
grows and leaves the last 2x to a pixel shuffle, so no convolution runs at full resolution. The latent
is clamped like AutoencoderTiny's (tanh(x / 3) * 3) and scaled by `scaling_factor` for the world model.
"""
from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_2d_blocks import AutoencoderTinyBlock
from torch import nn

LATENT_CLAMP = 3.0
LATENT_STRIDE = 8            # image pixels per latent pixel


def _blocks(channels: int, count: int) -> list[nn.Module]:
    return [AutoencoderTinyBlock(channels, channels, "relu") for _ in range(count)]


class FrameAutoencoder(ModelMixin, ConfigMixin):
    """Images in [-1, 1] (B, 3, H, W) <-> latents (B, C, H / 8, W / 8).

    channels: widths from the latent resolution outwards, one per 2x step (three steps = 8x);
    the finest step is a pixel (un)shuffle, not a convolution.
    """

    @register_to_config
    def __init__(self, latent_channels: int = 4, channels: tuple = (96, 64, 32), decoder_blocks: tuple = (2, 1, 1),
                 encoder_blocks: tuple = (1, 1, 2), scaling_factor: float = 1.0, shift_factor: float = 0.0):
        super().__init__()
        if not (len(channels) == len(decoder_blocks) == len(encoder_blocks) == 3):
            raise ValueError("channels, decoder_blocks and encoder_blocks need three entries each (8x compression)")
        c0, c1, c2 = channels
        self.encoder = nn.Sequential(
            nn.PixelUnshuffle(2), nn.Conv2d(12, c2, 3, padding=1), nn.ReLU(), *_blocks(c2, encoder_blocks[2]),
            nn.Conv2d(c2, c1, 3, stride=2, padding=1, bias=False), *_blocks(c1, encoder_blocks[1]),
            nn.Conv2d(c1, c0, 3, stride=2, padding=1, bias=False), *_blocks(c0, encoder_blocks[0]),
            nn.Conv2d(c0, latent_channels, 3, padding=1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, c0, 3, padding=1), nn.ReLU(), *_blocks(c0, decoder_blocks[0]),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c0, c1, 3, padding=1, bias=False),
            *_blocks(c1, decoder_blocks[1]),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c1, c2, 3, padding=1, bias=False),
            *_blocks(c2, decoder_blocks[2]),
            nn.Conv2d(c2, 12, 3, padding=1), nn.PixelShuffle(2),
        )

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> raw latents, clamped to (-3, 3)."""
        z = self.encoder(images)
        return torch.tanh(z / LATENT_CLAMP) * LATENT_CLAMP

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw latents -> images in [-1, 1] (not clamped: training sees the true error)."""
        return self.decoder(latents)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(images))

    @property
    def decoder_output_layer(self) -> nn.Conv2d:
        """The decoder's last convolution (before the pixel shuffle): where an adversarial loss is balanced."""
        return self.decoder[-2]

    # the world model works on normalised latents (about unit variance), as diffusers' VAEs do
    def to_model_space(self, latents: torch.Tensor) -> torch.Tensor:
        return (latents - self.config.shift_factor) * self.config.scaling_factor

    def from_model_space(self, latents: torch.Tensor) -> torch.Tensor:
        return latents / self.config.scaling_factor + self.config.shift_factor


def images_to_tensor(images) -> torch.Tensor:
    """(B, H, W, 3) uint8 numpy or tensor -> (B, 3, H, W) float in [-1, 1]."""
    x = torch.as_tensor(images)
    return x.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def tensor_to_images(x: torch.Tensor):
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8 numpy."""
    return x.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
