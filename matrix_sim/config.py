"""Where files are found and written, and YAML configs loaded into dataclasses with errors naming file and key.

One path policy: the package's own resources (the source world's look, the scenes, the default controls)
come from the installed package (matrix_sim/resources/, read through importlib.resources, so a wheel works);
everything a user owns (checkpoints, data, runs, training configs, any path on the command line) is relative
to the working directory, so the commands run from the repository folder find the shipped files.
"""
from __future__ import annotations

import dataclasses
import json
import os
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Optional, TypeVar

import yaml

CONFIG_DIR = Path("configs")                 # training configs: user files, relative to the working directory
CHECKPOINT_DIR = Path("checkpoints")         # trained weights: user files, relative to the working directory
DEFAULT_VAE_DIR = CHECKPOINT_DIR / "vae"
DEFAULT_CHECKPOINT = CHECKPOINT_DIR / "tiny-cpu"     # the world model the game and eval use unless told otherwise

T = TypeVar("T")


def resource(name: str) -> Path:
    """A file shipped inside the package (matrix_sim/resources/NAME), e.g. "scenes.yaml"."""
    return Path(str(resources.files("matrix_sim.resources").joinpath(name)))


class ConfigError(ValueError):
    """A config file is missing or malformed; the message says which file and what is wrong."""


def folder_problem(folder: Path) -> Optional[str]:
    """Make the folder (mkdir -p); what stops it, in words (a file standing where a folder should be is named),
    or None where it exists and can be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        return f"{next(p for p in (folder, *folder.parents) if p.exists())} is a file, not a folder"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None if os.access(folder, os.W_OK) else f"{folder} is not writable"


def make_folder(folder: str | Path, what: str) -> Path:
    """The folder, made; OSError "cannot create the WHAT FOLDER: why" where it cannot be."""
    folder = Path(folder)
    problem = folder_problem(folder)
    if problem:
        raise OSError(f"cannot create the {what} {folder}: {problem}")
    return folder


def writable_output(path: str | Path | None, what: str) -> None:
    """Refuse, before any work, an output file that could not be written at the end (its folder is made here)."""
    if path is None:
        return
    path = Path(path)
    problem = folder_problem(path.parent) or ("it is a folder" if path.is_dir() else None)
    if problem:
        raise ConfigError(f"cannot write the {what} to {path}: {problem}")


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file of this process, so a crash mid-write leaves the previous version, never half
    a file, and two processes writing the same file never share a temporary one."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: Path, form: str, error: type[Exception] = ValueError) -> dict:
    """A JSON object whose "format" is `form`; `error`, one line naming the file, where the file cannot be read,
    is not JSON or is another format."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != form:
        found = data.get("format") if isinstance(data, dict) else None
        raise error(f"{path}: format {found!r}, expected {form!r}")
    return data


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}{_yaml_place(exc)}: not valid YAML ({_yaml_problem(exc)})") from None


def _yaml_place(exc: yaml.YAMLError) -> str:
    """":line:column" of a parse error, so the one-line message points at it."""
    mark = getattr(exc, "problem_mark", None)
    return f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    return str(problem) if problem else " ".join(str(exc).split())


EXTENDS = "extends"


def load_extending_yaml(path: str | Path, seen: tuple[Path, ...] = ()) -> Any:
    """A YAML mapping that may name another config to start from (`extends: tiny-cpu.yaml`, relative to this
    file): its mappings merge key by key into that one's, anything else replaces (null removes a section), so
    a variant states only what it changes."""
    path = Path(path)
    raw = load_yaml(path)
    if not isinstance(raw, dict) or EXTENDS not in raw:
        return raw
    base_path = (path.parent / str(raw.pop(EXTENDS))).resolve()
    if base_path in seen or base_path == path.resolve():
        raise ConfigError(f"{path}: extends {base_path}, which extends it back")
    base = load_extending_yaml(base_path, (*seen, path.resolve()))
    if not isinstance(base, dict):
        raise ConfigError(f"{path}: extends {base_path}, which is not a mapping")
    return merged(base, raw)


def merged(base: dict, changes: dict) -> dict:
    """`base` with `changes` merged in, mapping by mapping."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass `cls` from a mapping, refusing unknown keys, missing required ones and a word where a
    number or a yes/no belongs (a number YAML reads as a string, such as 1e-3, is taken as the number)."""
    check_keys(cls, data, where)
    kinds = typing.get_type_hints(cls)
    data = {key: _scalar(value, kinds.get(key), f"{where}.{key}") for key, value in data.items()}
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _scalar(value: Any, kind: Any, where: str) -> Any:
    if kind is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    wrong = {float: lambda v: isinstance(v, bool) or not isinstance(v, (int, float)),
             int: lambda v: isinstance(v, bool) or not isinstance(v, int),
             bool: lambda v: not isinstance(v, bool)}.get(kind)
    if wrong is not None and wrong(value):
        raise ConfigError(f"{where}: expected {'yes/no (true or false)' if kind is bool else 'a number'}, "
                          f"got {value!r}")
    return value


def check_keys(cls: type, data: Any, where: str) -> None:
    """`data` is a mapping with every key `cls` requires and none it does not know."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} for {cls.__name__}; known: {sorted(names)}")
    missing = [n for n, f in names.items()
               if n not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing} for {cls.__name__}")
