"""`python -m matrix_sim record`: the exploration policy drives the source world, episodes go to shards.

Deterministic (same arguments, same bytes) and resumable: finished episodes are kept and skipped.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from matrix_sim.actions import ACTION_FIELDS
from matrix_sim.data.policy import POLICY_VERSION, record_episode
from matrix_sim.data.shards import (FORMAT, MANIFEST, Episode, episode_name, read_manifest, write_episode,
                                    write_manifest)
from matrix_sim.world.engine import SourceWorld
from matrix_sim.world.scenes import Scene, parse_prompt, scene_catalog

log = logging.getLogger(__name__)


def episode_plan(episodes: int, seed: int, prompt: str | None = None) -> list[tuple[int, Scene]]:
    """(world seed, scene) per episode: a seeded shuffle of every scene, cycled, unless a prompt fixes it."""
    rng = np.random.default_rng(seed)
    if prompt is not None:
        scenes = [parse_prompt(prompt)] * episodes
    else:
        catalog = scene_catalog().scenes
        scenes = []
        while len(scenes) < episodes:
            scenes += [catalog[i] for i in rng.permutation(len(catalog))]
    seeds = rng.integers(0, 2**31 - 1, size=episodes)
    return [(int(s), scene) for s, scene in zip(seeds, scenes[:episodes])]


def prepare_out_dir(out: str | Path, args: dict) -> Path:
    """Create (or reopen for resuming) the output directory; refuse one recorded with other arguments."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create output directory {out}: {exc.strerror}") from None
    if not os.access(out, os.W_OK):
        raise OSError(f"output directory {out} is not writable")
    if (out / MANIFEST).exists():
        previous = read_manifest(out).get("args")
        if previous != args:
            raise ValueError(f"{out} holds a recording made with other arguments {previous}; use another --out")
    return out


def record(out: str | Path, episodes: int, frames: int, seed: int, width: int = 256, height: int = 144,
           prompt: str | None = None, progress: bool = True, env: str | None = None) -> Path:
    """env (or a prompt such as "doom map01"): a registered Gymnasium environment instead (data/gym_record.py)."""
    from matrix_sim.world.gym_world import is_gym_prompt

    if env is not None or is_gym_prompt(prompt):
        from matrix_sim.data.gym_record import record_gym

        return record_gym(out, episodes, frames, seed, width, height, env=env, prompt=prompt, progress=progress)
    if episodes <= 0 or frames <= 0:
        raise ValueError(f"--episodes and --frames must be positive, got {episodes} and {frames}")
    plan = episode_plan(episodes, seed, prompt)
    args = {"episodes": episodes, "frames": frames, "seed": seed, "width": width, "height": height, "prompt": prompt,
            "policy": POLICY_VERSION}
    out = prepare_out_dir(out, args)
    world = SourceWorld(width, height)
    manifest = {"format": FORMAT, "width": width, "height": height, "frame_rate": world.s.frame_rate,
                "action_fields": list(ACTION_FIELDS), "args": args, "episodes": []}
    bar = tqdm(total=episodes * frames, unit="frame", desc="recording", disable=not progress)
    try:
        for index, (world_seed, scene) in enumerate(plan):
            name = episode_name(index)
            meta = {"index": index, "seed": world_seed, "prompt": scene.prompt, "biome": scene.biome,
                    "time": scene.time, "weather": scene.weather, "mode": scene.mode}
            add_episode(out, manifest, name, frames, meta, bar,
                        lambda: record_episode(world, scene.prompt, world_seed, frames, meta, bar))
    finally:
        bar.close()
        world.close()
    return out


def add_episode(out: Path, manifest: dict, name: str, frames: int, meta: dict, bar,
                make: Callable[[], Episode]) -> None:
    """Write the episode `make()` records as `name` (or keep the one a resumed recording already holds) and list
    it in the manifest, rewritten after every episode so an interrupted recording resumes where it stopped."""
    if not (out / name).exists():
        write_episode(out / name, make())
    else:
        log.info("keeping %s (already recorded)", name)
        bar.update(frames)
    manifest["episodes"].append({"file": name, "frames": frames, **meta})
    write_manifest(out, manifest)
