#!/bin/bash
# Issue 32's GPU table in ONE call of the device machine (at most ~540 s on one H200 with 16 cores;
# a call may run 600 s). Run from the repository root:
#   bash bench/gpu_checks.sh OUT            # CUDA here: the sizes below; no CUDA: a tiny CPU run of every step
#   CHECKS_MODE=cpu bash bench/gpu_checks.sh OUT                 # the CPU run on any machine
#   BENCH_FAIL="resnet101 fashionstyle" bash bench/gpu_checks.sh OUT   # that pass fails, the other rows stay
# Every log and table goes under OUT (OUT/<step>.log, OUT/tables.md, OUT/env.txt); the photos and runs
# under /tmp/fs_gpu (too big to bring back). Each step prints its tables as soon as it ends, so a call
# cut off still shows the steps before; a pass that fails shows "failed: <one line>" in its row while the
# other passes go on (bench/speed_common.py's attempt), and a step cut by its timeout keeps the rows it
# printed. Steps, each under its own timeout (they add up to 525 s):
#   env (10 s) | photos (40 s): one set of 12,832 JPEGs of 400x533 for every step |
#   prediction (160 s): bench/infer_speed.py: model alone, input pipeline alone (cpu and gpu decoders),
#     fashionstyle end to end with each, the plain PIL loop; densenet201, resnet101, resnet152 at 224 px,
#     6,144 photos per pass (4,096 for the plain loop); then the decoder agreement table (same photos and
#     model through libjpeg-turbo and nvJPEG: largest probability difference, decisions that agree) |
#   training (280 s): bench/train_speed.py: epochs of 100 steps of 128, the plain loop 40 steps, the input
#     pipeline alone with each decoder, `train --decode gpu` for resnet101 |
#   host preprocessing per core (35 s): bench/data_speed.py on 300 of the photos.
# Sizing, from the H200 rates in bench/RESULTS.md (2026-11-27; conservative where none is recorded):
# model alone (predict, bf16 b256) 6,123 / 10,419 / 7,565 img/s; train anchor (bf16 b128) 830 / 2,116 /
# 1,505 img/s, report fp32 b46 318 / 942 / 645; Pillow-bound passes (the plain loops) ~600 img/s on 16
# workers; the uint8 host pipeline at least that x its per-core gain (1.65-1.78x): ~1,000 img/s assumed,
# and nvJPEG no slower; start-up ~3 s a pass, ~12 s a train() (Lightning, workers, epoch 1's validation).
# prediction: 2 pipeline passes (2 x 9 s) + 3 backbones x (model 4 s + 2 e2e x 9 s + plain 10 s + load 3 s)
#   + imports 10 s = ~133 s; training: 2 pipeline passes (2 x 16 s) + densenet201 65 s, resnet101 98 s
#   (with --decode gpu), resnet152 60 s + imports 10 s = ~265 s; photos ~13 s (~1,000 photos/s on 16
#   threads); data_speed ~25 s; env 5 s: ~440 s at these rates, 525 s at most (the timeouts).
# The old workload (20,480 photos x 11 prediction passes, 25,632 photos and epochs of 200 steps)
# came to ~670 s at the same rates.
set -u
OUT=${1:?usage: bash bench/gpu_checks.sh OUT}
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
mkdir -p "$OUT"; : > "$OUT/tables.md"
MODE=${CHECKS_MODE:-auto}
if [ "$MODE" = auto ]; then
  MODE=$($PY -c "import torch; print('gpu' if torch.cuda.is_available() else 'cpu')" 2>/dev/null || echo cpu)
fi
if [ "$MODE" = gpu ]; then
  WORK=/tmp/fs_gpu; N=12832; VAL=32; SIZE=400x533
  INFER="--images 6144 --plain-images 4096 --batch-size 256 --warmup 3 --steps 20"
  TRAIN="--epoch-steps 100 --plain-steps 40 --batch-size 128 --warmup 3 --steps 20 --gpu-decode-for resnet101"
  DATA="--n 300 --rounds 2"
  T_PHOTOS=40; T_INFER=160; T_TRAIN=280; T_DATA=35
else  # the same steps at a tiny size on the CPU ("gpu" decoder: torchvision's batched CPU decoder)
  WORK=${TMPDIR:-/tmp}/fs_gpu_cpu; N=24; VAL=4; SIZE=48x64
  TINY="--backbones test_resnet --image-size 32 --batch-size 4 --steps 2 --warmup 1 --device cpu --workers 0 --threads 1"
  INFER="$TINY --images 20 --plain-images 12 --decoders cpu gpu"
  TRAIN="$TINY --epoch-steps 5 --plain-steps 3"
  DATA="--n 12 --rounds 1 --image-size 32"
  T_PHOTOS=60; T_INFER=180; T_TRAIN=240; T_DATA=60
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OMP_WAIT_POLICY=PASSIVE
fi
PHOTOS=$WORK/photos-$N-$VAL-$SIZE
mkdir -p "$WORK"
START=$SECONDS

step() {  # step NAME TIMEOUT COMMAND...: runs it into OUT/NAME.log, then prints its tables and failures
  local name=$1 limit=$2; shift 2
  local began=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local why="exit $rc"; [ $rc -eq 124 ] && why="cut at its ${limit} s timeout"
  { echo; echo "# $name ($((SECONDS - began)) s, $why; log: $OUT/$name.log)"
    grep -E '^## |^\||^[^ ].*: failed: |^goal|^below goal|^FAIL|refused|^[0-9]+ JPEG photos|^  (train|predict): |images like' \
      "$OUT/$name.log"
    [ $rc -ne 0 ] && grep -E '^[A-Za-z.]*(Error|Exception)' "$OUT/$name.log" | tail -n 1
  } | tee -a "$OUT/tables.md"
}

{ echo "mode: $MODE; $(date -u); $(getconf _NPROCESSORS_ONLN) CPU cores"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
  timeout 10 $PY -c "import torch, torchvision, timm, lightning, PIL; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'torchvision', torchvision.__version__, 'timm', timm.__version__, 'lightning', lightning.__version__, 'pillow', PIL.__version__)"
} > "$OUT/env.txt" 2>&1
echo "# env"; cat "$OUT/env.txt" | tee -a "$OUT/tables.md"
step photos "$T_PHOTOS" $PY -c "import sys, time; sys.path.insert(0, 'bench'); import speed_common as c
t = time.perf_counter(); w, h = c.parse_size('$SIZE')
c.write_photo_set(c.Path('$PHOTOS'), $N, $VAL, (w, h))
print(f'$N JPEG photos of $SIZE in $PHOTOS ({time.perf_counter() - t:.1f} s)')"
step prediction "$T_INFER" $PY bench/infer_speed.py $INFER --photo-size $SIZE --out "$WORK"
step training "$T_TRAIN" $PY bench/train_speed.py $TRAIN --images $N --val-images $VAL --photo-size $SIZE --out "$WORK"
step host_preprocessing "$T_DATA" $PY bench/data_speed.py $DATA --images "$PHOTOS/img" --min-ratio 0
echo; echo "gpu_checks: $((SECONDS - START)) s in all; tables in $OUT/tables.md"
