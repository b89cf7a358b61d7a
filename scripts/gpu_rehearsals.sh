#!/usr/bin/env bash
# The full tier's preflight of every suite, then the rehearsals one GPU can hold (each in a time box):
# per phase, peak memory per device, seconds per step and the projected hours and GPU-hours of the real
# run. Each rehearsal's record is copied to OUT as it finishes. Needs the harness (hydra-core, omegaconf)
# beside torch; FashionMNIST's four .gz files in FMNIST (no download on a machine without internet).
#
#   OUT=/some/dir FMNIST=/dir/with/the/gz/files bash scripts/gpu_rehearsals.sh
#   OUT=/some/dir LEWM_S=0 bash scripts/gpu_rehearsals.sh      # a box of 0 skips that rehearsal
set -u
: "${OUT:?set OUT to the folder the results go to}"
LEWM_S=${LEWM_S:-300} PACBAYES_S=${PACBAYES_S:-150}
PY=${PYTHON:-python3}
WORK=${WORK:-$(mktemp -d)}
cd "$(dirname "$0")/.." || exit 1
mkdir -p "$OUT"
exec > >(tee -a "$OUT/rehearsals.log") 2>&1
export PYTHONUNBUFFERED=1 PAPERCLUB_PROGRESS=0 PAPERCLUB_CACHE="$WORK/cache"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import sys, torch; print(sys.version.split()[0], torch.__version__)"

fm=()
if [ -n "${FMNIST:-}" ]; then fm=("data_dir=$FMNIST"); fi
# lewm's patch-token baseline runs on DINO-WM's encoder; where the hub cache lacks it, DINOv2 ViT-S/14's shape
# with random weights stands in (memory and time do not depend on the weights; its losses mean nothing)
DINO=facebook/dinov2-small
if ! HF_HUB_OFFLINE=1 "$PY" -c "from transformers import AutoModel; AutoModel.from_pretrained('$DINO')" 2>/dev/null; then
    DINO="$WORK/dinov2-s14-random"
    "$PY" -c "import sys; from transformers import Dinov2Config as C, Dinov2Model as M
M(C(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, patch_size=14)).save_pretrained(sys.argv[1])" "$DINO"
fi
for suite in dmpc infcompute lewm pacbayes ssd; do
    extra=()
    [ "$suite" = infcompute ] && extra=("data.source=stdlib" "data.pattern=*.py" "data.tokenizer=bytes")
    [ "$suite" = pacbayes ] && extra=("${fm[@]}")
    [ "$suite" = lewm ] && extra=("patch_encoder=$DINO")
    echo "== preflight $suite"
    "$PY" -m runners.cli run "$suite" --tier full --preflight "${extra[@]}"
    echo "== preflight $suite: exit $?"
done

. scripts/box.sh
rehearse() {  # rehearse SECONDS NAME COMMAND...: box it, then keep its records under OUT
    box "$@"
    cp "$WORK/$2/rehearsal.json" "$OUT/$2.rehearsal.json" 2>/dev/null
    cp "$WORK/$2/seed_0/phases.json" "$OUT/$2.phases.json" 2>/dev/null
}

# FashionMNIST in place of CIFAR-10 (not reachable without internet): the full tier's recipe on it
rehearse "$PACBAYES_S" pacbayes "$PY" -m runners.cli run pacbayes --tier full --rehearse --out "$WORK/pacbayes" \
    "${fm[@]}" bound.dataset=fmnist gp.dataset=fmnist "gp.classes=[0,6]"
rehearse "$LEWM_S" lewm "$PY" -m runners.cli run lewm --tier full --rehearse --out "$WORK/lewm" "patch_encoder=$DINO"
