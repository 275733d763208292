"""Loading diffusers-style model folders (each config travels with its weights) with errors a person can act on.

A missing folder or file names the path; a checkpoint whose config differs from the expected one lists the
keys that differ, instead of a shape-mismatch trace from deep inside torch.
"""
from __future__ import annotations

import inspect
import json
import os
import shutil
from pathlib import Path
from typing import Optional, TypeVar

from diffusers.utils import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME
from safetensors import safe_open

M = TypeVar("M")


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete or made for another config; the message says which and why."""


def _show(config: dict, key: str) -> str:
    """The value as JSON would hold it (so YAML tuples and config.json lists compare equal)."""
    return repr(json.loads(json.dumps(config[key]))) if key in config else "nothing"


def config_differences(saved: dict, expected: dict) -> list[str]:
    """'key: checkpoint has A, config has B' for every key whose values differ (private '_' keys ignored)."""
    keys = sorted(k for k in set(saved) | set(expected) if not k.startswith("_"))
    return [f"{k}: checkpoint has {_show(saved, k)}, config has {_show(expected, k)}"
            for k in keys if _show(saved, k) != _show(expected, k)]


def full_config(cls, overrides: dict) -> dict:
    """The constructor arguments of `cls` with their defaults, updated by `overrides` (unknown keys refused)."""
    params = {n: p for n, p in inspect.signature(cls.__init__).parameters.items() if n != "self"}
    unknown = sorted(set(overrides) - set(params))
    if unknown:
        raise CheckpointError(f"unknown {cls.__name__} setting(s) {unknown}; known: {sorted(params)}")
    defaults = {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}
    return {**defaults, **overrides}


def load_model(cls: type[M], directory: str | Path, expected: Optional[dict] = None, what: str = "model") -> M:
    """`cls.from_pretrained(directory)`, after checking the files exist and (if given) that the saved config
    matches `expected` (keys not given there are compared with the constructor defaults)."""
    directory = Path(directory)
    for name in (CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME):
        if not (directory / name).is_file():
            raise CheckpointError(f"{what} checkpoint incomplete: missing file {directory / name}")
    try:
        saved = json.loads((directory / CONFIG_NAME).read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{directory / CONFIG_NAME}: not valid JSON ({exc})") from None
    if not isinstance(saved, dict):
        raise CheckpointError(f"{directory / CONFIG_NAME}: expected a JSON object")
    if saved.get("_class_name", cls.__name__) != cls.__name__:
        raise CheckpointError(f"{directory} holds a {saved['_class_name']}, not a {cls.__name__}")
    if expected is not None:
        diffs = config_differences(saved, full_config(cls, expected))
        if diffs:
            raise CheckpointError(f"{what} checkpoint {directory} was made for another config: " + "; ".join(diffs))
    try:
        model, info = cls.from_pretrained(directory, output_loading_info=True, low_cpu_mem_usage=False)
    except (OSError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"cannot load {what} from {directory}: {exc}") from None
    # diffusers only warns when weights are missing (and initialises them at random): refuse instead
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        if info.get(kind):
            shown = ", ".join(map(str, list(info[kind])[:3]))
            raise CheckpointError(f"{what} checkpoint {directory}: config.json and {SAFETENSORS_WEIGHTS_NAME} "
                                  f"disagree ({len(info[kind])} {kind.replace('_', ' ')}, e.g. {shown})")
    return model


def read_tensors(path: str | Path, what: str, tensors: tuple = (), metadata: tuple = ()) -> tuple[dict, dict]:
    """A safetensors file's tensors and metadata, with the named keys present; a truncated or foreign file is
    one CheckpointError naming it, not a deserialiser's trace."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            data = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:        # safetensors raises its own error types, and OSError for unreadable files
        raise CheckpointError(f"{path}: not a {what} file ({exc})") from None
    missing = [k for k in tensors if k not in data] + [k for k in metadata if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: not a {what} file (it has no {', '.join(missing)})")
    return data, meta


def save_model(model, directory: str | Path) -> None:
    """save_pretrained into a temporary folder, then swap it in: an interrupted save never leaves half a model."""
    directory = Path(directory)
    tmp, old = directory.with_name(directory.name + ".tmp"), directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
