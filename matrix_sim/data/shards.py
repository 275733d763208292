"""The shard format: one .npz per episode plus a manifest.json, written byte-for-byte reproducibly.

Layout of DIR (also what `train` and `encode` read, so anyone can bring their own footage):
  manifest.json          {"format", "width", "height", "frame_rate", "action_fields", "args", "episodes": [...]}
  episode_000000.npz     frames (F, H, W, 3) uint8, actions (F, A) float32, poses (F, 4) float32 (x, y, z, yaw),
                         meta (JSON string: index, seed, prompt, biome, time, weather, mode)
Convention: frames[t + 1] is what actions[t] produced; actions[F - 1] was taken after the last frame.
"""
from __future__ import annotations

import io
import json
import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matrix_sim.config import read_json, write_atomic

FORMAT = "matrix-sim-shards/1"
MANIFEST = "manifest.json"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)     # zip entries carry no wall-clock time: same input, same bytes
# np.load parses each array's header with ast.literal_eval, and Python 3.11's AST constructor is not thread-safe:
# threads parsing at once can fail with "SystemError: AST constructor recursion depth mismatch" (CPython
# gh-106905; it happens in eval/probe.py's loading pool). Parsing takes this lock; inflating,
# the slow part, does not.
_NPY_PARSE = threading.Lock()
_EPISODE_ARRAYS = ("frames", "actions", "poses", "meta")


@dataclass
class Episode:
    frames: np.ndarray
    actions: np.ndarray
    poses: np.ndarray
    meta: dict

    def __len__(self) -> int:
        return len(self.frames)


def episode_name(index: int) -> str:
    return f"episode_{index:06d}.npz"


def write_episode(path: str | Path, episode: Episode, frames_key: str = "frames") -> None:
    """Write atomically (temp file, then rename) so an interrupted recording never leaves half a shard.

    frames_key names the per-frame array: "frames" for images, "latents" for encoded shards.
    """
    path = Path(path)
    arrays = {frames_key: episode.frames, "actions": episode.actions, "poses": episode.poses,
              "meta": np.array(json.dumps(episode.meta, sort_keys=True))}
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            zf.writestr(info, buf.getvalue(), compresslevel=1)
    os.replace(tmp, path)


def read_episode(path: str | Path) -> Episode:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"episode shard not found: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            arrays = {name: _read_array(zf, name) for name in _EPISODE_ARRAYS}
        return Episode(frames=arrays["frames"], actions=arrays["actions"], poses=arrays["poses"],
                       meta=json.loads(arrays["meta"].item()))
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a matrix-sim episode shard ({exc})") from None


def _read_array(zf: zipfile.ZipFile, name: str) -> np.ndarray:
    """One array of a shard; safe to call from several threads at once (see _NPY_PARSE)."""
    raw = zf.read(f"{name}.npy")              # inflating releases the GIL: loading threads overlap here
    with _NPY_PARSE:
        return np.load(io.BytesIO(raw), allow_pickle=False)


def write_manifest(directory: str | Path, manifest: dict) -> None:
    path = Path(directory) / MANIFEST
    write_atomic(path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def read_manifest(directory: str | Path, keys: tuple[str, ...] = ()) -> dict:
    """A recorded data directory's manifest, checked for its episodes and `keys`."""
    return read_listing(directory, FORMAT, keys, "not a recorded data directory")


def read_listing(directory: str | Path, form: str, keys: tuple[str, ...], what: str) -> dict:
    """A shard directory's manifest of format `form`, checked for `keys` and a list of {"file", "frames", ...}
    episodes, so footage brought from elsewhere fails with one line naming what is missing; `what` says what
    a directory without a manifest is not."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no {MANIFEST} in {directory}: {what}")
    manifest = read_json(path, form)
    missing = [key for key in (*keys, "episodes") if key not in manifest]
    if missing:
        raise ValueError(f"{path}: the manifest lacks {', '.join(missing)}")
    episodes = manifest["episodes"]
    if not isinstance(episodes, list) or not all(isinstance(e, dict) and {"file", "frames"} <= e.keys()
                                                 for e in episodes):
        raise ValueError(f'{path}: "episodes" must be a list of entries with "file" and "frames"')
    return manifest


def iter_episodes(directory: str | Path):
    """Every episode listed in the manifest, in order."""
    manifest = read_manifest(directory)
    for entry in manifest["episodes"]:
        yield read_episode(Path(directory) / entry["file"])
