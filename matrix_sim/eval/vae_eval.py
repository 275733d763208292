"""`python -m matrix_sim eval-vae --json`: reconstruction quality on held-out footage, and codec speed.

Besides PSNR, the edge density (drift.frame_stats: the share of pixels with a strong luma gradient) of the frames
and of their reconstructions: how much of the footage's sharpness the codec keeps, a ceiling for the world model's
frames (eval's drift run holds their edge density against real footage's)."""
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
from matrix_sim.models.autoencoder import FrameAutoencoder, images_to_tensor, tensor_to_images
from matrix_sim.config import DEFAULT_VAE_DIR
from matrix_sim.models.loading import load_autoencoder

TIMING_RUNS = 50


@torch.no_grad()
def reconstruct(model: FrameAutoencoder, images: np.ndarray, batch: int = 16) -> np.ndarray:
    out, device = [], next(model.parameters()).device
    for i in range(0, len(images), batch):
        x = images_to_tensor(images[i:i + batch]).to(device).contiguous(memory_format=torch.channels_last)
        out.append(tensor_to_images(model.decode(model.encode(x))))
    return np.concatenate(out)


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
        "decode_ms": round(median_ms(model.decode, latent), 2),
        "encode_ms": round(median_ms(model.encode, one), 2),
        "threads": torch.get_num_threads(),
        "checkpoint": str(checkpoint),
    }
