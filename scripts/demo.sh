#!/usr/bin/env bash
# CodeDance-nano end to end on CPU: synth -> filter -> sft -> rl -> eval -> infer.
# Each stage is the real command with its recipes/nano/ recipe. A stage that finished leaves a marker in
# artifacts/nano/.done/, so re-running `make demo` restarts from the stage that failed.
# FROM=stage forces a restart from that stage; FRESH=1 starts over.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
ART=artifacts/nano
DONE=$ART/.done
[[ "${FRESH:-0}" == 1 ]] && rm -rf "$ART"
mkdir -p "$DONE"
if [[ -n "${FROM:-}" ]]; then
  drop=0
  for s in synth heldout filter eval-before sft eval-sft rl eval-after sample infer; do
    [[ $s == "$FROM" ]] && drop=1
    ((drop)) && rm -f "$DONE/$s"
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

codedance doctor
stage synth       codedance synth recipes/nano/synth.yaml
stage heldout     codedance synth recipes/nano/synth_heldout.yaml
stage filter      codedance filter recipes/nano/filter.yaml
stage eval-before codedance eval recipes/nano/eval.yaml --set output_dir=$ART/eval-before
stage sft         codedance sft recipes/nano/sft.yaml
stage eval-sft    codedance eval recipes/nano/eval.yaml --set model.path=$ART/sft/last \
                    --set output_dir=$ART/eval-sft --baseline $ART/eval-before
stage rl          codedance rl recipes/nano/rl.yaml
stage eval-after  codedance eval recipes/nano/eval.yaml --set model.path=$ART/rl/last \
                    --set output_dir=$ART/eval-after --baseline $ART/eval-sft
stage sample      python scripts/sample_task.py $ART/heldout $ART/sample
stage infer       codedance infer --recipe recipes/nano/infer.yaml --model $ART/rl/last \
                    --image $ART/sample/image.png --html $ART/infer.html "$(cat $ART/sample/question.txt 2>/dev/null)"

echo
echo "Artifacts:"
for p in synth heldout filtered eval-before sft eval-sft rl eval-after infer.html; do echo "  $ART/$p"; done
