"""WorldModel: the World protocol over the stream, from a prompt alone or from real frames, with random weights."""
import shutil
import threading

import numpy as np
import pytest
import torch

from matrix_sim.actions import Action
from matrix_sim.models.autoencoder import images_to_tensor
from matrix_sim.models.checkpoint import CheckpointError
from matrix_sim.stream import WorldModel
from matrix_sim.world.base import World
from matrix_sim.world.scenes import parse_prompt

from wm_helpers import TINY_STREAM, make_bundle, one_thread  # noqa: F401 (autouse fixture)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A DiT whose output depends on its context, actions and prompt, so equal frames mean equal inputs."""
    return make_bundle(tmp_path_factory.mktemp("bundle"), stream={**TINY_STREAM, "block_frames": 2}, lively=True)


@pytest.fixture
def world(checkpoint):
    fractions = []
    w = WorldModel.from_pretrained(checkpoint, progress=lambda f, text: fractions.append(f), device="cpu")
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    return w


def test_implements_world_and_streams_from_a_prompt_alone(world):
    assert isinstance(world, World)
    assert world.frame_rate == 16 and "CPU" in world.device
    first = world.reset("walk forest at night", seed=3)
    assert first.image.shape == (144, 256, 3) and first.image.dtype == np.uint8
    assert first.index == 0 and first.mode == "walk" and first.action is None
    frames = [world.step(Action(forward=1.0)) for _ in range(7)]
    assert [f.index for f in frames] == list(range(1, 8))
    assert all(f.image.shape == (144, 256, 3) for f in frames)


def test_reset_again_restarts_the_same_stream(world):
    a = [world.reset("drive desert by day", seed=5).image] + [world.step(Action(turn=0.5)).image for _ in range(3)]
    world.set_prompt("walk snowfield by day")
    world.step(Action())
    b = [world.reset("drive desert by day", seed=5).image] + [world.step(Action(turn=0.5)).image for _ in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_decoding_ahead_makes_the_same_frames_and_restarts_cleanly(checkpoint, world):
    """With one action held from the real start on, the overlapped world (the game's live play) makes the plain
    world's frames, also after a restart that lands while blocks are in flight; close ends its threads."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (5, 144, 256, 3), dtype=np.uint8)
    held = Action(turn=-0.5)
    actions = np.tile(held.to_array(), (5, 1))
    ahead = WorldModel.from_pretrained(checkpoint, device="cpu", decode_ahead=True)
    try:
        for w in (world, ahead):
            w.prime(images[::-1].copy(), actions, "drive desert by day", seed=4)
            [w.step(Action(forward=1.0)) for _ in range(5)]
        assert ahead._ahead.in_flight > 0
        plain, overlapped = ([w.prime(images, actions, "walk coast at sunset", seed=7)] +
                             [w.step(held) for _ in range(9)] for w in (world, ahead))
        assert [f.index for f in overlapped] == list(range(10))
        assert all(np.array_equal(a.image, b.image) and a.action == b.action == held
                   for a, b in zip(plain, overlapped))
        assert overlapped[-1].mode == "walk"
    finally:
        ahead.close()
    assert not [t for t in threading.enumerate() if t.name.startswith(("dit", "decode"))]


def test_prompt_switch_changes_mode(world):
    world.reset("drive desert by day", seed=0)
    world.set_prompt("walk coast at sunset")
    assert world.step(Action()).mode == "walk"


def test_starts_from_real_frames(world):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (5, 144, 256, 3), dtype=np.uint8)
    actions = np.tile(np.array([1, 0, 0, 0, 0], np.float32), (5, 1))
    frame = world.prime(images, actions, "drive desert by day", seed=1)
    assert frame.image.shape == (144, 256, 3) and frame.action == Action(forward=1.0)
    assert world.sampler.cache.frames() == 2               # the context: the last K real frames


def test_a_starter_begins_and_switches_scenes_from_source_world_frames(checkpoint):
    """The game's start: reset and set_prompt prime the stream with a source-world drive of the scene, so the
    context holds those real frames (encoded), and frame numbers run on across a switch."""
    world = WorldModel.from_pretrained(checkpoint, device="cpu", start_from_source=True)
    try:
        assert world.starter is not None and world.frame_size == (144, 256)
        primed = []
        prime = world.sampler.prime
        world.sampler.prime = lambda latents, actions, prompt: (primed.append(latents.clone()),
                                                                prime(latents, actions, prompt))
        first = world.reset("drive desert by day", seed=2)
        assert first.index == 0 and first.mode == "drive" and len(primed) == 1
        images, _ = world.starter.clip("drive desert by day", 2)
        with torch.inference_mode():
            expected = world.vae.to_model_space(world.vae.encode(images_to_tensor(images)))
        torch.testing.assert_close(primed[0], expected, atol=1e-4, rtol=1e-4)
        steps = [world.step(Action(forward=1.0)) for _ in range(3)]
        world.set_prompt("a quiet walk through a snowy forest")       # free text: cut to the nearest preset
        after = world.step(Action(forward=1.0))
        assert len(primed) == 2 and after.index == steps[-1].index + 1 and after.mode == "walk"
        assert after.prompt == "a quiet walk through a snowy forest"
    finally:
        world.close()


def test_free_text_plays_as_the_preset_it_resolves_to(tmp_path):
    world = WorldModel.from_pretrained(make_bundle(tmp_path / "lively", lively=True), device="cpu")
    text = "a quiet walk through a snowy forest"
    preset = world.preset_of(text)
    assert parse_prompt(preset).mode == "walk" and preset != text

    conditions = []
    step = world.sampler.step
    world.sampler.step = lambda action, prompt: conditions.append(prompt.clone()) or step(action, prompt)

    def played(prompt: str) -> np.ndarray:
        first = world.reset(prompt, seed=4)
        assert first.prompt == prompt                         # the HUD keeps the player's words
        return np.stack([first.image] + [world.step(Action(forward=1.0)).image for _ in range(3)])

    try:
        np.testing.assert_array_equal(played(text), played(preset))
    finally:
        world.close()
    assert all(torch.equal(c, world.prompts.embed(preset)) for c in conditions)
    assert not torch.allclose(world.prompts.embed(text), world.prompts.embed(preset))


def test_step_before_reset_is_an_error(checkpoint):
    with pytest.raises(RuntimeError, match="before reset"):
        WorldModel.from_pretrained(checkpoint, device="cpu").step(Action())


def test_loads_from_a_part_folder_and_names_missing_files(checkpoint, tmp_path):
    assert WorldModel.from_pretrained(checkpoint / "dit", device="cpu").frame_rate == 16
    with pytest.raises(CheckpointError, match="world_model.json"):
        WorldModel.from_pretrained(tmp_path, device="cpu")


@pytest.mark.parametrize("damage, says", [
    (lambda b: (b / "dit" / "config.json").write_text("{"), r"dit/config.json: not valid JSON"),
    (lambda b: (b / "world_model.json").write_text('{"format": 1'), r"world_model.json: not valid JSON"),
    (lambda b: (b / "prompts.safetensors").write_bytes(b"half a header"), "not a prompt embedding file"),
    (lambda b: (b / "prompts.safetensors").unlink(), "prompt embedding cache not found"),
])
def test_a_damaged_bundle_file_is_one_error_naming_it(checkpoint, tmp_path, damage, says):
    bundle = tmp_path / "bundle"
    shutil.copytree(checkpoint, bundle)
    damage(bundle)
    with pytest.raises(CheckpointError, match=says) as caught:
        WorldModel.from_pretrained(bundle, device="cpu")
    assert str(bundle) in str(caught.value) and "\n" not in str(caught.value)


def test_the_client_runs_the_model_on_its_thread_count_and_gives_it_back(checkpoint, monkeypatch):
    """open_world sets torch's threads for the model's thread (the game's pick, or --threads) and close
    restores them; the engine world leaves them alone."""
    import matrix_sim.device as device
    from matrix_sim.client.worlds import open_world

    torch.set_num_threads(2)
    handle = open_world("model", checkpoint, lambda f, text: None, threads=1)       # --threads 1
    assert torch.get_num_threads() == 1
    handle.close()
    assert torch.get_num_threads() == 2
    monkeypatch.setattr(device, "cpu_cores", lambda: 3)                              # the game's pick: all but one
    handle = open_world("model", checkpoint, lambda f, text: None)
    assert torch.get_num_threads() == 2 and handle.threads_before == 2
    handle.close()
