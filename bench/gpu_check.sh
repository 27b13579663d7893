#!/usr/bin/env bash
# GPU check: bf16 training steps of the microsoft/deberta-v3-large shape (random weights, built from its
# config, no network) on real GoEmotions batches. Needs only python with torch and transformers.
#   bash bench/gpu_check.sh [--batch-size 32] [--steps 30] [--gradient-checkpointing] [--peak-tflops N]
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not available"
exec python bench/gpu_check.py "$@"
