"""The session log: every call the client made on the World, so a recording can be replayed exactly.

A World is deterministic given (seed, calls), so the sidecar JSON of a recording keeps the seed and the
calls since the last reset before the video starts; `--replay` makes the same calls and gets the same frames.
Ops are tuples: ("reset", prompt), ("prompt", prompt) or ("step", Action); reset and step yield a frame.
"""
from __future__ import annotations

import json
import threading
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from matrix_sim.actions import Action
from matrix_sim.config import read_json

FORMAT = "matrix-sim-session/1"
STEP_PREFIX = '{"step": '                  # a step op's JSON: its action follows
STEP_TEXT = len(STEP_PREFIX)


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
    """Ops in the order the world thread ran them, each with the session frame number it produced.

    A recording rewrites its sidecar every second or two, so each op is kept only as its JSON, made once when it
    is logged, and a sidecar joins slices of those texts instead of serialising the whole session again."""

    def __init__(self, world: str, seed: int, frame_rate: int, checkpoint: Optional[str] = None):
        self.world, self.seed, self.frame_rate = world, seed, frame_rate
        self.checkpoint = portable_checkpoint(checkpoint)
        self._texts: list[str] = []                  # each op's JSON
        self._frame_ops = array("q")                 # frame n -> the index of the op that produced it
        self._resets: list[int] = []                 # the frames resets produced, ascending
        self._scenes: list[tuple[int, str]] = []     # (op index, prompt) of the reset and prompt ops
        self._lock = threading.Lock()

    def add(self, op: tuple) -> Optional[int]:
        """Log an op the world just ran; returns the number of the frame it produced (None for a prompt)."""
        with self._lock:
            index = len(self._texts)
            number = None if op[0] == "prompt" else len(self._frame_ops)
            self._texts.append(json.dumps(op_to_json(op)))
            if op[0] != "step":
                self._scenes.append((index, op[1]))
            if number is not None:
                self._frame_ops.append(index)
                if op[0] == "reset":
                    self._resets.append(number)
            return number

    def sidecar(self, first: int, last: int, video: str) -> str:
        """The JSON that replays session frames first..last: the ops from the last reset at or before `first`
        to the one that produced `last`, the recorded frames' actions, and the prompt each frame showed."""
        with self._lock:
            reset = self._resets[bisect_right(self._resets, first) - 1]
            start, end = self._frame_ops[reset], self._frame_ops[last]
            ops = self._texts[start:end + 1]
            actions = [self._texts[i][STEP_TEXT:-1] if self._texts[i].startswith(STEP_PREFIX) else "null"
                       for i in self._frame_ops[first:last + 1]]
            prompts = self._prompts(start, end, first)
        header = json.dumps({
            "format": FORMAT, "world": self.world, "checkpoint": self.checkpoint, "seed": self.seed,
            "frame_rate": self.frame_rate, "video": video, "frames": len(actions), "skip": first - reset,
            "prompts": prompts}, indent=1)
        return (header[:-2] + ',\n "actions": [\n  ' + ",\n  ".join(actions) + '\n ],\n "ops": [\n  '
                + ",\n  ".join(ops) + "\n ]\n}\n")

    def _prompts(self, start: int, end: int, first: int) -> list[dict]:
        """[{frame, prompt}]: the prompt of the recording's first frame and each change after it (frames
        counted from `first`), from the reset and prompt ops between op indices start and end."""
        shown: list[dict] = []
        for index, prompt in self._scenes[bisect_left(self._scenes, (start,)):]:
            if index > end:
                break
            frame = max(bisect_left(self._frame_ops, index) - first, 0)     # the first frame made under it
            if shown and shown[-1]["frame"] == frame:
                shown.pop()
            if not shown or shown[-1]["prompt"] != prompt:
                shown.append({"frame": frame, "prompt": prompt})
        return shown


@dataclass
class Replay:
    world: str
    checkpoint: Optional[str]
    seed: int
    skip: int          # frames the ops produce before the first recorded one
    frames: int        # recorded frames
    ops: list


REPLAY_KEYS = ("world", "checkpoint", "seed", "skip", "frames", "ops")


def load_replay(path: str | Path) -> Replay:
    path = Path(path)
    if not path.exists():
        raise ValueError(f"session file not found: {path}")
    data = read_json(path, FORMAT)
    missing = [key for key in REPLAY_KEYS if key not in data]
    if missing:
        raise ValueError(f"{path}: the session sidecar lacks {', '.join(missing)}")
    ops = [op_from_json(e, f"{path}: ops[{i}]") for i, e in enumerate(data["ops"])]
    if not ops or ops[0][0] != "reset":
        raise ValueError(f"{path}: ops must start with a reset")
    return Replay(data["world"], data["checkpoint"], int(data["seed"]), int(data["skip"]),
                  int(data["frames"]), ops)
