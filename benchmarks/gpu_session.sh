#!/usr/bin/env bash
# The GPU measurements in one prepared run, for the day a GPU is lent (about 9 minutes).
#
# Lent GPU time comes in short leases (15 minutes, machine start included), so everything
# the GPU case still lacks is measured by this one command, each step under its own time
# limit so that a slow step cannot eat the rest:
#   1. the device, and every pretext task training a few steps under autocast;
#   2. the engine against a bare PyTorch loop on the default task (pinned memory, bf16);
#   3. the app's default path (contrastive pretraining, the Label page's suggestions,
#      10 labels per class, scratch / linear probe / selftrain) on MNIST and the sample,
#      with a fixed pretraining budget.
#
# Through the `device` tool, from the repository root here:
#   mkdir -p .bench && cp /usr/share/doc/opencv-doc/examples/data/digits.png .bench/
#   run(command="bash benchmarks/gpu_session.sh", carry=[".bench"], timeout_s=600)
# The device machine's python3 already holds torch, torchvision, numpy, scikit-learn,
# safetensors and Pillow. Everything lands in $OUT (the tool brings it back).
#
# Dry run on a CPU, smaller: DEVICE=cpu MINUTES=0.2 OUT=/tmp/gpu-dry bash benchmarks/gpu_session.sh
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/sslstudio-gpu-session}
MINUTES=${MINUTES:-2}
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT"
SHEET=.bench/digits.png
[ -f "$SHEET" ] || SHEET=/usr/share/doc/opencv-doc/examples/data/digits.png

step() {  # step NAME SECONDS COMMAND...: output to $OUT/NAME.txt, a time limit per step
    local name=$1 limit=$2
    shift 2
    echo "== $name ($(date -u +%H:%M:%S), limit ${limit} s): $*"
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    echo "   exit $? after $SECONDS s in all; last lines:"
    tail -n 8 "$OUT/$name.txt" | sed 's/^/   /'
}

step device 60 "$PYTHON" -c "
import platform, torch
print(platform.node(), platform.processor(), 'torch', torch.__version__)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(p.name, p.total_memory // 2**20, 'MiB, bf16', torch.cuda.is_bf16_supported())
else:
    print('no CUDA device')"
step tasks 120 "$PYTHON" benchmarks/check_pretext_device.py --device "$DEVICE" --image-size 32
step engine 150 "$PYTHON" benchmarks/bench_pretrain.py --device "$DEVICE" --tasks contrastive \
    --image-size 32 --batch-size 256 --steps 40 --repeats 2
for set in mnist sample; do
    extra=()
    [ "$set" = mnist ] && extra=(--mnist --mnist-sheet "$SHEET")
    [ "$set" = sample ] && extra=(--sample --sample-per-class 300)
    step "$set" $(awk "BEGIN {print int($MINUTES * 60 + 150)}") "$PYTHON" \
        benchmarks/label_efficiency.py "${extra[@]}" --task contrastive \
        --pretrain-minutes "$MINUTES" --levels 10 --seeds 3 --methods linear --choices app \
        --choice-methods scratch,linear,selftrain --json "$OUT/$set.json" --work "/tmp/gpu-$set"
done
echo "done in $SECONDS s; files in $OUT"
