#!/usr/bin/env bash
# The GPU check on a lent GPU machine, from the repository root:  bash bench/gpu_check.sh
# Installs the wheels carried in .whl/ (bench/fetch_wheels.sh: PyAV, PySceneDetect and what
# they need that the image lacks) into /tmp/site with --no-deps, so the image's torch is
# untouched, and runs bench/gpu_check.py, which imports the project from the working tree.
# Downloads nothing. Results: $OUT/gpu_check.json, gpu_check.txt, gpu_check.log
# (OUT defaults to bench_out/gpu_check). Extra arguments go to gpu_check.py (--dry-run, --only).
set -uo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
exec python3 bench/gpu_check.py --out "${OUT:-bench_out/gpu_check}" "$@"
