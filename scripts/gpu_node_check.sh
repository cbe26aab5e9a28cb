#!/usr/bin/env bash
# Runs that need several GPUs, on one node (issue 19). GPUS = the node's GPUs (nvidia-smi -L), or set it; with
# GPUS=1 and SHAPE=qwen2.5-vl-3b the same phases rehearse on one GPU.
#
#   bash scripts/gpu_node_check.sh sft OUT      # random-init Qwen2.5-VL of SHAPE (7B by default; our small tokenizer),
#                                                 procedural data, `codedance sft recipes/qwen2.5-vl-7b/sft.yaml` with
#                                                 GPUS processes and ZeRO (ZERO=zero3), the probe on: tokens/s a GPU,
#                                                 MFU, peak memory (benchmarks/sft_metrics.py); then the checkpoint
#                                                 loaded back by `codedance eval` on a few items
#   bash scripts/gpu_node_check.sh grpo OUT     # ms-swift GRPO with GPUS processes (`codedance rl`, engine swift) on a
#                                                 random-init 25M model: the multi-process path, rewards gathered
#   bash scripts/gpu_node_check.sh engines OUT  # verl with n_gpus_per_node=GPUS and the judge at TP=GPUS, through
#                                                 scripts/gpu_engines_check.sh (needs the vLLM/verl staging calls first)
#   bash scripts/gpu_node_check.sh all OUT      # the phases in PHASES (sft grpo); start/await as the other scripts
#   bash scripts/gpu_node_check.sh start OUT ; bash scripts/gpu_node_check.sh await OUT
# Wheels the device lacks (ms-swift, deepspeed built here as a pure-Python wheel, their needs) travel in .whl/
# (bash scripts/gpu_wheels.sh). Knobs: GPUS, SHAPE (qwen2.5-vl-7b | qwen2.5-vl-3b), ZERO (zero3 | zero2 | none),
# STEPS (60 SFT steps), ACCUM (4 micro-batches a GPU a step), ITEMS (600 procedural items), PIXELS (1003520),
# RL_STEPS (4), RL_ITEMS (64), RL_TOKENS (256 a turn), RL_DTYPE (bfloat16), GRPO_MODEL (a 25M model built on the spot),
# MASTER_PORT (29517), EVAL_ITEMS (8), WAIT (560). Work lands in WORK (/tmp/gpu-node), outside the checkout. The grpo
# phase also runs on CPU (tests/test_gpu_scripts.py: GPUS=2, gloo).
set -uo pipefail
PHASE=${1:?sft, grpo, engines, all, start or await}
OUT_DIR=${2:-${OUT:-/tmp/gpu-node-out}}
WORK=${WORK:-/tmp/gpu-node}
LOGS=$WORK/out
PY=${PYTHON:-python3}
PACK=gpu_node.tar.gz
SHAPE=${SHAPE:-qwen2.5-vl-7b}
PIXELS=${PIXELS:-1003520}
mkdir -p "$OUT_DIR" "$LOGS"
source "$(dirname "$0")/gpu_lib.sh"
[[ $PHASE == await ]] || install_wheels
GPUS=${GPUS:-$( (nvidia-smi -L 2>/dev/null || true) | grep -c '^GPU')}
((GPUS > 0)) || GPUS=1
export NCCL_NVLS_ENABLE=0  # NVLink multicast off, as the device's documentation requires

sft_phase() {
  echo "node: $GPUS GPUs, shape $SHAPE, ${ZERO:-zero3}" | tee -a "$LOGS/walls.txt"
  [[ -f $WORK/model-$SHAPE/config.json ]] || timed model $PY scripts/make_tiny_model.py "$WORK/model-$SHAPE" \
    --preset "$SHAPE" --dtype bfloat16 --device cuda --max-pixels "$PIXELS" || return
  [[ -d $WORK/data ]] || timed synth codedance synth recipes/nano/synth.yaml --set num_items="${ITEMS:-600}" --set seed=100 \
    --set loop.prompt_version=codedance-toolcall-v1 --set output="$WORK/data" --set concurrency=16 --set sandbox.workers=16 || return
  local smi status=0 steps=${STEPS:-60}; smi=$(gpu_memory_watch "$LOGS/sft_gpu_memory_mib.txt")
  # the 7B recipe as it is, but for the model (our tokenizer's type/template), SDPA (no flash-attn here), the step
  # budget and the probe; the ViT stays frozen and ZeRO shards what is trained over the GPUS processes
  timed sft codedance sft recipes/qwen2.5-vl-7b/sft.yaml --set model.path="$WORK/model-$SHAPE" \
    --set model_type=codedance_qwen2_5_vl --set template=codedance_qwen2_5_vl --set dataset.path="$WORK/data" \
    --set output_dir="$WORK/sft" --set export_dir="$WORK/export" --set model.max_pixels="$PIXELS" \
    --set distributed.nproc_per_node="$GPUS" --set train.deepspeed="${ZERO:-zero3}" --set train.attn_impl=sdpa \
    --set train.gradient_accumulation_steps="${ACCUM:-4}" --set train.max_steps="$steps" --set train.logging_steps=1 \
    --set train.save_steps="$steps" --set train.save_total_limit=1 --set train.report_to=none \
    --set "extra_args=[--custom_register_path, $PWD/benchmarks/sft_probe.py]" || status=$?
  [[ -n $smi ]] && kill "$smi" && echo "peak MiB on one GPU (sft): $(sort -n "$LOGS/sft_gpu_memory_mib.txt" | tail -1)" | tee -a "$LOGS/walls.txt"
  cp "$WORK/sft"/{logging.jsonl,probe.jsonl} "$LOGS/" 2>/dev/null
  ((status == 0)) || return $status
  $PY benchmarks/sft_metrics.py "$WORK/sft" --model "$WORK/model-$SHAPE" --gpus "$GPUS" | tee -a "$LOGS/walls.txt"
  cp "$WORK/sft/throughput.json" "$LOGS/sft_throughput.json"
  # the ZeRO-3 checkpoint (16-bit weights gathered on save) loads back in our eval, here through transformers
  timed sft-eval codedance eval recipes/nano/eval.yaml --set model.path="$WORK/sft/last" --set model.device=cuda \
    --set model.dtype=bfloat16 --set model.max_pixels="$PIXELS" \
    --set "benchmarks=[{name: procedural, path: $WORK/data, limit: ${EVAL_ITEMS:-8}}]" --set mode=tool \
    --set loop.prompt_version=codedance-toolcall-v1 --set loop.max_turns=2 --set loop.max_new_tokens=64 \
    --set output_dir="$WORK/eval"
}

grpo_phase() {  # several ms-swift GRPO processes; a random model scores -0.2 everywhere: this checks the path, not learning
  local model=${GRPO_MODEL:-$WORK/grpo-model} steps=${RL_STEPS:-4}
  [[ -f $model/config.json ]] || $PY scripts/make_tiny_model.py "$model" --hidden-size 512 --layers 8 \
    --heads 8 --vision-depth 4 --vision-hidden-size 256 --vision-heads 4 --dtype bfloat16 > "$LOGS/grpo_model.txt"
  [[ -d $WORK/rl-items ]] || codedance synth recipes/nano/synth.yaml --set num_items="${RL_ITEMS:-64}" --set seed=300 \
    --set output="$WORK/rl-items" > "$LOGS/rl_items.log" 2>&1 || return
  # 2 prompts x 4 rollouts a process a step: the group of a prompt may span processes (the reward gathers them)
  timed grpo codedance rl recipes/nano/rl.yaml --set model="$model" --set dataset="$WORK/rl-items" \
    --set output_dir="$WORK/grpo" --set model.dtype="${RL_DTYPE:-bfloat16}" --set limit=$((steps * 2 * GPUS)) \
    --set train.max_steps="$steps" --set train.save_steps="$steps" --set swift.per_device_train_batch_size=8 \
    --set swift.max_completion_length="${RL_TOKENS:-256}" --set sandbox.workers=8 \
    --set swift.distributed.nproc_per_node="$GPUS" --set swift.distributed.master_port="${MASTER_PORT:-29517}"
  local status=$?
  cp "$WORK/grpo/rl_summary.json" "$LOGS/grpo_summary.json" 2>/dev/null
  gzip -c "$WORK/grpo/swift.log" > "$LOGS/grpo_swift.log.gz" 2>/dev/null
  return $status
}

engines_phase() {  # verl across the node's GPUs and the judge with tensor parallelism: the one-GPU engine check, widened
  VERL_GPUS=$GPUS JUDGE_TP=$GPUS WORK=$WORK/engines PHASES="${ENGINE_PHASES:-train+judge verl}" \
    bash scripts/gpu_engines_check.sh all "$OUT_DIR"
  local status=$?
  cp -r "$WORK/engines/out" "$LOGS/engines" 2>/dev/null
  return $status
}

case $PHASE in
  sft) sft_phase ;;
  grpo) grpo_phase ;;
  engines) engines_phase ;;
  all) status=0
       for phase in ${PHASES:-sft grpo}; do
         timeout -k 30 "${PHASE_LIMIT:-1500}" bash "$0" "$phase" "$OUT_DIR" || { echo "$phase phase failed (see $LOGS)"; status=1; }
       done
       exit $status ;;
  start) start_detached "$0" "$OUT_DIR" ;;
  await) await_run ;;
  *) echo "unknown phase $PHASE (sft, grpo, engines, all, start or await)" >&2; exit 2 ;;
esac
