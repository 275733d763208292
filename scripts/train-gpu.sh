#!/usr/bin/env bash
# The shipped world model's recipe (configs/tiny-cpu.yaml, unchanged) at scale on this machine's CUDA GPUs:
# torchrun with one process a GPU, bf16 autocast (the device picks it), a larger batch; the playable bundle
# and its eval land in OUT. Resumable: run it again with the same OUT and it continues.
#
#   scripts/train-gpu.sh OUT [STEPS] [BATCH]        (defaults: 20000 steps of 64 clips)
set -euo pipefail
out="${1:?usage: scripts/train-gpu.sh OUT [STEPS] [BATCH]}"
steps="${2:-20000}"
batch="${3:-64}"
cd "$(dirname "$0")/.."

gpus="$(python -c 'import torch; print(torch.cuda.device_count())')"
[[ "$gpus" -ge 1 ]] || { echo "error: no CUDA device here; on a CPU run python -m matrix_sim train" >&2; exit 2; }
python -m matrix_sim prepare-data --workers "$(nproc)"  # data/world_a and its latents (kept if already there)
torchrun --standalone --nproc_per_node "$gpus" -m matrix_sim train --config configs/tiny-cpu.yaml \
  --run-dir "$out" --steps "$steps" --batch-size "$batch"
python -m matrix_sim eval --json --checkpoint "$out" > "$out/eval.json"
echo "trained $out: play it with python run_sim.py --checkpoint $out"
