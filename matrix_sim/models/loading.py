"""Loading the shipped autoencoder, with errors that name the file and what is wrong (models.checkpoint)."""
from __future__ import annotations

from pathlib import Path

import torch

from matrix_sim.config import DEFAULT_VAE_DIR
from matrix_sim.models.autoencoder import FrameAutoencoder
from matrix_sim.models.checkpoint import load_model


def load_autoencoder(path: str | Path = DEFAULT_VAE_DIR, device: torch.device | str = "cpu") -> FrameAutoencoder:
    """The trained FrameAutoencoder in eval mode, channels_last (the fast layout for its convolutions)."""
    model = load_model(FrameAutoencoder, path, what="autoencoder")
    return model.to(device).eval().requires_grad_(False).to(memory_format=torch.channels_last)
