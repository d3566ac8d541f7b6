#!/bin/bash
# Issue 20's GPU table in one call (the device machine runs it from the repo root; about 9 minutes
# on one H200 with 16 cores):
#   bash bench/gpu_checks.sh OUT_DIR [GARMENTS_DIR SWEEP_SECONDS]
# 1. bench/infer_speed.py: model alone, input pipeline alone (cpu and gpu decoders), fashionstyle
#    end to end with each decoder, a plain PIL loop; densenet201, resnet101, resnet152 at 224 px,
#    20,480 photos of 400x533 per pass.
# 2. bench/train_speed.py: the same for training, epochs of 200 steps of 128; the input pipeline with
#    nvJPEG decoding alone, and `train --decode gpu` end to end for resnet101 (the most input-bound).
# 3. bench/data_speed.py: host preprocessing per core on that machine's CPU.
# 4. Only with GARMENTS_DIR and SWEEP_SECONDS > 0: bench/recipe_sweep.py (issue 14's recipe levers).
# Logs and env.txt go to OUT_DIR; the tables are printed at the end.
set -u
OUT=${1:?OUT_DIR}; GARMENTS=${2:-}; SWEEP_S=${3:-0}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
WORK=/tmp/fs_gpu; mkdir -p "$WORK" "$OUT"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import torch, torchvision, timm, lightning, PIL; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'torchvision', torchvision.__version__, 'timm', timm.__version__, 'lightning', lightning.__version__, 'pillow', PIL.__version__)"
  date -u; nproc; } > "$OUT/env.txt" 2>&1
timeout 240 python3 bench/infer_speed.py --images 20480 --batch-size 256 --warmup 5 --steps 30 \
  --out "$WORK/infer" > "$OUT/infer_speed.log" 2>&1
timeout 480 python3 bench/train_speed.py --epoch-steps 200 --batch-size 128 --warmup 5 --steps 30 \
  --gpu-decode-for resnet101 --out "$WORK/train" > "$OUT/train_speed.log" 2>&1
timeout 60 python3 bench/data_speed.py --n 300 --rounds 2 --min-ratio 0 > "$OUT/data_speed.log" 2>&1
if [ -n "$GARMENTS" ] && [ "$SWEEP_S" -gt 0 ] && [ -f "$GARMENTS/labels.csv" ]; then
  timeout "$SWEEP_S" python3 bench/recipe_sweep.py --labels "$GARMENTS/labels.csv" --out "$WORK/sweep" --plain \
    --seeds 0 --workers 12 --variants base wp05 > "$OUT/sweep.log" 2>&1
fi
cat "$OUT/env.txt"
for log in infer_speed train_speed data_speed; do
  echo "== $log"; grep -E '^\||^  |images/s|goal|FAIL|below goal|Error' "$OUT/$log.log" | tail -n 40
done
