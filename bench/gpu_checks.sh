#!/bin/bash
# Every GPU check of this project in one script (the device machine runs it from the repo root).
#   bash bench/gpu_checks.sh OUT_DIR [GARMENTS_DIR] [SWEEP_SECONDS]
# 1. bench/train_speed.py and bench/infer_speed.py (densenet201, resnet101, resnet152 at 224 px)
#    against their plain-timm anchors; 2. bench/recipe_sweep.py on the garments set (recipe levers
#    against bench/plain_loop.py), stopped after SWEEP_SECONDS with every finished run kept.
set -u
OUT=${1:?OUT_DIR}; GARMENTS=${2:-../shared/data/garments}; SWEEP_S=${3:-270}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
WORK=/tmp/fs_gpu; mkdir -p "$WORK" "$OUT"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import torch, timm, lightning; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__, 'lightning', lightning.__version__)"
  date -u; nproc; } > "$OUT/env.txt" 2>&1
timeout 190 python3 bench/train_speed.py --steps 20 --warmup 5 --out "$WORK/train" > "$OUT/train_speed.log" 2>&1
timeout 110 python3 bench/infer_speed.py --steps 15 --warmup 3 --out "$WORK/infer" > "$OUT/infer_speed.log" 2>&1
if [ -f "$GARMENTS/labels.csv" ]; then
  timeout "$SWEEP_S" python3 bench/recipe_sweep.py --labels "$GARMENTS/labels.csv" --out "$WORK/sweep" --plain \
    --seeds 0 1 --workers 12 --variants base bce wp05 adamw bblr ema head512 crop05 asl lr2e3 combo \
    > "$OUT/sweep.log" 2>&1
  (cd "$WORK" && tar czf "$OUT/sweep.tar.gz" --exclude='*.pt' --exclude='*.ckpt' --exclude='logs' sweep)
fi
tail -n 8 "$OUT/train_speed.log" "$OUT/infer_speed.log"; cat "$WORK/sweep/results.jsonl" 2>/dev/null
