"""Bring your own game: a tiny pure-numpy Gymnasium env through the adapter (world/gym_world.py), recorded,
encoded, trained for two steps and played as a world model; the declared mappings; and the core package
without gymnasium or vizdoom."""
import subprocess
import sys

import gymnasium
import numpy as np
import pytest

from matrix_sim.actions import Action
from matrix_sim.world.gym_world import (Condition, GymSource, GymWorld, Rule, RuleMapping,
                                        UnknownLevel, check_mapping, fit_frame, mapping_from_dict, register,
                                        unregister)

from wm_helpers import hash_bank, one_thread, save_tiny_vae, training_texts, write_config  # noqa: F401 (autouse)


COLOURS = {"red": (220, 40, 30), "blue": (30, 60, 220)}
SQUARE_MAPPING = RuleMapping((Rule.of("forward > 0.3", 1), Rule.of("forward < -0.3", 2), Rule.of("turn < -0.3", 3),
                              Rule.of("turn > 0.3", 4)), default=0)


class SquareEnv(gymnasium.Env):
    """A coloured square on an 8x6 grid (64x48 pixels): 0 stays, 1 up, 2 down, 3 left, 4 right; 30 steps an
    episode."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 16}
    MOVES = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))

    def __init__(self, colour: str = "red"):
        self.render_mode = "rgb_array"
        self.colour = np.array(COLOURS[colour], np.uint8)
        self.action_space = gymnasium.spaces.Discrete(5)
        self.observation_space = gymnasium.spaces.Box(0, 7, (2,), np.int64)
        self.pos = np.zeros(2, np.int64)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = np.array([self.np_random.integers(6), self.np_random.integers(8)])
        self.t = 0
        return self.pos.copy(), {}

    def step(self, action):
        self.pos = np.clip(self.pos + self.MOVES[int(action)], 0, (5, 7))
        self.t += 1
        return self.pos.copy(), 0.0, False, self.t >= 30, {}

    def render(self):
        image = np.full((48, 64, 3), 40, np.uint8)
        r, c = self.pos * 8
        image[r:r + 8, c:c + 8] = self.colour
        return image


@pytest.fixture
def square():
    source = register(GymSource("square", make=SquareEnv, mapping=SQUARE_MAPPING, levels=("red", "blue"),
                                frame_rate=16, fit="letterbox",
                                pose=lambda env: np.array([env.pos[1], 0, env.pos[0], 0], np.float32)))
    yield source
    unregister("square")


def square_cell(image: np.ndarray, colour: str) -> tuple[int, int]:
    """Row and column of the square's centre in a 256x144 frame."""
    hits = np.argwhere(np.all(np.abs(image.astype(int) - COLOURS[colour]) < 30, axis=-1))
    assert len(hits), f"no {colour} square in the frame"
    return tuple(int(v) for v in hits.mean(0))


def test_the_world_follows_the_declared_mapping_and_switches_levels(square):
    world = GymWorld(square)
    frame = world.reset("Square  RED", seed=3)
    assert frame.image.shape == (144, 256, 3) and frame.prompt == "square red" and frame.mode == "walk"
    assert not frame.image[:, :30].any() and not frame.image[:, -30:].any()       # letterbox: 4:3 in 16:9
    row, col = square_cell(frame.image, "red")
    moved = world.step(Action(turn=1.0) if col < 150 else Action(turn=-1.0))
    assert square_cell(moved.image, "red")[0] == row and square_cell(moved.image, "red")[1] != col
    assert moved.index == 1 and moved.action is not None
    world.set_prompt("square blue")                       # a scene switch: the coming frame is the new level's
    switched = world.step(Action())
    assert switched.prompt == "square blue" and square_cell(switched.image, "blue") and switched.index == 2
    for bad in ("drive desert by day", "square green"):
        with pytest.raises(UnknownLevel):
            world.set_prompt(bad)
    for _ in range(40):                                   # past the episode's end: the world goes on
        frame = world.step(Action(forward=1.0))
    assert frame.index == 42 and square_cell(frame.image, "blue")
    world.close()


def test_a_mode_switch_in_an_environment_is_a_notice_and_play_goes_on(square):
    from matrix_sim.client.session import SessionLog
    from matrix_sim.client.worker import WorldWorker
    from matrix_sim.client.worlds import WorldHandle

    worker = WorldWorker(opener=None, source=None, seed=0, paced=False)
    worker.handle, worker.log = WorldHandle(GymWorld(square), "engine", "square", 16), SessionLog("engine", 0, 16, None)
    try:
        assert worker._run(("reset", "square red")).mode == "walk"
        assert worker._run(("mode", "drive")) is None
        assert worker.notices.get_nowait() == "'square red' has no drive mode"
        assert worker._run(("step", Action())).prompt == "square red"
    finally:
        worker.handle.close()


def test_mappings_are_declared_checked_and_read_from_yaml():
    assert SQUARE_MAPPING(Action(forward=0.5)) == 1 and SQUARE_MAPPING(Action(turn=-1)) == 3
    assert SQUARE_MAPPING(Action(forward=0.2, turn=0.2)) == 0
    assert Condition.parse("forward > 0.3 and turn <= -0.5").holds({"forward": 1.0, "turn": -0.5, "strafe": 0,
                                                                     "boost": 0, "brake": 0})
    with pytest.raises(ValueError, match="bad condition"):
        Condition.parse("jump > 0.5")
    spaces = gymnasium.spaces
    check_mapping(SQUARE_MAPPING, spaces.Discrete(5))
    with pytest.raises(ValueError, match="not in the action space"):
        check_mapping(SQUARE_MAPPING, spaces.Discrete(3))
    with pytest.raises(ValueError, match="maps to"):
        check_mapping(SQUARE_MAPPING, spaces.Box(-1, 1, (2,)))
    buttons = mapping_from_dict({"kind": "buttons", "dims": [[{"when": "forward > 0.3", "action": 1}],
                                                             [{"when": "brake >= 0.5", "action": 1}]]})
    check_mapping(buttons, spaces.MultiBinary(2))
    assert buttons(Action(forward=1, brake=1)).tolist() == [1, 1] and buttons(Action(brake=1)).tolist() == [0, 1]
    car = mapping_from_dict({"kind": "linear", "matrix": [[0, 1, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 1]]})
    check_mapping(car, spaces.Box(np.array([-1, 0, 0], np.float32), np.array([1, 1, 1], np.float32)))
    np.testing.assert_allclose(car(Action(forward=-1, turn=0.5, brake=1)), [0.5, 0.0, 1.0])    # gas clipped at 0
    multi = mapping_from_dict({"kind": "rules", "rules": [{"when": "strafe > 0.5", "action": [2, 1]}],
                               "default": [0, 0]})
    check_mapping(multi, spaces.MultiDiscrete([3, 2]))
    assert multi(Action(strafe=1)).tolist() == [2, 1]


def test_fit_crops_or_letterboxes():
    image = np.zeros((240, 320, 3), np.uint8)
    image[:, :160] = 200
    cropped, boxed = fit_frame(image, 256, 144, "crop"), fit_frame(image, 256, 144, "letterbox")
    assert cropped.shape == boxed.shape == (144, 256, 3)
    assert cropped[:, :127].min() == 200 and cropped[:, 129:].max() == 0
    assert boxed[:, :32].max() == 0 and boxed[:, 33:127].min() == 200 and boxed[:, 224:].max() == 0


def test_record_encode_train_and_play_the_bundle(tmp_path, square, monkeypatch):
    from matrix_sim.cli import main
    from matrix_sim.client.worlds import open_world
    from matrix_sim.data.encode import encode_dataset
    from matrix_sim.data.shards import iter_episodes, read_manifest
    from matrix_sim.stream import WorldModel
    from matrix_sim.train.world_model import train

    rec = tmp_path / "rec"
    assert main(["-q", "record", "--env", "square", "--episodes", "2", "--frames", "24", "--out", str(rec)]) == 0
    manifest = read_manifest(rec)
    assert manifest["frame_rate"] == 16 and manifest["args"]["env"] == "square"
    assert sorted(e["prompt"] for e in manifest["episodes"]) == ["square blue", "square red"]
    for episode in iter_episodes(rec):
        assert episode.frames.shape == (24, 144, 256, 3) and episode.actions.shape == (24, 5)
        assert len({f.tobytes() for f in episode.frames}) > 2          # the policy moves the square
        assert episode.meta["env"] == "square" and episode.meta["level"] in ("red", "blue")

    latents = encode_dataset(rec, tmp_path / "latents", save_tiny_vae(tmp_path / "vae"), progress=False)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    hash_bank([*training_texts(), "square red", "square blue"]).save(run_dir / "prompts-train.safetensors")
    summary = train(write_config(tmp_path, latents, run_dir, tmp_path / "vae", steps=2), device="cpu", progress=False)
    assert summary.step == 2

    world = WorldModel.from_pretrained(run_dir, device="cpu")
    assert "square red" in world.prompts          # the bundle carries the data's environment prompts
    frame = world.reset("square red", seed=0)
    for _ in range(3):
        frame = world.step(Action(forward=1.0))
    assert frame.image.shape == (144, 256, 3) and frame.mode == "walk" and frame.index == 3
    world.close()

    # the bundle carries start clips of its levels, so it starts them where the environment is not installed
    from matrix_sim.stream.starts import BundleStarts

    starts = BundleStarts.load(run_dir)
    assert "square blue" in starts and "square red" in starts and "drive desert by day" not in starts

    def not_installed(*args, **kwargs):
        raise AssertionError("the starter made the environment")

    started = WorldModel.from_pretrained(run_dir, device="cpu", start_from_source=True)
    with monkeypatch.context() as patch:
        patch.setattr("matrix_sim.world.gym_world.GymWorld", not_installed)
        first = started.reset("square blue", seed=1)   # the stream starts from the level's own frames
        latents, _ = starts.clip("square blue", 1)
        images, _ = started.starter.clip("square blue", 1)
        assert images.shape == (len(latents), 144, 256, 3)
    assert first.image.shape == (144, 256, 3) and started.step(Action()).index == first.index + 1
    started.close()

    # a model of another game opens on its first level when no --prompt is given
    from matrix_sim.client.app import main as play
    from matrix_sim.client.session import load_replay
    from matrix_sim.stream.bundle import read_info

    assert read_info(run_dir).start_prompt == "square blue"
    video = tmp_path / "played.mp4"
    assert play(["--checkpoint", str(run_dir), "--headless", "--frames", "2", "--record", str(video), "-q"]) == 0
    assert load_replay(video.with_suffix(".json")).ops[0][1] == "square blue"

    handle = open_world("engine", None, lambda f, t: None, prompt="square red")   # run_sim.py --world engine
    assert isinstance(handle.world, GymWorld) and handle.frame_rate == 16
    assert handle.world.reset("square red", 0).image.shape == (144, 256, 3)
    handle.close()


def test_a_recorded_environment_session_replays_in_that_environment(tmp_path, square):
    """`run_sim.py --replay` opens the environment the session was played in, not the source world."""
    import av
    import yaml

    from matrix_sim.client.app import main

    script = tmp_path / "keys.yaml"
    script.write_text(yaml.safe_dump([{"forward": 1, "frames": 4}, {"turn": 1, "frames": 4},
                                      {"prompt": "square blue"}, {"forward": -1, "frames": 4}]))
    played, replayed = tmp_path / "played.mp4", tmp_path / "replayed.mp4"
    assert main(["--world", "engine", "--prompt", "square red", "--headless", "--frames", "12", "--actions",
                 str(script), "--record", str(played), "-q"]) == 0
    assert main(["--replay", str(played.with_suffix(".json")), "--headless", "--record", str(replayed), "-q"]) == 0

    def frames(path):
        with av.open(str(path)) as container:
            return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.float32)

    original, again = frames(played), frames(replayed)
    assert original.shape == again.shape and len(original) >= 10
    assert np.abs(original - again).mean() < 0.5
    red, blue = (np.array(COLOURS[c], dtype=np.float32) for c in ("red", "blue"))
    near = lambda image, colour: (np.abs(image - colour).sum(axis=-1) < 60).mean()     # noqa: E731
    assert near(again[0], red) > 0.001 and near(again[-1], blue) > 0.001     # the square, red, then blue


def test_core_imports_and_refuses_doom_cleanly_without_gymnasium_or_vizdoom(tmp_path):
    code = """
import sys
sys.modules["gymnasium"] = None
sys.modules["vizdoom"] = None
from matrix_sim.cli import main
from matrix_sim.world.gym_world import GymWorld, is_gym_prompt
assert is_gym_prompt("doom map01") and not is_gym_prompt("drive desert by day")
try:
    GymWorld("doom").reset("doom map01", 0)
except RuntimeError as exc:
    assert "matrix-sim[doom]" in str(exc), exc
else:
    raise SystemExit("no error")
assert main(["-q", "record", "--env", "doom", "--episodes", "1", "--frames", "2", "--out", sys.argv[1]]) == 2
assert main(["-q", "record", "--env", "nope", "--episodes", "1", "--frames", "2", "--out", sys.argv[1]]) == 2
"""
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "rec")], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "error: Doom needs the doom extra" in run.stderr and "no environment named 'nope'" in run.stderr
