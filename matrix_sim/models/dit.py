"""WorldDiT: the video diffusion transformer that predicts v = noise - x0 for every frame of a clip.

Each block attends within a frame (spatial), then along time at each token position (RAIN's cheap 1-D
temporal attention), then applies an MLP; all three are modulated per frame (adaLN-Zero) by the frame's
noise level + the action that produced it + the prompt (the Matrix's interactive module). Temporal
attention is causal and uses rotary positions, so a clean context frame's keys and values never change
once computed: the stream caches them (TemporalCache) instead of recomputing the context every call.
"""
from __future__ import annotations

import math
from typing import Hashable, Optional

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from matrix_sim.actions import ACTION_DIM

NEAR_WIDTH = 32               # the neighbour read's key width (TemporalAttention)
LEVEL_SCALE = 1000.0          # levels in [0, 1] are embedded like diffusion timesteps in [0, 1000]
ROPE_BASE = 10_000.0
SINCOS_BASE = 10_000.0


def sinusoid(values: torch.Tensor, dim: int, base: float = SINCOS_BASE) -> torch.Tensor:
    """(...,) -> (..., dim) sin/cos features of `values` at geometric frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(base) * torch.arange(half, device=values.device, dtype=torch.float32) / half)
    angles = values.float()[..., None] * freqs
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def sincos_2d(rows: int, cols: int, dim: int, device) -> torch.Tensor:
    """(rows * cols, dim) fixed 2-D position embedding: half the channels for y, half for x."""
    y, x = torch.meshgrid(torch.arange(rows, device=device), torch.arange(cols, device=device), indexing="ij")
    return torch.cat([sinusoid(y.reshape(-1), dim // 2), sinusoid(x.reshape(-1), dim // 2)], dim=-1)


def rope_tables(positions: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (T, head_dim / 2) for absolute frame positions; float64 angles keep an endless stream exact."""
    half = head_dim // 2
    inv_freq = ROPE_BASE ** (-torch.arange(half, dtype=torch.float64, device=positions.device) / half)
    angles = positions.double()[:, None] * inv_freq
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (..., T, head_dim) pairs (first half, second half) by the per-position angles."""
    a, b = x.chunk(2, dim=-1)
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class TemporalCache:
    """Keys and values of committed (clean context) frames for every temporal-attention layer.

    Bounded: at most `max_frames` frames are kept, so a stream runs forever in constant memory.
    `position` is the absolute index of the next frame to be committed (rotary positions are absolute,
    so cached keys stay valid as the window slides).
    """

    def __init__(self, max_frames: int):
        self.max_frames = max_frames
        self.keys: dict[Hashable, torch.Tensor] = {}      # per layer (and per read of a layer)
        self.values: dict[Hashable, torch.Tensor] = {}
        self.position = 0

    def frames(self) -> int:
        return next(iter(self.keys.values())).shape[2] if self.keys else 0

    def get(self, layer: Hashable) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        return self.keys.get(layer), self.values.get(layer)

    def append(self, layer: Hashable, k: torch.Tensor, v: torch.Tensor) -> None:
        old_k, old_v = self.get(layer)
        if old_k is not None:
            k, v = torch.cat([old_k, k], dim=2), torch.cat([old_v, v], dim=2)
        start = max(0, k.shape[2] - self.max_frames)
        self.keys[layer], self.values[layer] = k[:, :, start:], v[:, :, start:]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys.values(), *self.values.values()))


class Attention(nn.Module):
    """Multi-head self-attention with RMS-normalised queries and keys (stable at any width)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.q_norm = nn.RMSNorm(width // heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(width // heads, eps=1e-6)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(S, L, D) -> q, k, v (S, heads, L, head_dim). The norms run before the heads move forward, on rows
        that are contiguous in memory (faster than normalising the permuted view)."""
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).unbind(-3)
        return self.q_norm(q).transpose(1, 2), self.k_norm(k).transpose(1, 2), v.transpose(1, 2)

    def merge(self, y: torch.Tensor) -> torch.Tensor:
        return self.out(y.transpose(1, 2).flatten(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.project(x)
        return self.merge(F.scaled_dot_product_attention(q, k, v))


def neighbour_views(grid: torch.Tensor, radius: int) -> torch.Tensor:
    """(b, rows, cols, C) -> (b, rows, cols, (2 radius + 1)^2, C): each position's neighbours, offsets row by row,
    zeros off the grid. Shifted views of the padded grid stacked once: each position's channels stay contiguous
    (no transpose to copy), which onnxruntime runs at a fraction of an unfold's cost."""
    rows, cols, span = grid.shape[1], grid.shape[2], 2 * radius + 1
    padded = F.pad(grid, (0, 0, radius, radius, radius, radius))
    return torch.stack([padded[:, dy:dy + rows, dx:dx + cols] for dy in range(span) for dx in range(span)], 3)


class TemporalAttention(Attention):
    """Causal attention along time at each token position; frame t sees frames <= t (and cached ones).

    With `neighbours` = r > 0 a narrow second read (one head of at most NEAR_WIDTH, its output projection zero
    at first, so the block starts as it was) reaches the positions up to r tokens away, its own included, in
    frames <= t: a token can copy what moved into it from next door (a pan, a passing tree) instead of
    re-inventing it. A learned bias per offset lets it prefer a direction. Narrow, because its keys and values
    are gathered (2r + 1)^2 times."""

    def __init__(self, width: int, heads: int, neighbours: int = 0):
        super().__init__(width, heads)
        self.radius = neighbours
        self.near_width = min(NEAR_WIDTH, width // heads)       # at most a head's width: its rotary tables fit
        if neighbours:
            self.near_qkv = nn.Linear(width, 3 * self.near_width)
            self.near_q_norm = nn.RMSNorm(self.near_width, eps=1e-6)
            self.near_k_norm = nn.RMSNorm(self.near_width, eps=1e-6)
            self.near_bias = nn.Parameter(torch.zeros((2 * neighbours + 1) ** 2))
            self.near_out = nn.Linear(self.near_width, width)
            nn.init.zeros_(self.near_out.weight)
            nn.init.zeros_(self.near_out.bias)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], layer: int,
                cache: Optional[TemporalCache], commit_frames: int, grid: tuple[int, int] = (0, 0)) -> torch.Tensor:
        q, k, v = self.project(x)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        keys, values, past = self._with_past(layer, k, v, cache, commit_frames)
        if past:
            mask = torch.ones(q.shape[2], keys.shape[2], dtype=torch.bool, device=q.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        else:
            y = F.scaled_dot_product_attention(q, keys, values, is_causal=True)
        out = self.merge(y)
        if self.radius:
            out = out + self._near(x, rope, layer, cache, commit_frames, grid)
        return out

    @staticmethod
    def _with_past(slot: Hashable, k: torch.Tensor, v: torch.Tensor, cache: Optional[TemporalCache],
                   commit_frames: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The cached keys and values of `slot` followed by these frames', and how many were cached; the first
        `commit_frames` of these are committed to the cache."""
        past_k, past_v = cache.get(slot) if cache is not None else (None, None)
        if commit_frames:
            cache.append(slot, k[:, :, :commit_frames], v[:, :, :commit_frames])
        if past_k is None:
            return k, v, 0
        return torch.cat([past_k, k], 2), torch.cat([past_v, v], 2), past_k.shape[2]

    def _near(self, x: torch.Tensor, rope, layer: int, cache: Optional[TemporalCache], commit_frames: int,
              grid: tuple[int, int]) -> torch.Tensor:
        """x (b * n, t, D) rows of a rows x cols grid -> the read from the neighbouring positions (b * n, t, D);
        positions off the grid are masked."""
        rows, cols = grid
        q, k, v = self.near_qkv(x).unflatten(-1, (3, 1, -1)).unbind(-3)
        half, e = self.near_width // 2, self.near_width
        cos, sin = rope[0][..., :half], rope[1][..., :half]
        q = apply_rope(self.near_q_norm(q).transpose(1, 2), cos, sin)
        k = apply_rope(self.near_k_norm(k).transpose(1, 2), cos, sin)
        v = v.transpose(1, 2)
        k, v, _ = self._with_past(("near", layer), k, v, cache, commit_frames)
        n, frames, key_frames = q.shape[0], q.shape[2], k.shape[2]
        b, r = n // (rows * cols), self.radius

        def gather(t: torch.Tensor) -> torch.Tensor:
            return neighbour_views(t.reshape(b, rows, cols, key_frames * e), r).reshape(n, 1, -1, e)

        inside = neighbour_views(torch.ones(1, rows, cols, 1, device=x.device), r).reshape(rows * cols, -1) > 0
        causal = torch.ones(frames, key_frames, dtype=torch.bool, device=x.device).tril(diagonal=key_frames - frames)
        allowed = inside[:, None, :, None] & causal[None, :, None, :]                 # (pos, t, offsets, keys)
        bias = self.near_bias.to(q.dtype)[None, None, :, None]
        mask = torch.where(allowed, bias, torch.tensor(float("-inf"), dtype=q.dtype, device=x.device))
        mask = mask.flatten(2)[:, None].repeat(b, 1, 1, 1)                          # (b * pos, 1, t, offsets*keys)
        y = F.scaled_dot_product_attention(q, gather(k), gather(v), attn_mask=mask)
        return self.near_out(y.transpose(1, 2).flatten(2))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class WorldBlock(nn.Module):
    """Spatial attention, temporal attention, MLP; each gated and modulated per frame (adaLN-Zero)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, neighbours: int = 0):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(width, elementwise_affine=False, eps=1e-6) for _ in range(3))
        self.spatial = Attention(width, heads)
        self.temporal = TemporalAttention(width, heads, neighbours)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 9 * width))
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, rope, layer: int, cache: Optional[TemporalCache],
                commit_frames: int, grid: tuple[int, int] = (0, 0)) -> torch.Tensor:
        """x (B, T, N, D) tokens on a rows x cols grid; cond (B, T, D) per-frame conditioning."""
        b, t, n, d = x.shape
        mods = self.modulation(cond)[:, :, None].chunk(9, dim=-1)
        h = modulate(self.norms[0](x), mods[0], mods[1]).reshape(b * t, n, d)
        x = x + mods[2] * self.spatial(h).reshape(b, t, n, d)
        # a row per token position, made contiguous: from a strided view, bfloat16 projections copy the weight
        # once per position (a batched matmul; docs/performance.md times it, tests/test_world_model_dit.py guards it)
        h = modulate(self.norms[1](x), mods[3], mods[4]).transpose(1, 2).contiguous().view(b * n, t, d)
        h = self.temporal(h, rope, layer, cache, commit_frames, grid)
        x = x + mods[5] * h.reshape(b, n, t, d).transpose(1, 2)
        return x + mods[8] * self.mlp(modulate(self.norms[2](x), mods[6], mods[7]))


def _embedder(in_dim: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, width), nn.SiLU(), nn.Linear(width, width))


class WorldDiT(ModelMixin, ConfigMixin):
    """latents (B, T, C, H, W) in model space at levels (B, T) -> v prediction (B, T, C, H, W).

    Conditioning per frame: levels (B, T) in [0, 1], actions (B, T, ACTION_DIM) (the action that produced
    each frame), prompt_emb (B, prompt_dim) or per frame (B, T, prompt_dim). Any latent size divisible by
    the patch size works; positions are computed, not learned.

    """

    @register_to_config
    def __init__(self, in_channels: int = 4, patch_size: int = 2, width: int = 256, depth: int = 6, heads: int = 4,
                 mlp_ratio: float = 4.0, action_dim: int = ACTION_DIM, prompt_dim: int = 384, level_dim: int = 256,
                 neighbours: int = 0):
        super().__init__()
        if (width // heads) % 4:
            raise ValueError(f"head width {width // heads} must be a multiple of 4 (rotary and 2-D positions)")
        token_dim = in_channels * patch_size ** 2
        self.patch_in = nn.Linear(token_dim, width)
        self.level_embed = _embedder(level_dim, width)
        self.action_embed = _embedder(action_dim, width)
        self.prompt_embed = _embedder(prompt_dim, width)
        self.blocks = nn.ModuleList(WorldBlock(width, heads, mlp_ratio, neighbours) for _ in range(depth))
        self.out_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.out_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.patch_out = nn.Linear(width, token_dim)
        for layer in (self.out_modulation[1], self.patch_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def condition(self, levels: torch.Tensor, actions: torch.Tensor, prompt_emb: torch.Tensor) -> torch.Tensor:
        """Per-frame conditioning vector (B, T, D): noise level + action + prompt."""
        if prompt_emb.dim() == 2:
            prompt_emb = prompt_emb[:, None].expand(-1, levels.shape[1], -1)
        level = self.level_embed(sinusoid(levels * LEVEL_SCALE, self.config.level_dim))
        return level + self.action_embed(actions) + self.prompt_embed(prompt_emb)

    def forward(self, latents: torch.Tensor, levels: torch.Tensor, actions: torch.Tensor, prompt_emb: torch.Tensor,
                cache: Optional[TemporalCache] = None, commit_frames: int = 0,
                rope: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
        """v = noise - x0 for every frame. With `cache`, the frames continue the cached ones in time, and the
        first `commit_frames` of them (clean context) have their keys/values appended to the cache. rope: the
        frames' rotary tables (rope_tables), where the caller made them: an exported graph takes them as inputs,
        so its frames' absolute positions stay exact float64 angles (matrix_sim/runtime)."""
        b, t, c, h, w = latents.shape
        p = self.config.patch_size
        if h % p or w % p:
            raise ValueError(f"latent size {h}x{w} is not divisible by the patch size {p}")
        if commit_frames and cache is None:
            raise ValueError("commit_frames needs a cache to commit to")
        rows, cols = h // p, w // p
        tokens = latents.reshape(b, t, c, rows, p, cols, p).permute(0, 1, 3, 5, 2, 4, 6).reshape(b, t, rows * cols, -1)
        x = self.patch_in(tokens) + sincos_2d(rows, cols, self.config.width, latents.device).to(tokens.dtype)
        cond = self.condition(levels, actions, prompt_emb)
        start = cache.position if cache is not None else 0
        if rope is None:
            positions = torch.arange(start, start + t, device=latents.device)
            rope = rope_tables(positions, self.config.width // self.config.heads)
        for layer, block in enumerate(self.blocks):
            x = block(x, cond, rope, layer, cache, commit_frames, (rows, cols))
        if cache is not None:
            cache.position += commit_frames
        shift, scale = self.out_modulation(cond)[:, :, None].chunk(2, dim=-1)
        out = self.patch_out(modulate(self.out_norm(x), shift, scale))
        return out.reshape(b, t, rows, cols, c, p, p).permute(0, 1, 4, 2, 5, 3, 6).reshape(b, t, c, h, w)
