#!/usr/bin/env bash
# GPU check of the nano pipeline at a larger size (issue 9): SFT a random-init Qwen2.5-VL-shaped model on
# procedural trajectories made on the spot, SFT the same model without tools on the same items (the no-tool
# baseline, prompt_version direct-v1), then evaluate both on held-out procedural items: the tool model
# through the code loop, the baseline directly.
#
#   bash scripts/gpu_pipeline_check.sh train OUT   # data (codedance synth) + model + both `codedance sft` runs
#   bash scripts/gpu_pipeline_check.sh eval OUT    # `codedance eval`: tool model in tool mode, baseline in direct mode
#   bash scripts/gpu_pipeline_check.sh all OUT     # both
#   bash scripts/gpu_pipeline_check.sh start OUT   # `all` detached (setsid), then `await`: for calls with a time limit
#   bash scripts/gpu_pipeline_check.sh await OUT   # follow the detached run for up to WAIT s; pack what it wrote into OUT
# The two SFT runs share the GPU at once, as do the two evals: a 25M model leaves an H100/H200 mostly idle and
# each run is bound by its own CPU-side data pipeline.
# Wheels the device lacks (ms-swift and its needs) travel in .whl/. Everything lands in artifacts/gpu/.
# Knobs: ITEMS (3000 training items), SEED (100, of the training items; the held-out set uses 777), HELDOUT (192),
# STEPS (1000), BATCH (16), LR (5e-4), HIDDEN (512), LAYERS (8), LOADERS (6 dataloader workers a run),
# PIXELS (200704 = 256 visual tokens an image, for both models: the baseline sees the image at that size),
# FREEZE_VIT (false: the random ViT is trained too, so the no-tool baseline can learn to see), DEVICE (cuda),
# DTYPE (bfloat16), EVAL_CONCURRENCY (96 trajectories in flight), WAIT (560 s that `start`/`await` follow the run).
set -euo pipefail
PHASE=${1:?train, eval, all, start or await}
OUT_DIR=${2:-${OUT:-/tmp/gpu-pipeline}}
WORK=${WORK:-artifacts/gpu}
LOGS=$WORK/out   # what the run reports; `await` packs it into OUT_DIR (a device call returns at most 8 files)
PY=${PYTHON:-python3}
PACK=gpu_pipeline.tar.gz
DEVICE=${DEVICE:-cuda}
DTYPE=${DTYPE:-bfloat16}
mkdir -p "$OUT_DIR" "$LOGS"
source "$(dirname "$0")/gpu_lib.sh"
[[ $PHASE == await ]] || install_wheels

sft() {  # sft NAME PROMPT_VERSION
  codedance sft recipes/nano/sft.yaml --set model="$WORK/model" --set dataset.path="$WORK/train" \
    --set output_dir="$WORK/$1" --set prompt_version="$2" --set swift_command="$(command -v swift)" \
    --set model.max_pixels="${PIXELS:-200704}" --set parts.freeze_vit="${FREEZE_VIT:-false}" \
    --set model.dtype="$DTYPE" --set train.max_steps="${STEPS:-1000}" \
    --set train.per_device_train_batch_size="${BATCH:-16}" --set train.learning_rate="${LR:-5e-4}" \
    --set train.lr_scheduler_type=cosine --set train.attn_impl=sdpa --set train.dataloader_num_workers="${LOADERS:-6}" \
    --set train.logging_steps=20 --set train.save_steps="${STEPS:-1000}" &&
    cp "$WORK/$1/logging.jsonl" "$LOGS/$1_logging.jsonl"
}

train() {
  timed synth codedance synth recipes/nano/synth.yaml --set num_items="${ITEMS:-3000}" --set seed="${SEED:-100}" \
    --set output="$WORK/train" --set concurrency=16 --set sandbox.workers=16
  timed heldout codedance synth recipes/nano/synth_heldout.yaml --set num_items="${HELDOUT:-192}" \
    --set output="$WORK/heldout" --set concurrency=16 --set sandbox.workers=16
  $PY scripts/make_tiny_model.py "$WORK/model" --hidden-size "${HIDDEN:-512}" --layers "${LAYERS:-8}" --heads 8 \
    --vision-depth 4 --vision-hidden-size 256 --dtype "$DTYPE" | tee "$LOGS/model.txt"
  local smi; smi=$(gpu_memory_watch "$LOGS/sft_gpu_memory_mib.txt")
  timed sft-tool sft sft-tool codedance-v1 & local tool=$!
  timed sft-direct sft sft-direct direct-v1 & local direct=$!
  together $tool $direct
  if [[ -n $smi ]]; then
    kill $smi
    echo "peak MiB (both SFT runs at once): $(sort -n "$LOGS/sft_gpu_memory_mib.txt" | tail -1)" | tee -a "$LOGS/walls.txt"
  fi
}

evaluate() {  # the tool model through the code loop and the no-tool model directly, at once; then the comparison
  local common=(--set model.device="$DEVICE" --set model.dtype="$DTYPE" --set model.max_pixels="${PIXELS:-200704}"
                --set "benchmarks=[{name: procedural, path: $WORK/heldout, limit: ${HELDOUT:-192}}]"
                --set loop.max_turns=4 --set loop.max_new_tokens=640 --set loop.max_total_tokens=8192
                --set loop.concurrency="${EVAL_CONCURRENCY:-96}" --set sandbox.workers=8)
  local tool_model=(--set model.path="$WORK/sft-tool/last" --set mode=tool --set output_dir="$WORK/eval-tool")
  timed eval-tool codedance eval recipes/nano/eval.yaml "${common[@]}" "${tool_model[@]}" & local tool=$!
  timed eval-direct codedance eval recipes/nano/eval.yaml "${common[@]}" --set model.path="$WORK/sft-direct/last" \
    --set mode=direct --set output_dir="$WORK/eval-direct" & local direct=$!
  together $tool $direct
  # Every sample is in samples.jsonl already: this resumes with nothing to generate and reports against the baseline.
  timed compare codedance eval recipes/nano/eval.yaml "${common[@]}" "${tool_model[@]}" --baseline "$WORK/eval-direct"
  for mode in tool direct; do
    cp "$WORK/eval-$mode/results.json" "$LOGS/eval_${mode}_results.json"
    cp "$WORK/eval-$mode/report.md" "$LOGS/eval_${mode}_report.md"
    gzip -c "$WORK/eval-$mode/samples.jsonl" > "$LOGS/eval_${mode}_samples.jsonl.gz"
  done
}

case $PHASE in
  train) train ;;
  eval) evaluate ;;
  all) train; evaluate ;;
  start) start_detached "$0" "$OUT_DIR" ;;
  await) await_run ;;
  *) echo "unknown phase $PHASE (train, eval, all, start or await)" >&2; exit 2 ;;
esac
