#!/usr/bin/env bash
# CI: build the wheel from the checkout's files, install it into a fresh virtual environment and play it from a
# folder outside the checkout, so a file the package reads but the wheel lacks fails here, not on a user's machine.
#
#   .ci/wheel_smoke.sh            (from anywhere; exits non-zero with a `wheel smoke: FAILED ...` line on any fault)
#
# The environment sees the system's site-packages (torch and the other dependencies are not installed again) but
# the package itself is the wheel's: the script checks that `import matrix_sim` resolves inside the environment.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/matrix-sim-wheel.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
started=$SECONDS

say() { echo "wheel smoke: $*"; }
fail() { echo "wheel smoke: FAILED: $*" >&2; exit 1; }

# 1. the wheel, built from a copy of the checkout's tracked and unignored files (no stale build/ can leak in)
mkdir "$WORK/src"
if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
  git -C "$REPO" ls-files -z --cached --others --exclude-standard \
    | tar cf - -C "$REPO" --null --files-from=- --ignore-failed-read 2>/dev/null | tar xf - -C "$WORK/src"
else
  cp -a "$REPO/." "$WORK/src/" && rm -rf "$WORK/src/build"
fi
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/dist" "$WORK/src" >/dev/null
WHEEL="$(ls "$WORK"/dist/matrix_sim-*.whl)"
say "built $(basename "$WHEEL") ($((SECONDS - started)) s)"
listing="$("$PYTHON" -m zipfile -l "$WHEEL")"
for member in matrix_sim/resources/scenes.yaml matrix_sim/resources/world.yaml matrix_sim/resources/controls.yaml \
              matrix_sim/world/shaders/terrain.vert matrix_sim/world/shaders/common.glsl \
              matrix_sim/client/shaders/lanczos.frag; do
  grep -q "$member" <<<"$listing" || fail "the wheel lacks $member"
done

# 2. a fresh environment with the wheel (its dependencies from the system's site-packages)
"$PYTHON" -m venv --system-site-packages "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q --no-deps --ignore-installed "$WHEEL"
broken="$("$VPY" -m pip check | grep -i '^matrix-sim' || true)"     # the wheel's own requirements, all met
[[ -z "$broken" ]] || fail "pip check: $broken"
export PATH="$WORK/venv/bin:$PATH"
mkdir "$WORK/outside"
cd "$WORK/outside"                                  # outside the checkout: no configs/, no checkpoints/ here
where="$("$VPY" -c 'import matrix_sim; print(matrix_sim.__file__)')"
[[ "$where" == "$WORK/venv/"* ]] || fail "import matrix_sim found $where, not the wheel's copy"
say "installed into a fresh environment ($((SECONDS - started)) s)"

# 3. the scene list (package resources)
scenes="$(matrix-sim scenes)" || fail "matrix-sim scenes"
[[ "$(wc -l <<<"$scenes")" -ge 10 ]] && grep -qx "drive desert at sunset" <<<"$scenes" \
  || fail "matrix-sim scenes listed: $scenes"

frames() { ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$1"; }

# 4. the source world, headless
matrix-sim play --world engine --headless --frames 8 --record engine.mp4 -q 2>engine.log \
  || fail "the source world: $(tail -n 3 engine.log)"
[[ "$(frames engine.mp4)" == 8 ]] || fail "the source world wrote $(frames engine.mp4) frames, not 8"
say "source world: 8 headless frames ($((SECONDS - started)) s)"

# 5. the shipped model, pointed at
matrix-sim play --world model --checkpoint "$REPO/checkpoints/tiny-cpu" --headless --frames 4 \
  --prompt "walk city at night" --record model.mp4 -q 2>model.log || fail "the shipped model: $(tail -n 3 model.log)"
[[ "$(frames model.mp4)" == 4 ]] || fail "the shipped model wrote $(frames model.mp4) frames, not 4"
say "shipped model: 4 headless frames ($((SECONDS - started)) s)"

# 6. no checkpoint here: one clear line, and auto says it plays the source world
expected="error: no world model at checkpoints/tiny-cpu: run from the repository folder, pass --checkpoint DIR, or play the source world with --world engine"
set +e
matrix-sim play --world model --headless --frames 2 -q >none.out 2>none.err
status=$?
set -e
[[ $status == 2 && "$(cat none.err)" == "$expected" ]] \
  || fail "no checkpoint gave status $status and: $(cat none.err)"
matrix-sim play --headless --frames 2 -q 2>auto.log || fail "--world auto without a checkpoint: $(tail -n 3 auto.log)"
grep -q "no world model at checkpoints/tiny-cpu.*playing the source world" auto.log \
  || fail "--world auto fell back to the source world without saying so: $(cat auto.log)"
say "no checkpoint: the one-line error, and auto's warning"
say "passed in $((SECONDS - started)) s"
