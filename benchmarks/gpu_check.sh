#!/usr/bin/env bash
# The checks that need a GPU, in one run of under 8 minutes on one H200: the CUDA tests (statistics
# and the probe, CUDA against the CPU), then the paper's full grid experiment on a randomly
# initialised model of Llama-3.1-8B's shape in bfloat16 (benchmarks/gpu_check.py). icgt must be
# built and importable with a CUDA build of torch (scripts/setup, or pip install --no-build-isolation .).
#   benchmarks/gpu_check.sh            on a GPU machine
#   benchmarks/gpu_check.sh --dry-run  anywhere: the same steps on the CPU with a 2-block model
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
if [ "${1:-}" != "--dry-run" ]; then
  "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" ||
    { echo "gpu_check: torch sees no CUDA device (use --dry-run on a CPU)"; exit 1; }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  echo "== CUDA against CPU: statistics and the probe"
  "$PYTHON" -m pytest -q tests/python/test_stats_devices.py tests/python/test_probe_devices.py
fi
echo "== the grid experiment on a model of Llama-3.1-8B's shape"
"$PYTHON" benchmarks/gpu_check.py "$@"
