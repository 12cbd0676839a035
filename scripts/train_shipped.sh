#!/usr/bin/env bash
# How the shipped SqueezeSegV2 + CRF weights are trained: one GPU machine (H200, 16 cores), simulated scans only.
# The real SqueezeSeg frames given as MONITOR are only scored at checkpoints, never used to choose weights.
#
# DATA=sim (how the current default.pt was trained): 15 DataLoader workers render sweeps with Lidar.scan
#   (torch ray casting on the GPU) and augment on the CPU. The workers need about 110 s to start, then deliver
#   about 110 samples/s: the run is data-bound (1357 steps of 32 in 8.6 minutes).
# DATA=sim-gpu (how the next weights will be trained; docs/training.md "The GPU data path"): 12 workers only
#   build scenes; each scene's FRAMES (16) ego poses are rendered in one batched call on the GPU, cut into
#   512-column crops and augmented there, 2 steps of 32 per scene. The run should be bound by the model's
#   compute; STEPS (12000) is an estimate of what 8.5 minutes reach: set it from log.csv's samples_per_s.
# Usage: [DATA=sim|sim-gpu] scripts/train_shipped.sh OUT_DIR [MONITOR_FRAMES]
#        (STEPS, MINUTES, WORKERS, BATCH, FRAMES override)
set -euo pipefail
out=${1:?usage: train_shipped.sh OUT_DIR [MONITOR_FRAMES]}
monitor=${2:-}
monitor_args=()
[ -n "$monitor" ] && monitor_args=(--monitor "$monitor")
case "${DATA:-sim}" in
sim)
    python3 -m perception_ws.cli train --model squeezesegv2 --crf --data sim --dropout measured --intensity model \
        --batch-size "${BATCH:-32}" --workers "${WORKERS:-15}" --steps "${STEPS:-3200}" --max-minutes "${MINUTES:-8.6}" \
        --checkpoint-every 250 --quiet --out "$out" "${monitor_args[@]}"
    ;;
sim-gpu)
    python3 -m perception_ws.cli train --model squeezesegv2 --crf --data sim-gpu --dropout measured --intensity model \
        --batch-size "${BATCH:-32}" --workers "${WORKERS:-12}" --frames-per-scene "${FRAMES:-16}" \
        --steps "${STEPS:-12000}" --max-minutes "${MINUTES:-8.5}" --checkpoint-every 500 --quiet --out "$out" \
        "${monitor_args[@]}"
    ;;
*)
    echo "train_shipped.sh: DATA must be sim or sim-gpu; got '${DATA}'" >&2
    exit 2
    ;;
esac
