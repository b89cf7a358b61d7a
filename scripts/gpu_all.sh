#!/usr/bin/env bash
# Each suite's single-GPU check in turn, each in its own time box, so that one that runs long cannot
# take the others' time. Every check writes its JSON under OUT after each finished measurement, so a
# check cut off by its box keeps what it finished. Needs only torch, numpy, scipy and transformers.
#
#   OUT=/some/dir bash scripts/gpu_all.sh                      # the boxes below, at most 8 minutes
#   OUT=/some/dir FMNIST=/dir/with/the/gz/files bash scripts/gpu_all.sh
#   OUT=/some/dir SSD_TRAIN_S=0 SSD_S=120 bash scripts/gpu_all.sh   # a box of 0 skips that check
#   OUT=/some/dir DMPC_S=400 DMPC_DATA=hopper-medium-replay.npz bash scripts/gpu_all.sh
set -u
: "${OUT:?set OUT to the folder the results go to}"
# By default the boxes hold the ssd engine on a random tiny pair (its CUDA code paths) and what no GPU has
# measured yet: the ssd modes on a pair trained on the card, and a training step of each infcompute paper
# shape. On an H200 the lewm planning benchmark took 68 s and pacbayes 77 s (docs/gpu-results.md), so they
# are off unless given a box (LEWM_S=120 PACBAYES_S=150); the lewm suite run takes about 8 minutes (three
# models 90 s each, the patch baseline, planning).
LEWM_S=${LEWM_S:-0} SSD_S=${SSD_S:-90} PACBAYES_S=${PACBAYES_S:-0} LEWM_TRAIN_S=${LEWM_TRAIN_S:-0}
INFCOMPUTE_S=${INFCOMPUTE_S:-0} DMPC_S=${DMPC_S:-0}  # DMPC_S: 4 models x DMPC_S / 6 s, then D-MPC; DMPC_DATA: a dataset
INFCOMPUTE_STEPS_S=${INFCOMPUTE_STEPS_S:-150}  # one training step of each paper shape, two vocabularies
SSD_TRAIN_S=${SSD_TRAIN_S:-240}  # a byte-level pair trained on the card, then AR / SD / SSD on it (real acceptance)
SSD_GRAPHS_S=${SSD_GRAPHS_S:-0}  # the tiny pair eager, over a static KV cache, and with CUDA graphs (batch 1)
PY=${PYTHON:-python3}
cd "$(dirname "$0")/.." || exit 1
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_all.log") 2>&1
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import sys, torch, transformers; print(sys.version.split()[0], torch.__version__, transformers.__version__)"

. scripts/box.sh

box "$LEWM_S" lewm "$PY" scripts/gpu_lewm.py --out "$OUT"
# random tiny Qwen2 pair (no model hub there): the CUDA code paths of every mode, not the paper's numbers
box "$SSD_S" ssd-tiny "$PY" scripts/gpu_ssd.py --tiny --out "$OUT" --prompts 4 --new-tokens 32 --ks 3 --fans 2 \
    --batches 1 4 --temperatures 0 --budget-s $((SSD_S * 2 / 3))
box "$SSD_GRAPHS_S" ssd-graphs "$PY" scripts/gpu_ssd.py --tiny --compile reduce-overhead --out "$OUT/ssd-graphs" \
    --prompts 4 --new-tokens 64 --ks 3 --fans 2
box "$SSD_TRAIN_S" ssd-trained "$PY" scripts/gpu_ssd.py --train-pair --out "$OUT/ssd-trained" --budget-s $((SSD_TRAIN_S * 2 / 3))
box "$LEWM_TRAIN_S" lewm-train "$PY" scripts/gpu_lewm.py --train --out "$OUT"
box "$PACBAYES_S" pacbayes "$PY" scripts/gpu_pacbayes.py --out "$OUT" ${FMNIST:+--data-dir "$FMNIST"}
box "$INFCOMPUTE_STEPS_S" infcompute-steps "$PY" scripts/gpu_infcompute.py --paper-steps --out "$OUT"
box "$INFCOMPUTE_S" infcompute "$PY" scripts/gpu_infcompute.py --out "$OUT"
box "$DMPC_S" dmpc "$PY" scripts/gpu_dmpc.py --out "$OUT" --data "${DMPC_DATA:-}" --seconds $((DMPC_S / 6)) \
    --eval-seconds $((DMPC_S / 6))
