#!/usr/bin/env bash
# How the shipped SqueezeSegV2 + CRF weights were trained: one GPU machine (H200, 16 cores), simulated scans
# rendered on the fly by 15 data workers (torch ray casting on the GPU), nothing real in the training data.
# The real SqueezeSeg frames given as MONITOR are only scored at checkpoints, never used to choose weights.
# On that machine the workers need about 110 s to start, then deliver about 270 samples/s (8.5 steps/s of 32).
# Usage: scripts/train_shipped.sh OUT_DIR [MONITOR_FRAMES]   (STEPS, MINUTES, WORKERS, BATCH override)
set -euo pipefail
out=${1:?usage: train_shipped.sh OUT_DIR [MONITOR_FRAMES]}
monitor=${2:-}
monitor_args=()
[ -n "$monitor" ] && monitor_args=(--monitor "$monitor")
python3 -m perception_ws.cli train --model squeezesegv2 --crf --data sim --dropout measured --intensity model \
    --batch-size "${BATCH:-32}" --workers "${WORKERS:-15}" --steps "${STEPS:-3200}" --max-minutes "${MINUTES:-8.6}" \
    --checkpoint-every 250 --quiet --out "$out" "${monitor_args[@]}"
