"""The World protocol that the source world and the generated world both implement."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, runtime_checkable

import numpy as np

from matrix_sim.actions import Action


@dataclass
class Frame:
    """One displayed frame and what the client or recorder may want to know about it."""

    image: np.ndarray                 # (H, W, 3) uint8, top row first
    index: int                        # frames since reset
    prompt: str
    mode: str                         # "drive" or "walk"
    action: Optional[Action] = None   # the action that produced this frame (None right after reset)
    pose: Optional[np.ndarray] = None # (x, y, z, yaw) of the car or walker, where the world knows it
    speed: float = 0.0


@runtime_checkable
class World(Protocol):
    def reset(self, prompt: str, seed: int) -> Frame: ...

    def step(self, action: Action) -> Frame: ...

    def set_prompt(self, prompt: str) -> None: ...
