"""A run's resumable state in one safetensors file: weights, EMA weights, AdamW moments, step.

The model and stream sections of the config are stored with it; resuming under a config whose model or
stream differ is refused with the keys that differ (the weights would not fit, or not mean the same).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import save_file

from matrix_sim.models.checkpoint import CheckpointError, config_differences, load_model, read_tensors

log = logging.getLogger(__name__)
STATE_FILE = "train_state.safetensors"


def _optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    return {f"opt.{index}.{key}": torch.as_tensor(value).detach().cpu().contiguous()
            for index, state in opt.state_dict()["state"].items() for key, value in state.items()}


def _with_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    """From the 'INDEX.KEY' tensors written by _optimizer_tensors."""
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    full = opt.state_dict()
    full["state"] = state
    opt.load_state_dict(full)


def save_torch(state: dict, path: Path) -> None:
    """torch.save through a temporary file, so an interrupted save leaves the previous file whole."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def save_state(run_dir: Path, step: int, model, ema_model, opt, identity: dict) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema_model.state_dict().items()})
    tensors.update(_optimizer_tensors(opt))
    path = run_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"step": str(step), "identity": json.dumps(identity)})
    os.replace(tmp, path)


def load_state(run_dir: Path, model, ema_model, opt, identity: dict) -> int:
    """Restore a run if RUN_DIR holds one (returns its step), else 0."""
    path = run_dir / STATE_FILE
    if not path.is_file():
        return 0
    tensors, meta = read_tensors(path, "training state", metadata=("step", "identity"))
    saved = json.loads(meta["identity"])
    # only the keys the identity names count (a saved state may hold more, e.g. inference settings)
    diffs = [f"{section}.{d}" for section in sorted(identity)
             for d in config_differences({k: v for k, v in saved.get(section, {}).items() if k in identity[section]},
                                         identity[section])]
    if diffs:
        raise CheckpointError(f"{path} was trained with another config; cannot resume: " + "; ".join(diffs))
    model.load_state_dict(_with_prefix(tensors, "model."))
    ema_model.load_state_dict(_with_prefix(tensors, "ema."))
    _load_optimizer(opt, _with_prefix(tensors, "opt."))
    step = int(meta["step"])
    log.info("resumed %s at step %d", path, step)
    return step


GROWABLE = {"neighbours": 0}     # architecture keys a run may add to weights made without them (start_from)


def load_same_architecture(path: str | Path, model_cls, architecture: dict, what: str, setting: str,
                           growable: Optional[dict] = None):
    """Weights a run starts from or learns from; refused, naming the config `setting` and the keys, when
    they were made for another shape than `architecture` (a key of `growable` at its value there excepted)."""
    loaded, growable = load_model(model_cls, path, what=what), growable or {}
    saved = {k: loaded.config.get(k, growable.get(k)) for k in architecture}
    saved.update({k: architecture[k] for k, off in growable.items() if k in saved and saved[k] == off})
    diffs = config_differences(saved, architecture)
    if diffs:
        raise CheckpointError(f"{setting} {path} was made for another model: " + "; ".join(diffs))
    return loaded


def start_from(path: str | Path, model_cls, architecture: dict, model, ema, what: str) -> None:
    """A fresh run continues shipped weights (the run folder that made them may be gone); both the weights
    and their EMA start there. Refused, naming the keys, when the shipped model has another shape; weights
    without the neighbour read gain it as it starts (its output at zero, so the model is unchanged)."""
    shipped = load_same_architecture(path, model_cls, architecture, what, "init_from", GROWABLE)
    result = model.load_state_dict(shipped.state_dict(), strict=False)
    unfit = [k for k in result.missing_keys if ".near_" not in k] + list(result.unexpected_keys)
    if unfit:
        raise CheckpointError(f"init_from {path}: its weights do not fit the model: {', '.join(unfit[:3])}")
    ema.model.load_state_dict(model.state_dict())
    log.info("starting from the weights in %s", path)
