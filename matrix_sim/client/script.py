"""Action scripts for headless runs: a YAML or JSON list of entries, turned into World ops.

    - {forward: 1, turn: 0.4, frames: 16}   # hold this action for 16 frames (fields default to 0)
    - {prompt: "walk city at night"}        # switch the scene from the next frame on
"""
from __future__ import annotations

from pathlib import Path

from matrix_sim.actions import ACTION_FIELDS, IDLE, Action
from matrix_sim.config import ConfigError, load_yaml


def load_script(path: str | Path) -> list[tuple]:
    data = load_yaml(path)
    if not isinstance(data, list):
        raise ConfigError(f"{path}: an action script is a list of entries like {{forward: 1, frames: 16}}")
    ops = []
    for i, entry in enumerate(data):
        where = f"{path}: entry {i}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping, got {entry!r}")
        if "prompt" in entry:
            if len(entry) != 1:
                raise ConfigError(f"{where}: a prompt entry has only the key 'prompt'")
            ops.append(("prompt", str(entry["prompt"])))
            continue
        unknown = sorted(set(entry) - set(ACTION_FIELDS) - {"frames"})
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {list(ACTION_FIELDS)} + ['frames']")
        frames = entry.get("frames", 1)
        if not isinstance(frames, int) or frames < 1:
            raise ConfigError(f"{where}: frames must be a positive integer, got {frames!r}")
        try:
            action = Action(**{k: v for k, v in entry.items() if k != "frames"})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        ops += [("step", action)] * frames
    return ops


def headless_ops(prompt: str, frames: int, script: list[tuple]) -> list[tuple]:
    """Reset, then the script cut or padded with idle steps so that exactly `frames` frames come out."""
    ops, produced = [("reset", prompt)], 1
    for op in script:
        if produced == frames:
            break
        ops.append(op)
        produced += op[0] == "step"
    return ops + [("step", IDLE)] * (frames - produced)
