"""`eval --data`: the world model scored on recorded footage (a game the project did not write)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from matrix_sim.data.shards import FORMAT, Episode, episode_name, write_episode, write_manifest
from matrix_sim.eval.footage_eval import eval_on_footage, footage_clips
from matrix_sim.eval.metrics import mse, pooled_psnr

from wm_helpers import TINY_STREAM, make_bundle, one_thread  # noqa: F401 (autouse fixture)

CONTEXT = 4


def recorded(directory, episodes=2, frames=60, seed=0, size=(144, 256)):
    """A `record` directory of moving noise pictures under random actions, as a Gymnasium recording writes it."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for e in range(episodes):
        base = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        images = np.stack([np.roll(base, 3 * t, axis=1) for t in range(frames)])
        actions = rng.uniform(-1, 1, (frames, 5)).astype(np.float32)
        write_episode(directory / episode_name(e), Episode(images, actions, np.zeros((frames, 4), np.float32),
                                                           {"index": e}))
        entries.append({"file": episode_name(e), "frames": frames, "prompt": f"doom map0{e + 1}"})
    write_manifest(directory, {"format": FORMAT, "width": size[1], "height": size[0], "episodes": entries})
    return directory


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("bundle"), stream={**TINY_STREAM, "block_frames": 2})


def test_footage_eval_scores_the_horizons_against_copy_last_on_the_recording(bundle, tmp_path):
    data = recorded(tmp_path / "footage")
    result = eval_on_footage(bundle, data, context=CONTEXT, starts_per_episode=2, device="cpu", progress=False,
                             sheet=tmp_path / "sheet.png")
    json.dumps(result)
    assert result["episodes"] == 2 and result["horizon_runs"] == 4 and result["protocol"]
    assert "action_accuracy" not in result                      # no probe knows this game's actions
    # copy-last from the footage itself: run (episode, start) shows frame start + CONTEXT - 1 for frame + h
    span = CONTEXT + 16
    clips = footage_clips(data, 2 * span + 6, (144, 256))
    for h in (1, 16):
        errors = [mse(c.frames[s * span + CONTEXT - 1], c.frames[s * span + CONTEXT - 1 + h])
                  for c in clips for s in range(2)]
        assert result["copy_last_psnr_by_horizon"][str(h)] == pytest.approx(pooled_psnr(errors), abs=0.01)
    assert all(0 < v < 100 for v in result["psnr_by_horizon"].values())
    assert result["diagnosis"]["runs"] == 4 and result["diagnosis"]["posterior_mean_psnr_h1"] > 0
    assert (tmp_path / "sheet.png").is_file()


def test_footage_clips_refuse_short_episodes_and_other_sizes(tmp_path):
    data = recorded(tmp_path / "short", episodes=1, frames=10)
    with pytest.raises(ValueError, match="10 frames, the eval needs 30"):
        footage_clips(data, 30, (144, 256))
    with pytest.raises(ValueError, match="the model makes"):
        footage_clips(data, 8, (72, 128))


def test_eval_command_refuses_source_world_options_with_footage(tmp_path, capsys):
    from matrix_sim.cli import main

    data = recorded(tmp_path / "footage", episodes=1, frames=40)
    assert main(["-q", "eval", "--data", str(data), "--drift-frames", "0", "--played-sheet", "p.png"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: eval --data") and "--drift-frames, --played-sheet need the source world" in error
    assert "\n" not in error


def test_eval_command_takes_recorded_footage(bundle, tmp_path):
    data = recorded(tmp_path / "footage", episodes=1, frames=40)
    run = subprocess.run([sys.executable, "-m", "matrix_sim", "-q", "eval", "--checkpoint", str(bundle), "--data",
                          str(data), "--starts-per-scene", "1", "--json"], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["data"] == str(data) and list(result["psnr_by_horizon"]) == ["1", "4", "8", "16"]
