"""eval's diagnosis (the one-shot estimate from pure noise), played_from_prompt (both worlds from a prompt) and
primed_pan (single frames from real ones while steering)."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from matrix_sim.actions import Action
from matrix_sim.eval.diagnosis import diagnosis_block, one_shot_estimate, posterior_mean_psnr
from matrix_sim.eval.heldout import HeldoutClip
from matrix_sim.eval.played_from_prompt import (Track, correlation, frame_change, gain, pan_shift,
                                                played_from_prompt, script_actions, sharpness_ratio)
from matrix_sim.eval.sheets import LABEL_HEIGHT
from matrix_sim.stream import WorldModel
from matrix_sim.stream.sampler import Emitted
from matrix_sim.world.engine import SourceWorld
from matrix_sim.world.scenes import parse_prompt

from wm_helpers import TINY_STREAM, make_bundle, one_thread  # noqa: F401 (autouse fixture)

# a script short enough for tests: every segment 4 frames at 16 fps, windows of 8 frames
SHORT = {mode: (("straight", 0.25, Action(forward=1.0)), ("left", 0.25, Action(forward=1.0, turn=-1.0)),
                ("right", 0.25, Action(forward=1.0, turn=1.0)), ("stop", 0.25, Action(brake=1.0)),
                ("idle", 0.25, Action()), ("reverse", 0.25, Action(forward=-1.0)), ("on", 0.0, Action(forward=1.0)))
         for mode in ("drive", "walk")}
PROMPTS = ("drive desert by day", "walk forest at night")


def texture(height=144, width=320, seed=0) -> np.ndarray:
    """A smooth random colour picture with some detail (bicubic from a coarse grid)."""
    coarse = np.random.default_rng(seed).uniform(0, 255, (height // 8, width // 8, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))


@pytest.mark.parametrize("shift", [-9, -3, 0, 2, 5, 14])
def test_pan_estimator_recovers_a_known_shift_and_its_sign(shift):
    wide = texture()
    before = wide[:, 32:32 + 256]
    after = wide[:, 32 - shift:32 - shift + 256]        # the picture moved right by `shift` (new columns enter)
    assert pan_shift(before, after) == pytest.approx(shift, abs=0.3)
    assert pan_shift(after, before) == pytest.approx(-shift, abs=0.3)
    assert pan_shift(before, np.roll(before, shift, axis=1)) == pytest.approx(shift, abs=0.3)


def test_track_holds_the_pan_and_frame_change_from_the_frame_before():
    wide = texture(seed=3)
    track = Track(edge_every=2)
    for x in (40, 36, 36):           # the picture moves right by 4, then stands still
        track.add(wide[:, x:x + 256])
    assert track.pans[0] == 0.0 and track.pans[1] == pytest.approx(4, abs=0.3) and abs(track.pans[2]) < 0.3
    assert track.changes[0] == 0.0 and track.changes[1] > 1 and track.changes[2] == 0.0
    assert track.edges[1] is None and track.edges[0] is not None and track.edges[2] is not None


def test_sharpness_ratio_is_one_for_the_same_frames_and_below_one_for_a_blurred_copy(world):
    frames = np.stack([world.reset("drive city by day", 11).image, world.step(Action(forward=1.0)).image])
    blurred = np.stack([np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(2))) for f in frames])
    assert sharpness_ratio(frames, frames.copy()) == 1.0
    assert sharpness_ratio(blurred, frames) < 0.7
    assert sharpness_ratio(frames, blurred) > 1.4


def test_frame_change_is_zero_for_a_frozen_clip_and_counts_grey_levels():
    frame = texture(width=256)
    assert frame_change(np.stack([frame] * 5)) == 0.0
    brighter = np.clip(frame.astype(np.int16) + 3, 0, 255).astype(np.uint8)
    expected = np.mean(np.abs(brighter.astype(float) - frame)) / 2        # one change of ~3 over two steps
    assert frame_change(np.stack([frame, brighter, brighter])) == pytest.approx(expected)
    with pytest.raises(ValueError):
        frame_change(frame[None])


def test_script_actions_follow_the_segments_then_hold_the_last():
    actions, names = script_actions("walk", 32, 16, SHORT)
    assert len(actions) == len(names) == 31
    assert names[:4] == ["straight"] * 4 and names[4:8] == ["left"] * 4 and names[24:] == ["on"] * 7
    assert actions[4] == Action(forward=1.0, turn=-1.0) and actions[-1] == Action(forward=1.0)
    assert script_actions("drive", 5, 16, SHORT)[1] == ["straight"] * 4


@pytest.fixture(scope="module")
def lively_bundle(tmp_path_factory):
    """A lively DiT, context cached: the estimate goes through the cache."""
    return make_bundle(tmp_path_factory.mktemp("lively"), stream={**TINY_STREAM, "block_frames": 2}, lively=True)


def test_one_shot_estimate_is_x1_minus_v_of_one_forward_over_the_context(lively_bundle, monkeypatch):
    monkeypatch.setenv("MATRIX_SIM_DTYPE", "float32")             # the stream's forward as the hand's: no autocast
    world = WorldModel.from_pretrained(lively_bundle, device="cpu")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 144, 256, 3), dtype=np.uint8)
    actions = rng.uniform(-1, 1, (6, 5)).astype(np.float32)
    prompt, context = "drive desert by day", 3

    # by hand: the context as load_context leaves it, the noise the stream's first call would draw, one
    # uncached forward over both, x0 = x_1 - 1 * v
    world.load_context(images[:context], actions[:context], prompt, seed=7)
    sampler = world.sampler
    ctx = sampler.context
    k = len(ctx)                                                  # the newest context_frames (2) of the 3
    assert k == TINY_STREAM["context_frames"]
    noise = torch.randn((2, *sampler.latent_shape), generator=sampler.generator)
    embedding = world.prompts.embed(prompt).float()
    with torch.no_grad():
        v = world.dit(torch.cat([ctx.latents, noise])[None], torch.cat([ctx.levels, torch.ones(2)])[None],
                      torch.cat([ctx.actions, torch.from_numpy(actions[context - 1:context + 1])])[None],
                      torch.cat([ctx.prompts, embedding.expand(2, -1)])[None])[0, k:]
    by_hand = noise - v
    assert v.abs().mean() > 0.05                         # a model whose output matters

    estimate, decoded = one_shot_estimate(world, images, actions, context, prompt, seed=7)
    torch.testing.assert_close(estimate, by_hand, atol=1e-4, rtol=1e-4)
    assert decoded.shape == (2, 144, 256, 3) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, np.stack(world.decode(Emitted(estimate, torch.zeros(2, 5)))))
    assert np.abs(decoded.astype(int) - np.stack(world.decode(Emitted(by_hand, torch.zeros(2, 5))))).max() <= 1
    assert sampler.window == []

    # pooled over runs like the horizon figures: the estimate's frame 1 against the true frame 1
    clip = HeldoutClip(parse_prompt(prompt), images, actions)
    result = posterior_mean_psnr(world, [clip], context, span=3, starts_per_scene=1, seed=7)
    error = np.mean((decoded[0].astype(np.float64) - images[context]) ** 2)
    assert result == {"psnr": round(10 * math.log10(255**2 / error), 2), "runs": 1}
    block = diagnosis_block(result, {"psnr_by_horizon": {"1": 12.5}, "copy_last_psnr_by_horizon": {"1": 20.0}})
    assert block["posterior_mean_psnr_h1"] == result["psnr"] and block["psnr_by_horizon_h1"] == 12.5
    assert block["copy_last_psnr_by_horizon_h1"] == 20.0 and block["codec_ceiling_psnr_by_horizon_h1"] is None
    assert block["what"]
    world.close()


def test_pan_gain_sees_a_world_that_barely_turns_which_the_correlation_cannot():
    source = [4.0, 3.5, 4.2, -3.6, -3.9, -3.4]
    timid = [0.1 * p for p in source]                     # turns the right way, a tenth as far
    assert correlation(timid, source) == pytest.approx(1.0)
    assert gain(timid, source) == pytest.approx(0.1)
    assert gain(source, source) == pytest.approx(1.0)
    assert gain([0.0] * 6, source) == 0.0
    assert gain(timid, [0.0] * 6) is None                   # no turn to share


def _in_range(summary: dict) -> None:
    assert 0 < summary["min_sharpness_ratio"] <= summary["mean_sharpness_ratio"] < 20
    assert -1 <= summary["pan_correlation"] <= 1 and math.isfinite(summary["pan_gain"])
    assert 0 <= summary["frame_change_stopped"] < 255 and 0 <= summary["scene_recognition_rate"] <= 1
    assert all(math.isfinite(v) for v in summary.values())


def test_played_from_prompt_runs_end_to_end_on_a_tiny_world_model(tmp_path):
    world = WorldModel.from_pretrained(make_bundle(tmp_path / "bundle", lively=True), device="cpu")
    result = played_from_prompt(world, PROMPTS, seconds=2.0, window_s=0.5, scripts=SHORT)
    world.close()
    assert result["frames"] == 32 and result["windows_per_scene"] == 4 and result["what"]
    assert result["steering_frames"] == 2 * 8 and result["stopped_frames"] == 2 * 8
    _in_range(result["generated"])
    _in_range(result["reference"])
    assert result["classifier_scenes"][:2] == list(PROMPTS) and len(result["classifier_scenes"]) == 6
    for scene in result["scenes"]:
        assert [w["segment"] for w in scene["windows"]] == ["straight", "right", "idle", "on"]
        for window in scene["windows"]:
            assert set(window["sharpness_ratio"]) == {"generated", "reference"}
            assert all(v >= 0 for v in window["frame_change"].values())


class SourceAsPlayed:
    """The source world with the two attributes played_from_prompt reads off a WorldModel."""

    frame_rate = 16
    frame_size = (144, 256)

    def __init__(self):
        self.world = SourceWorld(256, 144)

    def reset(self, prompt, seed):
        return self.world.reset(prompt, seed)

    def step(self, action):
        return self.world.step(action)


def test_a_played_world_that_is_the_source_world_scores_perfectly(tmp_path):
    """Played at the source world's own seeds, the 'generated' world is the source world frame for frame."""
    played = SourceAsPlayed()
    try:
        result = played_from_prompt(played, PROMPTS, seconds=2.0, window_s=0.5, scripts=SHORT, seed=2**31 + 700,
                                    sheet=tmp_path / "played.png")
    finally:
        played.world.close()
    # the sheet: per prompt a source row above a generated row, a captioned frame from the middle of each window
    sheet = np.asarray(Image.open(result["sheet"]).convert("RGB")).astype(int)
    tile_h = 144 + LABEL_HEIGHT
    assert sheet.shape == (len(PROMPTS) * 2 * tile_h, 4 * 256, 3)
    for p in range(len(PROMPTS)):
        source, generated = (sheet[(2 * p + k) * tile_h + LABEL_HEIGHT:(2 * p + k + 1) * tile_h] for k in (0, 1))
        np.testing.assert_array_equal(source, generated)
        assert source.std() > 10                                    # a rendered scene, not an empty tile
    first, second = (sheet[LABEL_HEIGHT:tile_h, i * 256:(i + 1) * 256] for i in (0, 1))
    assert np.abs(first - second).mean() > 1                       # a frame from each window, not one repeated
    generated = result["generated"]
    assert generated["min_sharpness_ratio"] == generated["mean_sharpness_ratio"] == 1.0
    assert generated["pan_correlation"] == generated["pan_gain"] == 1.0
    assert generated["scene_recognition_rate"] == 1.0
    assert generated["frame_change_stopped"] == result["source_frame_change_stopped"]
    assert result["reference"]["min_sharpness_ratio"] != 1.0        # another seed: another world
    walk = result["scenes"][1]["windows"]                             # a walker turns in place: a clear pan
    assert walk[1]["pan_px_per_frame"]["source"] < -1                 # steering right (frames 8-11 in it)


def test_eval_command_passes_the_played_length_and_sheet_through(monkeypatch, tmp_path, capsys):
    import matrix_sim.eval.world_model_eval as evaluation
    from matrix_sim.cli import build_parser, main

    seen = {}
    monkeypatch.setattr(evaluation, "eval_world_model", lambda checkpoint, **kw: seen.update(kw) or {"ok": 1})
    assert build_parser().parse_args(["eval"]).played_seconds == 24.0
    assert main(["eval", "--checkpoint", str(tmp_path), "--played-seconds", "0", "--json"]) == 0
    assert seen["played_seconds"] == 0.0 and capsys.readouterr().out.strip() == '{"ok": 1}'
    assert seen["free_text_seconds"] == 8.0
    assert main(["eval", "--checkpoint", str(tmp_path), "--free-text-seconds", "0", "--json"]) == 0
    assert seen["free_text_seconds"] == 0.0
    assert seen["played_sheet"] is None
    assert main(["eval", "--checkpoint", str(tmp_path), "--played-sheet", "out/played.png", "--json"]) == 0
    assert seen["played_sheet"] == "out/played.png"


class PrimedFake:
    """A world primed with real frames that answers with the last one moved `pan` pixels the way the last
    action steers (left: the picture moves right, as the source world's does), or not moved at all."""

    frame_rate, frame_size = 16.0, (144, 256)

    def __init__(self, pan: int):
        self.pan = pan

    def prime(self, images, actions, prompt, seed):
        turn = Action.from_array(actions[-1]).turn
        return SimpleNamespace(image=np.roll(images[-1], int(-np.sign(turn) * self.pan), axis=1))


def test_primed_pan_follows_a_world_that_turns_with_the_steering_and_not_one_that_stands():
    from matrix_sim.eval.primed_pan import primed_pan

    turning = primed_pan(PrimedFake(6), PROMPTS, starts=2, context=4, every=1, scripts=SHORT)
    assert turning["what"] and turning["frames"] == 2 * 2 * 8 and turning["context_frames"] == 4
    assert turning["pan_correlation"] > 0.8 and turning["pan_gain"] > 0.3
    assert all(scene["pan_correlation"] > 0.8 for scene in turning["per_scene"].values())
    standing = primed_pan(PrimedFake(0), PROMPTS, starts=2, context=4, every=1, scripts=SHORT)
    assert standing["pan_gain"] == 0.0 and standing["pan_correlation"] is None
