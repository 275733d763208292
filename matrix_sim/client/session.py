"""The session log: every call the client made on the World, so a recording can be replayed exactly.

A World is deterministic given (seed, calls), so the sidecar JSON of a recording keeps the seed and the
calls since the last reset before the video starts; `--replay` makes the same calls and gets the same frames.
Ops are tuples: ("reset", prompt), ("prompt", prompt) or ("step", Action); reset and step yield a frame.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from matrix_sim.actions import Action

FORMAT = "matrix-sim-session/1"


def portable_checkpoint(checkpoint: Optional[str]) -> Optional[str]:
    """The checkpoint as a sidecar keeps it: relative to the working directory when inside it (as the
    checkpoints/ a run from the repository folder uses), so a recording made in one clone replays in another.
    A replay opens it as every user path is opened, relative to the working directory."""
    if checkpoint is None:
        return None
    path, here = Path(checkpoint).resolve(), Path.cwd().resolve()
    return path.relative_to(here).as_posix() if path.is_relative_to(here) else str(path)


def op_to_json(op: tuple) -> dict:
    kind, value = op
    return {kind: value.to_array().round(6).tolist() if kind == "step" else value}


def op_from_json(entry: dict, where: str) -> tuple:
    if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in ("reset", "prompt", "step"):
        raise ValueError(f"{where}: an op is one of {{reset: PROMPT}}, {{prompt: PROMPT}}, {{step: [5 floats]}}, "
                         f"got {entry!r}")
    kind, value = next(iter(entry.items()))
    return (kind, Action.from_array(value) if kind == "step" else str(value))


class SessionLog:
    """Ops in the order the world thread ran them, each with the session frame number it produced."""

    def __init__(self, world: str, seed: int, frame_rate: int, checkpoint: Optional[str] = None):
        self.world, self.seed, self.frame_rate = world, seed, frame_rate
        self.checkpoint = portable_checkpoint(checkpoint)
        self._ops: list[tuple[tuple, Optional[int]]] = []
        self._frames = 0
        self._lock = threading.Lock()

    def add(self, op: tuple) -> Optional[int]:
        """Log an op the world just ran; returns the number of the frame it produced (None for a prompt)."""
        with self._lock:
            number = None if op[0] == "prompt" else self._frames
            self._frames += number is not None
            self._ops.append((op, number))
            return number

    def sidecar(self, first: int, last: int, video: str) -> dict:
        """What replays session frames first..last: the ops from the last reset at or before `first`."""
        with self._lock:
            ops = list(self._ops)
        start = max(i for i, (op, n) in enumerate(ops) if op[0] == "reset" and n is not None and n <= first)
        kept = [(op, n) for op, n in ops[start:] if n is None or n <= last]
        while kept and kept[-1][1] is None:       # a prompt change after the last recorded frame
            kept.pop()
        current, actions, prompts = None, [], []
        for op, n in kept:
            if op[0] != "step":
                current = op[1]
            if n is not None and n >= first:
                actions.append(op_to_json(op)["step"] if op[0] == "step" else None)
                if not prompts or prompts[-1]["prompt"] != current:
                    prompts.append({"frame": n - first, "prompt": current})
        return {
            "format": FORMAT, "world": self.world, "checkpoint": self.checkpoint, "seed": self.seed,
            "frame_rate": self.frame_rate, "video": video, "frames": len(actions), "skip": first - ops[start][1],
            "actions": actions, "prompts": prompts, "ops": [op_to_json(op) for op, _ in kept],
        }


def write_json_atomic(path: Path, data: dict) -> None:
    """Write via a temporary file so a crash mid-write leaves the previous version, never half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


@dataclass
class Replay:
    world: str
    checkpoint: Optional[str]
    seed: int
    skip: int          # frames the ops produce before the first recorded one
    frames: int        # recorded frames
    ops: list


def load_replay(path: str | Path) -> Replay:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"session file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a matrix-sim session sidecar (format {FORMAT!r})")
    ops = [op_from_json(e, f"{path}: ops[{i}]") for i, e in enumerate(data["ops"])]
    if not ops or ops[0][0] != "reset":
        raise ValueError(f"{path}: ops must start with a reset")
    return Replay(data["world"], data["checkpoint"], int(data["seed"]), int(data["skip"]),
                  int(data["frames"]), ops)
