"""Doom (ViZDoom + Freedoom) through the Gymnasium adapter: recording MAP01 with the Doom policy, and the
declared mapping turning the view both ways. Runs where the doom extra is installed (pip install '.[doom]')."""
import numpy as np
import pytest

from matrix_sim.actions import Action
from matrix_sim.data.record import record
from matrix_sim.data.shards import iter_episodes, read_manifest
from matrix_sim.world.gym_world import GymWorld, UnknownLevel

pytestmark = pytest.mark.doom          # deselected by default: the extra lives in an environment of its own


@pytest.fixture(scope="module")
def doom():
    world = GymWorld("doom")
    yield world
    world.close()


def shift_of(before: np.ndarray, after: np.ndarray, most: int = 60) -> int:
    """The horizontal shift s (pixels) that best maps before onto after: after[:, x] ~ before[:, x + s]."""
    a, b = after.mean(-1).astype(np.float32), before.mean(-1).astype(np.float32)
    errors = {s: float(np.abs(a[:, max(0, -s):a.shape[1] - max(0, s)] - b[:, max(0, s):b.shape[1] - max(0, -s)]).mean())
              for s in range(-most, most + 1)}
    return min(errors, key=errors.get)


def test_turning_right_and_left_pans_the_view_opposite_ways(doom):
    shifts = {}
    for turn in (1.0, -1.0):
        start = doom.reset("doom map01", seed=0).image
        for _ in range(2):
            frame = doom.step(Action(turn=turn))
        shifts[turn] = shift_of(start, frame.image)
        assert np.abs(frame.image.astype(int) - start).mean() > 5
    assert shifts[1.0] > 5 and shifts[-1.0] < -5, shifts     # turning right: the scene slides to the left


def test_walking_moves_the_player_and_levels_switch(doom):
    start = doom.reset("doom map01", seed=0)
    for _ in range(6):
        frame = doom.step(Action(forward=1.0))
    assert np.hypot(*(frame.pose[[0, 2]] - start.pose[[0, 2]])) > 15
    doom.set_prompt("doom map02")
    switched = doom.step(Action())
    assert switched.prompt == "doom map02" and doom.level == "map02" and switched.index == frame.index + 1
    with pytest.raises(UnknownLevel):
        doom.set_prompt("doom map99")


def test_records_map01_with_the_doom_policy(tmp_path):
    out = record(tmp_path / "rec", episodes=1, frames=48, seed=0, prompt="doom map01", progress=False)
    manifest = read_manifest(out)
    assert manifest["args"]["env"] == "doom" and manifest["frame_rate"] == 18
    episode = next(iter_episodes(out))
    assert episode.frames.shape == (48, 144, 256, 3) and episode.meta["prompt"] == "doom map01"
    assert episode.frames.std() > 10
    assert len({f.tobytes() for f in episode.frames}) > 24          # the view keeps changing
    assert np.abs(episode.actions[:, :2]).sum() > 0                 # it walks or turns
    travelled = np.hypot(*(episode.poses[-1, [0, 2]] - episode.poses[0, [0, 2]]))
    turned = np.ptp(np.unwrap(episode.poses[:, 3]))
    assert travelled > 20 or turned > 0.5
