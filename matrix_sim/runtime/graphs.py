"""The stream's DiT call and the frame decoder as static-shape ONNX graphs, for a CPU inference engine.

StreamCall wraps a WorldDiT so that its temporal cache is explicit tensors: the graph takes the window's
latents, levels, actions, prompt embeddings, the frames' rotary tables (computed outside in float64, as
WorldDiT does, so an endless stream's positions stay exact) and the cached keys and values of every
temporal-attention layer; it returns v and the keys and values of the frames it commits. WorldDiT itself is
unchanged: a GraphCache stands in for its TemporalCache during the trace.

One graph per stream shape (StreamShape): in the steady state of a stream every call has the same shape
(K context frames cached, the B frames to commit followed by the L * B window frames), so the calls that fill
the window after a reset run on torch and every call after them on the graph.

Export: torch's TorchScript exporter (the quicker one, no onnxscript needed), with aten::rms_norm spelled out
in ONNX ops (that exporter has no rule for it); the dynamo exporter (torch.export + onnxscript, slower) is the
fallback where the TorchScript one is missing or fails.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Hashable

import torch
from torch import nn

from matrix_sim.models.autoencoder import FrameAutoencoder
from matrix_sim.models.dit import WorldDiT, rope_tables
from matrix_sim.stream.schedule import StreamConfig

log = logging.getLogger(__name__)
OPSET = 18
GRAPH_FORMAT = 2           # bumped when what a graph takes or returns changes: old cached graphs are not reused
STREAM_INPUTS = ("latents", "levels", "actions", "prompts", "rope_cos", "rope_sin")


class ExportError(RuntimeError):
    """A graph could not be exported; the message says which and why."""


@dataclass(frozen=True)
class StreamShape:
    """One shape of the stream's DiT call: `batch` rows (2 with action guidance) of `frames` frames of
    `latent_shape`, of which the first `commit` are committed to the cache, after `past` cached frames."""

    batch: int
    frames: int
    past: int
    commit: int
    latent_shape: tuple

    @classmethod
    def steady(cls, stream: StreamConfig, latent_shape) -> "StreamShape":
        """The call every call after the window fills makes (SwinSampler._velocity)."""
        window = stream.levels * stream.block_frames
        context = stream.block_frames if stream.cache_context else stream.context_frames
        past = stream.context_frames if stream.cache_context else 0
        commit = stream.block_frames if stream.cache_context else 0
        return cls(2 if stream.guided else 1, context + window, past, commit, tuple(latent_shape))

    def matches(self, latents: torch.Tensor, cache, commit_frames: int, prompt_emb: torch.Tensor) -> bool:
        past = cache.frames() if cache is not None else 0
        return (tuple(latents.shape) == (self.batch, self.frames, *self.latent_shape) and past == self.past
                and commit_frames == self.commit and prompt_emb.dim() == 3 and (cache is not None or not self.commit))

    def key(self) -> str:
        return "x".join(str(v) for v in (*astuple(self)[:4], *self.latent_shape))


def cache_slots(dit: WorldDiT) -> list[Hashable]:
    """The TemporalCache entries a stream call reads and appends to: each block's temporal attention (by its
    layer index) and, where it has one, its neighbour read (("near", layer))."""
    layers = list(range(len(dit.blocks)))
    return [*layers, *[("near", i) for i in layers if dit.blocks[i].temporal.radius]]


def slot_name(slot: Hashable) -> str:
    return f"near_{slot[1]}" if isinstance(slot, tuple) else str(slot)


def slot_heads(dit: WorldDiT, slot: Hashable) -> tuple[int, int]:
    """(heads, head width) of a slot's keys and values."""
    if isinstance(slot, tuple):
        return 1, dit.blocks[slot[1]].temporal.near_width
    return dit.config.heads, head_dim(dit)


class GraphCache:
    """TemporalCache's interface over explicit tensors: the past keys/values are inputs, what is appended is
    collected as outputs (no truncation: the caller's TemporalCache does that)."""

    def __init__(self, slots: list[Hashable], keys: list[torch.Tensor], values: list[torch.Tensor]):
        self.keys_in, self.values_in = dict(zip(slots, keys)), dict(zip(slots, values))
        self.new_keys: dict[Hashable, torch.Tensor] = {}
        self.new_values: dict[Hashable, torch.Tensor] = {}
        self.position = 0               # unused: the rotary tables are inputs

    def frames(self) -> int:
        return next(iter(self.keys_in.values())).shape[2] if self.keys_in else 0

    def get(self, slot: Hashable):
        return (self.keys_in[slot], self.values_in[slot]) if self.keys_in else (None, None)

    def append(self, slot: Hashable, k: torch.Tensor, v: torch.Tensor) -> None:
        self.new_keys[slot], self.new_values[slot] = k, v


class StreamCall(nn.Module):
    """WorldDiT's stream call of one StreamShape with its cache as explicit tensors (see the module doc):
    forward(latents, levels, actions, prompts, rope_cos, rope_sin, *past_keys, *past_values)
    -> (v, *new_keys, *new_values), keys and values in cache_slots' order."""

    def __init__(self, dit: WorldDiT, shape: StreamShape):
        super().__init__()
        self.dit, self.shape = dit, shape
        self.slots = cache_slots(dit)

    def forward(self, latents, levels, actions, prompts, rope_cos, rope_sin, *past):
        n = len(self.slots) if past else 0
        cache = GraphCache(self.slots[:n], list(past[:n]), list(past[n:]))
        v = self.dit(latents, levels, actions, prompts, cache=cache if self.shape.past or self.shape.commit else None,
                     commit_frames=self.shape.commit, rope=(rope_cos, rope_sin))
        if not self.shape.commit:
            return v
        return (v, *[cache.new_keys[s] for s in self.slots], *[cache.new_values[s] for s in self.slots])


def stream_names(slots: list[Hashable], shape: StreamShape) -> tuple[list[str], list[str]]:
    """The graph's input and output names, in StreamCall's order."""
    names = [slot_name(s) for s in slots]
    past = [f"past_key_{n}" for n in names] + [f"past_value_{n}" for n in names] if shape.past else []
    new = [f"new_key_{n}" for n in names] + [f"new_value_{n}" for n in names] if shape.commit else []
    return [*STREAM_INPUTS, *past], ["v", *new]


def head_dim(dit: WorldDiT) -> int:
    return dit.config.width // dit.config.heads


def stream_rope(dit: WorldDiT, start: int, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rotary tables of frames start .. start + frames - 1, as WorldDiT.forward makes them."""
    return rope_tables(torch.arange(start, start + frames), head_dim(dit))


def stream_example(dit: WorldDiT, shape: StreamShape, seed: int = 0, start: int = 0) -> dict[str, torch.Tensor]:
    """Random inputs of the shape, by name (the export's example, and the probe the engines are raced on)."""
    g = torch.Generator().manual_seed(seed)
    b, t, cfg = shape.batch, shape.frames, dit.config
    c, h, w = shape.latent_shape
    tokens = (h // cfg.patch_size) * (w // cfg.patch_size)
    cos, sin = stream_rope(dit, start, t)
    inputs = {"latents": torch.randn(b, t, c, h, w, generator=g), "levels": torch.rand(b, t, generator=g),
              "actions": torch.rand(b, t, cfg.action_dim, generator=g) * 2 - 1,
              "prompts": torch.nn.functional.normalize(torch.randn(b, t, cfg.prompt_dim, generator=g), dim=-1),
              "rope_cos": cos, "rope_sin": sin}
    for kind in ("key", "value"):
        for slot in cache_slots(dit) if shape.past else []:
            heads, width = slot_heads(dit, slot)
            inputs[f"past_{kind}_{slot_name(slot)}"] = torch.randn(b * tokens, heads, shape.past, width, generator=g)
    return inputs


class DecoderCall(nn.Module):
    """The autoencoder's decoder: raw latents (B, C, h, w) -> images (B, 3, H, W) in [-1, 1], unclamped."""

    def __init__(self, vae: FrameAutoencoder):
        super().__init__()
        self.vae = vae

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents)


def decoder_example(frames: int, latent_shape, seed: int = 0) -> dict[str, torch.Tensor]:
    return {"latents": torch.randn(frames, *latent_shape, generator=torch.Generator().manual_seed(seed)) * 1.5}


def weights_digest(module: nn.Module) -> str:
    """sha256 of the module's weights (names, dtypes, shapes and bytes): a cached graph is stale when it changes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def graph_key(module: nn.Module, what: str, shape_key: str) -> str:
    """The name a graph is cached under: what it is, and a hash of its weights, shape, format and torch."""
    parts = (weights_digest(module), what, shape_key, str(GRAPH_FORMAT), str(OPSET), torch.__version__)
    return f"{what}-{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:20]}"


@torch.onnx.symbolic_helper.parse_args("v", "is", "v", "f")
def _rms_norm(g, x, normalized_shape, weight, eps):
    """aten::rms_norm for the TorchScript exporter: x / sqrt(mean(x^2) + eps) * weight."""
    axes = g.op("Constant", value_t=torch.tensor([-(i + 1) for i in range(len(normalized_shape))], dtype=torch.long))
    mean = g.op("ReduceMean", g.op("Mul", x, x), axes, keepdims_i=1)
    eps = g.op("Constant", value_t=torch.tensor(1e-6 if eps is None else eps, dtype=torch.float32))
    y = g.op("Div", x, g.op("Sqrt", g.op("Add", mean, eps)))
    return y if weight is None or weight.node().mustBeNone() else g.op("Mul", y, weight)


def _export(module: nn.Module, inputs: dict[str, torch.Tensor], input_names: list[str], output_names: list[str],
            path: Path) -> None:
    args = tuple(inputs[name] for name in input_names)
    errors = []
    with warnings.catch_warnings():          # the exporters' deprecation and tracer notes: the graph is checked
        warnings.simplefilter("ignore")
        for dynamo in (False, True):
            try:
                if not dynamo:
                    torch.onnx.register_custom_op_symbolic("aten::rms_norm", _rms_norm, OPSET)
                torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                                  opset_version=OPSET, dynamo=dynamo, do_constant_folding=True,
                                  **({"verbose": False, "optimize": True} if dynamo else {}))
                return
            except Exception as exc:        # noqa: BLE001 - the next exporter, then one error naming both
                errors.append(f"{'dynamo' if dynamo else 'TorchScript'} exporter: {type(exc).__name__}: {exc}")
    raise ExportError(f"cannot export {type(module).__name__} to ONNX: " + "; ".join(e[:300] for e in errors))


def _write(module: nn.Module, inputs: dict[str, torch.Tensor], names: tuple[list[str], list[str]],
           path: Path) -> Path:
    """Export to a temporary file beside `path`, then move it in place (no half-written graph is ever read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with torch.no_grad():
            _export(module.eval(), inputs, *names, Path(tmp))
        os.chmod(tmp, 0o644)                # mkstemp's 0600 would keep the graph from other users of the checkpoint
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def export_stream(dit: WorldDiT, shape: StreamShape, path: Path) -> Path:
    """Write the stream call of `shape` to `path` (ONNX, float32)."""
    dit = dit.float().eval()
    names = stream_names(cache_slots(dit), shape)
    return _write(StreamCall(dit, shape), stream_example(dit, shape), names, path)


def export_decoder(vae: FrameAutoencoder, frames: int, latent_shape, path: Path) -> Path:
    """Write the decoder for blocks of `frames` latents to `path` (ONNX, float32)."""
    return _write(DecoderCall(vae.float().eval()), decoder_example(frames, latent_shape), (["latents"], ["images"]),
                  path)
