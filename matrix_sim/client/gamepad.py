"""Gamepads through SDL's GameController API, opened and closed as they are plugged in and out."""
from __future__ import annotations

import logging

import pygame
from pygame._sdl2 import controller as sdl_controller

from matrix_sim.client.bindings import Bindings, PadInput

log = logging.getLogger(__name__)
AXIS_MAX = 32767.0


class Gamepads:
    """The connected controllers; reads analog inputs as floats with the configured deadzone."""

    def __init__(self, bindings: Bindings):
        self.bindings = bindings
        if not sdl_controller.get_init():
            sdl_controller.init()
        self.pads: dict[int, sdl_controller.Controller] = {}

    def handle(self, event: pygame.event.Event) -> bool:
        """Open or close a controller on a hot-plug event; True if the event was one."""
        if event.type == pygame.CONTROLLERDEVICEADDED:
            pad = sdl_controller.Controller(event.device_index)
            instance = pad.as_joystick().get_instance_id()
            if instance not in self.pads:
                self.pads[instance] = pad
                log.info("gamepad connected: %s", pad.name)
            return True
        if event.type == pygame.CONTROLLERDEVICEREMOVED:
            pad = self.pads.pop(event.instance_id, None)
            if pad is not None:
                log.info("gamepad disconnected: %s", pad.name)
                pad.quit()
            return True
        return False

    def value(self, item: PadInput) -> float:
        """The summed reading of one input over all pads: 0..1 (a stick half-axis in its direction)."""
        total = 0.0
        for pad in self.pads.values():
            if item.kind == "button":
                total += float(pad.get_button(item.code))
                continue
            v = item.sign * pad.get_axis(item.code) / AXIS_MAX
            if v > self.bindings.deadzone:
                total += (v - self.bindings.deadzone) / (1.0 - self.bindings.deadzone)
        return total

    @property
    def names(self) -> list[str]:
        return [pad.name for pad in self.pads.values()]

    def close(self) -> None:
        for pad in self.pads.values():
            pad.quit()
        self.pads.clear()
        sdl_controller.quit()      # pygame.quit() does not reset this module's state; the next Gamepads re-inits
