#!/usr/bin/env bash
# Every GPU check in one run, for a GPU machine that has torch but not the project's other needs:
#   bash benchmarks/gpu_check.sh OUT [WHEELS]
# WHEELS (optional): a folder of wheels (fvcore and its pure-Python needs, lightgbm, pymoo) installed into
# a private folder put on PYTHONPATH; torch is never installed. The project runs from this checkout.
# Steps, each with its own time limit so one failure leaves the others' results:
#   0. benchmarks.gpu_throughput --probe: elastic steps with repeated vs new sub-networks, bf16/fp32, cuDNN on/off;
#   1. the gpu-marked tests that do not need TensorRT (TensorRT's are skipped with their reason);
#   2. benchmarks.gpu_smoke --device cuda: a tiny digits build end to end and a one-process NCCL torchrun epoch;
#   3. benchmarks.gpu_throughput on recipes/cifar10.yaml with synthetic CIFAR-sized data: training and
#      evaluation images/s, GPU memory and utilisation, a profile of elastic steps, the projected build.
# Everything it prints goes to OUT/gpu_check.log; each step's last stdout line (a benchmark's JSON, pytest's
# summary) to OUT/<step>.last.
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT [WHEELS]}
wheels=${2:-}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
if [ -n "$wheels" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/factory-site \
        "$wheels"/*.whl || exit 3
    export PYTHONPATH=/tmp/factory-site:$PWD${PYTHONPATH:+:$PYTHONPATH}
else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
log="$out/gpu_check.log"
{
    date -u +%FT%TZ
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c 'import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.is_bf16_supported())'
} >"$log" 2>&1
status=0
step() {  # step NAME SECONDS COMMAND...: run with a limit, the last stdout line to OUT/NAME.last
    local name=$1 limit=$2
    shift 2
    echo "== $name ($(date -u +%T))" >>"$log"
    local started=$SECONDS
    timeout "$limit" "$@" >"$out/$name.stdout" 2>>"$log"
    local rc=$?
    tail -n 1 "$out/$name.stdout" >"$out/$name.last"
    cat "$out/$name.stdout" >>"$log"
    rm -f "$out/$name.stdout"
    echo "== $name rc=$rc in $((SECONDS - started)) s" >>"$log"
    [ $rc -eq 0 ] || status=1
}
step gpu_probe 100 python3 -m benchmarks.gpu_throughput --device cuda --train-images 2560 --val-images 500 --probe --json
step gpu_tests 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests/
step gpu_smoke 120 python3 -m benchmarks.gpu_smoke --device cuda --out /tmp/gpu-smoke --json
step gpu_throughput 150 python3 -m benchmarks.gpu_throughput --device cuda --batch-sizes 256,1024 --profile --json
echo "== done status=$status" >>"$log"
exit $status
