"""The source world: determinism, scenes that look different, controls that move the camera the right way."""
import copy

import numpy as np
import pytest

from matrix_sim.actions import Action
from matrix_sim.world.base import World
from matrix_sim.world.engine import CHUNK_CACHE, SourceWorld
from matrix_sim.world.scenes import UnknownPrompt

LEFT, RIGHT = Action(forward=1.0, turn=-1.0), Action(forward=1.0, turn=1.0)


def run(world, prompt, seed, actions):
    frames = [world.reset(prompt, seed)]
    frames += [world.step(a) for a in actions]
    return frames


def image_shift(before: np.ndarray, after: np.ndarray, max_shift: int = 40) -> int:
    """Horizontal shift (pixels, + = content moved right) that best aligns the upper half of two frames."""
    a = before[: before.shape[0] // 2].astype(np.float32).mean(axis=(0, 2))
    b = after[: after.shape[0] // 2].astype(np.float32).mean(axis=(0, 2))
    a, b = a - a.mean(), b - b.mean()
    w = len(a)
    errors = {s: np.mean((a[max(0, -s): w - max(0, s)] - b[max(0, s): w - max(0, -s)]) ** 2)
              for s in range(-max_shift, max_shift + 1)}
    return min(errors, key=errors.get)


def test_source_world_implements_the_world_protocol(world):
    assert isinstance(world, World)
    frame = world.reset("drive desert by day", 0)
    assert frame.image.shape == (144, 256, 3) and frame.image.dtype == np.uint8
    assert frame.index == 0 and frame.action is None and frame.mode == "drive"


def test_same_seed_and_actions_give_identical_frames(world):
    rng = np.random.default_rng(0)
    actions = [Action(forward=rng.uniform(-1, 1), turn=rng.uniform(-1, 1), boost=float(rng.random() > 0.5))
               for _ in range(40)]
    first = run(world, "drive forest at sunset in rain", 7, actions)
    other = SourceWorld(256, 144)
    try:
        second = run(other, "drive forest at sunset in rain", 7, actions)
    finally:
        other.close()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.pose, b.pose)
    assert not np.array_equal(first[0].image, first[-1].image), "the frames should change while driving"


def test_different_seed_gives_a_different_place(world):
    a = world.reset("drive grassland by day", 1).image.astype(np.int16)
    b = world.reset("drive grassland by day", 2).image.astype(np.int16)
    assert np.abs(a - b).mean() > 3


@pytest.mark.parametrize("pair", [
    ("drive desert by day", "drive snowfield by day"),
    ("drive city by day", "drive city at night"),
    ("walk forest by day", "walk coast by day"),
    ("drive grassland by day", "drive grassland by day in fog"),
    ("walk desert at sunset", "walk desert by day"),
])
def test_different_prompts_give_clearly_different_images(world, pair):
    a, b = (world.reset(p, 3).image.astype(np.int16) for p in pair)
    assert np.abs(a - b).mean() > 12, f"{pair} look too alike"


def test_every_biome_renders_something_besides_sky(world):
    for biome in ("desert", "grassland", "forest", "snowfield", "coast", "city"):
        image = world.reset(f"walk {biome} by day", 4).image
        lower = image[100:].reshape(-1, 3).astype(np.int16)
        assert lower.std(axis=0).max() > 5 or np.abs(lower.mean(0) - image[:20].reshape(-1, 3).mean(0)).max() > 20


def step_from(world, body, action):
    """Step the world from a saved body state, so two actions can be compared from the same moment."""
    world.body = copy.copy(body)
    return world.step(action)


@pytest.mark.parametrize("mode", ["drive", "walk"])
def test_steering_left_turns_the_camera_left(world, mode):
    run(world, f"{mode} grassland by day", 11, [Action(forward=1.0)] * 20)
    body = copy.copy(world.body)
    left, right = (step_from(world, body, a) for a in (LEFT, RIGHT))
    assert left.pose[3] < body.yaw < right.pose[3]
    # turning left swings the view left, so the scene slides right across the image
    assert image_shift(right.image, left.image) >= 4
    frames = run(world, f"{mode} grassland by day", 11, [Action(forward=1.0)] * 20 + [LEFT] * 16)
    assert frames[-1].pose[3] < frames[20].pose[3] - 0.3, "a held turn keeps turning"


@pytest.mark.parametrize("mode", ["drive", "walk"])
def test_throttle_moves_the_camera_forward(world, mode):
    frames = run(world, f"{mode} desert by day", 5, [Action(forward=1.0)] * 24)
    start, end = frames[0].pose, frames[-1].pose
    forward = np.array([np.sin(start[3]), -np.cos(start[3])])
    travelled = (end[[0, 2]] - start[[0, 2]]) @ forward
    assert travelled > 3.0
    assert np.abs(frames[-1].image.astype(np.int16) - frames[0].image).mean() > 2
    idle = run(world, f"{mode} desert by day", 5, [Action()] * 24)
    np.testing.assert_allclose(idle[-1].pose[[0, 2]], idle[0].pose[[0, 2]])


def test_frame_t_plus_1_is_what_action_t_produced(world):
    world.reset("drive grassland by day", 9)
    for _ in range(10):
        world.step(Action(forward=1.0))
    body = copy.copy(world.body)
    straight = step_from(world, body, Action(forward=1.0))
    turned = step_from(world, body, Action(forward=1.0, turn=-1.0))
    assert turned.action == Action(forward=1.0, turn=-1.0)
    assert turned.pose[3] < straight.pose[3]
    assert not np.array_equal(turned.image, straight.image)


def test_set_prompt_changes_scene_and_keeps_the_place(world):
    world.reset("drive city by day", 2)
    before = world.step(Action(forward=1.0))
    world.set_prompt("walk city at night")
    after = world.step(Action())
    assert after.mode == "walk" and after.prompt == "walk city at night"
    assert np.hypot(*(after.pose[[0, 2]] - before.pose[[0, 2]])) < 2.0
    assert after.image.mean() < before.image.mean() - 20


def test_unknown_prompt_is_a_clear_error(world):
    with pytest.raises(UnknownPrompt, match="did you mean"):
        world.reset("drive desrt by day", 0)


def test_renders_at_720p():
    big = SourceWorld(1280, 720)
    try:
        image = big.reset("drive coast at sunset", 0).image
    finally:
        big.close()
    assert image.shape == (720, 1280, 3) and image.std() > 10


def test_non_16_9_size_is_refused():
    with pytest.raises(ValueError, match="16:9"):
        SourceWorld(256, 256)


def test_memory_stays_bounded_on_an_endless_drive(world):
    world.reset("drive grassland by day", 0)
    size = world.s.terrain.chunk_size
    for hop in range(40):      # teleport far along the road network: every hop needs fresh chunks
        world.body.x += 3 * size
        world.step(Action(forward=1.0))
    assert len(world._chunks) <= CHUNK_CACHE
