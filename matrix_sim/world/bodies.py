"""What the player moves: a car (drive mode) and a walker (walk mode), as simple kinematics at a fixed dt."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from matrix_sim.actions import Action
from matrix_sim.world.geometry import heading
from matrix_sim.world.settings import DriveSettings, WalkSettings

Blocked = Callable[[float, float], bool]


@dataclass
class Body:
    x: float = 0.0
    z: float = 0.0
    yaw: float = 0.0
    speed: float = 0.0    # signed speed along the heading, m/s

    def _turn(self, delta: float) -> None:
        self.yaw = float((self.yaw + delta + np.pi) % (2 * np.pi) - np.pi)

    def _move(self, dx: float, dz: float, blocked: Blocked) -> None:
        """Move unless the destination is blocked (a prop or the sea); a blocked body stops dead."""
        if blocked(self.x + dx, self.z + dz):
            self.speed = 0.0
            return
        self.x += dx
        self.z += dz


class Car(Body):
    """Throttle, brake and reverse; steering that bites at low speed and softens at high speed."""

    def step(self, action: Action, dt: float, s: DriveSettings, blocked: Blocked) -> None:
        top = s.boost_speed if action.boost > 0.5 else s.max_speed
        accel = s.boost_accel if action.boost > 0.5 else s.accel
        v = self.speed
        if action.forward > 0:
            v += (accel if v >= 0 else s.brake_decel) * action.forward * dt
        elif action.forward < 0:
            v += (s.brake_decel if v > 0 else s.accel) * action.forward * dt
        else:
            v -= np.sign(v) * min(abs(v), s.rolling_decel * dt)
        if action.brake > 0:
            v -= np.sign(v) * min(abs(v), s.brake_decel * action.brake * dt)
        self.speed = float(np.clip(v, -s.reverse_speed, top))
        grip = min(1.0, abs(self.speed) / 3.0) / (1.0 + abs(self.speed) / 25.0)
        self._turn(action.turn * s.max_yaw_rate * grip * np.sign(self.speed) * dt)
        fx, fz = heading(self.yaw)
        self._move(fx * self.speed * dt, fz * self.speed * dt, blocked)


class Walker(Body):
    """Walks or runs forward/back, strafes and turns on the spot; brake stands still."""

    def step(self, action: Action, dt: float, s: WalkSettings, blocked: Blocked) -> None:
        self._turn(action.turn * s.yaw_rate * dt)
        if action.brake > 0.5:
            self.speed = 0.0
            return
        pace = s.run_speed if action.boost > 0.5 else s.speed
        fx, fz = heading(self.yaw)
        rx, rz = -fz, fx    # right-hand side
        dx = (fx * action.forward + rx * action.strafe) * pace * dt
        dz = (fz * action.forward + rz * action.strafe) * pace * dt
        self.speed = pace * action.forward
        self._move(dx, dz, blocked)
