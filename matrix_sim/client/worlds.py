"""Which World the client plays: the generated world from a checkpoint, or the source world.

The client sees only the World protocol plus the few facts it shows (name, device, frame rate),
collected here once so the rest of the client never asks what kind of world it drives.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from matrix_sim.checkpoints import CheckpointNotFound, find_checkpoint, no_checkpoint_message, require_checkpoint
from matrix_sim.world.base import World

log = logging.getLogger(__name__)
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


def choose_kind(kind: str, checkpoint: Optional[str]) -> tuple[str, Optional[Path]]:
    """Resolve "auto" and check that a model world has a checkpoint; decided before any window opens.
    "auto" plays the model given or the default one; where there is none it plays the source world and logs
    a warning that says why."""
    if kind not in WORLD_KINDS:
        raise WorldUnavailable(f"unknown world {kind!r}; choose one of {list(WORLD_KINDS)}")
    if kind == "engine":
        return "engine", None
    if kind == "auto" and find_checkpoint(checkpoint) is None:
        log.warning("%s; playing the source world (procedural game)", no_checkpoint_message(engine_hint=False))
        return "engine", None
    try:
        return "model", require_checkpoint(checkpoint)
    except CheckpointNotFound as exc:
        raise WorldUnavailable(str(exc)) from None


def open_world(kind: str, checkpoint: Optional[Path], progress: Progress, threads: Optional[int] = None,
               live: bool = False, prompt: Optional[str] = None, runtime: Optional[str] = None) -> WorldHandle:
    """Build the world (slow for a model: runs in the client's world thread behind the loading screen); a model
    runs on device.game_threads torch threads (`threads` if given), set from this thread, which steps it.
    live: the player's real-time play; a model then decodes ahead and hosts its sampler in a process of its
    own where the device gains from them (stream/decode_ahead.py, stream/sampler_process.py), while a scripted
    run keeps every frame to the action its step was given. prompt: an engine world starting on a registered
    Gymnasium environment's prompt ("doom map01") plays that environment (world/gym_world.py). runtime: what runs
    the model (matrix_sim/runtime; None: $MATRIX_SIM_RUNTIME, else auto)."""
    if kind == "engine":
        from matrix_sim.world.gym_world import source_of

        source = source_of(prompt)
        if source is not None:
            from matrix_sim.world.gym_world import GymWorld

            progress(0.0, f"starting {source.name}")
            return WorldHandle(GymWorld(source), "engine", f"{source.name} (CPU)", source.frame_rate)
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
