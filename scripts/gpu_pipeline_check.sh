#!/usr/bin/env bash
# GPU check of the nano pipeline at a larger size (issue 9): SFT a random-init Qwen2.5-VL-shaped model on
# procedural trajectories, then evaluate it on held-out procedural tasks with the tool loop and without tools.
#
#   bash scripts/gpu_pipeline_check.sh train OUT   # model + `codedance sft` (needs ms-swift wheels in .whl/)
#   bash scripts/gpu_pipeline_check.sh eval OUT    # `codedance eval` tool mode and direct mode (needs cv2: .whl-cv2/)
# Data: artifacts/gpu/train and artifacts/gpu/heldout, made on any machine with
#   codedance synth recipes/nano/synth.yaml --set num_items=600 --set seed=100 --set output=artifacts/gpu/train
#   codedance synth recipes/nano/synth_heldout.yaml --set num_items=48 --set output=artifacts/gpu/heldout
# Knobs: STEPS (300), BATCH (16), LR (5e-4), HIDDEN (512), LAYERS (8).
set -euo pipefail
PHASE=${1:?train or eval}
OUT_DIR=${2:-${OUT:-/tmp/gpu-pipeline}}
WORK=artifacts/gpu
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR" "$WORK"
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH} PATH=/tmp/site/bin:$PATH
for d in .whl .whl-cv2; do
  if compgen -G "$d/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $d/*.whl
  fi
done

if [[ $PHASE == train ]]; then
  $PY scripts/make_tiny_model.py "$WORK/model" --hidden-size "${HIDDEN:-512}" --layers "${LAYERS:-8}" --heads 8 \
    --vision-depth 4 --vision-hidden-size 256 --dtype bfloat16
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$OUT_DIR/sft_gpu_memory_mib.txt" &
  SMI=$!
  trap 'kill $SMI 2>/dev/null || true' EXIT
  START=$(date +%s)
  $PY -m codedance_cli sft recipes/nano/sft.yaml --set model="$WORK/model" --set dataset.path="$WORK/train" \
    --set output_dir="$WORK/sft" --set swift_command="$(command -v swift)" --set train.torch_dtype=bfloat16 \
    --set train.max_steps="${STEPS:-300}" --set train.per_device_train_batch_size="${BATCH:-16}" \
    --set train.learning_rate="${LR:-5e-4}" --set train.attn_impl=sdpa --set train.dataloader_num_workers=4 \
    --set train.logging_steps=10 --set train.save_steps="${STEPS:-300}" 2>&1 | tail -n 4
  echo "sft wall s: $(( $(date +%s) - START ))" | tee "$OUT_DIR/sft_wall.txt"
  cp "$WORK/sft/logging.jsonl" "$OUT_DIR/sft_logging.jsonl"
  echo "peak MiB: $(sort -n "$OUT_DIR/sft_gpu_memory_mib.txt" | tail -1)"
else
  common=(--set model.path="$WORK/sft/last" --set model.device=cuda --set model.dtype=bfloat16
          --set "benchmarks=[{name: procedural, path: $WORK/heldout, limit: 48}]"
          --set loop.max_new_tokens=768 --set loop.max_total_tokens=8192 --set loop.concurrency=8 --set sandbox.workers=4)
  for mode in tool direct; do
    START=$(date +%s)
    timeout 200 $PY -m codedance_cli eval recipes/nano/eval.yaml "${common[@]}" --set mode=$mode \
      --set output_dir="$WORK/eval-$mode" 2>&1 | grep -v Loading | tail -n 16 || true
    echo "eval $mode wall s: $(( $(date +%s) - START ))"
    cp "$WORK/eval-$mode/results.json" "$OUT_DIR/eval_${mode}_results.json" 2>/dev/null || true
    cp "$WORK/eval-$mode/report.md" "$OUT_DIR/eval_${mode}_report.md" 2>/dev/null || true
  done
fi
