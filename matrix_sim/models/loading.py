"""Loading shipped networks with errors that name the file and what is wrong."""
from __future__ import annotations

from pathlib import Path

import torch

from matrix_sim.config import DEFAULT_VAE_DIR
from matrix_sim.models.autoencoder import FrameAutoencoder


def load_autoencoder(path: str | Path = DEFAULT_VAE_DIR, device: torch.device | str = "cpu") -> FrameAutoencoder:
    """The trained FrameAutoencoder in eval mode, channels_last (the fast layout for its convolutions)."""
    path = Path(path)
    for needed in ("config.json", "diffusion_pytorch_model.safetensors"):
        if not (path / needed).is_file():
            raise FileNotFoundError(f"autoencoder checkpoint incomplete: {path / needed} is missing "
                                    f"(train one with `python -m matrix_sim train-vae`)")
    try:
        model = FrameAutoencoder.from_pretrained(path)
    except (RuntimeError, ValueError, TypeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValueError(f"{path}: checkpoint does not match FrameAutoencoder's config ({first})") from None
    return model.to(device).eval().requires_grad_(False).to(memory_format=torch.channels_last)
