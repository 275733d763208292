"""Bindings, action scripts and session sidecars: the client's file formats and their error messages."""
import json
import time
import os
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")

import pygame
import pytest
import yaml

from matrix_sim.actions import IDLE, Action
from matrix_sim.client.bindings import CONTROLS_PATH, PadInput, load_controls
from matrix_sim.client.script import headless_ops, load_script
from matrix_sim.client.session import SessionLog, load_replay
from matrix_sim.config import ConfigError, load_yaml, write_atomic


def _write_controls(tmp_path, edit):
    data = load_yaml(CONTROLS_PATH)
    edit(data)
    path = tmp_path / "controls.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_default_controls_resolve():
    c = load_controls()
    assert c.keyboard.commands[pygame.K_ESCAPE] == "menu"
    assert c.keyboard.commands[pygame.K_F12] == "screenshot"
    assert c.keyboard.commands[pygame.K_BACKSPACE] == "reset"
    assert pygame.K_w in c.keyboard.actions["forward"][0]
    assert c.gamepad.commands[PadInput("button", pygame.CONTROLLER_BUTTON_START)] == "menu"
    assert c.gamepad.commands[PadInput("button", pygame.CONTROLLER_BUTTON_BACK)] == "reset"
    assert PadInput("axis", pygame.CONTROLLER_AXIS_LEFTX, -1) in c.gamepad.actions["turn"][1]


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["keyboard"]["commands"].update(record=["nokey"]),
     "keyboard.commands.record: unknown key 'nokey'"),
    (lambda d: d["gamepad"]["menu"].update(select=["z"]), "gamepad.menu.select: unknown gamepad input 'z'"),
    (lambda d: d["gamepad"]["actions"]["turn"].update(positive=["leftx"]), "unknown gamepad input 'leftx'"),
    (lambda d: d["keyboard"]["actions"].update(jump={"positive": ["j"]}), "unknown action field(s) ['jump']"),
    (lambda d: d["keyboard"]["commands"].update(hud=["r"]), "'r' is bound to both 'record' and 'hud'"),
    (lambda d: d["keyboard"]["commands"].pop("menu"), "missing key(s) ['menu']"),
    (lambda d: d["gamepad"].update(deadzone=1.5), "deadzone: must be in [0, 1)"),
    (lambda d: d["gamepad"].update(deadzone="wide"), "gamepad.deadzone: expected a number, got 'wide'"),
])
def test_bad_bindings_are_one_clear_error(tmp_path, edit, message):
    path = _write_controls(tmp_path, edit)
    with pytest.raises(ConfigError) as err:
        load_controls(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_action_script_and_headless_ops(tmp_path):
    path = tmp_path / "script.yaml"
    path.write_text("- {forward: 1, turn: 0.5, frames: 3}\n- {prompt: walk city at night}\n- {brake: 1}\n")
    ops = load_script(path)
    assert ops == [("step", Action(1, 0.5))] * 3 + [("prompt", "walk city at night"), ("step", Action(brake=1))]
    run = headless_ops("drive desert at sunset", 7, ops)
    assert run[0] == ("reset", "drive desert at sunset")
    assert sum(op[0] in ("reset", "step") for op in run) == 7 and run[-1] == ("step", IDLE)
    assert sum(op[0] != "prompt" for op in headless_ops("x", 2, ops)) == 2
    path.write_text("- {forwrd: 1}\n")
    with pytest.raises(ConfigError, match=r"entry 0: unknown key\(s\) \['forwrd'\]"):
        load_script(path)


def test_sidecar_keeps_what_replays_the_recorded_frames(tmp_path):
    log = SessionLog("engine", 3, 16)
    log.add(("reset", "drive desert at sunset"))           # frame 0
    log.add(("step", Action(1)))                           # frame 1
    log.add(("reset", "drive desert at sunset"))           # frame 2: the Backspace reset
    log.add(("step", Action(1, 0.5)))                      # frame 3 (recording starts here)
    log.add(("prompt", "walk city at night"))
    log.add(("step", Action(0, -1)))                       # frame 4
    log.add(("step", Action()))                            # frame 5 (not recorded)
    side = json.loads(log.sidecar(3, 4, "v.mp4"))
    assert side["skip"] == 1 and side["frames"] == 2
    assert side["actions"] == [[1, 0.5, 0, 0, 0], [0, -1, 0, 0, 0]]
    assert side["prompts"] == [{"frame": 0, "prompt": "drive desert at sunset"},
                               {"frame": 1, "prompt": "walk city at night"}]
    write_atomic(tmp_path / "s.json", log.sidecar(3, 4, "v.mp4"))
    replay = load_replay(tmp_path / "s.json")
    assert replay.seed == 3 and replay.ops[0] == ("reset", "drive desert at sunset") and len(replay.ops) == 4
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="format 'other', expected 'matrix-sim-session"):
        load_replay(tmp_path / "bad.json")
    cut = {k: v for k, v in json.loads(log.sidecar(3, 4, "v.mp4")).items() if k not in ("ops", "skip")}
    (tmp_path / "cut.json").write_text(json.dumps(cut))
    with pytest.raises(ValueError, match="lacks skip, ops"):
        load_replay(tmp_path / "cut.json")
    with pytest.raises(ValueError, match="cannot read .*: Is a directory"):
        load_replay(tmp_path)                                    # a folder given for the sidecar


def test_sidecar_names_the_prompt_each_frame_showed_and_stays_cheap_after_an_hour():
    log = SessionLog("model", 0, 16)
    log.add(("reset", "drive desert at sunset"))           # frame 0
    log.add(("prompt", "walk city at night"))
    log.add(("step", Action(1)))                           # frame 1 (recording starts here)
    log.add(("prompt", "drive forest by day"))
    log.add(("prompt", "walk city at night"))              # changed back before any frame showed the other
    log.add(("step", Action(1)))                           # frame 2
    log.add(("prompt", "drive forest by day"))
    log.add(("step", Action(0, 1)))                        # frame 3
    side = json.loads(log.sidecar(1, 3, "v.mp4"))
    assert side["prompts"] == [{"frame": 0, "prompt": "walk city at night"},
                               {"frame": 2, "prompt": "drive forest by day"}]
    assert side["skip"] == 1 and side["actions"] == [[1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 1, 0, 0, 0]]
    for _ in range(16 * 3600):                             # an hour at 16 frames/s
        log.add(("step", Action(1, 0.5)))
    started = time.perf_counter()
    text = log.sidecar(1, 16 * 3600, "v.mp4")
    assert time.perf_counter() - started < 0.25            # rewritten every second or two while recording
    side = json.loads(text)
    assert side["frames"] == 16 * 3600 and side["actions"][-1] == [1, 0.5, 0, 0, 0]
    assert len(side["ops"]) == 16 * 3600 + 5


def test_sidecar_checkpoint_replays_from_any_clone(tmp_path, monkeypatch):
    clone = tmp_path / "clone"
    clone.mkdir()
    monkeypatch.chdir(clone)
    log = SessionLog("model", 0, 16, str(clone / "checkpoints" / "tiny-cpu"))
    log.add(("reset", "drive desert at sunset"))
    write_atomic(tmp_path / "s.json", log.sidecar(0, 0, "v.mp4"))
    assert json.loads((tmp_path / "s.json").read_text())["checkpoint"] == "checkpoints/tiny-cpu"
    assert load_replay(tmp_path / "s.json").checkpoint == "checkpoints/tiny-cpu"   # opened from the working folder
    outside = str(tmp_path / "elsewhere")
    assert SessionLog("model", 0, 16, outside).checkpoint == outside       # outside the working folder: kept whole



def test_a_sidecar_write_that_fails_leaves_the_previous_sidecar_whole(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    write_atomic(path, '{"frames": 1}')
    real_write = Path.write_text

    def disk_full_halfway(self, text):
        real_write(self, text[:3])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full_halfway)
    with pytest.raises(OSError, match="No space"):
        write_atomic(path, '{"frames": 2}')
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"frames": 1}
    assert os.listdir(tmp_path) == ["s.json"]               # no half-written temporary file left behind
