"""Gamepads through SDL's GameController API, opened and closed as they are plugged in and out."""
from __future__ import annotations

import logging

import pygame
from pygame._sdl2 import controller as sdl_controller
from pygame._sdl2.sdl2 import error as SDLError

from matrix_sim.client.bindings import Bindings, PadInput

log = logging.getLogger(__name__)
AXIS_MAX = 32767.0
PAD_ERRORS = (pygame.error, SDLError)      # pygame's own, and the one its SDL2 controller module raises


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
            try:
                pad = sdl_controller.Controller(event.device_index)
            except PAD_ERRORS as exc:       # unplugged again before it opened, or not a controller SDL can read
                log.warning("a gamepad could not be opened (%s): playing on without it", exc)
                return True
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
        for instance, pad in list(self.pads.items()):
            try:
                reading = pad.get_button(item.code) if item.kind == "button" else pad.get_axis(item.code)
            except PAD_ERRORS as exc:       # a pad that died without a removal event: dropped, play goes on
                log.warning("gamepad %s stopped answering (%s): dropped", instance, exc)
                del self.pads[instance]
                continue
            if item.kind == "button":
                total += float(reading)
                continue
            v = item.sign * reading / AXIS_MAX
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
