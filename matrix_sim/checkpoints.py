"""Which world-model checkpoint a command uses: the folder it is given, else the one default.

The default is config.DEFAULT_CHECKPOINT (checkpoints/tiny-cpu, relative to the working directory, where
the repository keeps the shipped model): what plays is what the command line says, or the shipped model,
and where neither is there the message says what to do.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from matrix_sim.config import DEFAULT_CHECKPOINT

WORLD_MODEL_MARKER = "dit/config.json"     # a world-model checkpoint folder holds its DiT (and its autoencoder)


class CheckpointNotFound(ValueError):
    """No world-model checkpoint where one was asked for; the message says what to do, in one line."""


def is_world_model(path: str | Path) -> bool:
    return (Path(path) / WORLD_MODEL_MARKER).is_file()


def find_checkpoint(checkpoint: str | Path | None = None) -> Optional[Path]:
    """The folder given, or the default when it holds a world model; None when neither is given nor there."""
    if checkpoint:
        return Path(checkpoint)
    return DEFAULT_CHECKPOINT if is_world_model(DEFAULT_CHECKPOINT) else None


def no_checkpoint_message(engine_hint: bool = True) -> str:
    """The one line a command says when no checkpoint was given and the default is not there."""
    return (f"no world model at {DEFAULT_CHECKPOINT}: run from the repository folder, pass --checkpoint DIR"
            + (", or play the source world with --world engine" if engine_hint else ""))


def require_checkpoint(checkpoint: str | Path | None = None, engine_hint: bool = True) -> Path:
    """find_checkpoint, refusing a missing folder with a one-line CheckpointNotFound."""
    path = find_checkpoint(checkpoint)
    if path is None:
        raise CheckpointNotFound(no_checkpoint_message(engine_hint))
    if not path.exists():
        raise CheckpointNotFound(f"checkpoint {path} does not exist")
    return path
