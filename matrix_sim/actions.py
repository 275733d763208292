"""The per-frame control vector shared by keyboard, gamepad, the source world and the model.

Convention: frame t+1 is what action t produced.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True)
class Action:
    """One frame of control. Analog values stay analog (a half-pressed trigger is 0.5).

    forward: -1 (back / reverse) .. 1 (forward / throttle)
    turn:    -1 (left) .. 1 (right); steering in drive mode, yaw in walk mode
    strafe:  -1 (left) .. 1 (right); walk mode only
    boost:   0 .. 1; faster top speed (run when walking)
    brake:   0 .. 1; slows the car down hard, stops the walker
    """

    forward: float = 0.0
    turn: float = 0.0
    strafe: float = 0.0
    boost: float = 0.0
    brake: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            lo = 0.0 if f.name in ("boost", "brake") else -1.0
            value = float(getattr(self, f.name))
            if not np.isfinite(value):
                raise ValueError(f"Action.{f.name} must be finite, got {value}")
            # stored as float32 (shards, the model), so hold exactly that value: replays then match bit for bit
            object.__setattr__(self, f.name, float(np.float32(min(1.0, max(lo, value)))))

    def to_array(self) -> np.ndarray:
        return np.array([getattr(self, n) for n in ACTION_FIELDS], dtype=np.float32)

    @classmethod
    def from_array(cls, values) -> "Action":
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.shape[0] != ACTION_DIM:
            raise ValueError(f"an action vector has {ACTION_DIM} values {ACTION_FIELDS}, got {values.shape[0]}")
        return cls(*values.tolist())

    def is_idle(self) -> bool:
        return not np.any(self.to_array())


ACTION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Action))
ACTION_DIM = len(ACTION_FIELDS)
IDLE = Action()
