"""The world model's evaluation: the inverse-dynamics probe and `eval` on a tiny random-weight world model."""
import dataclasses
import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

from matrix_sim.actions import Action
from matrix_sim.data.shards import FORMAT, Episode, episode_name, write_episode, write_manifest
from matrix_sim.eval.drift import STATS, drift_eval, frame_stats, real_run, window_means
from matrix_sim.eval.free_text import PARAPHRASES
from matrix_sim.eval.heldout import HeldoutClip, heldout_clips
from matrix_sim.eval.played_actions import played_frames
from matrix_sim.eval.probe import load_probe
from matrix_sim.train.probe import train_probe
from matrix_sim.eval.prompt_switch import switch_frame
from matrix_sim.eval.rollout import continue_frames
from matrix_sim.eval.scene_classifier import SceneClassifier, colour_histograms
from matrix_sim.eval.sheets import LABEL_HEIGHT
from matrix_sim.eval.still_scene import (HELDOUT_SEED, STILL_PROMPTS, frames_after_up_to, hold_figures,
                                         still_eval, still_footage)
from matrix_sim.eval.metrics import mse, pooled_psnr, psnr, psnr_of_mse
from matrix_sim.eval.world_model_eval import eval_world_model, targets
from matrix_sim.models.checkpoint import CheckpointError
from matrix_sim.models.probe import InverseDynamicsProbe
from matrix_sim.stream import WorldModel
from matrix_sim.world.scenes import parse_prompt

from wm_helpers import TINY_STREAM, make_bundle, one_thread  # noqa: F401 (autouse fixture)

TINY_PROBE = {"channels": (8, 16, 16, 16), "hidden": 32}
SHIFT_PX = 6           # synthetic camera motion per frame: a right turn moves the picture left, forward moves it down
SCENES = [parse_prompt("drive desert by day"), parse_prompt("walk forest at night")]


def synthetic_shards(directory, episodes=6, frames=24, seed=0):
    """Smooth random pictures moved by each frame's action: turn -> sideways, forward -> vertical."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for e in range(episodes):
        coarse = torch.from_numpy(rng.uniform(0, 255, (1, 3, 9, 16)).astype(np.float32))
        image = torch.nn.functional.interpolate(coarse, size=(144, 256), mode="bicubic", align_corners=False)
        image = image.clamp(0, 255).round().byte()[0].permute(1, 2, 0).numpy()
        actions = np.zeros((frames, 5), np.float32)
        actions[:, 0] = rng.choice([-0.8, 0.0, 0.8], frames)
        actions[:, 1] = rng.choice([-0.8, 0.0, 0.8], frames)
        images = [image]
        for t in range(frames - 1):
            dx = -int(np.sign(actions[t, 1])) * SHIFT_PX
            dy = int(np.sign(actions[t, 0])) * SHIFT_PX
            images.append(np.roll(images[-1], (dy, dx), axis=(0, 1)))
        write_episode(directory / episode_name(e), Episode(np.stack(images), actions, np.zeros((frames, 4), np.float32),
                                                           {"index": e}))
        entries.append({"file": episode_name(e), "frames": frames, "prompt": "drive desert by day"})
    write_manifest(directory, {"format": FORMAT, "width": 256, "height": 144, "episodes": entries})
    return directory


@pytest.fixture(scope="module")
def trained_probe(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    torch.set_num_threads(1)
    result = train_probe(synthetic_shards(root / "data"), root / "probe", steps=120, batch_size=32, lr=3e-3,
                         ema_decay=0.9, val_every=3, heldout_frames=0, model=TINY_PROBE, progress=False)
    return root / "probe", result


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("bundle"), stream={**TINY_STREAM, "block_frames": 2})


def test_probe_labels_follow_the_thresholds():
    probe = InverseDynamicsProbe(turn_threshold=0.2, forward_threshold=0.1)
    labels = probe.labels([[1.0, -0.5, 0, 0, 0], [0.05, 0.1, 0, 0, 0], [-0.3, 0.9, 0, 0, 0]])
    assert labels["turn"].tolist() == [0, 1, 2] and labels["forward"].tolist() == [2, 1, 0]


def test_probe_learns_above_chance_and_saves_small(trained_probe):
    path, result = trained_probe
    assert result["val_pairs"] == 2 * 23 and result["train_pairs"] == 4 * 23
    assert result["val_accuracy"]["mean"] > result["val_majority"]["mean"] + 0.15, result
    weights = path / "diffusion_pytorch_model.safetensors"
    assert weights.stat().st_size < 2_000_000 and (path / "config.json").is_file()
    assert json.loads((path / "probe_eval.json").read_text())["steps"] == 120
    probe = load_probe(path)
    frames = np.zeros((3, 144, 256, 3), np.uint8)
    predicted = probe.predict(frames[:2], frames[1:])
    assert set(predicted) == {"turn", "forward"} and predicted["turn"].shape == (2,)


def test_probe_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        load_probe(tmp_path)


@pytest.mark.parametrize("retarget", [False, True])
def test_rollout_conditions_each_frame_on_its_true_action(bundle, retarget):
    """Whatever the stream's retarget_actions: retargeted, the frame leaving the window would take the
    entering block's actions, B frames ahead of its own."""
    world = WorldModel.from_pretrained(bundle, device="cpu")
    configured = world.sampler.config = dataclasses.replace(world.sampler.config, retarget_actions=retarget)
    seen = []
    step = world.sampler.step

    def spy(action, prompt):
        emitted = step(action, prompt)
        if emitted is not None:
            seen.append(emitted.actions.numpy().copy())
        return emitted

    world.sampler.step = spy
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (20, 144, 256, 3), dtype=np.uint8)
    actions = rng.uniform(-1, 1, (20, 5)).astype(np.float32)
    out = continue_frames(world, images, actions, context=4, frames=5, prompt="drive desert by day", seed=3)
    assert out.shape == (5, 144, 256, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(np.concatenate(seen)[:5], actions[3:8])     # frame j follows actions[3 + j]
    assert world.sampler.config == configured                                 # the stream's settings restored
    again = continue_frames(world, images, actions, context=4, frames=5, prompt="drive desert by day", seed=3)
    np.testing.assert_array_equal(out, again)


def test_retargeted_frames_report_a_new_action_sooner(bundle):
    """The latency lever as a player sees it: after a key change, the first frame that reports the new action
    comes out sooner with retarget_actions on; every frame reports an action that was really played."""
    world = WorldModel.from_pretrained(bundle, device="cpu")
    straight, left = Action(forward=1.0).to_array(), Action(forward=1.0, turn=-1.0).to_array()
    images = np.random.default_rng(0).integers(0, 255, (4, 144, 256, 3), dtype=np.uint8)
    clip = HeldoutClip(SCENES[0], images, np.stack([straight] * 6 + [left] * 12))
    first_left = {}
    for retarget in (False, True):
        world.sampler.config = dataclasses.replace(world.sampler.config, retarget_actions=retarget)
        frames, reported = played_frames(world, clip, context=4, frames=14, seed=0)
        assert frames.shape == (15, 144, 256, 3)
        assert all((a == straight).all() or (a == left).all() for a in reported)
        first_left[retarget] = next(i for i, a in enumerate(reported) if (a == left).all())
    assert first_left[True] < first_left[False], first_left


def test_still_footage_is_a_stopped_scene_of_the_source_world():
    for prompt in ("drive grassland by day", "walk forest by day"):
        frames = still_footage(prompt, HELDOUT_SEED, context=5)
        assert frames.shape == (5, 144, 256, 3)
        assert all(np.array_equal(frames[0], f) for f in frames[1:])       # the picture does not change
        assert frames[0].std() > 10                                           # a rendered scene, not a blank


def test_still_scene_runs_on_under_each_held_action(tmp_path):
    from matrix_sim.stream import WorldModel

    world = WorldModel.from_pretrained(make_bundle(tmp_path / "bundle", stream=TINY_STREAM, lively=True))
    common = dict(prompts=STILL_PROMPTS[:1], frames_after=(1, 4), context=4)
    both = still_eval(world, **common)["held"]
    assert both["brake"] != both["idle"]                    # a model that follows its actions
    assert still_eval(world, held=("idle",), **common)["held"] == {"idle": both["idle"]}
    with pytest.raises(ValueError, match=r"unknown held action\(s\) \['coast'\]"):
        still_eval(world, held=("coast",), **common)


def test_hold_figures_fall_when_the_still_picture_is_lost():
    still = still_footage("drive desert at sunset", HELDOUT_SEED, context=2)[-1]
    noise = np.random.default_rng(0).integers(0, 255, still.shape, dtype=np.uint8)
    generated = np.stack([still, still, (still // 2 + noise // 2), noise])
    figures = hold_figures(generated, still, frames_after=(1, 3, 4))
    assert figures["psnr"][0] > 90 and figures["psnr"][0] > figures["psnr"][1] > figures["psnr"][2]
    assert figures["edge_density"][0] == pytest.approx(frame_stats(still)[2])
    assert figures["edge_density"][2] > 0.5 > figures["edge_density"][0]      # noise is all edges
    assert frames_after_up_to(320) == (1, 8, 32, 128, 320) and frames_after_up_to(10) == (1, 8, 10)
    assert frames_after_up_to(8) == (1, 8)
    with pytest.raises(ValueError, match="at least 1 frame"):
        frames_after_up_to(0)


def test_small_helpers():
    assert switch_frame([False, True, True, False, True, True, True], persist=3) == 5
    assert switch_frame([True, True], persist=3) is None
    flat, noisy = np.full((144, 256, 3), 128, np.uint8), np.random.default_rng(0).integers(0, 255, (144, 256, 3),
                                                                                         dtype=np.uint8)
    assert frame_stats(flat)[2] == 0 and frame_stats(noisy)[2] > 0.5
    assert all(0 <= v <= 1 for v in frame_stats(noisy)) and len(frame_stats(flat)) == len(STATS)
    assert window_means(np.arange(9, dtype=float)[:, None], 4).ravel().tolist() == [1.5, 5.5]
    assert np.allclose(colour_histograms(np.stack([flat, noisy])).sum(1), 1)


def test_an_exact_copy_weighs_in_the_pooled_psnr_as_an_error_of_zero_not_as_the_floors_148_db():
    grey = np.full((4, 4, 3), 100, np.uint8)
    off_by_10 = grey + np.uint8(10)
    assert psnr(grey, off_by_10) == pytest.approx(10 * np.log10(255**2 / 100))            # 28.13 dB
    assert psnr(grey, grey) == pytest.approx(148.13, abs=0.01)                               # the floor's figure
    errors = [mse(grey, off_by_10), mse(grey, off_by_10), mse(grey, grey)]
    assert errors == [100.0, 100.0, 0.0]
    assert pooled_psnr(errors) == pytest.approx(10 * np.log10(255**2 / (200 / 3)))          # 29.89 dB
    assert np.mean([psnr_of_mse(e) for e in errors]) > 68                                   # what a mean of dB says


def test_eval_targets_judge_copy_last_on_the_pooled_psnr_and_report_the_per_run_statistics():
    figures = {"psnr_by_horizon": {"1": 24.0, "4": 23.0}, "copy_last_psnr_by_horizon": {"1": 23.0, "4": 22.0},
               "copy_last_through_codec_psnr_by_horizon": {"1": 23.5, "4": 23.5},
               "per_run_psnr_by_horizon": {
                   "mean_db": {"generated": {"1": 24.0, "4": 23.0}, "copy_last": {"1": 32.0, "4": 22.0}},
                   "median_db": {"generated": {"1": 24.5, "4": 23.5}, "copy_last": {"1": 23.5, "4": 21.0}}},
               "action_accuracy": 0.8, "action_accuracy_real": 0.85}
    checked = targets(figures)
    assert checked["beats_copy_last_every_horizon"] is True
    assert checked["beats_copy_last_every_horizon_per_run_mean_db"] is False
    assert checked["beats_copy_last_every_horizon_per_run_median_db"] is True
    assert checked["beats_copy_last_through_codec_every_horizon"] is False       # 23.0 < 23.5 at h = 4
    assert checked["action_accuracy_ratio_ok"] is True and checked["drift_inside_real_spread"] is None


def test_scene_classifier_tells_scenes_apart_on_real_frames():
    clips = heldout_clips(12, scenes=SCENES)
    classifier = SceneClassifier.fit({c.scene.prompt: c.frames[:6] for c in clips})
    assert classifier.accuracy({c.scene.prompt: c.frames[6:] for c in clips}) == 1.0


def test_eval_returns_every_figure(bundle, trained_probe, tmp_path):
    result = eval_world_model(bundle, probe=trained_probe[0], scenes=SCENES, context=4, drift_frames=64,
                              drift_window_s=1.0, switches=[("drive desert by day", "walk forest at night")],
                              switch_frames=12, switch_persist=2, device="cpu", progress=False,
                              sheet=tmp_path / "rollouts.png", drift_sheet=tmp_path / "drift.png",
                              still_frames=10, still_sheet=tmp_path / "still.png", played_seconds=1.0,
                              played_prompts=["drive desert by day"], free_text_seconds=0.5)
    json.dumps(result)                                           # one JSON object
    sheet = Image.open(result["sheet"])                          # a row per clip: context frame + true|generated x 4
    assert sheet.size == (9 * 256, 2 * (144 + LABEL_HEIGHT))
    for key in ("psnr_by_horizon", "copy_last_psnr_by_horizon", "copy_last_through_codec_psnr_by_horizon",
                "codec_ceiling_psnr_by_horizon"):
        assert list(result[key]) == ["1", "4", "8", "16"]
        assert all(isinstance(v, float) and 0 < v < 100 for v in result[key].values())
    for key in ("action_accuracy", "action_accuracy_real"):
        assert 0.0 <= result[key] <= 1.0
    drift = result["drift"]
    assert drift["frames"] == 64 and drift["window_frames"] == 16 and drift["windows"] == 4 and drift["what"]
    for name in STATS:
        assert len(drift["stats"][name]["generated"]) == 4
        low, high = drift["stats"][name]["real_band"]
        assert 0 <= low <= high <= 1
    assert isinstance(drift["inside_real_spread"], bool) and 0 <= drift["inside_fraction"] <= 1
    assert all(len(drift["codec_reference"]["stats"][name]["per_window"]) == 4 for name in STATS)
    tiles = np.asarray(Image.open(drift["sheet"]))            # a column per window: real above generated
    assert tiles.shape == (2 * (144 + LABEL_HEIGHT), 4 * 256, 3)
    footage = [image for image, _ in real_run(drift["prompt"], 2**31 + 977, 4 + 64)][4:]     # after the context
    for column in range(4):
        x = column * 256
        assert np.array_equal(tiles[LABEL_HEIGHT:LABEL_HEIGHT + 144, x:x + 256], footage[column * 16 + 8])
        assert tiles[2 * LABEL_HEIGHT + 144:, x:x + 256].std() > 1          # a generated frame, not background
    still = result["still_scene"]
    assert still["what"] and list(still["held"]) == ["brake", "idle"] and 0 < still["codec_ceiling_psnr"] < 100
    for held in still["held"].values():
        assert list(held["psnr_by_frame"]) == list(held["edge_density_by_frame"]) == ["1", "8", "10"]
        assert all(0 < v < 100 for v in held["psnr_by_frame"].values())
        assert all(0 <= v <= 1 for v in held["edge_density_by_frame"].values()) and 0 < still["real_edge_density"] < 1
    rows = np.asarray(Image.open(still["sheet"]))       # a row per scene and held action: the real picture, 3 frames
    row = 144 + LABEL_HEIGHT
    assert rows.shape == (2 * len(STILL_PROMPTS) * row, 4 * 256, 3)
    first = still_footage(STILL_PROMPTS[0], HELDOUT_SEED, context=4)[-1]
    for held in range(2):
        assert np.array_equal(rows[held * row + LABEL_HEIGHT:(held + 1) * row, :256], first)
    assert result["prompt_switch_s"] is None or 0 < result["prompt_switch_s"] <= 12 / 16
    assert result["prompt_switch"]["what"] and len(result["prompt_switch"]["switches"]) == 1

    # the copy-last baseline, computed independently from the same held-out clips (two starts per clip: 0 and 20):
    # pooled (the PSNR of the runs' mean squared error), and the mean and median of the runs' own PSNR
    assert result["horizon_runs"] == 4 and result["probe_pairs"] == 4 * 15
    clips = heldout_clips(2 * (4 + 16), scenes=SCENES)
    per_run = result["per_run_psnr_by_horizon"]
    for h in (1, 4, 8, 16):
        errors = []
        for clip in clips:
            for start in (0, 20):
                last, true = clip.frames[start + 3], clip.frames[start + 3 + h]
                errors.append(np.mean((last.astype(np.float64) - true.astype(np.float64)) ** 2))
        in_db = 10 * np.log10(255**2 / np.maximum(errors, 1e-10))
        assert result["copy_last_psnr_by_horizon"][str(h)] == pytest.approx(10 * np.log10(255**2 / np.mean(errors)),
                                                                            abs=0.006)
        assert per_run["mean_db"]["copy_last"][str(h)] == pytest.approx(np.mean(in_db), abs=0.006)
        assert per_run["median_db"]["copy_last"][str(h)] == pytest.approx(np.median(in_db), abs=0.006)
        assert per_run["copy_last_exact_runs"][str(h)] == sum(e == 0 for e in errors)
        assert 0 <= per_run["generated_beats_copy_last_share"][str(h)] <= 1
    assert set(result["action_accuracy_played"]) == {"off", "on"}
    assert all(0.0 <= v <= 1.0 for v in result["action_accuracy_played"].values())
    assert set(result["targets"]) >= {"beats_copy_last_every_horizon", "action_accuracy_ratio"}
    diagnosis = result["diagnosis"]
    assert diagnosis["what"] and diagnosis["runs"] == 4 and 0 < diagnosis["posterior_mean_psnr_h1"] < 100
    assert diagnosis["copy_last_psnr_by_horizon_h1"] == result["copy_last_psnr_by_horizon"]["1"]
    played = result["played_from_prompt"]
    assert played["what"] and played["frames"] == 16 and played["prompts"] == ["drive desert by day"]
    primed = result["primed_pan"]
    assert list(primed["per_scene"]) == ["drive desert by day"] and primed["frames"] == primed["per_scene"][
        "drive desert by day"]["frames"] > 0
    free_text = result["free_text"]
    assert free_text["what"] and len(free_text["resolved"]["paraphrases"]) == len(PARAPHRASES)
    assert 0 <= free_text["resolved"]["share"] <= 1 and free_text["started"]["played"]["frames"] == 8
    assert 0 <= free_text["started"]["recognised"] <= 1 and len(free_text["switched"]["switches"]) == 3


def test_eval_can_stream_with_action_guidance(trained_probe, tmp_path):
    lively = make_bundle(tmp_path / "bundle", stream=TINY_STREAM, lively=True)
    common = dict(probe=trained_probe[0], scenes=SCENES[:1], context=4, starts_per_scene=1, drift_frames=0,
                  switches=[], device="cpu", progress=False, played_seconds=0, free_text_seconds=0)
    plain = eval_world_model(lively, **common)
    guided = eval_world_model(lively, stream_overrides={"action_guidance": 3.0}, **common)
    assert plain["stream"]["action_guidance"] == 1.0 and guided["stream"]["action_guidance"] == 3.0
    assert guided["psnr_by_horizon"] != plain["psnr_by_horizon"]            # the stream it scored was another
    assert guided["copy_last_psnr_by_horizon"] == plain["copy_last_psnr_by_horizon"]    # on the same clips


def test_drift_sheet_leaves_out_a_short_last_window_without_its_middle_frame(bundle, tmp_path):
    world = WorldModel.from_pretrained(bundle, device="cpu")
    try:       # 16-frame windows; the last holds 8 frames (kept, as half a window) but no frame 8 of its own
        drift = drift_eval(world, "drive desert by day", frames=72, context=4, window_s=1.0,
                           sheet=tmp_path / "drift.png")
    finally:
        world.close()
    assert drift["windows"] == 5
    assert np.asarray(Image.open(drift["sheet"])).shape == (2 * (144 + LABEL_HEIGHT), 4 * 256, 3)


def test_drift_codec_reference_is_the_real_footage_through_the_codec(bundle):
    """A codec that changes nothing scores exactly the real footage's windows; one that flattens every frame
    scores no edges at all, below the band: the reference shows what the codec alone costs."""
    world = WorldModel.from_pretrained(bundle, device="cpu")
    flat = lambda images: np.broadcast_to(images.mean(axis=(1, 2), keepdims=True).astype(np.uint8),  # noqa: E731
                                          images.shape)
    try:       # 70 frames: a partial last codec batch (64 + 6) and a short last window (16 x 4 + 6)
        kept = drift_eval(world, "drive desert by day", frames=70, context=4, window_s=1.0, codec=lambda x: x)
        flattened = drift_eval(world, "drive desert by day", frames=70, context=4, window_s=1.0, codec=flat)
    finally:
        world.close()
    for name in STATS:
        assert kept["codec_reference"]["stats"][name]["per_window"] == kept["stats"][name]["real"]
    edges = flattened["codec_reference"]["stats"]["edge_density"]
    assert edges["per_window"] == [0.0] * 4 and not edges["inside"]
    assert flattened["codec_reference"]["inside_fraction"] < kept["codec_reference"]["inside_fraction"]


def test_an_output_that_cannot_be_written_is_refused_before_the_eval_runs(bundle, tmp_path, capsys):
    from matrix_sim.cli import main

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    started = time.monotonic()
    assert main(["-q", "eval", "--checkpoint", str(bundle), "--played-sheet", str(blocked / "played.png")]) == 2
    assert capsys.readouterr().err == (f"error: cannot write the played sheet to {blocked / 'played.png'}: "
                                       f"{blocked} is a file, not a folder\n")
    assert main(["-q", "eval", "--checkpoint", str(bundle), "--sheet", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: cannot write the sheet to {tmp_path}: it is a folder\n"
    assert time.monotonic() - started < 10               # refused at once, not after minutes of eval
