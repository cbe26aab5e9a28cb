#!/usr/bin/env bash
# GPU check of the nano pipeline at a larger size (issue 9): SFT a random-init Qwen2.5-VL-shaped model on
# procedural trajectories made on the spot, SFT the same model without tools on the same items (the no-tool
# baseline, prompt_version direct-v1), then evaluate both on held-out procedural items: the tool model
# through the code loop, the baseline directly.
#
#   bash scripts/gpu_pipeline_check.sh train OUT   # data (codedance synth) + model + both `codedance sft` runs
#   bash scripts/gpu_pipeline_check.sh eval OUT    # `codedance eval`: tool model in tool mode, baseline in direct mode
#   bash scripts/gpu_pipeline_check.sh all OUT     # both
# Wheels the device lacks (ms-swift and its needs) travel in .whl/. Everything lands in artifacts/gpu/.
# Knobs: ITEMS (2000 training items), HELDOUT (96), STEPS (600), BATCH (16), LR (5e-4), HIDDEN (512), LAYERS (8),
# PIXELS (200704 = 256 visual tokens an image, for both models: the baseline sees the image at that size).
set -euo pipefail
PHASE=${1:?train, eval or all}
OUT_DIR=${2:-${OUT:-/tmp/gpu-pipeline}}
WORK=${WORK:-artifacts/gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR" "$WORK"
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH} PATH=/tmp/site/bin:$PATH
if compgen -G ".whl/*.whl" >/dev/null && ! $PY -c "import swift" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
codedance() { $PY -m codedance_cli "$@"; }
timed() {  # timed NAME COMMAND...: run, print and keep the wall time
  local name=$1 start=$SECONDS; shift
  "$@"
  echo "$name wall s: $((SECONDS - start))" | tee -a "$OUT_DIR/walls.txt"
}

sft() {  # sft NAME PROMPT_VERSION
  codedance sft recipes/nano/sft.yaml --set model="$WORK/model" --set dataset.path="$WORK/train" \
    --set output_dir="$WORK/$1" --set prompt_version="$2" --set swift_command="$(command -v swift)" \
    --set max_pixels="${PIXELS:-200704}" \
    --set train.torch_dtype=bfloat16 --set train.max_steps="${STEPS:-600}" \
    --set train.per_device_train_batch_size="${BATCH:-16}" --set train.learning_rate="${LR:-5e-4}" \
    --set train.lr_scheduler_type=cosine --set train.attn_impl=sdpa --set train.dataloader_num_workers=4 \
    --set train.logging_steps=20 --set train.save_steps="${STEPS:-600}" 2>&1 | tail -n 3
  cp "$WORK/$1/logging.jsonl" "$OUT_DIR/$1_logging.jsonl"
}

train() {
  timed synth codedance synth recipes/nano/synth.yaml --set num_items="${ITEMS:-2000}" --set seed=100 \
    --set output="$WORK/train" --set concurrency=16 --set sandbox.workers=16
  timed heldout codedance synth recipes/nano/synth_heldout.yaml --set num_items="${HELDOUT:-96}" \
    --set output="$WORK/heldout" --set concurrency=16 --set sandbox.workers=16
  $PY scripts/make_tiny_model.py "$WORK/model" --hidden-size "${HIDDEN:-512}" --layers "${LAYERS:-8}" --heads 8 \
    --vision-depth 4 --vision-hidden-size 256 --dtype bfloat16
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$OUT_DIR/sft_gpu_memory_mib.txt" &
  local smi=$!
  timed sft-tool sft sft-tool codedance-v1
  kill $smi
  echo "peak MiB (tool SFT): $(sort -n "$OUT_DIR/sft_gpu_memory_mib.txt" | tail -1)" | tee -a "$OUT_DIR/walls.txt"
  timed sft-direct sft sft-direct direct-v1
}

evaluate() {  # the tool model through the code loop; the no-tool model (and, for reference, the tool model) directly
  local common=(--set model.device=cuda --set model.dtype=bfloat16 --set model.max_pixels="${PIXELS:-200704}"
                --set "benchmarks=[{name: procedural, path: $WORK/heldout, limit: ${HELDOUT:-96}}]"
                --set loop.max_turns=4 --set loop.max_new_tokens=640 --set loop.max_total_tokens=8192
                --set loop.concurrency=48 --set sandbox.workers=16)
  timed eval-tool codedance eval recipes/nano/eval.yaml "${common[@]}" --set model.path="$WORK/sft-tool/last" \
    --set mode=tool --set output_dir="$WORK/eval-tool" 2>&1 | grep -v Loading | tail -n 14
  timed eval-direct codedance eval recipes/nano/eval.yaml "${common[@]}" --set model.path="$WORK/sft-direct/last" \
    --set mode=direct --set output_dir="$WORK/eval-direct" --baseline "$WORK/eval-tool" 2>&1 | grep -v Loading | tail -n 14
  for mode in tool direct; do
    cp "$WORK/eval-$mode/results.json" "$OUT_DIR/eval_${mode}_results.json"
    cp "$WORK/eval-$mode/report.md" "$OUT_DIR/eval_${mode}_report.md"
  done
  gzip -c "$WORK/eval-tool/samples.jsonl" > "$OUT_DIR/eval_tool_samples.jsonl.gz"
}

case $PHASE in
  train) train ;;
  eval) evaluate ;;
  all) train; evaluate ;;
  *) echo "unknown phase $PHASE (train, eval or all)" >&2; exit 2 ;;
esac
