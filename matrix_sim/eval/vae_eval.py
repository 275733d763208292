"""`python -m matrix_sim eval-vae --json`: reconstruction quality on held-out footage, and codec speed.

Besides PSNR, the edge density (drift.frame_stats: the share of pixels with a strong luma gradient) of the frames
and of their reconstructions: how much of the footage's sharpness the codec keeps, a ceiling for the world model's
frames (eval's drift run holds their edge density against real footage's). And how smoothly the latents move with a
pan (moved_latent_psnr): a world model draws a pan of a few pixels a frame as latents moved by a fraction of a
latent pixel, so what those decode to bounds how sharp a turning world can be."""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from matrix_sim.eval.drift import EDGE, frame_stats
from matrix_sim.eval.heldout import heldout_clips
from matrix_sim.eval.metrics import grouped_mean, psnr
from matrix_sim.eval.sheets import write_pairs_sheet
from matrix_sim.models.autoencoder import LATENT_STRIDE, FrameAutoencoder, images_to_tensor, tensor_to_images
from matrix_sim.config import DEFAULT_VAE_DIR
from matrix_sim.models.loading import load_autoencoder

TIMING_RUNS = 50
PAN_PIXELS = (2, 4, 6)     # moves within one latent pixel; a drive's turn pans ~4 pixels a frame


@torch.no_grad()
def reconstruct(model: FrameAutoencoder, images: np.ndarray, batch: int = 16) -> np.ndarray:
    out, device = [], next(model.parameters()).device
    for i in range(0, len(images), batch):
        x = images_to_tensor(images[i:i + batch]).to(device).contiguous(memory_format=torch.channels_last)
        out.append(tensor_to_images(model.decode(model.encode(x))))
    return np.concatenate(out)


def moved_latents(latents: torch.Tensor, dy: float, dx: float) -> torch.Tensor:
    """Latents (B, C, H, W) sampled bilinearly `dy` rows and `dx` columns further on, each a fraction in [0, 1] of a
    latent pixel: (B, C, H - 1, W - 1), where pixel (i, j) lies between (i, j) and (i + 1, j + 1). What a picture
    moved by LATENT_STRIDE * (dy, dx) pixels would encode to, if the latent moved with the picture."""
    if not (0.0 <= dy <= 1.0 and 0.0 <= dx <= 1.0):
        raise ValueError(f"a move within one latent pixel is a fraction in [0, 1], got ({dy}, {dx})")
    rows = (1 - dy) * latents[:, :, :-1] + dy * latents[:, :, 1:]
    return (1 - dx) * rows[..., :-1] + dx * rows[..., 1:]


def moved_crop(images: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """The part of images (B, 3, H, W) that latents moved by (rows, cols) pixels show (moved_latents), each at most
    LATENT_STRIDE: the images moved that far, a latent pixel smaller each way."""
    height, width = images.shape[-2] - LATENT_STRIDE, images.shape[-1] - LATENT_STRIDE
    return images[..., rows:rows + height, cols:cols + width]


@torch.no_grad()
def moved_latent_psnr(model: FrameAutoencoder, images: np.ndarray, pixels=PAN_PIXELS, batch: int = 16) -> dict:
    """PSNR of the pictures moved by each of `pixels` down and across, decoded from the unmoved pictures' latents
    moved as far (moved_latents), beside the codec's own round trip of the moved pictures. Where the first falls
    far below the second, the latents snap from one latent pixel to the next instead of moving with the picture."""
    moved = {p: [] for p in pixels}
    own = []
    device = next(model.parameters()).device
    for i in range(0, len(images), batch):
        x = images_to_tensor(images[i:i + batch]).to(device)
        latents = model.encode(x)
        for p in pixels:
            for rows, cols in ((p, 0), (0, p)):
                decoded = model.decode(moved_latents(latents, rows / LATENT_STRIDE, cols / LATENT_STRIDE))
                target = moved_crop(x, rows, cols)
                truth = tensor_to_images(target)
                moved[p].append(psnr(truth, tensor_to_images(decoded)))
                own.append(psnr(truth, tensor_to_images(model(target))))
    return {"moved_latent_psnr_db": round(float(np.mean([v for vs in moved.values() for v in vs])), 2),
            "own_psnr_db": round(float(np.mean(own)), 2),
            "moved_by_pixels": {str(p): round(float(np.mean(v)), 2) for p, v in moved.items()}}


@torch.no_grad()
def median_ms(fn, x: torch.Tensor, runs: int = TIMING_RUNS) -> float:
    for _ in range(5):
        fn(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def eval_vae(checkpoint: str | Path = DEFAULT_VAE_DIR, frames_per_scene: int = 4, sheet: str | Path | None = None,
             progress: bool = True) -> dict:
    model = load_autoencoder(checkpoint)
    clips = heldout_clips(frames_per_scene)
    values, by = [], {"biome": [], "mode": [], "time": [], "weather": []}
    edges = {"real": [], "reconstructed": []}
    pairs = {}     # biome -> (original, reconstruction) of its first frame, for the contact sheet
    for clip in tqdm(clips, desc="eval-vae", disable=not progress):
        recon = reconstruct(model, clip.frames)
        pairs.setdefault(clip.scene.biome, (clip.frames[0], recon[0], clip.scene.prompt))
        for original, rebuilt in zip(clip.frames, recon):
            values.append(psnr(original, rebuilt))
            edges["real"].append(frame_stats(original)[EDGE])
            edges["reconstructed"].append(frame_stats(rebuilt)[EDGE])
            for key in by:
                by[key].append(getattr(clip.scene, key))
    if sheet is not None:
        write_pairs_sheet(sheet, list(pairs.values()))
    pan = moved_latent_psnr(model, np.concatenate([clip.frames for clip in clips]))
    one = images_to_tensor(clips[0].frames[:1]).contiguous(memory_format=torch.channels_last)
    latent = model.encode(one).contiguous(memory_format=torch.channels_last)
    return {
        "psnr_db": round(float(np.mean(values)), 2),
        "psnr_by_scene": grouped_mean(values, by["biome"]),
        "psnr_by_mode": grouped_mean(values, by["mode"]),
        "psnr_by_time": grouped_mean(values, by["time"]),
        "psnr_by_weather": grouped_mean(values, by["weather"]),
        "edge_density": {k: round(float(np.mean(v)), 4) for k, v in edges.items()},
        "frames": len(values),
        "pan": pan,
        "decode_ms": round(median_ms(model.decode, latent), 2),
        "encode_ms": round(median_ms(model.encode, one), 2),
        "threads": torch.get_num_threads(),
        "checkpoint": str(checkpoint),
    }
