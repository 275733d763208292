"""Keyboard and gamepad events -> the current Action and the commands the player gave.

Held keys are tracked from events (not pygame.key.get_pressed) so injected events behave like real ones.
"""
from __future__ import annotations

import pygame

from matrix_sim.actions import ACTION_FIELDS, Action
from matrix_sim.client.bindings import Controls, PadInput
from matrix_sim.client.gamepad import Gamepads

GLOBAL_COMMANDS = ("screenshot", "fullscreen")   # in-game commands that also work while the menu is open


class Input:
    def __init__(self, controls: Controls):
        self.controls = controls
        self.held: set[int] = set()
        self.gamepads = Gamepads(controls.gamepad)

    def handle(self, event: pygame.event.Event, in_menu: bool) -> str | None:
        """Track the event; return the command it gives in this context ("record", "up", ...) or None."""
        if event.type == pygame.KEYDOWN:
            self.held.add(event.key)
            return _command(self.controls.keyboard, event.key, in_menu)
        if event.type == pygame.KEYUP:
            self.held.discard(event.key)
        elif event.type == pygame.CONTROLLERBUTTONDOWN:
            return _command(self.controls.gamepad, PadInput("button", event.button), in_menu)
        elif event.type == pygame.WINDOWFOCUSLOST:
            self.held.clear()   # a key released in another window never sends KEYUP here
        else:
            self.gamepads.handle(event)
        return None

    def action(self) -> Action:
        """Keyboard and gamepad summed per field; Action clamps the result."""
        kb, pad = self.controls.keyboard.actions, self.controls.gamepad.actions
        values = {}
        for name in ACTION_FIELDS:
            pos, neg = kb.get(name, ((), ()))
            value = sum(k in self.held for k in pos) - sum(k in self.held for k in neg)
            pos, neg = pad.get(name, ((), ()))
            value += sum(self.gamepads.value(p) for p in pos) - sum(self.gamepads.value(p) for p in neg)
            values[name] = value
        return Action(**values)

    @property
    def devices(self) -> str:
        return ", ".join(["keyboard"] + [f"gamepad: {n}" for n in self.gamepads.names])

    def close(self) -> None:
        self.gamepads.close()


def _command(bindings, code, in_menu: bool) -> str | None:
    if not in_menu:
        return bindings.commands.get(code)
    name = bindings.menu.get(code)
    return name if name is not None or bindings.commands.get(code) not in GLOBAL_COMMANDS else bindings.commands[code]
