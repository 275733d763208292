"""Keyboard and gamepad bindings (matrix_sim/resources/controls.yaml, or --controls FILE), loaded into dataclasses
and resolved to codes.

Every name is checked when the file loads, so a typo is one clear error at start, not a dead key in game.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

import pygame

from matrix_sim.actions import ACTION_FIELDS
from matrix_sim.config import ConfigError, from_dict, load_yaml, resource

CONTROLS_PATH = resource("controls.yaml")   # the default bindings; --controls FILE gives others
BUTTONS = {"a": pygame.CONTROLLER_BUTTON_A, "b": pygame.CONTROLLER_BUTTON_B, "x": pygame.CONTROLLER_BUTTON_X,
           "y": pygame.CONTROLLER_BUTTON_Y, "back": pygame.CONTROLLER_BUTTON_BACK,
           "guide": pygame.CONTROLLER_BUTTON_GUIDE, "start": pygame.CONTROLLER_BUTTON_START,
           "leftstick": pygame.CONTROLLER_BUTTON_LEFTSTICK, "rightstick": pygame.CONTROLLER_BUTTON_RIGHTSTICK,
           "leftshoulder": pygame.CONTROLLER_BUTTON_LEFTSHOULDER,
           "rightshoulder": pygame.CONTROLLER_BUTTON_RIGHTSHOULDER, "dpup": pygame.CONTROLLER_BUTTON_DPAD_UP,
           "dpdown": pygame.CONTROLLER_BUTTON_DPAD_DOWN, "dpleft": pygame.CONTROLLER_BUTTON_DPAD_LEFT,
           "dpright": pygame.CONTROLLER_BUTTON_DPAD_RIGHT}
STICKS = {"leftx": pygame.CONTROLLER_AXIS_LEFTX, "lefty": pygame.CONTROLLER_AXIS_LEFTY,
          "rightx": pygame.CONTROLLER_AXIS_RIGHTX, "righty": pygame.CONTROLLER_AXIS_RIGHTY}
TRIGGERS = {"lefttrigger": pygame.CONTROLLER_AXIS_TRIGGERLEFT, "righttrigger": pygame.CONTROLLER_AXIS_TRIGGERRIGHT}


@dataclass(frozen=True)
class AxisKeys:
    positive: list = field(default_factory=list)
    negative: list = field(default_factory=list)


@dataclass(frozen=True)
class CommandKeys:
    menu: list
    record: list
    screenshot: list
    reset: list
    mode: list
    hud: list
    fullscreen: list
    upscaler: list


@dataclass(frozen=True)
class MenuKeys:
    up: list
    down: list
    select: list
    back: list


@dataclass(frozen=True)
class DeviceKeys:
    actions: dict
    commands: dict
    menu: dict
    deadzone: float = 0.0


@dataclass(frozen=True)
class PadInput:
    """One gamepad input: a button (0/1), a trigger (0..1) or one half of a stick axis (sign +1 or -1)."""

    kind: str      # "button" | "axis"
    code: int
    sign: int = 1


@dataclass(frozen=True)
class Bindings:
    """One device's bindings resolved to codes: key codes for the keyboard, PadInputs for the gamepad."""

    actions: dict          # action field -> (positive inputs, negative inputs)
    commands: dict         # input -> in-game command name
    menu: dict             # input -> menu command name
    deadzone: float = 0.0


@dataclass(frozen=True)
class Controls:
    keyboard: Bindings
    gamepad: Bindings


def key_code(name: str) -> int:
    if not pygame.display.get_init():
        pygame.display.init()      # key names are SDL's; it needs the video subsystem
    try:
        return pygame.key.key_code(name)
    except ValueError:
        raise ValueError(f"unknown key {name!r} (pygame key names look like 'w', 'left shift', 'f12', "
                         f"'escape', 'return')") from None


def pad_input(name: str) -> PadInput:
    if name in BUTTONS:
        return PadInput("button", BUTTONS[name])
    if name in TRIGGERS:
        return PadInput("axis", TRIGGERS[name])
    if name[:-1] in STICKS and name[-1] in "+-":
        return PadInput("axis", STICKS[name[:-1]], 1 if name[-1] == "+" else -1)
    known = sorted(BUTTONS) + sorted(TRIGGERS) + [f"{s}{sign}" for s in STICKS for sign in "+-"]
    raise ValueError(f"unknown gamepad input {name!r}; known: {', '.join(known)}")


def _names(value, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of names, got {value!r}")
    return value


def _resolve(device: DeviceKeys, resolve: Callable[[str], object], where: str) -> Bindings:
    def codes(names, at: str) -> tuple:
        try:
            return tuple(resolve(n) for n in _names(names, at))
        except ValueError as exc:
            raise ConfigError(f"{at}: {exc}") from None

    def table(keys, section: str) -> dict:
        out = {}
        for f in fields(keys):
            for name, code in zip(getattr(keys, f.name), codes(getattr(keys, f.name), f"{where}.{section}.{f.name}")):
                if code in out:
                    raise ConfigError(f"{where}.{section}: {name!r} is bound to both {out[code]!r} and {f.name!r}")
                out[code] = f.name
        return out

    if not isinstance(device.actions, dict):
        raise ConfigError(f"{where}.actions: expected a mapping of {list(ACTION_FIELDS)}")
    unknown = sorted(set(device.actions) - set(ACTION_FIELDS))
    if unknown:
        raise ConfigError(f"{where}.actions: unknown action field(s) {unknown}; known: {list(ACTION_FIELDS)}")
    actions = {}
    for name, data in device.actions.items():
        axis = from_dict(AxisKeys, data, f"{where}.actions.{name}")
        actions[name] = (codes(axis.positive, f"{where}.actions.{name}.positive"),
                         codes(axis.negative, f"{where}.actions.{name}.negative"))
    commands = table(from_dict(CommandKeys, device.commands, f"{where}.commands"), "commands")
    menu = table(from_dict(MenuKeys, device.menu, f"{where}.menu"), "menu")
    if not 0.0 <= device.deadzone < 1.0:
        raise ConfigError(f"{where}.deadzone: must be in [0, 1), got {device.deadzone}")
    return Bindings(actions, commands, menu, float(device.deadzone))


def load_controls(path: str | Path = CONTROLS_PATH) -> Controls:
    """Read and validate the bindings; ConfigError names the file, the entry and the bad name."""
    data = load_yaml(path)
    if not isinstance(data, dict) or set(data) != {"keyboard", "gamepad"}:
        raise ConfigError(f"{path}: expected exactly the sections 'keyboard' and 'gamepad'")
    keyboard = from_dict(DeviceKeys, data["keyboard"], f"{path}: keyboard")
    if keyboard.deadzone:
        raise ConfigError(f"{path}: keyboard: a deadzone applies to the gamepad only")
    gamepad = from_dict(DeviceKeys, data["gamepad"], f"{path}: gamepad")
    return Controls(_resolve(keyboard, key_code, f"{path}: keyboard"), _resolve(gamepad, pad_input, f"{path}: gamepad"))
