"""What an installed copy needs: package data in the wheel, one default checkpoint relative to the working
directory with a one-line error where it is not, `matrix-sim play`, `prepare-data`, and seams between modules
(the client without cli.py, the stream's scene starts without the recorder)."""
import fnmatch
import json
import logging
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from matrix_sim.checkpoints import find_checkpoint
from matrix_sim.cli import main
from matrix_sim.client.worlds import choose_kind
from matrix_sim.config import DEFAULT_CHECKPOINT
from matrix_sim.data.policy import POLICY_VERSION

REPO = Path(__file__).resolve().parent.parent
NO_MODEL = "no world model at checkpoints/tiny-cpu: run from the repository folder, pass --checkpoint DIR"


def test_every_file_the_package_reads_is_package_data():
    """setuptools puts into a wheel only the data files pyproject names: every non-Python file in the package
    must match one of its patterns (a shader the patterns miss fails here)."""
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for path in (REPO / "matrix_sim").rglob("*"):
        if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
            continue
        covered = False
        for package, patterns in package_data.items():
            folder = REPO / package.replace(".", "/")
            if folder in path.parents:
                covered |= any(fnmatch.fnmatch(path.relative_to(folder).as_posix(), p) for p in patterns)
        assert covered, f"{path.relative_to(REPO)} is not in pyproject's package-data"


def test_the_default_checkpoint_is_relative_to_the_working_directory(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(REPO)
    assert find_checkpoint() == DEFAULT_CHECKPOINT == Path("checkpoints/tiny-cpu")
    assert choose_kind("auto", None) == ("model", DEFAULT_CHECKPOINT)
    monkeypatch.chdir(tmp_path)
    assert find_checkpoint() is None
    with caplog.at_level(logging.WARNING, logger="matrix_sim.client.worlds"):
        assert choose_kind("auto", None) == ("engine", None)           # said, not silent
    assert any(NO_MODEL in r.getMessage() and "playing the source world" in r.getMessage() for r in caplog.records)


def test_eval_and_play_without_a_checkpoint_are_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["eval"]) == 2
    assert capsys.readouterr().err == f"error: {NO_MODEL}\n"
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        assert main(["-q", "play", "--world", "model"]) == 2
        assert capsys.readouterr().err == f"error: {NO_MODEL}, or play the source world with --world engine\n"
        with pytest.raises(SystemExit):
            main(["play", "--help"])
        usage = capsys.readouterr().out
        assert usage.startswith("usage: python -m matrix_sim play") and "--headless" in usage   # the client's
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)


def test_the_client_and_the_stream_leave_cli_and_recorder_alone():
    code = ("import sys, matrix_sim.client.app, matrix_sim.client.worlds, matrix_sim.stream.starter; "
            "print(sorted(m for m in ('matrix_sim.cli', 'matrix_sim.data.record') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_prepare_data_records_then_encodes_and_resumes(tmp_path, capsys):
    out = tmp_path / "world"
    args = ["-q", "prepare-data", "--episodes", "2", "--frames", "16", "--seed", "5", "--out", str(out),
            "--width", "128", "--height", "72", "--checkpoint", str(REPO / "checkpoints" / "vae")]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == str(out / "latents")
    shards = json.loads((out / "manifest.json").read_text())
    latents = json.loads((out / "latents" / "manifest.json").read_text())
    assert shards["args"] == {"episodes": 2, "frames": 16, "seed": 5, "width": 128, "height": 72, "prompt": None,
                              "policy": POLICY_VERSION}
    assert [e["file"] for e in latents["episodes"]] == [e["file"] for e in shards["episodes"]]
    assert len(latents["episodes"]) == 2
    for entry in latents["episodes"]:
        with np.load(out / "latents" / entry["file"]) as episode:
            assert episode["latents"].shape[:1] == (16,) and episode["actions"].shape[0] == 16
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")}
    assert main(args) == 0                       # resumed: every shard and latent kept as it was
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")} == before
