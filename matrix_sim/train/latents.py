"""Latent shards (written by `python -m matrix_sim encode`) and random training clips drawn from them.

Layout of DIR:
  manifest.json        {"format": "matrix-sim-latents/1", "scaling_factor", "shift_factor", "latent_shape",
                        "frame_rate", "action_fields", "episodes": [{"file", "frames", "prompt", "biome", "time",
                        "weather", "mode", "seed"}]}
  episode_000000.npz   latents (F, C, H, W) float16 raw (model space = (x - shift) * scale), actions (F, A)
                       float32, poses (F, 4) float32, meta (JSON string)
Convention: frame t + 1 is what action t produced, so the action conditioning frame t is actions[t - 1].
Still clips (every frame the same picture: a stopped player in a scene without rain or snow) are rare in the
footage; `sample(still_share=...)` draws that share of a batch from them instead, so the model
learns that a stopped world holds still (eval's still_scene).
All episodes are held in memory (float16): 256x144 footage (4x18x32 latents) costs 4.5 KB a frame.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tqdm import tqdm

from matrix_sim.data.shards import MANIFEST, read_listing
from matrix_sim.world.scenes import Scene

log = logging.getLogger(__name__)
FORMAT = "matrix-sim-latents/1"


@dataclass
class LatentEpisode:
    latents: np.ndarray       # (F, C, H, W) float16, raw
    actions: np.ndarray       # (F, A) float32, action taken at each frame
    texts: list[str]          # training text: the preset prompt and the scene's paraphrases


@dataclass
class ClipBatch:
    latents: torch.Tensor     # (b, T, C, H, W) float32, model space
    actions: torch.Tensor     # (b, T, A): the action that produced each frame
    texts: list[str]          # one prompt per clip, a random paraphrase of its scene


def episode_texts(entry: dict) -> list[str]:
    """The preset and every caption of the episode's scene; footage from elsewhere keeps its own prompt."""
    try:
        scene = Scene(entry["biome"], entry["time"], entry["weather"], entry["mode"])
    except (KeyError, ValueError):
        return [entry["prompt"]]
    return [scene.prompt, *scene.captions()]


class LatentShards:
    def __init__(self, directory: str | Path, clip_frames: int, progress: bool = True):
        directory = Path(directory)
        manifest = read_listing(directory, FORMAT, ("scaling_factor", "shift_factor", "latent_shape", "frame_rate"),
                                "not a latent shard directory (make one with `python -m matrix_sim encode`)")
        self.scale, self.shift = float(manifest["scaling_factor"]), float(manifest["shift_factor"])
        self.latent_shape = tuple(manifest["latent_shape"])
        self.frame_rate = int(manifest["frame_rate"])
        self.clip_frames = clip_frames
        self.episodes: list[LatentEpisode] = []
        too_short = 0
        for entry in tqdm(manifest["episodes"], desc="loading latents", unit="episode", disable=not progress):
            if entry["frames"] < clip_frames + 1:      # + 1: the action before the clip's first frame
                too_short += 1
                continue
            with np.load(directory / entry["file"], allow_pickle=False) as data:
                latents, actions = data["latents"], data["actions"].astype(np.float32)
            if tuple(latents.shape[1:]) != self.latent_shape:
                raise ValueError(f"{directory / entry['file']}: latents {latents.shape[1:]}, "
                                 f"manifest says {self.latent_shape}")
            self.episodes.append(LatentEpisode(latents, actions, episode_texts(entry)))
        if too_short:
            log.warning("%d episode(s) shorter than %d frames left out", too_short, clip_frames + 1)
        if not self.episodes:
            raise ValueError(f"{directory}: no episode has the {clip_frames + 1} frames a training clip needs")
        starts = np.array([len(e.latents) - clip_frames for e in self.episodes], dtype=np.float64)
        self._weights = starts / starts.sum()        # every clip equally likely, whatever its episode
        self._still: Optional[np.ndarray] = None

    def still_starts(self) -> np.ndarray:
        """(n, 2) int: (episode, first frame) of every clip whose frames are all the same picture."""
        if self._still is None:
            found = []
            for index, episode in enumerate(self.episodes):
                flat = episode.latents.reshape(len(episode.latents), -1)
                same = np.all(flat[1:] == flat[:-1], axis=1).astype(np.int64)    # frame t + 1 repeats frame t
                runs = np.convolve(same, np.ones(self.clip_frames - 1, dtype=np.int64), "valid")
                starts = np.flatnonzero(runs == self.clip_frames - 1)
                starts = starts[starts >= 1]                                     # the action before the clip
                found.append(np.stack([np.full_like(starts, index), starts], axis=1))
            self._still = np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)
        return self._still

    def texts(self) -> list[str]:
        return sorted({t for e in self.episodes for t in e.texts})

    def sample(self, rng: np.random.Generator, batch: int, still_share: float = 0.0) -> ClipBatch:
        """`batch` random clips; each is a still clip (still_starts) with probability still_share."""
        latents, actions, texts = [], [], []
        still = self.still_starts() if still_share > 0 else None
        if still is not None and not len(still):
            raise ValueError("still_share > 0, but no clip of the data holds one picture for all its frames")
        for index in rng.choice(len(self.episodes), size=batch, p=self._weights):
            if still is not None and rng.random() < still_share:
                index, start = (int(v) for v in still[rng.integers(len(still))])
            else:
                start = int(rng.integers(1, len(self.episodes[index].latents) - self.clip_frames + 1))
            episode = self.episodes[index]
            latents.append(episode.latents[start:start + self.clip_frames])
            actions.append(episode.actions[start - 1:start - 1 + self.clip_frames])
            texts.append(episode.texts[int(rng.integers(len(episode.texts)))])
        raw = torch.from_numpy(np.stack(latents)).float()
        return ClipBatch((raw - self.shift) * self.scale, torch.from_numpy(np.stack(actions)), texts)
