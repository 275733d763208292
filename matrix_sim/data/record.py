"""`python -m matrix_sim record`: the exploration policy drives the source world, episodes go to shards.

Deterministic (same arguments, same bytes) and resumable: finished episodes are kept and skipped.
"""
from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from matrix_sim.actions import ACTION_FIELDS
from matrix_sim.config import make_folder
from matrix_sim.data.policy import POLICY_VERSION, record_episode
from matrix_sim.data.shards import (FORMAT, MANIFEST, Episode, episode_name, read_manifest, write_episode,
                                    write_manifest)
from matrix_sim.world.engine import SourceWorld
from matrix_sim.world.scenes import Scene, parse_prompt, scene_catalog
from matrix_sim.world.settings import default_world_settings

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
    out = make_folder(out, "output folder")
    if (out / MANIFEST).exists():
        previous = read_manifest(out).get("args")
        if previous != args:
            raise ValueError(f"{out} holds a recording made with other arguments {previous}; use another --out")
    return out


def record(out: str | Path, episodes: int, frames: int, seed: int, width: int = 256, height: int = 144,
           prompt: str | None = None, progress: bool = True, env: str | None = None, workers: int = 1) -> Path:
    """env (or a prompt such as "doom map01"): a registered Gymnasium environment instead (data/gym_record.py).
    workers > 1 records the source world's episodes in that many processes, each with its own GL context; the
    bytes are the same as one process records."""
    from matrix_sim.world.gym_world import is_gym_prompt

    if env is not None or is_gym_prompt(prompt):
        from matrix_sim.data.gym_record import record_gym

        return record_gym(out, episodes, frames, seed, width, height, env=env, prompt=prompt, progress=progress)
    if episodes <= 0 or frames <= 0 or workers <= 0:
        raise ValueError(f"--episodes, --frames and --workers must be positive, got {episodes}, {frames} and {workers}")
    plan = episode_plan(episodes, seed, prompt)
    args = {"episodes": episodes, "frames": frames, "seed": seed, "width": width, "height": height, "prompt": prompt,
            "policy": POLICY_VERSION}
    out = prepare_out_dir(out, args)
    bar = tqdm(total=episodes * frames, unit="frame", desc="recording", disable=not progress)
    world: SourceWorld | None = None
    try:
        todo = [(index, *plan[index]) for index in range(episodes) if not (out / episode_name(index)).exists()]
        if len(todo) < episodes:
            log.info("%s already holds %d of the %d episodes: recording the rest", out, episodes - len(todo), episodes)
        in_processes = workers > 1 and len(todo) > 1
        if in_processes:
            _record_in_processes(out, todo, frames, width, height, workers, bar)
        counted = {index for index, _, _ in todo} if in_processes else set()      # already on the bar
        manifest = {"format": FORMAT, "width": width, "height": height,
                    "frame_rate": default_world_settings().frame_rate, "action_fields": list(ACTION_FIELDS),
                    "args": args, "episodes": []}
        for index, (world_seed, scene) in enumerate(plan):
            meta = _episode_meta(index, world_seed, scene)

            def make(world_seed=world_seed, scene=scene, meta=meta):
                nonlocal world
                world = world or SourceWorld(width, height)
                return record_episode(world, scene.prompt, world_seed, frames, meta, bar)

            add_episode(out, manifest, episode_name(index), frames, meta, None if index in counted else bar, make)
    finally:
        bar.close()
        if world is not None:
            world.close()
    return out


def _episode_meta(index: int, world_seed: int, scene: Scene) -> dict:
    return {"index": index, "seed": world_seed, "prompt": scene.prompt, "biome": scene.biome, "time": scene.time,
            "weather": scene.weather, "mode": scene.mode}


def _record_in_processes(out: Path, todo: list[tuple[int, int, Scene]], frames: int, width: int, height: int,
                         workers: int, bar) -> None:
    """Record the `todo` episodes' files in `workers` spawned processes (a GL context does not survive a fork);
    the caller lists them in the manifest afterwards, in plan order."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(todo)), initializer=_start_worker, initargs=(width, height)) as pool:
        jobs = [(str(out), index, world_seed, scene, frames) for index, world_seed, scene in todo]
        for _ in pool.imap_unordered(_record_one, jobs):
            bar.update(frames)


_worker_world: SourceWorld | None = None


def _start_worker(width: int, height: int) -> None:
    global _worker_world
    _worker_world = SourceWorld(width, height)


def _record_one(job: tuple[str, int, int, Scene, int]) -> int:
    out, index, world_seed, scene, frames = job
    meta = _episode_meta(index, world_seed, scene)
    write_episode(Path(out) / episode_name(index), record_episode(_worker_world, scene.prompt, world_seed, frames, meta))
    return index


def add_episode(out: Path, manifest: dict, name: str, frames: int, meta: dict, bar,
                make: Callable[[], Episode]) -> None:
    """Write the episode `make()` records as `name` (or keep the one a resumed recording already holds, advancing
    `bar` unless it is None) and list it in the manifest, rewritten after every episode so an interrupted
    recording resumes where it stopped."""
    if not (out / name).exists():
        write_episode(out / name, make())
    elif bar is not None:
        bar.update(frames)
    manifest["episodes"].append({"file": name, "frames": frames, **meta})
    write_manifest(out, manifest)
