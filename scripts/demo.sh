#!/usr/bin/env bash
# CodeDance-nano end to end on CPU: synth -> filter -> sft -> rl -> eval -> infer.
# Each stage is the real command with its recipes/nano/ recipe. A stage that finished leaves a marker in
# $ART/.done/, so re-running `make demo` restarts from the stage that failed.
# ART=dir writes everything there (default artifacts/nano); FROM=stage forces a restart from that stage;
# FRESH=1 starts over; QUICK=1 shrinks every stage to the smallest real run (tests/test_pipeline.py);
# CODEDANCE_TINY_MODEL=dir is the base model (default: the recipes' .cache/tiny-qwen2.5-vl).
set -euo pipefail
[[ -n ${ART:-} ]] && ART=$(realpath -m -- "$ART")   # relative to the caller's directory
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
ART=${ART:-artifacts/nano}
DONE=$ART/.done
QUICK=${QUICK:-0}
STAGES=(synth heldout filter eval-before sft eval-sft rl eval-after sample infer)
# What each stage writes under $ART: FROM= removes it for every stage it redoes, because the stages resume from
# what they find (eval from samples.jsonl, rl from its checkpoints), and after a redone upstream stage that is stale.
declare -A OUTPUTS=([synth]=synth [heldout]=heldout [filter]=filtered [eval-before]=eval-before [sft]=sft
                    [eval-sft]=eval-sft [rl]=rl [eval-after]=eval-after [sample]=sample [infer]="infer infer.html")
if [[ -n ${FROM:-} && " ${STAGES[*]} " != *" $FROM "* ]]; then
  echo "demo.sh: unknown FROM stage '$FROM' (one of: ${STAGES[*]})" >&2; exit 2
fi
[[ "${FRESH:-0}" == 1 ]] && rm -rf "$ART"
mkdir -p "$DONE"
if [[ -n ${FROM:-} ]]; then
  drop=0
  for s in "${STAGES[@]}"; do
    [[ $s == "$FROM" ]] && drop=1
    if ((drop)); then
      rm -f "$DONE/$s"
      for out in ${OUTPUTS[$s]}; do rm -rf "${ART:?}/$out"; done
    fi
  done
fi

stage() {  # stage NAME COMMAND...
  local name=$1; shift
  if [[ -f $DONE/$name ]]; then echo "== $name: done earlier (rm $DONE/$name to redo)"; return; fi
  echo; echo "== $name: $*"
  local t0=$SECONDS
  "$@"
  echo "== $name: $((SECONDS - t0)) s"
  touch "$DONE/$name"
}

# Per-stage --set overrides: where artifacts go, the base model, and (QUICK=1) the sizes.
synth=(--set "output=$ART/synth")
heldout=(--set "output=$ART/heldout")
filter=(--set "input.path=$ART/synth" --set "output=$ART/filtered")
sft=(--set "dataset.path=$ART/filtered" --set "output_dir=$ART/sft")
rl=(--set "model=$ART/sft/last" --set "dataset=$ART/filtered" --set "output_dir=$ART/rl")
infer=(--set "output_dir=$ART/infer")
evals=(--set "benchmarks.0.path=$ART/heldout") before=()   # recipes/nano/eval.yaml's one benchmark: procedural
if [[ -n ${CODEDANCE_TINY_MODEL:-} ]]; then
  before=(--set "model.path=$CODEDANCE_TINY_MODEL")
  filter+=(--set "weak_model.path=$CODEDANCE_TINY_MODEL")
  sft+=(--set "model=$CODEDANCE_TINY_MODEL")
fi
if [[ $QUICK == 1 ]]; then
  synth+=(--set num_items=4)
  heldout+=(--set num_items=4)
  filter+=(--set samples_per_item=1)
  evals+=(--set loop.max_new_tokens=16 --set loop.max_turns=2 --set benchmarks.0.limit=4)
  sft+=(--set train.max_steps=2 --set train.save_steps=2 --set train.logging_steps=1)
  rl+=(--set limit=2 --set train.max_steps=1 --set train.save_steps=1 --set swift.max_completion_length=16 --set loop.max_turns=2)
  infer+=(--set loop.max_new_tokens=16 --set loop.max_turns=2)
fi

codedance doctor
stage synth       codedance synth recipes/nano/synth.yaml "${synth[@]}"
stage heldout     codedance synth recipes/nano/synth_heldout.yaml "${heldout[@]}"
stage filter      codedance filter recipes/nano/filter.yaml "${filter[@]}"
stage eval-before codedance eval recipes/nano/eval.yaml "${evals[@]}" "${before[@]}" --set "output_dir=$ART/eval-before"
stage sft         codedance sft recipes/nano/sft.yaml "${sft[@]}"
stage eval-sft    codedance eval recipes/nano/eval.yaml "${evals[@]}" --set "model.path=$ART/sft/last" \
                    --set "output_dir=$ART/eval-sft" --baseline "$ART/eval-before"
stage rl          codedance rl recipes/nano/rl.yaml "${rl[@]}"
if [[ $QUICK != 1 ]] && ! python -c "import json, sys; sys.exit(not json.load(open('$ART/rl/rl_summary.json'))['trained'])"; then
  echo "demo.sh: the RL stage had no learning signal (every group's rewards equal, or zero gradients): $ART/rl/rl_summary.json" >&2
  exit 1
fi
stage eval-after  codedance eval recipes/nano/eval.yaml "${evals[@]}" --set "model.path=$ART/rl/last" \
                    --set "output_dir=$ART/eval-after" --baseline "$ART/eval-sft"
stage sample      python scripts/sample_task.py "$ART/heldout" "$ART/sample" "$ART/eval-after/samples.jsonl"
stage infer       codedance infer --recipe recipes/nano/infer.yaml "${infer[@]}" --model "$ART/rl/last" \
                    --image "$ART/sample/image.png" --html "$ART/infer.html" "$(cat "$ART/sample/question.txt" 2>/dev/null)"

echo
# The synthesised trajectories as a page: every cell, what it printed and the images it drew (cheap; always redone).
codedance data view "$ART/synth" --html "$ART/synth.html" --limit 16
echo
echo "Artifacts:"
for p in synth synth.html heldout filtered eval-before sft eval-sft rl eval-after infer.html; do echo "  $ART/$p"; done
echo
python scripts/demo_summary.py "$ART"
