#!/usr/bin/env bash
# GPU check: bf16 training steps of the microsoft/deberta-v3-large shape (random weights, built from its
# config, no network) on real GoEmotions batches: samples/s, MFU and GPU utilisation per setting. Needs python
# with torch and transformers (nvidia-ml-py for the utilisation; this project for --max-tokens-per-batch).
#   bash bench/gpu_check.sh [--batch-size 32 8x2] [--max-tokens-per-batch 16384] [--compile] [--steps 30]
#                           [--gradient-checkpointing] [--peak-tflops N]
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not available"
exec "${PYTHON:-python}" bench/gpu_check.py "$@"
