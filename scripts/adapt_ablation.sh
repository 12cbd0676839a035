#!/usr/bin/env bash
# The adaptation ablation and the adapted shipped weights, as run on one GPU machine (docs/algorithms.md §5).
#
# Every row fine-tunes the shipped default.pt (trained on simulated HDL-64E scans, measured dropout, hand-made
# intensity, street content v1) for STEPS steps of 32 simulated 64x512 crops at lr 5e-4, all rows at once on
# one GPU (sim-gpu: sweeps rendered on the device; WORKERS scene builders each). No real label is read: the
# targets are unlabelled scans.
#   plain    no dropout noise (the extra steps without the measured dropout)
#   control  nothing new (the effect of the extra steps alone)
#   lir      + learned intensity rendering (LIR trained first on the unlabelled HDL-64E scans)
#   gca      + GCA toward the unlabelled HDL-64E scans (lambda 10)
#   content  + street content v2 (hard negatives, more people)
#   vlp16 / vlp32  the same recipe for the VLP-16 / VLP-32C: simulated scans of the sensor profiled from its
#            unlabelled scan (beams, dropout, height), intensity ignored (the samples have 0..255 or none), GCA
# PDC is applied afterwards on a CPU (python -m perception_ws.adapt.pdc), as are the scores (perception eval).
# Usage: scripts/adapt_ablation.sh OUT HDL64E_SCANS VLP16_PROFILE VLP16_SCANS VLP32_PROFILE VLP32_SCANS
#        (STEPS, MINUTES, WORKERS, LIR_STEPS override; profiles: python -m perception_ws.adapt.sensor_profile)
set -euo pipefail
out=${1:?usage: adapt_ablation.sh OUT HDL64E_SCANS VLP16_PROFILE VLP16_SCANS VLP32_PROFILE VLP32_SCANS}
hdl=$2 p16=$3 t16=$4 p32=$5 t32=$6
mkdir -p "$out"
python3 -m perception_ws.adapt.lir --target "$hdl" --out "$out/lir" --steps "${LIR_STEPS:-2000}" --batch-size 16 \
    --device cuda --quiet
lir="$out/lir/lir_hybrid.pt"
ft() {
    python3 -m perception_ws.cli train --model squeezesegv2 --crf --data sim-gpu \
        --init perception_ws/models/weights/default.pt --lr 5e-4 --batch-size 32 --workers "${WORKERS:-2}" \
        --frames-per-scene 32 --steps "${STEPS:-1500}" --max-minutes "${MINUTES:-5.3}" --checkpoint-every 250 \
        --quiet --out "$out/$1" "${@:2}" > "$out/train_$1.txt" 2>&1
}
ft plain --dropout none --intensity model --scene-content v1 &
ft control --dropout measured --intensity model --scene-content v1 &
ft lir --dropout measured --intensity "lir:$lir" --scene-content v1 &
ft gca --dropout measured --intensity "lir:$lir" --scene-content v1 --target "$hdl" &
ft content --dropout measured --intensity "lir:$lir" --scene-content v2 --target "$hdl" &
ft vlp16 --sensor "$p16" --dropout measured --intensity off --intensity-input zero --scene-content v2 --target "$t16" &
ft vlp32 --sensor "$p32" --dropout measured --intensity off --intensity-input zero --scene-content v2 --target "$t32" &
wait
