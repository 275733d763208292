"""matrix_sim/runtime: the stream's DiT call and the decoder on ONNX Runtime and OpenVINO agree with eager torch;
auto falls back to torch without the engines; the exported graphs are rebuilt when the weights change.

The engine tests need the `runtime` extra (pip install -e '.[runtime]'): CI installs it, so they run there.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from matrix_sim.actions import Action
from matrix_sim.models.autoencoder import FrameAutoencoder
from matrix_sim.runtime import TORCH, prepare_runtime
from matrix_sim.runtime.choice import cache_folder
from matrix_sim.runtime.engines import LABELS
from matrix_sim.runtime.graphs import StreamShape
from matrix_sim.stream.sampler import SwinSampler
from matrix_sim.stream.schedule import StreamConfig
from wm_helpers import (TINY_LATENT, TINY_MODEL, TINY_STREAM, TINY_VAE, float32, lively_dit,  # noqa: F401 (autouse)
                        make_bundle)

CPU = torch.device("cpu")
STREAM = StreamConfig(**{**TINY_STREAM, "block_frames": 2})
CALLS = 8
TOLERANCE = 1e-4          # float32: engines and eager torch differ by ~1e-6


def _vae() -> FrameAutoencoder:
    torch.manual_seed(0)
    vae = FrameAutoencoder(**TINY_VAE).eval()
    with torch.no_grad():
        for p in vae.parameters():
            p.normal_(0.0, 0.1)
    return vae


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One cache folder for the tests that export the same weights (each export takes seconds)."""
    return tmp_path_factory.mktemp("runtime-cache")


def _stream(model, calls: int = CALLS) -> list[torch.Tensor]:
    """Emitted latents of a primed stream (so the steady shape comes after L - 1 calls); `model` is a DiT (or its
    stand-in) or a sampler to drive."""
    sampler = model if hasattr(model, "step") else SwinSampler(model, STREAM, TINY_LATENT, CPU)
    sampler.reset(3)
    g = torch.Generator().manual_seed(0)
    sampler.prime(torch.randn(STREAM.context_frames, *TINY_LATENT, generator=g), torch.zeros(STREAM.context_frames, 5),
                  torch.nn.functional.normalize(torch.randn(384, generator=g), dim=0))
    out = []
    for i in range(calls):
        emitted = sampler.step(torch.as_tensor(Action(forward=1.0, turn=0.5 * (i % 3 - 1)).to_array()),
                               torch.nn.functional.normalize(torch.ones(384), dim=0))
        if emitted is not None:
            out.append(emitted.latents)
    return out


@pytest.mark.parametrize("engine, neighbours", [("onnx", 0), ("openvino", 0), ("onnx", 1)])
def test_engine_stream_and_decoder_agree_with_eager_torch(engine, neighbours, shared):
    pytest.importorskip({"onnx": "onnxruntime", "openvino": "openvino"}[engine])
    dit, vae = lively_dit({**TINY_MODEL, "neighbours": neighbours}).eval(), _vae()
    runtime = prepare_runtime(engine, dit, vae, STREAM, TINY_LATENT, shared, CPU, threads=1)
    assert runtime.name == engine and runtime.decoder.engine == engine
    stand_in = runtime.stream_model(dit)
    reference, got = _stream(dit), _stream(stand_in)
    assert stand_in.calls["engine"] >= len(reference) - 1 > 3         # the steady calls ran on the engine
    assert len(got) == len(reference)
    for a, b in zip(got, reference):
        assert (a - b).abs().max() < TOLERANCE
    latents = torch.randn(STREAM.block_frames, *TINY_LATENT)
    with torch.inference_mode():
        assert (runtime.decoder_for(vae)(latents) - vae.decode(latents)).abs().max() < TOLERANCE


@pytest.mark.parametrize("engine", ["onnx", "openvino"])
def test_engine_stream_runs_in_the_sampler_process(engine, shared):
    pytest.importorskip({"onnx": "onnxruntime", "openvino": "openvino"}[engine])
    from matrix_sim.stream.sampler_process import SamplerProcess

    dit = lively_dit().eval()
    runtime = prepare_runtime(engine, dit, _vae(), STREAM, TINY_LATENT, shared, CPU, threads=1)
    assert runtime.name == engine                                  # not torch against torch
    process = SamplerProcess(dit, STREAM, TINY_LATENT, CPU, runtime.hosted(SwinSampler))
    try:
        got = _stream(process)
    finally:
        process.close()
    reference = _stream(dit)
    assert len(got) == len(reference) > 3
    for a, b in zip(got, reference):
        assert (a - b).abs().max() < TOLERANCE


def test_auto_plays_on_torch_without_the_engines(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)       # import fails: as if not installed
    monkeypatch.setitem(sys.modules, "openvino", None)
    dit = lively_dit().eval()
    with caplog.at_level("INFO", logger="matrix_sim.runtime"):
        runtime = prepare_runtime("auto", dit, _vae(), STREAM, TINY_LATENT, tmp_path, CPU)
    assert runtime is TORCH and runtime.stream_model(dit) is dit
    assert "no CPU inference engine installed" in caplog.text
    assert prepare_runtime("openvino", dit, _vae(), STREAM, TINY_LATENT, tmp_path, CPU) is TORCH
    assert not list(tmp_path.glob("**/*.onnx"))                  # nothing exported for nothing to run it


def test_world_model_plays_on_the_engine_auto_picks(tmp_path):
    pytest.importorskip("onnxruntime")
    from matrix_sim.stream import WorldModel

    root = make_bundle(tmp_path / "bundle", stream={**TINY_STREAM, "block_frames": 2}, lively=True)
    torch_world = WorldModel.from_pretrained(root, device="cpu", runtime="torch")
    auto_world = WorldModel.from_pretrained(root, device="cpu", runtime="auto")
    choice, = (root / ".runtime-cache").glob("choice-*.json")           # auto's race is remembered
    picked = json.loads(choice.read_text())["stream"]
    assert "runtime torch" in torch_world.device
    assert f"runtime {LABELS.get(picked, 'torch')}" in auto_world.device   # it plays what the race picked
    frames = []
    for world in (torch_world, auto_world):
        world.reset("drive desert by day", 0)
        frames.append([world.step(Action(forward=1.0)).image for _ in range(8)])
        world.close()
    for a, b in zip(*frames):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_graphs_are_rebuilt_when_the_weights_change(tmp_path):
    pytest.importorskip("onnxruntime")
    dit, vae = lively_dit().eval(), _vae()
    first = prepare_runtime("onnx", dit, vae, STREAM, TINY_LATENT, tmp_path, CPU, threads=1)
    again = prepare_runtime("onnx", dit, vae, STREAM, TINY_LATENT, tmp_path, CPU, threads=1)
    assert again.stream.path == first.stream.path                  # cached: the same graph
    with torch.no_grad():
        dit.patch_out.bias.add_(0.5)
    changed = prepare_runtime("onnx", dit, vae, STREAM, TINY_LATENT, tmp_path, CPU, threads=1)
    assert changed.stream.path != first.stream.path and changed.decoder.path == first.decoder.path
    assert len(list((tmp_path / ".runtime-cache").glob("stream-*.onnx"))) == 2
    stand_in = changed.stream_model(dit)
    reference, got = _stream(dit), _stream(stand_in)
    assert len(got) == len(reference) and stand_in.calls["engine"] >= len(reference) - 1 > 3
    for a, b in zip(got, reference):                               # the new weights play
        assert (a - b).abs().max() < TOLERANCE


def test_cache_goes_to_the_user_cache_when_the_checkpoint_folder_cannot_hold_it(tmp_path, monkeypatch):
    import matrix_sim.runtime.choice as choice

    monkeypatch.setattr(choice, "USER_CACHE", tmp_path / "user")
    unusable = tmp_path / "ckpt"
    unusable.mkdir()
    (unusable / choice.CACHE_FOLDER).write_text("")   # no folder can be made there (root ignores permissions)
    folder = cache_folder(unusable)
    assert folder.is_relative_to(tmp_path / "user") and folder.is_dir()
    assert cache_folder(None).is_relative_to(tmp_path / "user")


def test_steady_shape_is_the_samplers():
    shape = StreamShape.steady(STREAM, TINY_LATENT)
    assert (shape.batch, shape.frames, shape.past, shape.commit) == (1, 8, 2, 2)
    guided = StreamShape.steady(StreamConfig(**{**TINY_STREAM, "action_guidance": 3.0}), TINY_LATENT)
    assert guided.batch == 2
