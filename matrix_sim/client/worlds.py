"""Which World the client plays: the generated world from a checkpoint, or the source world.

The client sees only the World protocol plus the few facts it shows (name, device, frame rate),
collected here once so the rest of the client never asks what kind of world it drives.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from matrix_sim.config import CHECKPOINT_DIR
from matrix_sim.world.base import World

log = logging.getLogger(__name__)
WORLD_MODEL_MARKER = "dit/config.json"     # a world-model checkpoint folder holds its DiT (and its autoencoder)
WORLD_KINDS = ("auto", "engine", "model")
DEFAULT_FRAME_RATE = 16

Progress = Callable[[float, str], None]


class WorldUnavailable(RuntimeError):
    """The requested world cannot be played here; the message says why in one line."""


@dataclass
class WorldHandle:
    world: World
    kind: str                 # "engine" or "model"
    device: str               # shown on the HUD, e.g. "source world (CPU)"
    frame_rate: int
    checkpoint: Optional[str] = None
    threads_before: Optional[int] = None   # torch's thread count before the model's was set: restored on close

    def close(self) -> None:
        close = getattr(self.world, "close", None)
        if close is not None:
            close()
        if self.threads_before is not None:
            import torch

            torch.set_num_threads(self.threads_before)


def find_checkpoint(root: Path = CHECKPOINT_DIR) -> Optional[Path]:
    """The newest world-model checkpoint folder under checkpoints/, or None (an autoencoder alone is not one)."""
    found = sorted((p.parent.parent for p in root.glob(f"**/{WORLD_MODEL_MARKER}")), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def choose_kind(kind: str, checkpoint: Optional[str]) -> tuple[str, Optional[Path]]:
    """Resolve "auto" and check that a model world has a checkpoint; decided before any window opens."""
    if kind not in WORLD_KINDS:
        raise WorldUnavailable(f"unknown world {kind!r}; choose one of {list(WORLD_KINDS)}")
    if kind == "engine":
        return "engine", None
    path = Path(checkpoint) if checkpoint else find_checkpoint()
    if path is not None and not path.exists():
        raise WorldUnavailable(f"checkpoint {path} does not exist")
    if path is None:
        if kind == "model":
            raise WorldUnavailable(f"--world model needs a checkpoint, and there is none in {CHECKPOINT_DIR} "
                                   f"(train one, pass --checkpoint DIR, or play the source world with --world engine)")
        log.info("no world-model checkpoint in %s: playing the source world (procedural game)", CHECKPOINT_DIR)
        return "engine", None
    return "model", path


def open_world(kind: str, checkpoint: Optional[Path], progress: Progress, threads: Optional[int] = None,
               live: bool = False, runtime: Optional[str] = None) -> WorldHandle:
    """Build the world (slow for a model: runs in the client's world thread behind the loading screen); a model
    runs on device.game_threads torch threads (`threads` if given), set from this thread, which steps it.
    live: the player's real-time play; a model then decodes ahead and hosts its sampler in a process of its
    own where the device gains from them (stream/decode_ahead.py, stream/sampler_process.py), while a scripted
    run keeps every frame to the action its step was given. runtime: what runs the model (matrix_sim/runtime;
    None: $MATRIX_SIM_RUNTIME, else auto)."""
    if kind == "engine":
        from matrix_sim.world.engine import SourceWorld

        progress(0.0, "building the source world")
        world = SourceWorld()
        return WorldHandle(world, "engine", "source world (CPU)", int(world.s.frame_rate))
    try:
        import torch

        from matrix_sim.device import cpu_cores, game_threads, pick_device
        from matrix_sim.runtime import default_runtime
        from matrix_sim.stream import WorldModel
    except ImportError as exc:
        raise WorldUnavailable(f"the world model (matrix_sim.stream) is not available in this build: {exc}") from None
    progress(0.0, f"loading the world model from {checkpoint}")
    before, use_threads = torch.get_num_threads(), game_threads(pick_device(), threads)
    if use_threads:             # before the world is built: its sampler process takes this thread's count
        torch.set_num_threads(use_threads)
        log.info("world model on %d torch thread(s) of %d core(s)", use_threads, cpu_cores())
    try:
        world = WorldModel.from_pretrained(checkpoint, progress=progress, start_from_source=True,
                                           decode_ahead=live, sampler_process=live,
                                           runtime=runtime or default_runtime())
    except BaseException:
        torch.set_num_threads(before)
        raise
    device = getattr(world, "device", "cpu")
    return WorldHandle(world, "model", f"world model ({device})",
                       int(getattr(world, "frame_rate", DEFAULT_FRAME_RATE)), str(checkpoint),
                       before if use_threads else None)
