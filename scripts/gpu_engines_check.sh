#!/usr/bin/env bash
# The real engines on one GPU (issue 16): vLLM and verl, staged under /tmp by scripts/gpu_vllm_stage.sh, driven by
# our commands. Tool SFT of a random-init Qwen2.5-VL-shaped model in the <tool_call> format (what verl's tool agent
# parses), then:
#   vllm: `codedance judge serve` with engine vllm serving a tiny text judge, asked by our judge client
#         (benchmarks/judge_requests.py); the SFT model through the tool loop with the transformers client, vLLM's
#         batch client and vLLM's AsyncLLM client, same items, greedy (benchmarks/rollout_clients.py)
#   verl: `codedance rl recipes/nano/rl_verl.yaml` (verl GRPO, vLLM rollouts, our sandbox tool and reward) for a few
#         steps, verl's checkpoint merge, then `codedance eval` of the merged model
#
#   bash scripts/gpu_engines_check.sh train OUT   # items + model + tool SFT (ms-swift from .whl/)
#   bash scripts/gpu_engines_check.sh judge OUT   # judge serve (needs no SFT model)
#   bash scripts/gpu_engines_check.sh clients OUT # rollout clients on the SFT model
#   bash scripts/gpu_engines_check.sh vllm OUT    # judge, then clients
#   bash scripts/gpu_engines_check.sh verl OUT    # GRPO through verl and the merge
#   bash scripts/gpu_engines_check.sh verl-eval OUT # eval of the merged verl model through vLLM
#   bash scripts/gpu_engines_check.sh all OUT     # the phases in PHASES (train vllm verl verl-eval); A+B runs A and B
#                                                   at once; train is skipped when its model exists; a failed phase is
#                                                   reported and the next one still runs
#   bash scripts/gpu_engines_check.sh start OUT   # `all` detached (setsid), then `await`
#   bash scripts/gpu_engines_check.sh await OUT   # follow the detached run for up to WAIT s; pack what it wrote
# Before `start`, the staging calls of docs/gpu-staging.md install vLLM and verl into /tmp/site.
# Knobs: ITEMS (2000 SFT items), STEPS (600 SFT steps), HELDOUT (96), RL_ITEMS (64), RL_STEPS (2), BENCH_CLIENTS
# (transformers vllm-batch vllm), HIDDEN (512), LAYERS (8), PIXELS (200704), WAIT (560), VERL_GPUS (1: verl's
# n_gpus_per_node), JUDGE_TP (1: the judge's tensor parallelism; both set by gpu_node_check.sh), JUDGE_ENGINE (vllm),
# JUDGE_DEVICE (cuda), JUDGE_PORT (18931), JUDGE_REQUESTS (64): the judge phase also runs on CPU with transformers
# (tests/test_gpu_scripts.py), PHASE_LIMIT (1200 s a phase under `all`). Work lands in WORK
# (/tmp/gpu-engines), outside the checkout, so later calls that lay the tree anew keep it.
set -uo pipefail
PHASE=${1:?train, vllm, verl, all, start or await}
OUT_DIR=${2:-${OUT:-/tmp/gpu-engines-out}}
WORK=${WORK:-/tmp/gpu-engines}
LOGS=$WORK/out
PY=${PYTHON:-python3}
PACK=gpu_engines.tar.gz
PIXELS=${PIXELS:-200704}
TOOLCALL=codedance-toolcall-v1
mkdir -p "$OUT_DIR" "$LOGS"
source "$(dirname "$0")/gpu_lib.sh"
[[ $PHASE == await ]] || install_wheels
# FlashInfer is not carried: its sampler is off (vLLM then samples in PyTorch)
export VLLM_LOGGING_LEVEL=${VLLM_LOGGING_LEVEL:-INFO} VLLM_USE_FLASHINFER_SAMPLER=0 NCCL_NVLS_ENABLE=0 RAY_DEDUP_LOGS=0

train() {
  # made in the tool-call format (SFT would rewrite fenced cells into it anyway, codedance_cli/loop/prompts.py)
  timed synth codedance synth recipes/nano/synth.yaml --set num_items="${ITEMS:-2000}" --set seed=100 \
    --set loop.prompt_version=$TOOLCALL --set output="$WORK/train" --set concurrency=16 --set sandbox.workers=16 || return
  timed heldout codedance synth recipes/nano/synth_heldout.yaml --set num_items="${HELDOUT:-96}" \
    --set output="$WORK/heldout" --set concurrency=16 --set sandbox.workers=16 || return
  timed rl-items codedance synth recipes/nano/synth.yaml --set num_items="${RL_ITEMS:-64}" --set seed=300 \
    --set "families=[counting,visual_search,geometry]" --set output="$WORK/rl-items" --set concurrency=16 \
    --set sandbox.workers=16 || return
  # head size 64 everywhere (FlashAttention 3's sizes; the nano defaults have 32)
  $PY scripts/make_tiny_model.py "$WORK/model" --hidden-size "${HIDDEN:-512}" --layers "${LAYERS:-8}" --heads 8 \
    --vision-depth 4 --vision-hidden-size 256 --vision-heads 4 --dtype bfloat16 | tee "$LOGS/model.txt"
  timed sft codedance sft recipes/nano/sft.yaml --set model="$WORK/model" --set dataset.path="$WORK/train" \
    --set output_dir="$WORK/sft" --set prompt_version=$TOOLCALL --set swift_command="$(command -v swift)" \
    --set model.max_pixels="$PIXELS" --set parts.freeze_vit=false --set model.dtype=bfloat16 \
    --set train.max_steps="${STEPS:-600}" --set train.per_device_train_batch_size=16 --set train.learning_rate=5e-4 \
    --set train.lr_scheduler_type=cosine --set train.attn_impl=sdpa --set train.dataloader_num_workers=6 \
    --set train.logging_steps=20 --set train.save_steps="${STEPS:-600}" || return
  cp "$WORK/sft/logging.jsonl" "$LOGS/sft_logging.jsonl"
}

judge_check() {  # `codedance judge serve` (vLLM; JUDGE_ENGINE, JUDGE_DEVICE), asked by our judge client, then SIGTERM
  [[ -f $WORK/judge/config.json ]] ||  # head size 64, as the SFT model's
    $PY scripts/make_tiny_model.py --text-only "$WORK/judge" --hidden-size 256 --heads 4 --dtype bfloat16 > "$LOGS/judge_model.txt"
  # not the `codedance` function: $! must be Python's pid, or the stop signal never reaches the server (gpu_lib.sh)
  $PY -m codedance_cli judge serve recipes/nano/judge.yaml --set model="$WORK/judge" --set engine="${JUDGE_ENGINE:-vllm}" \
    --set port="${JUDGE_PORT:-18931}" --set dtype=bfloat16 --set device="${JUDGE_DEVICE:-cuda}" \
    --set gpu_memory_utilization=0.25 --set max_model_len=4096 --set startup_timeout_s=420 \
    --set tensor_parallel_size="${JUDGE_TP:-1}" > "$LOGS/judge_serve.log" 2>&1 &
  local server=$! url="" waited=0
  while ((waited < 450)) && kill -0 $server 2>/dev/null; do
    url=$(sed -n 's/^export CODEDANCE_JUDGE_URL=//p' "$LOGS/judge_serve.log")
    [[ -n $url ]] && break
    sleep 2; waited=$((waited + 2))
  done
  local status=1
  if [[ -n $url ]]; then
    echo "judge serve ready after ${waited} s at $url"
    $PY benchmarks/judge_requests.py --endpoint "$url" --model judge --n "${JUDGE_REQUESTS:-64}" --concurrency 16 && status=0
  else
    echo "judge serve did not come up"; tail -n 30 "$LOGS/judge_serve.log"
  fi
  local start=$SECONDS
  stop_within $server 60
  echo "judge serve stopped $((SECONDS - start)) s after SIGTERM"
  cp /tmp/codedance-serve-"${JUDGE_PORT:-18931}"-*.log "$LOGS/" 2>/dev/null
  return $status
}

clients_phase() {  # the SFT model through the tool loop with each rollout client, same items, greedy
  # shellcheck disable=SC2086  # the client names are several words on purpose
  timed rollout-clients $PY benchmarks/rollout_clients.py --model "$WORK/sft/last" --items "$WORK/heldout" \
    --out "$WORK/bench" --clients ${BENCH_CLIENTS:-transformers vllm-batch vllm} --limit "${HELDOUT:-96}" --concurrency 64 \
    --set loop.prompt_version=$TOOLCALL --set loop.max_turns=4 --set loop.max_new_tokens=512 \
    --set loop.max_total_tokens=8192 --set sandbox.workers=8 --set model.max_pixels="$PIXELS" \
    --set model.vllm.gpu_memory_utilization=0.5 --set model.vllm.max_model_len=8192
  cp "$WORK/bench/rollout_clients.json" "$LOGS/" 2>/dev/null
  for client in transformers vllm-batch vllm; do
    cp "$WORK/bench/eval-$client.log" "$LOGS/" 2>/dev/null
    [[ -f $WORK/bench/eval-$client/samples.jsonl ]] && gzip -c "$WORK/bench/eval-$client/samples.jsonl" > "$LOGS/bench_${client}_samples.jsonl.gz"
  done
  return 0
}

judge_phase() {
  timed vllm-probe bash scripts/gpu_vllm_stage.sh probe vllm
  timed judge judge_check
}

verl_phase() {
  timed verl-probe bash scripts/gpu_vllm_stage.sh probe verl
  local smi; smi=$(gpu_memory_watch "$LOGS/verl_gpu_memory_mib.txt")
  timed verl codedance rl recipes/nano/rl_verl.yaml --set model="$WORK/sft/last" --set dataset="$WORK/rl-items" \
    --set output_dir="$WORK/rl-verl" --set train.max_steps="${RL_STEPS:-2}" --set train.save_steps="${RL_STEPS:-2}" \
    --set verl.n_gpus_per_node="${VERL_GPUS:-1}"
  local status=$?
  [[ -n $smi ]] && kill "$smi" && echo "peak MiB (verl): $(sort -n "$LOGS/verl_gpu_memory_mib.txt" | tail -1)" | tee -a "$LOGS/walls.txt"
  gzip -c "$WORK/rl-verl/verl.log" > "$LOGS/verl.log.gz" 2>/dev/null
  cp "$WORK/rl-verl/verl_merge.log" "$LOGS/" 2>/dev/null
  return $status
}

verl_eval_phase() {  # the merged verl checkpoint through `codedance eval` with the vLLM client
  [[ -f $WORK/rl-verl/last/config.json ]] || { echo "no merged verl model at $WORK/rl-verl/last"; return 1; }
  timed eval-verl codedance eval recipes/nano/eval.yaml --set model.path="$WORK/rl-verl/last" --set model.device=cuda \
    --set model.dtype=bfloat16 --set model.max_pixels="$PIXELS" --set model.backend=vllm \
    --set model.vllm.gpu_memory_utilization=0.5 --set model.vllm.max_model_len=8192 \
    --set "benchmarks=[{name: procedural, path: $WORK/heldout, limit: ${HELDOUT:-96}}]" --set mode=tool \
    --set loop.prompt_version=$TOOLCALL --set loop.max_turns=4 --set loop.max_new_tokens=512 \
    --set loop.max_total_tokens=8192 --set loop.concurrency=64 --set sandbox.workers=8 --set output_dir="$WORK/eval-verl"
  cp "$WORK/eval-verl/results.json" "$LOGS/eval_verl_results.json" 2>/dev/null
}

run_phase() {  # run_phase NAME: one phase; `train` is skipped when its model exists
  case $1 in
    train) if [[ -f $WORK/sft/last/config.json ]]; then echo "SFT model found at $WORK/sft/last: train skipped"; else train; fi ;;
    judge) judge_phase ;;
    clients) clients_phase ;;
    vllm) judge_phase; clients_phase ;;
    verl) verl_phase ;;
    verl-eval) verl_eval_phase ;;
    *) echo "unknown phase $1 (train, judge, clients, vllm, verl, verl-eval)"; return 2 ;;
  esac
}

run_together() {  # run_together A+B...: the phases joined by + at once (the judge needs no SFT model, so it runs beside train)
  local pids=() names=() phase status=0 i
  IFS=+ read -ra names <<< "$1"
  # each phase is this script again under `timeout` (its own process group, SIGKILL 30 s after SIGTERM): a phase
  # that hangs costs PHASE_LIMIT seconds (1200), not the rest of the device call
  for phase in "${names[@]}"; do
    timeout -k 30 "${PHASE_LIMIT:-1200}" bash "$0" "$phase" "$OUT_DIR" & pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}"
    case $? in
      0) ;;
      124|137) echo "${names[$i]} phase stopped after PHASE_LIMIT=${PHASE_LIMIT:-1200} s (see $LOGS)"; status=1 ;;
      *) echo "${names[$i]} phase failed (see $LOGS)"; status=1 ;;
    esac
  done
  return $status
}

case $PHASE in
  train|judge|clients|vllm|verl|verl-eval) run_phase "$PHASE" ;;
  all) status=0
       # PHASES: e.g. "train+judge verl clients verl-eval"; vLLM and verl need train's model, so a failed train ends the run
       for phase in ${PHASES:-train vllm verl verl-eval}; do
         run_together "$phase" && continue
         status=1
         [[ +$phase+ == *+train+* ]] && { echo "train failed: the other phases need its model"; exit 1; }
       done
       exit $status ;;
  start) start_detached "$0" "$OUT_DIR" ;;
  await) await_run ;;
  *) echo "unknown phase $PHASE (train, judge, clients, vllm, verl, verl-eval, all, start or await)" >&2; exit 2 ;;
esac
