"""The real game loop in an offscreen SDL window (EGL), driven by injected key events and a virtual gamepad.

Pixels and ffprobe decide: the HUD and menu show, steering changes the picture, recordings are valid mp4s
of the right length that survive exceptions and kill signals, and a replay reproduces the frames.
"""
import ctypes
import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

os.environ["SDL_VIDEODRIVER"] = "offscreen"
os.environ["SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS"] = "1"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import av
import numpy as np
import pygame
import pytest

from matrix_sim.client import worker as worker_module
from matrix_sim.client.app import main
from matrix_sim.client.game import Game
from matrix_sim.client.headless import run_headless
from matrix_sim.client.hud import MARGIN, PANEL_W
from matrix_sim.client.options import Options
from matrix_sim.client.recorder import Recorder
from matrix_sim.client.worlds import open_world

from wm_helpers import TINY_STREAM, make_bundle

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 20.0
LOAD_TIMEOUT_S = 120.0     # opening a world model may export and race its runtimes first: slow on a busy machine
HUD_BOX = (slice(MARGIN, MARGIN + 150), slice(MARGIN, MARGIN + PANEL_W))   # rows, columns of the status panel
CENTRE = (slice(300, 420), slice(400, 880))


@contextmanager
def game(tmp_path, world="engine", **kw):
    g = Game(Options(world=world, recordings_dir=tmp_path / "rec", screenshots_dir=tmp_path / "shots",
                     progress=False, **kw))
    g.start()
    try:
        yield g
    finally:
        g.close()


def frames(g, n):
    """Tick the loop until n more world frames arrived (and were drawn)."""
    start = g.latest.number if g.latest else -1
    deadline = time.monotonic() + (TIMEOUT_S if g.worker.ready.is_set() else LOAD_TIMEOUT_S)
    while (g.latest.number if g.latest else -1) < start + n:
        assert time.monotonic() < deadline, "the world stopped producing frames"
        g.tick()
    g.tick()
    return g.latest


def press(g, key, down=True, ticks=1):
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN if down else pygame.KEYUP, key=key, mod=0, unicode="",
                                         scancode=0))
    for _ in range(ticks):
        g.tick()


def tap(g, *keys):
    for key in keys:
        press(g, key)
        press(g, key, down=False)


def probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=nb_read_frames,width,height,r_frame_rate", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True)
    s = json.loads(out.stdout)["streams"][0]
    return int(s["nb_read_frames"]), s["r_frame_rate"], (s["width"], s["height"])


def decode(path):
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(np.int16)


def test_hud_shows_hides_and_screenshot(tmp_path):
    with game(tmp_path) as g:
        frames(g, 2)
        with_hud = g.screen_pixels()
        assert with_hud.shape == (720, 1280, 3)
        tap(g, pygame.K_h)
        frames(g, 1)
        without = g.screen_pixels()
        hud_diff = np.abs(with_hud[HUD_BOX].astype(int) - without[HUD_BOX]).mean()
        rest_diff = np.abs(with_hud[CENTRE].astype(int) - without[CENTRE]).mean()
        assert hud_diff > 20 and rest_diff < 2, (hud_diff, rest_diff)
        tap(g, pygame.K_F12)
        shot = pygame.image.load(str(g.last_screenshot))
        assert shot.get_size() == (1280, 720)
        assert np.abs(pygame.surfarray.array3d(shot).swapaxes(0, 1).astype(int) - without).mean() < 1


def test_menu_opens_and_changes_the_prompt(tmp_path):
    with game(tmp_path, prompt="drive desert at sunset") as g:
        frames(g, 2)
        before = g.screen_pixels()
        tap(g, pygame.K_ESCAPE)
        assert g.menu.open and g.live.paused
        g.tick()
        assert np.abs(g.screen_pixels()[CENTRE].astype(int) - before[CENTRE]).mean() > 20
        tap(g, pygame.K_DOWN, pygame.K_RETURN)              # Scene presets, at the current prompt
        assert g.menu.page == "presets"
        target = g.menu.presets[g.menu.index + 1]
        tap(g, pygame.K_DOWN, pygame.K_RETURN)
        assert not g.menu.open
        assert frames(g, 2).frame.prompt == target
        tap(g, pygame.K_ESCAPE, pygame.K_DOWN, pygame.K_DOWN, pygame.K_RETURN)   # Type a prompt
        assert g.menu.page == "text"
        for text in ("walk city ", "at night"):
            pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, text=text))
        tap(g, pygame.K_RETURN)
        latest = frames(g, 2).frame
        assert (latest.prompt, latest.mode) == ("walk city at night", "walk")
        said = []
        g.hud_state.say = lambda text, now, say=g.hud_state.say: (said.append(text), say(text, now))
        tap(g, pygame.K_TAB)                                           # the mode key: the same scene, driven
        latest = frames(g, 2).frame
        assert (latest.prompt, latest.mode) == ("drive city at night", "drive")
        assert said == ["mode: drive", "scene: drive city at night"]
        tap(g, pygame.K_ESCAPE, pygame.K_DOWN, pygame.K_DOWN, pygame.K_DOWN)
        assert g.menu.items()[g.menu.index] == "Switch to walk"
        tap(g, pygame.K_RETURN)                                        # the menu's switch: it stays open
        assert g.menu.open and g.menu.items()[g.menu.index] == "Switch to drive"
        tap(g, pygame.K_ESCAPE)
        assert (frames(g, 2).frame.prompt, g.latest.frame.mode) == ("walk city at night", "walk")
        tap(g, pygame.K_ESCAPE, pygame.K_DOWN, pygame.K_DOWN, pygame.K_RETURN)
        pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, text="walk on the moon"))
        tap(g, pygame.K_RETURN)
        assert frames(g, 2).frame.prompt == "walk city at night"      # a prompt the world cannot play is refused
        assert "does not say which biome or time of day" in g.hud_state.notice
        night = g.screen_pixels()
        tap(g, pygame.K_ESCAPE, pygame.K_DOWN, pygame.K_DOWN, pygame.K_RETURN)
        pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, text="a car by the sea at dusk"))
        tap(g, pygame.K_RETURN)                                        # free text that names every part
        latest = frames(g, 2).frame
        assert (latest.prompt, latest.mode) == ("a car by the sea at dusk", "drive")
        assert g.hud_state.notice == "scene: drive coast at sunset"
        assert g.screen_pixels()[CENTRE].mean() > night[CENTRE].mean() + 10          # the dusk, not the night
        tap(g, pygame.K_ESCAPE, pygame.K_DOWN, pygame.K_DOWN, pygame.K_DOWN, pygame.K_DOWN, pygame.K_RETURN)
        assert not g.running                                          # Quit


def _drive(g, keys, n):
    for key in keys:
        press(g, key)
    end = frames(g, n)
    for key in keys:
        press(g, key, down=False)
    return end.frame


def test_steering_changes_the_image_and_backspace_resets(tmp_path):
    with game(tmp_path) as g:
        start = frames(g, 1).frame
        straight = _drive(g, [pygame.K_w], 10)
        tap(g, pygame.K_BACKSPACE)
        again = frames(g, 1).frame
        assert again.index < straight.index and np.abs(again.image.astype(int) - start.image).mean() < 1   # restarted
        steered = _drive(g, [pygame.K_w, pygame.K_d], 10)
        assert abs(float(steered.pose[3] - straight.pose[3])) > 0.05
        assert np.abs(steered.image.astype(int) - straight.image).mean() > 5


def test_live_play_of_the_world_model_decodes_ahead_and_follows_the_keys(tmp_path):
    """The player's game on a (tiny, random) world model: the DiT and the decoder overlap on their own threads,
    the sampler runs in a process of its own, held keys reach the frames, and the picture is the model's,
    upscaled; closing the game ends the sampler's process."""
    from matrix_sim.actions import Action
    from matrix_sim.stream.sampler_process import SamplerProcess

    bundle = make_bundle(tmp_path / "bundle", stream={**TINY_STREAM, "block_frames": 2}, lively=True)
    with game(tmp_path, world="model", checkpoint=str(bundle), prompt="drive desert by day") as g:
        frames(g, 2)
        world = g.worker.handle.world
        assert world._ahead is not None and isinstance(world.sampler, SamplerProcess) and world.sampler.alive
        assert {"dit", "decode"} <= {t.name.split("_")[0] for t in threading.enumerate()}
        idle = g.screen_pixels()
        held = _drive(g, [pygame.K_w], 12)
        assert held.action == Action(forward=1.0)
        steered = g.screen_pixels()
        assert steered[CENTRE].std() > 5 and np.abs(steered[CENTRE].astype(int) - idle[CENTRE]).mean() > 1
        g.set_prompt("a stroll through the woods at midnight", time.monotonic())        # free text, as the menu sends it
        _until(g, lambda: g.hud_state.notice == "scene: walk forest at night")           # what the words play
        _until(g, lambda: g.latest.frame.prompt == "a stroll through the woods at midnight")  # the HUD keeps them
        assert g.latest.frame.mode == "walk"
        tap(g, pygame.K_TAB)                                   # driven: the scene the words play, in a car
        _until(g, lambda: g.latest.frame.prompt == "drive forest at night")
        assert g.latest.frame.mode == "drive" and g.hud_state.notice == "scene: drive forest at night"
    g.worker.join(10)
    assert not world.sampler.alive


class VirtualPad:
    """A virtual SDL game controller (SDL_JoystickAttachVirtual on pygame's own SDL)."""

    AXES, BUTTONS = 6, 15

    def __init__(self):
        lib = glob.glob(os.path.join(os.path.dirname(pygame.__file__), "..", "pygame.libs", "libSDL2-2*"))
        self.sdl = ctypes.CDLL(lib[0])
        self.sdl.SDL_JoystickOpen.restype = ctypes.c_void_p
        self.sdl.SDL_JoystickSetVirtualAxis.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int16]
        self.sdl.SDL_JoystickSetVirtualButton.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint8]
        self.index = self.sdl.SDL_JoystickAttachVirtual(1, self.AXES, self.BUTTONS, 0)
        assert self.index >= 0
        self.joy = self.sdl.SDL_JoystickOpen(self.index)

    def axis(self, axis, value):
        self.sdl.SDL_JoystickSetVirtualAxis(self.joy, axis, value)

    def button(self, button, down):
        self.sdl.SDL_JoystickSetVirtualButton(self.joy, button, int(down))

    def detach(self):
        self.sdl.SDL_JoystickClose(ctypes.c_void_p(self.joy))
        self.sdl.SDL_JoystickDetachVirtual(self.index)


def _until(g, condition):
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline
        g.tick()


def test_virtual_gamepad_steers_opens_menu_hot_plugs_and_survives_a_dead_pad(tmp_path):
    with game(tmp_path) as g:
        start = frames(g, 1).frame
        pad = VirtualPad()
        _until(g, lambda: len(g.input.gamepads.pads) == 1)
        assert "gamepad" in g.input.devices
        pad.axis(pygame.CONTROLLER_AXIS_LEFTX, 32767)
        pad.axis(pygame.CONTROLLER_AXIS_TRIGGERRIGHT, 0)      # a virtual trigger spans -32768..32767: half way
        _until(g, lambda: g.action().turn > 0.99)
        assert 0.3 < g.action().forward < 0.6                      # a half-pressed trigger stays analog
        moved = frames(g, 8).frame
        assert abs(float(moved.pose[3] - start.pose[3])) > 0.05
        pad.button(pygame.CONTROLLER_BUTTON_START, True)
        _until(g, lambda: g.menu.open)
        pad.button(pygame.CONTROLLER_BUTTON_START, False)
        pad.button(pygame.CONTROLLER_BUTTON_B, True)
        _until(g, lambda: not g.menu.open)
        pygame.event.post(pygame.event.Event(pygame.CONTROLLERDEVICEADDED, device_index=99))   # gone before it opens
        g.tick()
        assert len(g.input.gamepads.pads) == 1
        next(iter(g.input.gamepads.pads.values())).quit()      # a pad that dies without a removal event
        assert g.action().is_idle() and not g.input.gamepads.pads
        frames(g, 2)                                            # the game plays on
        pad.detach()
        g.tick()


def test_recording_has_the_right_frames_and_replay_reproduces_them(tmp_path):
    with game(tmp_path) as g:
        frames(g, 3)
        press(g, pygame.K_w)
        frames(g, 2)                 # a frame in flight may still carry the action from before W
        tap(g, pygame.K_r)
        assert g.recorder is not None
        frames(g, 6)
        press(g, pygame.K_a)
        frames(g, 6)
        path = g.recorder.path
        tap(g, pygame.K_r)
        assert g.recorder is None
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["skip"] > 0 and side["frames"] >= 12 and side["world"] == "engine"
    assert probe(path) == (side["frames"], "16/1", (1280, 720))
    assert any(a and a[1] < 0 for a in side["actions"]) and all(a is None or a[0] == 1 for a in side["actions"])
    replayed = tmp_path / "replay.mp4"
    run_headless(Options(world="engine", replay=path.with_suffix(".json"), record=replayed, progress=False))
    original, again = decode(path), decode(replayed)
    assert original.shape == again.shape
    assert np.abs(original - again).mean() < 0.5


NOTICE_BAND = (slice(650, 705), slice(440, 840))       # rows, columns at the bottom centre, where notices show


def test_unwritable_recordings_and_screenshots_folders_are_notices_and_play_goes_on(tmp_path):
    (tmp_path / "rec").write_text("a file where the recordings folder should be")
    (tmp_path / "shots").write_text("a file where the screenshots folder should be")
    with game(tmp_path) as g:
        frames(g, 2)
        tap(g, pygame.K_r)
        assert g.recorder is None and g.hud_state.notice.startswith(f"cannot record to {tmp_path / 'rec'}")
        assert g.hud_state.notice.endswith(f"{tmp_path / 'rec'} is a file, not a folder")
        frames(g, 1)
        with_notice = g.screen_pixels()
        g.hud_state.notice_until = 0.0
        g.tick()
        without = g.screen_pixels()
        notice_diff = np.abs(with_notice[NOTICE_BAND].astype(int) - without[NOTICE_BAND]).mean()
        rest_diff = np.abs(with_notice[CENTRE].astype(int) - without[CENTRE]).mean()
        assert notice_diff > 10 and rest_diff < 2, (notice_diff, rest_diff)
        tap(g, pygame.K_F12)
        assert g.last_screenshot is None
        assert g.hud_state.notice == f"cannot save a screenshot: {tmp_path / 'shots'} is a file, not a folder"
        frames(g, 3)                                    # the world plays on


class FailingWorld:
    """The source world, but its step raises after a few frames: a crash mid-recording."""

    def __init__(self, world, fail_at):
        self.world, self.fail_at = world, fail_at

    def reset(self, prompt, seed):
        return self.world.reset(prompt, seed)

    def set_prompt(self, prompt):
        self.world.set_prompt(prompt)

    def step(self, action):
        frame = self.world.step(action)
        if frame.index == self.fail_at:
            raise RuntimeError("world exploded")
        return frame

    def close(self):
        self.world.close()


def test_recording_stays_valid_when_the_world_raises(tmp_path, monkeypatch):
    def failing(kind, checkpoint, progress, threads=None, live=False, runtime=None):
        handle = open_world(kind, checkpoint, progress, threads, live, runtime)
        handle.world = FailingWorld(handle.world, 9)
        return handle

    monkeypatch.setattr(worker_module, "open_world", failing)
    out = tmp_path / "crash.mp4"
    with pytest.raises(RuntimeError, match="world exploded"):
        run_headless(Options(world="engine", frames=40, record=out, progress=False))
    assert probe(out) == (9, "16/1", (1280, 720))
    assert json.loads(out.with_suffix(".json").read_text())["frames"] == 9


def _headless(tmp_path, *args):
    return subprocess.Popen([sys.executable, str(REPO / "run_sim.py"), "--headless", "--world", "engine", "-q",
                             *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_headless_cli_with_actions(tmp_path):
    script = tmp_path / "actions.yaml"
    script.write_text("- {forward: 1, frames: 4}\n- {prompt: walk forest at night}\n- {turn: -1, frames: 2}\n")
    run = _headless(tmp_path, "--frames", "9", "--actions", str(script), "--prompt", "drive forest at night",
                    "--seed", "5", "--record", "out.mp4")
    assert run.wait(timeout=60) == 0, run.stderr.read()
    assert probe(tmp_path / "out.mp4") == (9, "16/1", (1280, 720))
    side = json.loads((tmp_path / "out.json").read_text())
    assert side["seed"] == 5 and side["actions"][:3] == [None, [1, 0, 0, 0, 0], [1, 0, 0, 0, 0]]
    assert side["prompts"] == [{"frame": 0, "prompt": "drive forest at night"},
                               {"frame": 5, "prompt": "walk forest at night"}]
    assert side["actions"][5:] == [[0, -1, 0, 0, 0]] * 2 + [[0, 0, 0, 0, 0]] * 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_recording_survives_being_killed(tmp_path, sig):
    run = _headless(tmp_path, "--frames", "2000", "--record", "out.mp4")
    sidecar = tmp_path / "out.json"
    deadline = time.monotonic() + 60
    # the sidecar counts encoded frames; a kill loses the fragment being written: wait past two of them
    enough = 2 * 16
    while not sidecar.exists() or json.loads(sidecar.read_text())["frames"] < enough:
        assert run.poll() is None and time.monotonic() < deadline, run.stderr.read() if run.poll() else "timeout"
        time.sleep(0.05)
    run.send_signal(sig)
    run.wait(timeout=30)
    count, rate, size = probe(tmp_path / "out.mp4")
    assert rate == "16/1" and size == (1280, 720) and count >= 16
    if sig == signal.SIGTERM:       # finished cleanly: every frame and the sidecar agree
        assert count == json.loads(sidecar.read_text())["frames"] >= enough


def test_a_signal_inside_write_leaves_sidecar_and_mp4_agreeing(tmp_path, monkeypatch):
    recorder = Recorder(tmp_path / "r.mp4", 16, (64, 48),
                        lambda first, last, video: json.dumps({"frames": last - first + 1}))
    image = np.full((48, 64, 3), 128, np.uint8)
    for number in range(5):
        recorder.write(image, number)

    def interrupted(item, *args, **kwargs):     # SIGTERM while write() waits on a full encoder queue
        raise SystemExit(143)

    monkeypatch.setattr(recorder._queue, "put", interrupted)
    with pytest.raises(SystemExit):
        recorder.write(image, 5)
    monkeypatch.undo()
    recorder.close()
    assert probe(tmp_path / "r.mp4")[0] == json.loads((tmp_path / "r.json").read_text())["frames"] == 5


def test_model_world_without_checkpoint_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)                 # no checkpoints/tiny-cpu here
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        assert main(["--world", "model"]) == 2
        err = capsys.readouterr().err
        assert err == ("error: no world model at checkpoints/tiny-cpu: run from the repository folder, pass "
                       "--checkpoint DIR, or play the source world with --world engine\n")
        assert main(["--world", "model", "--checkpoint", str(tmp_path / "nope")]) == 2
        assert "does not exist" in capsys.readouterr().err
        folder = tmp_path / "not-a-checkpoint"
        folder.mkdir()
        assert main(["--world", "model", "--checkpoint", str(folder)]) == 2        # a folder without its manifest
        assert capsys.readouterr().err == f"error: not a world-model checkpoint: missing file {folder / 'world_model.json'}\n"
        (folder / "world_model.json").write_text('{"format": ')                     # a damaged one
        assert main(["--world", "model", "--checkpoint", str(folder)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "not valid JSON" in err and err.count("\n") == 1
        earlier = tmp_path / "earlier.mp4"
        earlier.write_bytes(b"an earlier recording")
        assert main(["--headless", "--frames", "2", "--record", str(earlier), "--prompt", "drive on mars"]) == 2
        assert "unknown scene prompt" in capsys.readouterr().err
        assert earlier.read_bytes() == b"an earlier recording"                    # a world that never started writes nothing
        blocked = tmp_path / "a-file"
        blocked.write_text("")
        assert main(["--headless", "-q", "--frames", "2", "--record", str(blocked / "out.mp4")]) == 2
        assert capsys.readouterr().err == f"error: cannot record to {blocked / 'out.mp4'}: {blocked} is a file, not a folder\n"
        assert main(["--headless", "--frames", "2", "--controls", "mine.yaml"]) == 2
        assert capsys.readouterr().err == "error: --controls is for the window; a --headless run follows --actions\n"
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
