"""`python -m matrix_sim record --env NAME`: a registered Gymnasium environment (matrix_sim/world/gym_world.py)
played by its exploration policy, episodes written as shards in the source world's format.

Each episode is one level of the environment ("doom map03"): with --prompt, that level for every episode;
else a seeded shuffle of the source's record_levels, cycled. poses are (x, y, z, yaw) where the env knows them
(zeros elsewhere); meta has index, seed, prompt, env, level and mode ("walk"); no biome, so training reads the
prompt itself as the episode's text. Resumable like `record`: finished episodes are kept.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from tqdm import tqdm

from matrix_sim.actions import ACTION_FIELDS
from matrix_sim.data.policy import play_episode
from matrix_sim.data.shards import FORMAT, Episode, episode_name
from matrix_sim.world.gym_world import GymSource, GymWorld, get_source, policy_for, source_of


def resolve_source(env: Optional[str], prompt: Optional[str]) -> GymSource:
    """The source named by --env, or by the prompt's prefix; both given must agree."""
    by_prompt = source_of(prompt)
    if env is None:
        if by_prompt is None:
            raise ValueError(f"{prompt!r} is not a prompt of a registered environment")
        return by_prompt
    source = get_source(env)
    if prompt is not None:
        source.level_of(prompt)            # refuses a prompt of another source or an unknown level
    return source


def gym_plan(source: GymSource, episodes: int, seed: int, prompt: Optional[str]) -> list[tuple[int, str]]:
    """(env seed, prompt) per episode."""
    rng = np.random.default_rng(seed)
    if prompt is not None:
        prompts = [source.prompt(source.level_of(prompt))] * episodes
    else:
        levels = list(source.record_levels or source.levels)
        prompts = []
        while len(prompts) < episodes:
            prompts += [source.prompt(levels[i]) for i in rng.permutation(len(levels))]
    seeds = rng.integers(0, 2**31 - 1, size=episodes)
    return [(int(s), p) for s, p in zip(seeds, prompts[:episodes])]


def record_gym(out: str | Path, episodes: int, frames: int, seed: int, width: int = 256, height: int = 144,
               env: Optional[str] = None, prompt: Optional[str] = None, progress: bool = True) -> Path:
    from matrix_sim.data.record import add_episode, prepare_out_dir

    if episodes <= 0 or frames <= 0:
        raise ValueError(f"--episodes and --frames must be positive, got {episodes} and {frames}")
    source = resolve_source(env, prompt)
    plan = gym_plan(source, episodes, seed, prompt)
    args = {"episodes": episodes, "frames": frames, "seed": seed, "width": width, "height": height, "prompt": prompt,
            "env": source.name}
    out = prepare_out_dir(out, args)
    manifest = {"format": FORMAT, "width": width, "height": height, "frame_rate": source.frame_rate,
                "action_fields": list(ACTION_FIELDS), "args": args, "episodes": []}
    world = None
    bar = tqdm(total=episodes * frames, unit="frame", desc=f"recording {source.name}", disable=not progress)
    try:
        for index, (env_seed, episode_prompt) in enumerate(plan):
            name = episode_name(index)
            meta = {"index": index, "seed": env_seed, "prompt": episode_prompt, "env": source.name,
                    "level": source.level_of(episode_prompt), "mode": GymWorld.mode}
            world = world or (None if (out / name).exists() else GymWorld(source, width, height))
            add_episode(out, manifest, name, frames, meta, bar,
                        lambda: record_gym_episode(world, episode_prompt, env_seed, frames, meta, bar))
    finally:
        bar.close()
        if world is not None:
            world.close()
    return out


def record_gym_episode(world: GymWorld, prompt: str, seed: int, frames: int, meta: dict, bar=None) -> Episode:
    """The environment's policy plays `frames` frames of the prompt's level."""
    return play_episode(world, prompt, seed, frames, meta, lambda: policy_for(world, seed + 1), bar)


def drive_gym(world: GymWorld, prompt: str, seed: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """`frames` images of the policy in the prompt's level and the actions taken at them (a stream's start)."""
    episode = record_gym_episode(world, prompt, seed, frames, {"prompt": prompt})
    return episode.frames, episode.actions
