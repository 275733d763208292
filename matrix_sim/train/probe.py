"""Training the inverse-dynamics probe (matrix_sim.models.probe) on recorded source-world frame pairs.

`train_probe(data="data/world_a", out="checkpoints/probe")` reads shards (frame t, action t, frame t + 1),
holds every frame downsampled to the probe's input size in memory, trains with horizontal flips (a mirrored
left turn is a right turn), keeps an EMA of the weights (matrix_sim.train.ema) and saves it as safetensors
with its config. It reports accuracy on episodes it never trained on (every `val_every`-th episode) and on
held-out source-world clips (new seeds, every biome, mode and time: matrix_sim.eval.heldout), the figure
`eval` calls `action_accuracy_real`.
"""
from __future__ import annotations

import json
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from matrix_sim.data.shards import read_episode, read_manifest
from matrix_sim.eval.probe import DEFAULT_PROBE_DIR, majority_rate
from matrix_sim.models.checkpoint import save_model
from matrix_sim.models.probe import HEADS, InverseDynamicsProbe, agreement
from matrix_sim.train.ema import EMA
from matrix_sim.train.optim import optimizer_step

log = logging.getLogger(__name__)
EVAL_FILE = "probe_eval.json"


@dataclass
class PairSet:
    """Frames at the probe's input size, (N, h, w, 3) uint8, and the pairs among them: frames[prev[i]] and
    frames[prev[i] + 1], with the classes of the action taken between them."""

    frames: torch.Tensor
    prev: torch.Tensor                  # (P,) int64
    labels: dict[str, torch.Tensor]     # head -> (P,) int64

    def __len__(self) -> int:
        return len(self.prev)

    def take(self, keep: torch.Tensor) -> "PairSet":
        return PairSet(self.frames, self.prev[keep], {k: v[keep] for k, v in self.labels.items()})


def shrink(probe: InverseDynamicsProbe, frames: np.ndarray) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> (F, h, w, 3) uint8 at the probe's input size (the same pooling as prepare)."""
    with torch.no_grad():
        x = probe.prepare(torch.from_numpy(np.ascontiguousarray(frames)))
    return x.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def load_pairs(probe: InverseDynamicsProbe, data: str | Path, val_every: int = 16, max_episodes: Optional[int] = None,
               progress: bool = True, workers: int = 2) -> tuple[PairSet, PairSet]:
    """Every consecutive frame pair of the shards in `data`: (train, validation); validation holds every
    `val_every`-th episode (0: none), so both span every scene the recording cycled through."""
    manifest = read_manifest(data)
    entries = manifest["episodes"][:max_episodes]
    if not entries:
        raise ValueError(f"no episodes in {data}")

    def one(entry):
        episode = read_episode(Path(data) / entry["file"])
        return shrink(probe, episode.frames), episode.actions

    with ThreadPoolExecutor(max_workers=workers) as pool:
        episodes = list(tqdm(pool.map(one, entries), total=len(entries), desc="loading frame pairs",
                             disable=not progress))
    return _pair_sets(probe, episodes, val_every)


def _pair_sets(probe: InverseDynamicsProbe, episodes: list, val_every: int) -> tuple[PairSet, PairSet]:
    """(frames, actions) per episode -> (train, validation) pair sets; every `val_every`-th episode validates."""
    chunks, prev, labels, is_val = [], [], {h: [] for h in HEADS}, []
    start = 0
    for i, (frames, actions) in enumerate(episodes):
        n = len(frames)
        chunks.append(frames)
        prev.append(np.arange(start, start + n - 1))
        for head, value in probe.labels(actions[:n - 1]).items():
            labels[head].append(value)
        is_val.append(np.full(n - 1, val_every > 0 and i % val_every == val_every - 1))
        start += n
    everything = PairSet(torch.cat(chunks), torch.from_numpy(np.concatenate(prev)),
                         {h: torch.from_numpy(np.concatenate(v)) for h, v in labels.items()})
    val = torch.from_numpy(np.concatenate(is_val))
    return everything.take(~val), everything.take(val)


def _prepared(frames: torch.Tensor) -> torch.Tensor:
    """Stored frames (n, h, w, 3) uint8 -> the probe's input (n, 3, h, w) in [-1, 1]."""
    return frames.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def batch_inputs(pairs: PairSet, idx: torch.Tensor, flip: Optional[torch.Tensor] = None):
    """Prepared (prev, next) tensors and labels for pairs[idx]; `flip` mirrors chosen rows (turn swaps sides)."""
    prev = _prepared(pairs.frames[pairs.prev[idx]])
    nxt = _prepared(pairs.frames[pairs.prev[idx] + 1])
    labels = {h: v[idx].clone() for h, v in pairs.labels.items()}
    if flip is not None and flip.any():
        prev[flip], nxt[flip] = prev[flip].flip(-1), nxt[flip].flip(-1)
        labels["turn"][flip] = 2 - labels["turn"][flip]
    return prev, nxt, labels


@torch.no_grad()
def pair_accuracy(probe: InverseDynamicsProbe, pairs: PairSet, batch: int = 512) -> dict[str, float]:
    predicted, wanted = {h: [] for h in HEADS}, {h: [] for h in HEADS}
    for i in range(0, len(pairs), batch):
        idx = torch.arange(i, min(i + batch, len(pairs)))
        prev, nxt, labels = batch_inputs(pairs, idx)
        logits = probe(prev, nxt)
        for h in HEADS:
            predicted[h].append(logits[h].argmax(-1).numpy())
            wanted[h].append(labels[h].numpy())
    return agreement({h: np.concatenate(v) for h, v in predicted.items()},
                     {h: np.concatenate(v) for h, v in wanted.items()})


def heldout_accuracy(probe: InverseDynamicsProbe, frames_per_scene: int = 48, scenes=None) -> dict:
    """The probe on held-out source-world clips (seeds never recorded for training): accuracy and chance."""
    from matrix_sim.eval.heldout import heldout_clips       # needs the GL renderer: imported only when used

    clips = heldout_clips(frames_per_scene + 1, scenes=scenes)
    predicted, labels, modes = {h: [] for h in HEADS}, {h: [] for h in HEADS}, []
    for clip in clips:
        p = probe.predict(clip.frames[:-1], clip.frames[1:])
        wanted = probe.labels(clip.actions[:-1])
        for h in HEADS:
            predicted[h].append(p[h])
            labels[h].append(wanted[h])
        modes += [clip.scene.mode] * (len(clip.frames) - 1)
    predicted = {h: np.concatenate(v) for h, v in predicted.items()}
    labels = {h: np.concatenate(v) for h, v in labels.items()}
    modes = np.array(modes)
    by_mode = {m: agreement({h: v[modes == m] for h, v in predicted.items()},
                            {h: v[modes == m] for h, v in labels.items()}) for m in sorted(set(modes))}
    return {"accuracy": agreement(predicted, labels), "majority": majority_rate(labels), "pairs": len(labels["turn"]),
            "by_mode": by_mode}


def train_probe(data: str | Path = "data/world_a", out: str | Path = DEFAULT_PROBE_DIR, steps: int = 1500,
                batch_size: int = 64, lr: float = 2e-3, weight_decay: float = 0.01, ema_decay: float = 0.995,
                seed: int = 0, val_every: int = 16, max_episodes: Optional[int] = None,
                time_limit_s: Optional[float] = None, heldout_frames: int = 48, model: Optional[dict] = None,
                progress: bool = True) -> dict:
    """Train the probe on the shards in `data`, save its EMA weights to `out`, return (and save beside them,
    as probe_eval.json) its accuracies: validation episodes and held-out clips (heldout_frames=0 skips those).

    time_limit_s: a budget for the training loop; after 20 steps the step count is cut to what fits in it, and
    the learning-rate schedule (warmup, cosine decay) follows the cut count."""
    torch.manual_seed(seed)
    probe = InverseDynamicsProbe(**(model or {}))
    started = time.perf_counter()
    train, val = load_pairs(probe, data, val_every, max_episodes, progress)
    if len(train) == 0:
        raise ValueError(f"{data}: no training pairs (every episode went to validation; raise val_every)")
    load_s = time.perf_counter() - started
    log.info("probe: %d training pairs, %d validation pairs (loaded in %.0f s)", len(train), len(val), load_s)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=weight_decay)
    ema = EMA(probe, ema_decay)
    warmup = max(1, min(100, steps // 10))
    total = steps            # may be cut to fit time_limit_s

    def schedule(s: int) -> float:
        return min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, total))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    g = torch.Generator().manual_seed(seed)
    probe.train()
    losses, done = [], 0
    bar = tqdm(range(steps), desc="probe", disable=not progress)
    train_started = time.perf_counter()
    for step in bar:
        idx = torch.randint(0, len(train), (batch_size,), generator=g)
        flip = torch.rand(batch_size, generator=g) < 0.5
        prev, nxt, labels = batch_inputs(train, idx, flip)
        logits = probe(prev, nxt)
        loss = sum(F.cross_entropy(logits[h], labels[h]) for h in HEADS)
        optimizer_step(loss, probe, opt, ema, step, grad_clip=1.0)
        sched.step()
        losses.append(float(loss.detach()))
        done = step + 1
        if step % 25 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-25:]):.3f}")
        if time_limit_s is not None:
            elapsed = time.perf_counter() - train_started
            if step == 19:
                total = min(steps, max(20, int(time_limit_s / (elapsed / 20))))
                bar.total = total
            if done >= total or elapsed > time_limit_s:
                break
    train_s = time.perf_counter() - train_started
    best = ema.model.eval()
    result = {
        "data": str(data), "train_pairs": len(train), "val_pairs": len(val), "steps": done,
        "batch_size": batch_size, "final_loss": round(float(np.mean(losses[-50:])), 4),
        "train_s": round(train_s, 1), "load_s": round(load_s, 1),
        "predicts": {"turn": "left / straight / right (|turn| > %.2f)" % probe.config.turn_threshold,
                     "forward": "back / none / forward (|forward| > %.2f)" % probe.config.forward_threshold},
        "parameters": sum(p.numel() for p in best.parameters()),
    }
    if len(val):
        result["val_accuracy"] = _rounded(pair_accuracy(best, val))
        result["val_majority"] = _rounded(majority_rate({h: v.numpy() for h, v in val.labels.items()}))
    if heldout_frames > 0:
        held = heldout_accuracy(best, heldout_frames)
        result["heldout_accuracy"] = _rounded(held["accuracy"])
        result["heldout_majority"] = _rounded(held["majority"])
        result["heldout_pairs"] = held["pairs"]
        result["heldout_accuracy_by_mode"] = {m: _rounded(a) for m, a in held["by_mode"].items()}
    out = Path(out)
    save_model(best, out)
    (out / EVAL_FILE).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return result


def _rounded(d: dict) -> dict:
    return {k: round(float(v), 4) for k, v in d.items()}
