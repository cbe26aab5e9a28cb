#!/usr/bin/env bash
# GPU ablation of the RL reward at small scale (issue 15): tool SFT of a random-init Qwen2.5-VL-shaped model on
# procedural trajectories (as gpu_pipeline_check.sh), then `codedance rl` (ms-swift GRPO, transformers generation,
# our multi-turn sandbox scheduler, rule-verified answers) from that checkpoint on fresh procedural items, once per
# reward variant, all on the GPU at once; then `codedance eval` of the SFT checkpoint and of each RL checkpoint on
# held-out items through the tool loop.
#
#   bash scripts/gpu_rl_check.sh train OUT   # data + model + tool SFT
#   bash scripts/gpu_rl_check.sh rl OUT      # one `codedance rl` per variant, at once
#   bash scripts/gpu_rl_check.sh eval OUT    # SFT and every variant on the held-out items, at once
#   bash scripts/gpu_rl_check.sh all OUT     # the three (the SFT eval beside RL, the RL evals after it)
#   bash scripts/gpu_rl_check.sh start OUT   # `all` detached (setsid), then `await`: for calls with a time limit;
#                                            # every `await` packs what the job wrote so far (step records included)
#   bash scripts/gpu_rl_check.sh await OUT   # follow the detached run for up to WAIT s; pack what it wrote into OUT
#   bash scripts/gpu_rl_check.sh pack-sft OUT      # the SFT checkpoint, xz-compressed, as <= 15 MiB parts + sha256
#   SFT_PARTS=.stage/sft-ckpt bash scripts/gpu_rl_check.sh restore-sft   # put them back into WORK: SFT is skipped
#   SFT_PARTS=.stage/sft-ckpt bash scripts/gpu_rl_check.sh start OUT     # both at once: restore, then start
# After SFT the job packs its checkpoint (~36 MB in 3 parts) and the next `await` sends the parts back, once. Kept
# under .stage/sft-ckpt, they go with .whl/ in one call's carry (~62 MB of the 64 MiB), and that call's `start`
# goes straight to the held-out and RL items and RL: a machine lost between calls then costs a start-up, not SFT.
# Here, after `tar xzf gpu_rl.tar.gz -C DIR`: python scripts/rl_table.py DIR (the Table 3 rows, paired with SFT's
# items) and python scripts/plot_rl_curves.py DIR/out PNG (reward and accuracy over GRPO steps).
# Variants (VARIANTS): acc_fmt (accuracy + format only), bat (the full balanced adaptive tool-call reward),
# bat_noturn (R_BAT without the turn-level term): the paper's Table 3 rows, same items, steps and seed.
# Each variant runs once per GRPO seed in RL_SEEDS (7), as run NAME = VARIANT-sSEED (rl-NAME/, eval-NAME/).
# Knobs: ITEMS (3000 SFT items), SEED (100), HELDOUT (192, seed 777), RL_ITEMS (512, seed RL_SEED 300), RL_FAMILIES
# (the families RL samples from; default all but charts, where SFT's pass rate is 0 so every group is equal and
# carries no gradient), STEPS (1000 SFT steps), RL_STEPS (40), RL_LR (2e-5: with float32 master weights it moved
# behaviour in 40 steps and broke nothing, docs/results.md's fifth run), ROLLOUTS (8 a prompt), RL_BATCH (32
# completions a step), RL_MICRO (RL_BATCH: completions a forward pass; RL_BATCH / RL_MICRO micro-batches are
# accumulated into the step, which cuts each run's activation memory, 40-48 GiB at 48 in one pass), TURNS (4),
# COMPLETION (512 tokens a turn), RESAMPLE (0; N > 0: ms-swift's dynamic sampling, up to N more generation batches
# a step to replace groups whose rewards are all equal, so that every step's gradient comes from groups that
# differ), RL_SAVE (save every RL_SAVE steps; RL_STEPS), RL_UNTIL (seconds after the run
# began at which unfinished RL runs are stopped, so that the eval still fits the session's device time; the eval then
# takes each run's newest saved checkpoint and walls.txt names it; a number written to WORK/rl_until
# while the job runs replaces it), PIXELS (200704), HIDDEN (512), LAYERS (8),
# RESEND_SFT (set, for `await`: send the SFT checkpoint parts again, when the reply that brought them was lost),
# DEVICE (cuda), DTYPE (bfloat16), RL_DRY_RUN (set: `rl` prints each run's ms-swift command and environment only),
# EVAL_CONCURRENCY (96), WAIT (560 s that `start`/`await` follow the run). Everything lands in WORK (/tmp/gpu-rl),
# outside the checkout, so a later device call that lays the tree anew does not wipe it.
set -euo pipefail
PHASE=${1:?train, rl, eval, all, start or await}
OUT_DIR=${2:-${OUT:-/tmp/gpu-rl-out}}
WORK=${WORK:-/tmp/gpu-rl}
LOGS=$WORK/out
PY=${PYTHON:-python3}
PACK=gpu_rl.tar.gz
DEVICE=${DEVICE:-cuda}
DTYPE=${DTYPE:-bfloat16}
VARIANTS=${VARIANTS:-acc_fmt bat bat_noturn}
RL_SEEDS=${RL_SEEDS:-7}
RL_FAMILIES=${RL_FAMILIES:-counting,visual_search,geometry}
RUNS=$(for seed in $RL_SEEDS; do for variant in $VARIANTS; do echo -n "$variant-s$seed "; done; done)
mkdir -p "$OUT_DIR" "$LOGS"
source "$(dirname "$0")/gpu_lib.sh"
[[ $PHASE == await || $PHASE == *-sft ]] || install_wheels  # packing a checkpoint needs no wheels

variant_reward() {  # the reward settings of one variant (docs/reward.md, Ablations)
  case $1 in
    acc_fmt) echo "--set reward.sequence_weight=0 --set reward.turn_weight=0" ;;
    bat) echo "" ;;
    bat_noturn) echo "--set reward.turn_weight=0" ;;
    *) echo "unknown variant $1" >&2; return 2 ;;
  esac
}

train() {  # data, model and tool SFT; with a restored checkpoint (restore-sft) only the held-out and RL items
  if [[ -f $WORK/sft-tool/last/config.json ]]; then
    echo "SFT checkpoint found at $WORK/sft-tool/last: SFT skipped"
    synth_eval_items
    return
  fi
  timed synth codedance synth recipes/nano/synth.yaml --set num_items="${ITEMS:-3000}" --set seed="${SEED:-100}" \
    --set output="$WORK/train" --set concurrency=16 --set sandbox.workers=16
  synth_eval_items
  $PY scripts/make_tiny_model.py "$WORK/model" --hidden-size "${HIDDEN:-512}" --layers "${LAYERS:-8}" --heads 8 \
    --vision-depth 4 --vision-hidden-size 256 --dtype "$DTYPE" | tee "$LOGS/model.txt"
  timed sft-tool codedance sft recipes/nano/sft.yaml --set model="$WORK/model" --set dataset.path="$WORK/train" \
    --set output_dir="$WORK/sft-tool" --set prompt_version=codedance-v1 --set swift_command="$(command -v swift)" \
    --set model.max_pixels="${PIXELS:-200704}" --set parts.freeze_vit=false \
    --set model.dtype="$DTYPE" --set train.max_steps="${STEPS:-1000}" \
    --set train.per_device_train_batch_size=16 --set train.learning_rate=5e-4 \
    --set train.lr_scheduler_type=cosine --set train.attn_impl=sdpa --set train.dataloader_num_workers=6 \
    --set train.logging_steps=20 --set train.save_steps="${STEPS:-1000}"
  cp "$WORK/sft-tool/logging.jsonl" "$LOGS/sft_logging.jsonl"
  pack_sft "$WORK/sft-parts" > "$LOGS/sft_pack.log" 2>&1 &  # beside RL; the next `await` sends the parts back
}

synth_eval_items() {  # the held-out set and the RL items (seeds apart from SFT's); synth resumes what exists
  timed heldout codedance synth recipes/nano/synth_heldout.yaml --set num_items="${HELDOUT:-192}" \
    --set output="$WORK/heldout" --set concurrency=16 --set sandbox.workers=16
  timed rl-items codedance synth recipes/nano/synth.yaml --set num_items="${RL_ITEMS:-512}" --set seed="${RL_SEED:-300}" \
    --set "families=[$RL_FAMILIES]" --set output="$WORK/rl-items" --set concurrency=16 --set sandbox.workers=16
}

rl_run() {  # rl_run VARIANT-sSEED
  local run=$1 variant=${1%-s*} seed=${1##*-s} reward status=0 resample=() dry=() batch=${RL_BATCH:-32} micro
  micro=${RL_MICRO:-$batch}
  ((batch % micro == 0)) || { echo "RL_BATCH=$batch is not a multiple of RL_MICRO=$micro" >&2; return 2; }
  reward=$(variant_reward "$variant")
  [[ -z ${RL_DRY_RUN:-} ]] || dry=(--dry-run)  # print each run's engine command and environment, train nothing
  if ((${RESAMPLE:-0} > 0)); then  # ms-swift's dynamic sampling: regenerate groups whose rewards are all equal
    resample=(--set "swift.extra_args=[--dynamic_sample, 'true', --max_resample_times, '$RESAMPLE']")
  fi
  # shellcheck disable=SC2086  # the reward settings are several words on purpose
  codedance rl recipes/nano/rl.yaml "${dry[@]}" --set model="$WORK/sft-tool/last" --set dataset="$WORK/rl-items" \
    --set output_dir="$WORK/rl-$run" --set limit="${RL_ITEMS:-512}" --set model.max_pixels="${PIXELS:-200704}" \
    --set model.dtype="$DTYPE" --set loop.prompt_version=codedance-v1 --set loop.max_turns="${TURNS:-4}" \
    --set sandbox.workers=8 --set sandbox.timeout_s=10 \
    --set train.max_steps="${RL_STEPS:-40}" --set train.save_steps="${RL_SAVE:-${RL_STEPS:-40}}" --set train.epochs=10 \
    --set train.rollout_n="${ROLLOUTS:-8}" --set train.learning_rate="${RL_LR:-2e-5}" --set train.seed="$seed" \
    --set swift.per_device_train_batch_size="$micro" --set swift.gradient_accumulation_steps="$((batch / micro))" \
    --set swift.max_completion_length="${COMPLETION:-512}" --set swift.max_length=8192 "${resample[@]}" \
    $reward || status=$?  # errexit is off under `timed`; a run stopped at RL_UNTIL still leaves its logs
  copy_run_logs "$run"
  return "$status"
}

copy_run_logs() {  # copy_run_logs RUN: the run's step records and rollout rewards so far, into LOGS (what comes back)
  local run=$1
  [[ -f $WORK/rl-$run/checkpoints/logging.jsonl ]] && cp "$WORK/rl-$run/checkpoints/logging.jsonl" "$LOGS/rl_${run}_logging.jsonl"
  [[ -f $WORK/rl-$run/rewards.jsonl ]] && gzip -c "$WORK/rl-$run/rewards.jsonl" > "$LOGS/rl_${run}_rewards.jsonl.gz"
  return 0
}

stop_rl_at() {  # stop_rl_at SECONDS: SIGTERM every RL process (codedance rl and ms-swift under it) at that script time
  # a number in $WORK/rl_until, written by a later call, replaces RL_UNTIL: the stop then follows the device time left
  local until=$1 asked
  while :; do
    if [[ -s $WORK/rl_until ]]; then
      asked=$(<"$WORK/rl_until")
      if [[ $asked =~ ^[0-9]+$ ]]; then
        until=$asked
      else  # said once: the file is set aside, and the deadline stays what it was
        echo "error: $WORK/rl_until: '$asked' is not a whole number of seconds; RL_UNTIL stays $until" | tee -a "$LOGS/walls.txt" >&2
        mv "$WORK/rl_until" "$WORK/rl_until.bad"
      fi
    fi
    ((SECONDS < until)) || break
    sleep 5
  done
  echo "RL_UNTIL=$until s reached: stopping the RL runs still going" | tee -a "$LOGS/walls.txt"
  pkill -TERM -f "$WORK/rl-" || true
}

rl_checkpoint() {  # rl_checkpoint NAME: what a run left to evaluate: `last`, else its newest whole checkpoint-N
  # whole: the trainer writes trainer_state.json after the weights, so a save that RL_UNTIL cut short is passed over
  local last=$WORK/rl-$1/last newest
  [[ -e $last ]] && { echo "$last"; return; }
  newest=$(for dir in "$WORK/rl-$1"/checkpoints/checkpoint-*/; do [[ -f $dir/trainer_state.json ]] && echo "${dir%/}"; done \
           | awk -F- '{print $NF, $0}' | sort -n | tail -1 | cut -d' ' -f2-)
  [[ -z $newest ]] || echo "$newest"  # nothing (and status 0, for `set -e`) when the run saved none
}

rl() {
  local smi pids=() run stopper=
  smi=$(gpu_memory_watch "$LOGS/rl_gpu_memory_mib.txt")
  for run in $RUNS; do
    timed "rl-$run" rl_run "$run" & pids+=($!)
  done
  if [[ -n ${RL_UNTIL:-} ]]; then stop_rl_at "$RL_UNTIL" & stopper=$!; fi
  together "${pids[@]}" || true  # a failed variant is reported in walls.txt; the others still get evaluated
  if [[ -n $stopper ]]; then pkill -P "$stopper" sleep || true; kill "$stopper" 2>/dev/null || true; fi  # and its sleep
  if [[ -n $smi ]]; then
    kill "$smi"
    echo "peak MiB (all RL runs at once): $(sort -n "$LOGS/rl_gpu_memory_mib.txt" | tail -1)" | tee -a "$LOGS/walls.txt"
  fi
}

evaluate() {  # evaluate [NAME...]: SFT and every RL checkpoint (or the NAMEs: sft, RUN) on the held-out items, at once
  local common=(--set model.device="$DEVICE" --set model.dtype="$DTYPE" --set model.max_pixels="${PIXELS:-200704}"
                --set "benchmarks=[{name: procedural, path: $WORK/heldout, limit: ${HELDOUT:-192}}]"
                --set loop.max_turns=4 --set loop.max_new_tokens=640 --set loop.max_total_tokens=8192
                --set loop.concurrency="${EVAL_CONCURRENCY:-96}" --set sandbox.workers=8 --set mode=tool)
  local pids=() name names=("$@")
  ((${#names[@]})) || read -ra names <<< "sft $RUNS"
  for name in "${names[@]}"; do
    local path
    if [[ $name == sft ]]; then path=$WORK/sft-tool/last; else path=$(rl_checkpoint "$name"); fi
    [[ -n $path && -e $path ]] || { echo "eval-$name: no checkpoint for $name" | tee -a "$LOGS/walls.txt"; continue; }
    echo "eval-$name: $path" | tee -a "$LOGS/walls.txt"
    timed "eval-$name" codedance eval recipes/nano/eval.yaml "${common[@]}" --set model.path="$path" \
      --set output_dir="$WORK/eval-$name" & pids+=($!)
  done
  together "${pids[@]}" || true
  for name in "${names[@]}"; do
    [[ -f $WORK/eval-$name/results.json ]] || continue
    cp "$WORK/eval-$name/results.json" "$LOGS/eval_${name}_results.json"
    gzip -c "$WORK/eval-$name/samples.jsonl" > "$LOGS/eval_${name}_samples.jsonl.gz"
  done
}

progress() {  # for `await`: the last logged GRPO step of every RL run so far (their logs reach run.log only at the end)
  local log dir
  for log in "$LOGS"/rl-*.log; do
    [[ -f $log ]] || continue
    echo "$(basename "$log" .log): $(grep -a "swift rlhf: step" "$log" | tail -1)"
  done
  # and each run's step records and rollout rewards so far, so that every `await` brings them back: the sixth run
  # lost its machine between two calls, and with it everything rl_run copies only once a run has ended. The runs are
  # the folders the job made, not RUNS: an `await` call need not repeat the start call's VARIANTS and RL_SEEDS
  for dir in "$WORK"/rl-*/; do
    [[ -d $dir ]] && copy_run_logs "$(basename "$dir" | cut -d- -f2-)"
  done
  send_sft_parts
}

pack_sft() {  # pack_sft DEST: the SFT checkpoint, compressed, as parts of <= 15 MiB with checksums, in DEST
  # xz takes a 25M-parameter bf16 checkpoint from ~51 MB to ~36 MB, so the parts and .whl/ fit one call's 64 MiB carry
  # (a call that restores and starts at once); gzip where the image has no xz. Written to a temporary folder and
  # renamed, so a reader (`await`) never sees half the parts.
  local dest=$1 tmp compress=(gzip -6) suffix=gz
  [[ -f $WORK/sft-tool/last/config.json ]] || { echo "no SFT checkpoint at $WORK/sft-tool/last" >&2; return 2; }
  if command -v xz >/dev/null; then compress=(xz -T0 -6); suffix=xz; fi
  mkdir -p "$(dirname "$dest")"; tmp=$(mktemp -d "$dest.tmp.XXXXXX")
  tar -C "$WORK/sft-tool/last/" -cf - . | "${compress[@]}" | split -b 15M -d -a 2 - "$tmp/sft_ckpt.tar.$suffix.part-"
  (cd "$tmp" && sha256sum sft_ckpt.tar.*.part-* > sft_ckpt.sha256)
  mkdir -p "$dest"; rm -f "$dest"/sft_ckpt.*  # an older, longer pack's last part must not join this one
  mv "$tmp"/* "$dest"/; rmdir "$tmp"
  ls -l "$dest"/sft_ckpt.tar.*.part-*
}

restore_sft() {  # the parts pack_sft wrote, carried in under SFT_PARTS (default .stage/sft-ckpt), back into WORK
  local parts=${SFT_PARTS:-.stage/sft-ckpt} target=$WORK/sft-tool/checkpoint-restored first decompress
  first=$(compgen -G "$parts/sft_ckpt.tar.*.part-00" | head -1) || true
  [[ -n $first ]] || { echo "no SFT checkpoint parts (sft_ckpt.tar.*.part-00) in $parts" >&2; exit 2; }
  case $first in
    *.xz.part-00) decompress=(xz -dc) ;;
    *.gz.part-00) decompress=(gzip -dc) ;;
    *) echo "$first: unknown compression (xz or gz)" >&2; exit 2 ;;
  esac
  (cd "$parts" && sha256sum -c --quiet sft_ckpt.sha256) || { echo "SFT checkpoint parts in $parts fail their checksums" >&2; exit 2; }
  rm -rf "$target" && mkdir -p "$target"
  cat "${first%-00}"-* | "${decompress[@]}" | tar -C "$target" -xf -
  ln -sfn checkpoint-restored "$WORK/sft-tool/last"
  echo "restored the SFT checkpoint into $target ($(du -sh "$target" | cut -f1))"
}

send_sft_parts() {  # for `await`: the parts the job packed after SFT, into OUT_DIR once, so a lost machine loses no SFT
  # RESEND_SFT=1 sends them again: the reply of the call that sent them can be lost on our side
  [[ -f $WORK/sft-parts/sft_ckpt.sha256 && ( -n ${RESEND_SFT:-} || ! -f $WORK/sft-parts.sent ) ]] || return 0
  cp "$WORK"/sft-parts/sft_ckpt.* "$OUT_DIR"/ && touch "$WORK/sft-parts.sent"
  echo "SFT checkpoint parts sent back: keep them (mkdir -p .stage/sft-ckpt; cp <files_at>/sft_ckpt.* .stage/sft-ckpt/);"
  echo "a later call carrying .whl and .stage/sft-ckpt starts with SFT_PARTS=.stage/sft-ckpt and skips SFT"
}

case $PHASE in
  train) train ;;
  rl) rl ;;
  eval) evaluate ;;
  all)  # the SFT eval runs beside RL, so that its result is in the first `await` pack after it ends; the final `wait`
    # takes it and train's background pack_sft
    train; evaluate sft & rl; evaluate $RUNS; wait ;;
  start)  # with SFT_PARTS (a carried folder of pack_sft's parts) the checkpoint is restored first and SFT skipped
    rm -f "$WORK/rl_until"
    if [[ -n ${SFT_PARTS:-} ]]; then restore_sft; fi
    start_detached "$0" "$OUT_DIR" ;;
  await) await_run ;;
  pack-sft) pack_sft "$OUT_DIR" ;;
  restore-sft) restore_sft ;;
  *) echo "unknown phase $PHASE (train, rl, eval, all, start, await, pack-sft or restore-sft)" >&2; exit 2 ;;
esac
