#!/usr/bin/env bash
# The GPU day: the first thing to run on a machine with an NVIDIA GPU. One command, no network, under
# nine minutes on one GPU; it prints a block to paste into docs/results.md.
#
#   bash bench/gpu_day.sh            # everything below, in order
#
# Needs torch (a CUDA build), transformers and this project installed (pip install . from the wheel
# cache is fine), plus tmux for the cockpit capture. Every step has its own time limit; a step that
# fails or runs out of time is marked FAIL in the block and the script exits 1 at the end: nothing is
# skipped quietly. PYTHON picks the interpreter (default: python); GOEMO_GPU_DAY_DIR keeps the files.
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
WORK=${GOEMO_GPU_DAY_DIR:-$(mktemp -d /tmp/gpu-day.XXXXXX)}
mkdir -p "$WORK"
PY=${PYTHON:-python}
FAILED=0
BLOCK="$WORK/block.md"
: > "$BLOCK"
say() { echo "$*" | tee -a "$BLOCK"; }
fail() { say "FAIL: $*"; FAILED=1; }
# Wall time in seconds with one decimal, from bash's own clock (no bc: it is missing on many images).
elapsed() { local now=$EPOCHREALTIME; printf '%.1f' "$(( (${now/./} - ${1/./}) / 100000 ))e-1"; }
# Time limits per step (seconds): the whole script stays under nine minutes even when a step hangs.
LIMIT_CHECK=${LIMIT_CHECK:-120} LIMIT_SMOKE=${LIMIT_SMOKE:-300} LIMIT_MINILM=${LIMIT_MINILM:-120}
LIMIT_ATTACH=${LIMIT_ATTACH:-120} LIMIT_DDP=${LIMIT_DDP:-180}

say "### GPU day, $(date -u +%Y-%m-%d) ($(hostname))"
say ""
say '```text'
if ! nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$WORK/smi.txt" 2>&1; then
    fail "nvidia-smi: $(head -1 "$WORK/smi.txt")"
    say '```'
    exit 1
fi
while read -r line; do say "card: $line"; done <"$WORK/smi.txt"
GPUS=$(wc -l <"$WORK/smi.txt")
"$PY" - <<'EOF' 2>&1 | tee -a "$BLOCK" || fail "torch cannot use the GPU"
import platform, torch, transformers
assert torch.cuda.is_available(), "torch.cuda.is_available() is False (a CPU build of torch?)"
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}, transformers {transformers.__version__}, "
      f"bf16 {torch.cuda.is_bf16_supported()}")
EOF

# 1. The deberta-v3-large shape in bf16: samples/s, tokens/s, MFU, peak memory, finiteness.
say ""
say "== bench/gpu_check.sh (deberta-v3-large shape, bf16, 30 steps)"
timeout "$LIMIT_CHECK" bash bench/gpu_check.sh --steps 30 >"$WORK/gpu_check.txt" 2>&1
code=$?
if [ "$code" = 0 ]; then
    grep -E "model:|samples/s|tokens/s|MFU|peak|finite|step time" "$WORK/gpu_check.txt" | tee -a "$BLOCK"
else
    tail -5 "$WORK/gpu_check.txt" | tee -a "$BLOCK"
    fail "bench/gpu_check.sh exited $code (124: over ${LIMIT_CHECK} s)"
fi

# 2. The smoke preset on CUDA through the real supervisor.
say ""
say "== smoke preset, device = cuda"
t0=$EPOCHREALTIME
timeout "$LIMIT_SMOKE" "$PY" -m cockpit.cli --headless --preset smoke --runs-dir "$WORK/runs" --set device=cuda \
    >"$WORK/smoke.txt" 2>&1
code=$?
say "exit $code, wall $(elapsed "$t0") s"
grep -E "final .* on held-out test" "$WORK/smoke.txt" | tail -1 | tee -a "$BLOCK"
[ "$code" = 0 ] || { tail -5 "$WORK/smoke.txt" | tee -a "$BLOCK"; fail "smoke on cuda exited $code (see $WORK/smoke.txt)"; }

# 3. MiniLM goemo-train on CUDA against the CPU figure of docs/results.md (58.8 samples/s, 2 cores), and
#    the trainer's own device events (NVML) from that run.
say ""
say "== MiniLM goemo-train on CUDA (4,000 rows, batch 32, one epoch)"
if timeout "$LIMIT_MINILM" "$PY" -m trainer.cli --model minilm --device cuda --loss bce --max-train-samples 4000 \
        --batch-size 32 --epochs 1 --max-eval-samples 500 --set checkpoint_every_steps=0 --set device_every_s=1 \
        --out "$WORK/minilm" >"$WORK/minilm.txt" 2>&1; then
    "$PY" - "$WORK/minilm/events.jsonl" <<'EOF' 2>&1 | tee -a "$BLOCK" || fail "MiniLM events unreadable"
import json, statistics, sys
events = [json.loads(line) for line in open(sys.argv[1])]
steps = [e for e in events if e.get("type") == "step"]
start = next(e for e in events if e.get("type") == "run_start")
rates = [s["samples_per_s"] for s in steps[5:]] or [s["samples_per_s"] for s in steps]
sps = statistics.median(rates)
print(f"precision {start['precision']}, {len(steps)} steps, median {sps:.0f} samples/s "
      f"= {sps / 58.8:.1f}x the 2-core CPU figure (58.8 samples/s)")
devices = [e for e in events if e.get("type") == "device"]
gpus = [g for e in devices for g in e.get("gpus") or []]
if not gpus:
    print(f"FAIL: {len(devices)} device events and no GPU in them")
    sys.exit(1)
busiest = max(gpus, key=lambda g: g.get("util_pct") or 0)
print(f"device events: {len(devices)} from host {devices[0].get('host')} (local rank {devices[0].get('local_rank')}); "
      f"busiest sample: " + ", ".join(f"{k} {v}" for k, v in busiest.items() if v not in (None, [], "")))
EOF
else
    tail -3 "$WORK/minilm.txt" | tee -a "$BLOCK"
    fail "MiniLM on cuda failed"
fi

# 4. The cockpit attached in tmux at 160x48 during a CUDA run: the GPU panel as text.
say ""
say "== cockpit in tmux, 160x48, during a CUDA run (GPU panel)"
if command -v tmux >/dev/null; then
    timeout "$LIMIT_ATTACH" "$PY" -m cockpit.cli --headless --preset smoke --runs-dir "$WORK/attach" --phases 1 \
        --configs bce,asl --set device=cuda --set phase1.max_train_samples=4000 >"$WORK/attach.txt" 2>&1 &
    pipeline_pid=$!
    folder=""
    for _ in $(seq 1 60); do
        folder=$(ls -d "$WORK"/attach/*/ 2>/dev/null | head -1)
        [ -n "$folder" ] && [ -f "$folder/p1-bce/events.jsonl" ] && grep -q '"type":"step"' "$folder/p1-bce/events.jsonl" && break
        sleep 1
    done
    tmux kill-session -t gpu-day 2>/dev/null
    tmux new-session -d -s gpu-day -x 160 -y 48 "$PY -m cockpit.cli --attach ${folder:-$WORK/attach}"
    sleep 8
    tmux capture-pane -p -t gpu-day >"$WORK/cockpit.txt"
    tmux kill-session -t gpu-day 2>/dev/null
    wait "$pipeline_pid" || fail "the attached smoke run exited non-zero (see $WORK/attach.txt)"
    if grep -q "GPU0" "$WORK/cockpit.txt"; then
        grep -E "GPU[0-9]|↳|CPU  |── " "$WORK/cockpit.txt" | sed 's/^.*││//; s/│ *$//' | head -8 | tee -a "$BLOCK"
    else
        fail "the cockpit showed no GPU line (see $WORK/cockpit.txt)"
    fi
else
    fail "tmux is not installed (apt-get install tmux), no cockpit capture"
fi

# 5. Two-process DDP smoke where the machine has two GPUs or more.
say ""
if [ "$GPUS" -ge 2 ]; then
    say "== DDP smoke, $GPUS GPUs, one run on all of them"
    t0=$EPOCHREALTIME
    timeout "$LIMIT_DDP" "$PY" -m cockpit.cli --headless --preset smoke --runs-dir "$WORK/ddp" --phases 1 --configs bce \
        --set device=cuda --set pipeline.ddp=true >"$WORK/ddp.txt" 2>&1
    code=$?
    ws=$(grep -ho '"world_size":[0-9]*' "$WORK"/ddp/*/p1-bce/events.jsonl 2>/dev/null | head -1)
    say "exit $code, wall $(elapsed "$t0") s, ${ws:-no run_start}"
    [ "$code" = 0 ] || fail "DDP smoke exited $code (see $WORK/ddp.txt)"
else
    say "== DDP smoke: one GPU here, needs two (not a failure)"
fi
say '```'
say ""
say "files: $WORK"
exit "$FAILED"
