#!/usr/bin/env bash
# One-call GPU check for one H100/H200 (under ~8 minutes), or a CPU smoke run of the same steps (--smoke).
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine, from the repository root or anywhere
#   bash benchmarks/gpu_check.sh --smoke    # CPU, tiny sizes, a minute or two: checks that every step runs
#
# Prints, section by section (each with its wall time; a failing or timed-out section is reported and the
# next one still runs; the exit status is 1 if any section failed):
#   1. the GPU correctness tests: python -m pytest -q --run-gpu tests/test_gpu.py
#   2. MAE ViT-B/16 at 224 px, bf16 autocast, SDPA attention, fused AdamW: model-only and end-to-end
#      images/s and MFU (benchmarks/pretrain_throughput.py), eager and eager + channels_last
#   3. the curriculum fine-tuning step at ViT-B/16 224 px, bf16: images/s (benchmarks/gpu_steps.py finetune)
#   4. the video pipeline on the GPU: frames/s (benchmarks/gpu_steps.py video)
#   5. MAE as in 2 with torch.compile (last: it takes what is left of the 470 s budget, GPU_CHECK_BUDGET_S)
# Peak for MFU: H100 SXM / H200 989 TFLOP/s dense bf16, H100 PCIe 756, A100 312; PEAK_TFLOPS=... overrides.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

SMOKE=0
for arg in "$@"; do
    case "$arg" in
        --smoke) SMOKE=1 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $arg (use --smoke or nothing)" >&2; exit 2 ;;
    esac
done

FAILED=()
BUDGET_S=${GPU_CHECK_BUDGET_S:-470}  # the whole run; each section also has its own limit
section() {  # section NAME TIMEOUT_S COMMAND...
    local name=$1 limit=$2
    shift 2
    echo
    echo "=== $name"
    local left=$((BUDGET_S - SECONDS))
    if [ $left -lt 30 ]; then
        echo "--- $name: skipped, the ${BUDGET_S} s budget is spent"
        FAILED+=("$name (skipped)")
        return
    fi
    [ $left -lt "$limit" ] && limit=$left
    echo "\$ $*"
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@"
    local status=$?
    echo "--- $name: $((SECONDS - start)) s, exit $status$([ $status = 124 ] && echo ' (timed out)')"
    [ $status = 0 ] || FAILED+=("$name")
}

if [ $SMOKE = 1 ]; then
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    DEVICE=cpu
    PEAK=${PEAK_TFLOPS:-1}
    MAE=(--device cpu --preset micro --image-size 32 --patch-size 8 --batch-size 8 --steps 2 --warmup-steps 1
         --rounds 1 --num-workers 1 --num-images 64 --precision bf16 --peak-tflops "$PEAK")
    STEPS=(--device cpu --preset micro --image-size 32 --patch-size 8 --batch-size 8 --workers 1 --rows 32
           --steps 2 --warmup-steps 1 --rounds 1 --frames 64 --frame-size 48)
    TESTS=(python -m pytest -q -p no:cacheprovider tests/test_gpu.py)  # no CUDA: collected and skipped
    MAE_NAME="MAE micro 32 px bf16 (smoke)"
    VIT_NAME="micro 32 px bf16 (smoke)"
else
    DEVICE=cuda
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
    NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
    case "$NAME" in
        *H100*PCIe*) DEFAULT_PEAK=756 ;;
        *H100*|*H200*|*GH200*) DEFAULT_PEAK=989 ;;
        *A100*) DEFAULT_PEAK=312 ;;
        *) DEFAULT_PEAK=989 ;;
    esac
    PEAK=${PEAK_TFLOPS:-$DEFAULT_PEAK}
    WORKERS=$(( $(nproc) > 4 ? $(nproc) - 2 : 2 ))
    MAE=(--device cuda --preset base --image-size 224 --patch-size 16 --batch-size 256 --steps 15 --warmup-steps 3
         --rounds 3 --num-workers "$WORKERS" --num-images 2048 --precision bf16 --peak-tflops "$PEAK")
    STEPS=(--device cuda --preset base --image-size 224 --patch-size 16 --batch-size 128 --workers "$WORKERS"
           --rows 256 --steps 15 --warmup-steps 3 --rounds 3 --frames 3000 --frame-size 256)
    TESTS=(python -m pytest -q -p no:cacheprovider --run-gpu tests/test_gpu.py)
    MAE_NAME="MAE ViT-B/16 224 px bf16"
    VIT_NAME="ViT-B/16 224 px bf16"
fi
echo "gpu_check: device $DEVICE, peak $PEAK TFLOP/s (for MFU), smoke $SMOKE, $(date -u +%FT%TZ)"

section "GPU tests" 150 "${TESTS[@]}"
section "$MAE_NAME, eager" 150 python benchmarks/pretrain_throughput.py "${MAE[@]}"
section "$MAE_NAME, eager + channels_last" 120 python benchmarks/pretrain_throughput.py "${MAE[@]}" --channels-last
section "curriculum fine-tune step, $VIT_NAME" 120 python benchmarks/gpu_steps.py finetune "${STEPS[@]}"
section "video pipeline frames/s, $VIT_NAME" 90 python benchmarks/gpu_steps.py video "${STEPS[@]}"
# Last: compilation time varies most; it gets what is left of the budget.
if [ $SMOKE = 1 ]; then
    echo; echo "=== $MAE_NAME, torch.compile: skipped in --smoke (inductor compiles for minutes on a small CPU)"
else
    section "$MAE_NAME, torch.compile" 240 python benchmarks/pretrain_throughput.py "${MAE[@]}" --compile
fi

echo
if [ ${#FAILED[@]} -gt 0 ]; then
    echo "gpu_check: FAILED sections: ${FAILED[*]}"
    exit 1
fi
echo "gpu_check: all sections ran"
