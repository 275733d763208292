"""World-model configs (configs/tiny-cpu.yaml, base.yaml, matrix-720p.yaml): YAML -> dataclasses.

Keys: extends (optional: a config this one changes, config.load_extending_yaml), data (latent shards),
run_dir, autoencoder, init_from (optional), still_share (optional: the share of training clips drawn from
still ones, LatentShards.sample); sections model (WorldDiT's arguments), stream (StreamConfig: the Swin-DPM
window the model will run in), levels (LevelMix: how training noise levels are drawn), train (OptimSettings:
optimiser, EMA, logging and checkpoint intervals), guidance (optional, GuidanceDistill: action guidance
distilled from a frozen teacher), own_context (optional, OwnContext: context frames replaced by the model's
own estimates, against drift), detail (optional, DetailMatch: the estimate's detail held at the true frame's),
compile (optional: the training forward through torch.compile).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from matrix_sim.config import DEFAULT_VAE_DIR, ConfigError, check_keys, from_dict, load_extending_yaml
from matrix_sim.models.checkpoint import CheckpointError, full_config
from matrix_sim.models.dit import WorldDiT
from matrix_sim.stream.schedule import StreamConfig
from matrix_sim.train.detail import DetailMatch
from matrix_sim.train.guidance import GuidanceDistill
from matrix_sim.train.levels import LevelMix
from matrix_sim.train.optim import OptimSettings
from matrix_sim.train.own_context import OwnContext


@dataclass(frozen=True)
class WorldModelConfig:
    data: str                          # latent shard folder (`python -m matrix_sim encode`)
    run_dir: str                       # resumable state, log, and the playable bundle (dit/, vae/, ...)
    model: dict
    stream: StreamConfig
    levels: LevelMix
    train: OptimSettings
    autoencoder: str = str(DEFAULT_VAE_DIR)    # the codec the latents were made with; copied into the bundle
    init_from: str = ""                # a fresh run starts from this bundle's DiT (e.g. checkpoints/tiny-cpu)
    guidance: Optional[GuidanceDistill] = None
    own_context: Optional[OwnContext] = None
    detail: Optional[DetailMatch] = None
    still_share: float = 0.0           # of the training clips drawn from still ones (a stopped player)
    compile: bool = False              # the training forward through torch.compile: fused element-wise work

    def model_config(self) -> dict:
        """WorldDiT's full constructor arguments (defaults filled in): what a checkpoint is compared against."""
        return full_config(WorldDiT, self.model)


def load_config(path: str | Path) -> WorldModelConfig:
    raw = load_extending_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected data, run_dir and the sections model, stream, levels, train")
    check_keys(WorldModelConfig, raw, str(path))
    if not isinstance(raw.get("model"), dict):
        raise ConfigError(f"{path}: model: expected a mapping of WorldDiT's settings")
    sections = {"stream": StreamConfig, "levels": LevelMix, "train": OptimSettings}
    built = {name: from_dict(cls, raw.get(name), f"{path}: {name}") for name, cls in sections.items()}
    optional = (("guidance", GuidanceDistill), ("own_context", OwnContext), ("detail", DetailMatch))
    for name, cls in optional:
        if raw.get(name) is not None:
            built[name] = from_dict(cls, raw[name], f"{path}: {name}")
    config = from_dict(WorldModelConfig, {**raw, **built}, str(path))
    try:
        config.model_config()
    except CheckpointError as exc:
        raise ConfigError(f"{path}: model: {exc}") from None
    if not 0.0 <= config.still_share <= 1.0:
        raise ConfigError(f"{path}: still_share must lie in [0, 1], got {config.still_share}")
    if config.stream.context_level > config.levels.context_noise_max:
        raise ConfigError(f"{path}: stream.context_level {config.stream.context_level} is outside the context noise "
                          f"the model is trained on (levels.context_noise_max {config.levels.context_noise_max})")
    return config
