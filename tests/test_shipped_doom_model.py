"""The shipped model of Doom (checkpoints/doom) plays on the default install, without the game: it opens on
its first level from the start clips it carries and keeps to that level's colours."""
import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
from matrix_sim.stream.bundle import read_info
from matrix_sim.stream.starts import BundleStarts

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "checkpoints" / "doom"


def test_the_bundle_is_complete_small_and_starts_each_level():
    for part in ("world_model.json", "prompts.safetensors", "starts.safetensors", "dit/config.json",
                 "vae/config.json", "eval.json", "README.md"):
        assert (SHIPPED / part).is_file(), part
    for weights in SHIPPED.rglob("*.safetensors"):
        assert weights.stat().st_size < 25_000_000, weights
    assert read_info(SHIPPED).start_prompt == "doom e1m1"
    starts = BundleStarts.load(SHIPPED)
    assert "doom e1m1" in starts and "doom map01" in starts


def test_it_plays_doom_headless_without_the_game(tmp_path):
    """No vizdoom in the default install: the game starts E1M1 from the bundle's clips and records it."""
    video = tmp_path / "doom.mp4"
    script = tmp_path / "keys.json"
    script.write_text(json.dumps([{"forward": 1, "frames": 8}, {"turn": 1, "frames": 8}]))
    run = subprocess.run([sys.executable, str(REPO / "run_sim.py"), "--checkpoint", str(SHIPPED), "--headless",
                          "--frames", "16", "--actions", str(script), "--record", str(video), "-q"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "doom e1m1" in video.with_suffix(".json").read_text()      # the session opened on E1M1
    with av.open(str(video)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.float32)
    assert len(frames) == 16
    # Doom's palette: the colours of the level's start clip
    from matrix_sim.stream import WorldModel

    world = WorldModel.from_pretrained(SHIPPED, device="cpu", start_from_source=True)
    try:
        doom, _ = world.starter.clip("doom e1m1", 0)
    finally:
        world.close()
    mean_doom = doom.reshape(-1, 3).mean(axis=0)
    generated = frames[-4:].reshape(-1, 3).mean(axis=0)
    assert np.abs(generated - mean_doom).mean() < 30, (generated, mean_doom)
    assert frames[-1].std() > 10                       # a picture, not a flat colour
