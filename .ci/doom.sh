#!/usr/bin/env bash
# CI: the doom extra in an environment of its own (vizdoom requires pygame-ce, which installs its own `pygame`
# over pygame's files, so it never meets the default install), its tests, and the client playing in it:
# the source world on Doom's MAP01 and the shipped world model, headless, each recording a valid mp4.
#
#   .ci/doom.sh            (from anywhere; exits non-zero with a `doom: FAILED ...` line on any fault)
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/matrix-sim-doom.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
started=$SECONDS

say() { echo "doom: $*"; }
fail() { echo "doom: FAILED: $*" >&2; exit 1; }
frames() { ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$1"; }

# the system's packages stay as they are; vizdoom and pygame-ce go into the environment only
"$PYTHON" -m venv --system-site-packages "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q -e "$REPO[doom]" || fail "pip install -e .[doom]"
"$VPY" -c 'import vizdoom, pygame; print("doom: vizdoom", vizdoom.__version__, "with", pygame.version.ver)'
say "installed ($((SECONDS - started)) s)"

cd "$REPO"
"$VPY" -m pytest -q -m doom tests/test_doom.py || fail "the doom tests"

cd "$WORK"
"$VPY" "$REPO/run_sim.py" --world engine --prompt "doom map01" --headless --frames 16 --record doom.mp4 -q \
  2>doom.log || fail "playing doom map01: $(tail -n 3 doom.log)"
[[ "$(frames doom.mp4)" == 16 ]] || fail "doom map01 wrote $(frames doom.mp4) frames, not 16"
"$VPY" "$REPO/run_sim.py" --checkpoint "$REPO/checkpoints/tiny-cpu" --prompt "drive desert at sunset" --headless \
  --frames 16 --record model.mp4 -q 2>model.log || fail "the world model with the doom extra: $(tail -n 3 model.log)"
[[ "$(frames model.mp4)" == 16 ]] || fail "the world model wrote $(frames model.mp4) frames, not 16"
say "the client plays doom map01 and the world model with the extra installed ($((SECONDS - started)) s)"
