"""The exported graphs behind the stream's own interfaces: the sampler and the decoder never know which runs.

- EngineStream stands in for the WorldDiT a SwinSampler calls: a call of the graph's StreamShape (every call
  once the window is full) runs on the engine, reading the past keys/values from the sampler's TemporalCache
  and appending the committed frames' ones to it; any other call (the few that fill the window after a reset)
  runs the DiT on torch. Both in float32: the engines' graphs are float32, and one stream's cache holds one
  format (OpenVINO may compute in bf16 inside, as device.compute_dtype chooses, but reads and writes float32).
- EngineDecoder stands in for FrameAutoencoder.decode: a block of the graph's size runs on the engine.
- GraphSpec says where a graph is and how to run it, in plain data: it crosses to the sampler process, where
  HostedSampler (a picklable stand-in for the sampler class) opens the engine and builds the sampler on it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from matrix_sim.models.dit import WorldDiT
from matrix_sim.runtime.engines import Engine, open_engine
from matrix_sim.runtime.graphs import StreamShape, cache_slots, slot_name, stream_names, stream_rope


@dataclass(frozen=True)
class GraphSpec:
    engine: str                 # "onnx" or "openvino"
    path: str                   # the ONNX graph
    threads: int                # intra-op threads
    precision: str = "f32"      # OpenVINO's inference precision (f32 or bf16)
    shape: Optional[StreamShape] = None     # the stream call's shape (None for the decoder)

    def open(self) -> Engine:
        return open_engine(self.engine, self.path, self.threads, self.precision)


class EngineStream:
    """A WorldDiT's stream call on an engine for its graph's shape, on torch (float32) for any other."""

    def __init__(self, dit: WorldDiT, spec: GraphSpec, engine: Optional[Engine] = None):
        self.dit, self.spec, self.shape = dit, spec, spec.shape
        self.engine = engine or spec.open()
        self.config = dit.config
        self.slots = cache_slots(dit)
        self.inputs, self.outputs = stream_names(self.slots, self.shape)
        self.calls = {"engine": 0, "torch": 0}

    def __call__(self, latents: torch.Tensor, levels: torch.Tensor, actions: torch.Tensor, prompt_emb: torch.Tensor,
                 cache=None, commit_frames: int = 0) -> torch.Tensor:
        if not self.shape.matches(latents, cache, commit_frames, prompt_emb):
            self.calls["torch"] += 1
            with torch.autocast("cpu", enabled=False):
                return self.dit(latents.float(), levels.float(), actions.float(), prompt_emb.float(), cache=cache,
                                commit_frames=commit_frames)
        self.calls["engine"] += 1
        start = cache.position if cache is not None else 0
        cos, sin = stream_rope(self.dit, start, latents.shape[1])
        feed = {"latents": latents, "levels": levels, "actions": actions, "prompts": prompt_emb, "rope_cos": cos,
                "rope_sin": sin}
        for slot in self.slots if self.shape.past else []:
            name = slot_name(slot)
            feed[f"past_key_{name}"], feed[f"past_value_{name}"] = (t.float() for t in cache.get(slot))
        out = self.engine.run(feed)
        if self.shape.commit:
            for slot in self.slots:
                name = slot_name(slot)
                cache.append(slot, torch.from_numpy(out[f"new_key_{name}"]), torch.from_numpy(out[f"new_value_{name}"]))
            cache.position += self.shape.commit
        return torch.from_numpy(out["v"])

    def parameters(self):
        return self.dit.parameters()


class EngineDecoder:
    """FrameAutoencoder.decode with blocks of the graph's size on an engine (others on torch)."""

    def __init__(self, vae, spec: GraphSpec, frames: int, engine: Optional[Engine] = None):
        self.vae, self.spec, self.frames = vae, spec, frames
        self.engine = engine or spec.open()

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        if latents.shape[0] != self.frames:
            return self.vae.decode(latents)
        return torch.from_numpy(self.engine.run({"latents": latents})["images"])


class HostedSampler:
    """What SamplerProcess hosts in its child, picklable: the sampler class, built on the engine's stream call."""

    def __init__(self, sampler: type, spec: GraphSpec):
        self.sampler, self.spec = sampler, spec
        self.__name__ = sampler.__name__

    def __call__(self, model: WorldDiT, config, latent_shape, device):
        return self.sampler(EngineStream(model, self.spec), config, latent_shape, device)
