"""`bench play`: the whole headless game loop on a tiny random-weight world model, one JSON-ready dict."""
import json
import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pytest
import torch

from matrix_sim.actions import Action
from matrix_sim.eval.bench_play import action_script, bench_play, mp4_frames
from matrix_sim.eval.flops import count_flops
from matrix_sim.eval.timed_world import FrameByFrameSampler
from matrix_sim.models.dit import WorldDiT
from matrix_sim.stream.schedule import StreamConfig

from wm_helpers import FRAME_LATENT, TINY_MODEL, make_bundle, one_thread, save_tiny_vae, write_config  # noqa: F401

STREAM = {"context_frames": 2, "levels": 3, "block_frames": 2, "context_level": 0.02}


def test_bench_play_figures_and_video(tmp_path):
    config = write_config(tmp_path, tmp_path / "no-data", tmp_path / "run", save_tiny_vae(tmp_path / "vae"),
                          stream=STREAM)
    video = tmp_path / "play.mp4"
    result = bench_play(seconds=2.0, config=config, progress=False, video=video, threads=1)
    json.dumps(result)                                     # one JSON object
    assert result["weights"] == "random" and result["autoencoder"].startswith("trained")
    assert result["fps"] > 0 and result["runs"]["swin"]["frames"] > 0
    frame_ms = 1000 / result["fps"]
    assert result["latency_ms"] >= frame_ms
    assert set(result["stage_ms"]) >= {"dit", "decode", "display", "encode"}
    assert all(result["stage_ms"][k] > 0 for k in ("dit", "decode", "display", "encode"))
    assert 0 < result["utilisation"] <= 1 and result["model_gflops_per_s"] > 0 and result["peak_gflops_per_s"] > 0
    assert result["gflop_per_frame"]["dit"] > 0 and result["gflop_per_frame"]["decode"] > 0
    base = result["baseline"]
    assert base["fps"] > 0 and base["latency_ms"] > 0 and base["flicker"] >= 0 and result["flicker"] >= 0
    assert result["runs"]["baseline"]["forwards_per_step"] == STREAM["levels"]
    assert {"on", "off"} <= set(result["retarget_actions"])
    assert all(result["retarget_actions"][k]["latency_ms"] > 0 for k in ("on", "off"))
    assert result["video_frames"] == mp4_frames(video) == result["runs"]["swin"]["video_frames"]
    lever = result["decode_ahead"]                         # on a CPU the game decodes ahead; measured against off
    assert lever["used"] and all(lever[k]["fps"] > 0 and lever[k]["latency_ms"] > 0 for k in ("on", "off"))
    assert lever["on"]["fps"] == result["fps"] and result["runs"]["serial"]["frames"] > 0
    lever = result["sampler_process"]                      # on a CPU the game's sampler has a process of its own
    assert lever["used"] and all(lever[k]["fps"] > 0 and lever[k]["latency_ms"] > 0 for k in ("on", "off"))
    assert lever["on"]["fps"] == result["fps"] and result["runs"]["in_game_process"]["frames"] > 0


def test_bench_play_from_a_checkpoint(tmp_path, monkeypatch):
    import matrix_sim.eval.bench_play as bp

    bundle = make_bundle(tmp_path / "bundle", stream=STREAM)
    monkeypatch.setattr(bp, "SIDE_RUN_FRACTION", 0.0)      # the side runs at their 1 s minimum
    peaks = iter([100.0, 400.0])                           # a machine slowed at the start, at full speed at the end
    monkeypatch.setattr(bp, "matmul_peak", lambda device, dtype: next(peaks))
    result = bench_play(seconds=1.0, checkpoint=bundle, progress=False, threads=1)
    assert result["peak_gflops_per_s_measured"] == [100.0, 400.0] and result["peak_gflops_per_s"] == 400.0
    assert result["utilisation"] == pytest.approx(result["model_gflops_per_s"] / 400.0, abs=1e-4)
    assert result["weights"] == "trained" and result["checkpoint"] == str(bundle)
    assert result["latent_shape"] == list(FRAME_LATENT) and result["fps"] > 0
    assert result["runs"]["swin"]["video"] is None
    # torch's own count is the one_thread fixture's 1, as asked: no thread side run
    assert "other_threads" not in result["runs"] and result["threads"] == {"used": 1, "torch_default": 1}


def test_bench_play_measures_the_thread_lever(tmp_path, monkeypatch):
    import matrix_sim.eval.bench_play as bp

    bundle = make_bundle(tmp_path / "bundle", stream=STREAM)
    monkeypatch.setattr(bp, "SIDE_RUN_FRACTION", 0.0)
    torch.set_num_threads(2)                               # torch's own count here; the game's pick is 1
    result = bench_play(seconds=1.0, checkpoint=bundle, progress=False, threads=1)
    assert torch.get_num_threads() == 2                    # given back
    runs = result["runs"]
    assert runs["swin"]["torch_threads"] == runs["baseline"]["torch_threads"] == 1    # seen in the world thread
    assert runs["other_threads"]["torch_threads"] == 2 and runs["other_threads"]["fps"] > 0
    lever = result["threads"]
    assert lever["used"] == result["torch_threads"] == 1 and lever["torch_default"] == 2
    assert lever["used_run"]["fps"] == result["fps"] and lever["torch_default_run"]["latency_ms"] > 0


def test_action_script_changes_every_half_to_one_second():
    script = action_script(0)
    items = [next(script) for _ in range(50)]
    assert all(0.5 <= hold <= 1.0 for _, hold in items)
    assert all(a != b for (a, _), (b, _) in zip(items, items[1:]))
    assert not any(a.is_idle() for a, _ in items)


def test_frame_by_frame_baseline_denoises_each_frame_in_l_forwards():
    torch.manual_seed(0)
    model = WorldDiT(**TINY_MODEL).eval()
    config = StreamConfig(**STREAM)
    sampler = FrameByFrameSampler(model, config, (4, 4, 6), torch.device("cpu"))
    calls = []
    model.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[1]))
    prompt, action = torch.zeros(384), torch.as_tensor(Action(forward=1.0).to_array())
    for _ in range(4):
        emitted = sampler.step(action, prompt)
        assert emitted.latents.shape == (1, 4, 4, 6) and torch.equal(emitted.actions[0], action)
    # 3 forwards per frame; the first of each frame also carries the newest context frame, then it is cached
    assert calls == [1, 1, 1] + [2, 1, 1] * 3
    assert sampler.cache.frames() == 2 and sampler.window == []


def test_attention_flops_are_counted():
    q = torch.randn(1, 2, 16, 8)
    flops, _ = count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True))
    assert flops == 2 * 2 * 16 * 16 * (8 + 8)


def test_bench_levers_times_each_variant(tmp_path):
    from matrix_sim.eval.bench_levers import bench_levers

    # more context frames than a call emits, so that caching them saves work
    config = write_config(tmp_path, tmp_path / "no-data", tmp_path / "run", save_tiny_vae(tmp_path / "vae"),
                          stream={**STREAM, "context_frames": 6})
    result = bench_levers(config, calls=3, progress=False)
    json.dumps(result)
    variants = result["variants"]
    assert set(variants) == {"configured", "context_not_cached", "block_frames_1", "block_frames_4",  # 1 thread
                             "levels_2", "action_guidance_3"}
    for v in variants.values():
        assert v["call_ms"] > 0
        assert v["ms_per_frame"] * v["block_frames"] == pytest.approx(v["call_ms"], rel=0.01)
        assert v["window_latency_ms"] == pytest.approx(v["call_ms"] * v["levels"], rel=0.01)
    assert variants["context_not_cached"]["cache_context"] is False and variants["configured"]["cache_context"]
    assert "output_rel_change" not in variants["configured"]
    assert "output_rel_change" in variants["action_guidance_3"]
    assert variants["levels_2"]["levels"] == 2 and variants["levels_2"]["output_rel_change"] > 0   # another stream
    work = {name: v["mflops_per_call"] for name, v in variants.items()}
    # work, not time (timings of a model this small swing with the machine's load): the levers' costs
    assert work["context_not_cached"] > work["configured"]                  # the context's keys recomputed
    assert work["levels_2"] < work["configured"]                            # a window of fewer blocks
    assert work["action_guidance_3"] == pytest.approx(2 * work["configured"], rel=0.01)   # two rows a call
    assert work["block_frames_1"] < work["configured"] < work["block_frames_4"]


def test_bench_levers_stdout_is_only_the_json(tmp_path):
    """The CLI in a fresh process: pygame's greeting must not land on stdout before the JSON."""
    import subprocess
    import sys

    config = write_config(tmp_path, tmp_path / "no-data", tmp_path / "run", save_tiny_vae(tmp_path / "vae"),
                          stream=STREAM)
    env = {k: v for k, v in os.environ.items() if k != "PYGAME_HIDE_SUPPORT_PROMPT"}
    run = subprocess.run([sys.executable, "-m", "matrix_sim", "-q", "bench", "levers", "--json", "--calls", "2",
                          "--config", str(config)], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["variants"]["configured"]["call_ms"] > 0


def test_bench_levers_runs_a_stream_override(tmp_path, monkeypatch):
    from matrix_sim.eval.bench_levers import bench_levers

    monkeypatch.setenv("MATRIX_SIM_DTYPE", "float32")
    config = write_config(tmp_path, tmp_path / "no-data", tmp_path / "run", save_tiny_vae(tmp_path / "vae"),
                          stream=STREAM)
    result = bench_levers(config, calls=2, progress=False, stream_overrides={"levels": 2})
    assert result["stream"]["levels"] == 2 and result["variants"]["configured"]["levels"] == 2
    assert "levels_1" in result["variants"]
