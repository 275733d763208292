"""The world model that ships (checkpoints/tiny-cpu) is what `python run_sim.py` plays, and it has learned
its job: it continues real footage of a scene, a scene the game starts stays that scene, and the game plays it."""
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from matrix_sim.actions import Action
from matrix_sim.checkpoints import find_checkpoint
from matrix_sim.device import game_threads
from matrix_sim.eval.heldout import heldout_clips
from matrix_sim.eval.rollout import continue_frames
from matrix_sim.eval.scene_classifier import SceneClassifier
from matrix_sim.stream import WorldModel
from matrix_sim.world.scenes import parse_prompt

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "checkpoints" / "tiny-cpu"
SCENES = [parse_prompt("drive desert by day"), parse_prompt("walk forest at night"),
          parse_prompt("drive snowfield by day in snow")]


@pytest.fixture(scope="module")
def world():
    model = WorldModel.from_pretrained(SHIPPED, device="cpu")
    yield model
    model.close()


@pytest.fixture(scope="module")
def clips():
    return heldout_clips(8 + 4 + 6, scenes=SCENES)


def test_the_shipped_checkpoint_is_what_the_game_plays(monkeypatch):
    monkeypatch.chdir(REPO)                     # the default is relative to the working directory
    assert find_checkpoint().resolve() == SHIPPED
    for part in ("world_model.json", "prompts.safetensors", "dit/config.json", "vae/config.json"):
        assert (SHIPPED / part).is_file(), part
    for weights in SHIPPED.rglob("*.safetensors"):
        assert weights.stat().st_size < 25_000_000, weights


def test_it_continues_the_scene_it_was_shown(world, clips):
    """Primed with real frames of one scene, under the actions of the footage (turns, spins and stops as a
    player makes them), each of its next frames is classified as that scene (by colour, against the other
    scenes' real frames)."""
    classifier = SceneClassifier.fit({c.scene.prompt: c.frames for c in clips})
    for i, clip in enumerate(clips):
        generated = continue_frames(world, clip.frames, clip.actions, 8, 4, clip.scene.prompt, seed=i)
        assert classifier.classify(np.stack(generated)) == [clip.scene.prompt] * 4, clip.scene.prompt


def test_a_scene_the_game_starts_stays_that_scene(clips):
    """The game starts a scene from a source-world drive of it; two seconds later the generated frames are
    still classified as that scene (by colour, against the other scenes' real frames)."""
    game_world = WorldModel.from_pretrained(SHIPPED, device="cpu", start_from_source=True)
    classifier = SceneClassifier.fit({c.scene.prompt: c.frames for c in clips})
    try:
        for i, clip in enumerate(clips):
            game_world.reset(clip.scene.prompt, seed=i)
            images = np.stack([game_world.step(Action(forward=1.0)).image for _ in range(32)])
            named = classifier.classify(images[16:])
            assert named.count(clip.scene.prompt) >= 12, (clip.scene.prompt, named)
    finally:
        game_world.close()


def test_the_game_plays_it_headless(tmp_path):
    run = subprocess.run([sys.executable, str(REPO / "run_sim.py"), "--headless", "--frames", "8", "-q",
                          "--prompt", "walk city at night", "--record", str(tmp_path / "out.mp4")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"world model on {game_threads(torch.device('cpu'))} torch thread(s)" in run.stderr    # one core left
    with av.open(str(tmp_path / "out.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 8 and frames[0].shape == (720, 1280, 3)
    assert all(f.std() > 10 for f in frames)                       # a picture, not a flat screen
