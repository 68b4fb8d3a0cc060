#!/usr/bin/env bash
# GPU checks for a lent GPU machine, run from the repository root:  bash bench/gpu_check.sh
# Installs nothing and downloads nothing. Each section writes its results under $OUT
# (default: bench_out/) and prints them; every section has its own time limit.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench_out}"
mkdir -p "$OUT"
status=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# --- colorizer core (issue 4): training-step throughput --------------------------------
# eccv16 and chen at 176 and 224, bf16 autocast + channels_last vs plain float32; images/s
# and the share of each step spent in Lab conversion and soft-encoding. About 1-2 minutes.
timeout 300 python bench/gpu_core.py --device cuda --out "$OUT/gpu_core" || status=1

# --- training (issue 5): real loader vs synthetic batch on the device, batch 64 at 176 ----
timeout 300 python bench/gpu_train.py --device cuda --out "$OUT/gpu_train" || status=1

# --- colorize (issue 6): frames/s of a 720p film and the share of each stage -------------
timeout 240 python bench/bench_colorize.py --device cuda --frames 240 --batch-size 8 16 \
    > "$OUT/bench_colorize.txt" 2>&1 || status=1
cat "$OUT/bench_colorize.txt"

exit "$status"
