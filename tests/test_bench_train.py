"""`bench train`: the config's training step timed in each lever's variant, FLOPs counted with the backward."""
import json

import pytest
import torch

from matrix_sim.eval.flops import count_flops

from wm_helpers import one_thread, save_tiny_vae, write_config  # noqa: F401

STREAM = {"context_frames": 2, "levels": 3, "block_frames": 2, "context_level": 0.02}


def test_bench_train_figures_and_levers(tmp_path, monkeypatch):
    import matrix_sim.eval.bench_train as bt

    config = write_config(tmp_path, tmp_path / "no-data", tmp_path / "run", save_tiny_vae(tmp_path / "vae"),
                          stream=STREAM)
    monkeypatch.delenv("MATRIX_SIM_DTYPE", raising=False)
    # the autocast lever is timed even where bf16 is emulated (a tiny model's steps stay short)
    monkeypatch.setattr(bt, "BF16_USABLE_SLOWDOWN", float("inf"))
    result = bt.bench_train(config, steps=2, progress=False, threads=2, latent_shape=(4, 4, 6), warmup_steps=1,
                            peak_size=64)
    json.dumps(result)                                     # one JSON object
    assert result["clips_per_s"] > 0 and result["model_gflops_per_s"] > 0 and 0 < result["utilisation"]
    assert result["compute_dtype"] in ("float32", "bfloat16")
    other = "bfloat16" if result["compute_dtype"] == "float32" else "float32"
    variants = result["variants"]
    assert set(variants) == {"configured", "batch_half", "batch_double", other, "compiled", "threads_1"}
    assert [variants[k]["batch_size"] for k in ("batch_half", "configured", "batch_double")] == [2, 4, 8]
    assert variants["threads_1"]["threads"] == 1 and variants["configured"]["threads"] == 2
    assert variants[other]["dtype"] == other
    # the config does not compile; the compile lever's variant does, after an untimed pass over the timed steps
    assert not result["compiled"] and not variants["configured"]["compiled"] and variants["compiled"]["compiled"]
    assert variants["compiled"]["first_pass_s"] > 0 and "first_pass_s" not in variants["configured"]
    for v in variants.values():
        assert v["clips_per_s"] > 0 and v["timed_steps"] == 2 and v["step_ms"] > 0 and v["utilisation"] > 0
        assert v["clips_per_s"] == pytest.approx(v["batch_size"] / (v["step_ms"] / 1000), rel=0.01)
    assert set(result["levers"]) == {"batch_size", "autocast", "compile", "threads"}
    assert set(result["levers"]["compile"]) == {"configured", "compiled"}
    assert set(result["peak_gflops_per_s"]) == {"float32", "bfloat16"}
    # backward counted: forward + backward is about 3x the forward (the inputs need no gradient: a bit less)
    assert result["step_over_forward"] > 2.5 and result["gflop_per_step"] > 2.5 * result["gflop_forward_first_step"]
    cpu = result["cpu"]
    assert set(cpu["flags"]) >= {"avx2", "avx512f", "avx512_bf16", "amx_bf16"} and cpu["cpu_count"] >= 1
    assert isinstance(cpu["native_bf16"], bool) and "model" in cpu
    assert result["data"] == "synthetic" and result["latent_shape"] == [4, 4, 6]
    assert torch.get_num_threads() == 1                    # given back


def test_bench_train_skips_an_emulated_bf16(tmp_path, monkeypatch):
    import matrix_sim.eval.bench_train as bt

    config = write_config(tmp_path, tmp_path / "no-data", tmp_path / "run", save_tiny_vae(tmp_path / "vae"),
                          stream=STREAM)
    monkeypatch.setenv("MATRIX_SIM_DTYPE", "float32")
    monkeypatch.setattr(bt, "_bf16_probe", lambda device, threads: {"slowdown": 1000.0})
    monkeypatch.setattr(bt, "training_forward", lambda model, compile_it: model)    # not this test's lever
    result = bt.bench_train(config, steps=1, progress=False, threads=1, latent_shape=(4, 4, 6), warmup_steps=0,
                            peak_size=64)
    assert "skipped" in result["variants"]["bfloat16"] and "skipped" in result["levers"]["autocast"]["bfloat16"]
    assert "threads_0" not in result["variants"] and set(result["peak_gflops_per_s"]) == {"float32"}


def test_bench_train_on_the_configs_data(tmp_path, monkeypatch):
    import matrix_sim.eval.bench_train as bt
    from matrix_sim.eval.bench_train import bench_train
    from wm_helpers import write_latent_shards

    monkeypatch.setattr(bt, "training_forward", lambda model, compile_it: model)    # not this test's lever

    data = write_latent_shards(tmp_path / "latents")
    config = write_config(tmp_path, data, tmp_path / "run", save_tiny_vae(tmp_path / "vae"), stream=STREAM)
    result = bench_train(config, steps=1, data="real", progress=False, threads=1, warmup_steps=0, peak_size=64)
    assert result["data"].startswith("real") and result["latent_shape"] == [4, 4, 6] and result["clips_per_s"] > 0


def test_backward_attention_flops_are_counted():
    q = torch.randn(1, 2, 16, 8, requires_grad=True)

    def attend():
        return torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)

    forward, _ = count_flops(attend)
    step, _ = count_flops(lambda: attend().sum().backward(), inference=False)
    assert forward == 2 * 2 * 16 * 16 * (8 + 8) and step == 3 * forward
