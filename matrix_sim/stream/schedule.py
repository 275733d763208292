"""The Swin-DPM window's shape and noise levels, shared by the sampler and by training (which mirrors it).

Rectified flow: x_s = (1 - s) * x0 + s * noise, v = noise - x0, Euler x_s' = x_s + (s' - s) * v.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import yaml


@dataclass(frozen=True)
class StreamConfig:
    """context_frames K (clean frames kept as context), levels L (noise levels in the window, = denoising
    steps a frame gets), block_frames B (frames per level, RAIN's grouping; one call emits B frames).

    shift: SD3-style schedule shift (> 1 spends more steps at high noise), as diffusers' FlowMatchEuler.
    context_level: noise level the context frames are given at inference (training noises them up to
    `train.context_noise_max`, so this must lie inside that range).
    cache_context: keep context keys/values (computed once per frame) instead of re-running the context.
    retarget_actions: frames still in the window take the newest action (lower latency).
    action_guidance: w in v = v(idle) + w * (v(action) - v(idle)) on the window frames, classifier-free
    guidance with the idle action (no input) as the reference: w > 1 exaggerates what the action changes;
    1 is off (one forward; w != 1 runs the window twice, as a batch of two).
    """

    context_frames: int
    levels: int
    block_frames: int
    shift: float = 1.0
    context_level: float = 0.0
    cache_context: bool = True
    retarget_actions: bool = False
    action_guidance: float = 1.0

    def __post_init__(self) -> None:
        if self.context_frames < 0 or self.levels < 1 or self.block_frames < 1:
            raise ValueError(f"need context_frames >= 0, levels >= 1, block_frames >= 1, got {self}")
        if self.shift <= 0 or not 0.0 <= self.context_level < 1.0:
            raise ValueError(f"need shift > 0 and 0 <= context_level < 1, got {self}")
        if self.action_guidance < 0:
            raise ValueError(f"need action_guidance >= 0 (1 is off), got {self.action_guidance}")

    @property
    def guided(self) -> bool:
        return self.action_guidance != 1.0

    @property
    def window_frames(self) -> int:
        return self.levels * self.block_frames

    @property
    def filling_calls(self) -> int:
        """Sampler calls from a reset until the window and the context are both full (timing and FLOP counts
        start after these)."""
        return -(-self.context_frames // self.block_frames) + self.levels + 1

    @property
    def clip_frames(self) -> int:
        """Frames one training clip holds: the context and a full window."""
        return self.context_frames + self.window_frames


_FIELD_TYPES = {"int": int, "float": (int, float), "bool": bool}     # StreamConfig's annotations, as strings
_FIELD_TYPES_NAMED = {int: "whole number", (int, float): "number", bool: "true or false"}


def parse_overrides(pairs: list[str]) -> dict:
    """`KEY=VALUE` strings (the command line's `--stream levels=2`) as StreamConfig overrides, values read as
    YAML scalars; an unknown key or a malformed pair is a ValueError naming it and the known keys."""
    known = {f.name: _FIELD_TYPES[f.type] for f in dataclasses.fields(StreamConfig)}
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not value:
            raise ValueError(f"stream override {pair!r}: expected KEY=VALUE, e.g. levels=2")
        if key not in known:
            raise ValueError(f"stream override {pair!r}: unknown key {key!r}; known: {sorted(known)}")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, bool) != (known[key] is bool) or not isinstance(parsed, known[key]):
            raise ValueError(f"stream override {pair!r}: {key} takes a {_FIELD_TYPES_NAMED[known[key]]}")
        overrides[key] = parsed
    return overrides


def shift_levels(s: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3 / FlowMatchEulerDiscreteScheduler timestep shift; identity for shift = 1."""
    return shift * s / (1 + (shift - 1) * s)


def level_schedule(levels: int, shift: float = 1.0) -> torch.Tensor:
    """(L + 1,) s_0 = 0 < s_1 < ... < s_L = 1: uniform steps, shifted."""
    return shift_levels(torch.linspace(0.0, 1.0, levels + 1, dtype=torch.float64), shift).float()


def euler_step(x: torch.Tensor, v: torch.Tensor, s: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
    """x_s -> x_s' along the predicted velocity; s and s_next broadcast against x (per frame allowed)."""
    return x + (s_next - s) * v
