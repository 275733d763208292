"""The README is for users: short, no development narration, and its quick commands run.

RUN lists, word for word, the README commands that finish in well under a minute on two CPU cores; each
must appear in one of the README's ```bash blocks (so an edit to either side is caught) and exits 0 here.
Longer commands (recording, training, eval, benchmarks) are checked only for naming real subcommands.
"""
from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_LINES = 300

INSTALL = 'pip install torch==2.13.0 -e ".[dev,runtime]" && python run_sim.py'
TEST = "python -m pytest"

# The commands the test runs; "out.mp4" is written to a temporary folder instead of the repository.
RUN = [
    "python -m matrix_sim --help",
    "python -m matrix_sim scenes",
    "python run_sim.py --help",
    'python run_sim.py --headless --world engine --frames 16 --prompt "drive desert at sunset" --record out.mp4',
    'python run_sim.py --headless --frames 16 --prompt "drive city at night" --record out.mp4',
    "python run_sim.py --headless --checkpoint checkpoints/doom --frames 16 --record out.mp4",
]
MIN_RUN = 5

NARRATION = [
    (re.compile(r"\bsessions?\s+\d", re.I), "session numbers"),
    (re.compile(r"\bissues?\s+#?\d", re.I), "issue numbers"),
    (re.compile(r"(?<![\w.])#\d+\b"), "issue references"),
    (re.compile(r"\b(?:[01]?\d|2[0-3]):[0-5]\d\b"), "clock times"),
    (re.compile(r"\bgit show\b"), "git show recipes"),
    (re.compile(r"\bnot shipped\b|\(shipped\)", re.I), "shipping history"),
]
REMOVED = ["interpolate", "latent-probe", "action_loss", "--compile", "int8"]


def readme() -> str:
    return README.read_text(encoding="utf-8")


def bash_commands(text: str) -> list[str]:
    """Every command line of the ```bash blocks: comments dropped, backslash continuations joined."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(re.sub(r"\s+", " ", line))
    return commands


def test_readme_is_short_and_starts_with_the_two_commands():
    lines = readme().splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines, the limit is {MAX_LINES}"
    first = bash_commands("\n".join(lines[:10]) + "\n")
    assert first[:2] == [INSTALL, TEST], first[:2]
    assert any("python run_sim.py" in line for line in lines[:40])


@pytest.mark.parametrize("pattern,what", NARRATION, ids=[w for _, w in NARRATION])
def test_readme_does_not_narrate_development(pattern, what):
    hits = [f"{n}: {line.strip()}" for n, line in enumerate(readme().splitlines(), 1) if pattern.search(line)]
    assert not hits, f"README.md has {what}:\n" + "\n".join(hits)


def test_readme_does_not_document_removed_features():
    text = readme()
    assert not [word for word in REMOVED if re.search(rf"(?<![\w-]){re.escape(word)}\b", text)]


def test_run_list_is_in_the_readme():
    documented = bash_commands(readme())
    assert len(documented) >= MIN_RUN + 5, documented
    missing = [command for command in RUN if command not in documented]
    assert not missing, f"commands the test runs but the README's bash blocks no longer show: {missing}"


def test_documented_subcommands_exist():
    """Every `python -m matrix_sim X` / `torchrun ... -m matrix_sim X` in a bash block names a real subcommand."""
    names = set()
    for command in bash_commands(readme()):
        words = shlex.split(command)
        for i, word in enumerate(words[:-1]):
            if word == "-m" and words[i + 1] == "matrix_sim" and i + 2 < len(words):
                names.add(words[i + 2])
    names.discard("--help")
    assert len(names) >= 5, names
    from matrix_sim.cli import build_parser

    parser = build_parser()
    available = set(next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices)
    unknown = names - available
    assert not unknown, f"README names subcommands the CLI lacks: {sorted(unknown)}"


@pytest.mark.parametrize("command", RUN)
def test_readme_command_runs(command, tmp_path):
    argv = shlex.split(command.replace("out.mp4", str(tmp_path / "out.mp4")))
    assert argv[0] == "python"
    argv[0] = sys.executable
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    if "--record" in argv:
        video = tmp_path / "out.mp4"
        assert video.is_file() and video.stat().st_size > 0
        assert (tmp_path / "out.json").is_file()
    else:
        assert result.stdout.strip()
