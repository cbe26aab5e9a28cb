#!/usr/bin/env bash
# GPU benchmark of `codedance sft` close to the hardware limit (issue 20): benchmarks/sft_throughput.py on one GPU.
# It builds a random-init Qwen2.5-VL-3B-shaped model on the GPU, synthesises procedural trajectories, then runs one
# short `codedance sft` per row (the 7B recipe's settings at this size, then one ms-swift knob each) and a bare
# PyTorch loop, each alone on the GPU, and writes sft_throughput.{json,md} (tokens/s, samples/s, MFU against ~790
# TFLOP/s bf16, data wait, padding, peak memory, ratios against the baseline row). See docs/performance.md.
#
#   WAIT=560 bash scripts/gpu_sft_throughput.sh start OUT   # `all` detached (setsid), then `await`: one device call
#   bash scripts/gpu_sft_throughput.sh await OUT            # follow a detached run for up to WAIT s more; pack into OUT
#   bash scripts/gpu_sft_throughput.sh all OUT              # in the foreground
# Wheels the device lacks (ms-swift and its needs, liger-kernel for the liger rows) travel in .whl/
# (bash scripts/gpu_wheels.sh). Everything is written under WORK (/tmp/gpu-sft-mfu), outside the checkout.
# Knobs: ROWS (comma-separated, in order; default: benchmarks/sft_rows.py's DEFAULT_ROWS, the explaining rows first;
# also: eager), STEPS (12 measured steps a row), WARMUP (3), ITEMS (640 procedural items, of which those with
# >= 2 code turns are kept), PIXELS (1003520 = 1280 visual tokens an image), BUDGET (seconds the benchmark may take:
# WAIT - 30 by default; a row that no longer fits is skipped, one that overruns is stopped), EXTRA (more arguments for
# benchmarks/sft_throughput.py, e.g. "--bare-batch 8"), WAIT (560 s that `start`/`await` follow the run).
set -euo pipefail
PHASE=${1:?all, start or await}
OUT_DIR=${2:-${OUT:-/tmp/gpu-sft-mfu-out}}
WORK=${WORK:-/tmp/gpu-sft-mfu}
LOGS=$WORK/out
PY=${PYTHON:-python3}
PACK=gpu_sft_throughput.tar.gz
mkdir -p "$OUT_DIR" "$LOGS"
source "$(dirname "$0")/gpu_lib.sh"
[[ $PHASE == await ]] || install_wheels

progress() {  # what `await` adds after the log: the rows finished so far
  [[ -f $LOGS/sft_throughput.json ]] && $PY -c 'import json,sys; [print(r["row"], r.get("exit", r.get("skipped")), round(r.get("tokens_per_s") or 0), "tokens/s") for r in json.load(open(sys.argv[1]))["rows"]]' "$LOGS/sft_throughput.json" || true
}

benchmark() {
  $PY -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__,
    torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")'
  $PY -c 'import liger_kernel' 2>/dev/null || echo "liger-kernel not importable: the liger rows will fail (add it to .whl/: bash scripts/gpu_wheels.sh)"
  local smi status=0 start=$SECONDS; smi=$(gpu_memory_watch "$LOGS/gpu_memory_mib.txt")
  # its output goes to run.log as it comes (one line a row), so `await` shows progress; shellcheck disable=SC2086
  $PY benchmarks/sft_throughput.py --work "$WORK" --out "$LOGS" --budget-s "${BUDGET:-$((${WAIT:-560} - 30))}" \
    ${ROWS:+--rows "$ROWS"} --steps "${STEPS:-12}" \
    --warmup "${WARMUP:-3}" --items "${ITEMS:-640}" --pixels "${PIXELS:-1003520}" ${EXTRA:-} 2>&1 \
    | grep --line-buffered -v -e Loading -e "Creating parquet" | tee "$LOGS/benchmark.log" || status=$?
  echo "benchmark wall s: $((SECONDS - start)) (exit $status)" | tee -a "$LOGS/walls.txt"
  if [[ -n $smi ]]; then
    kill "$smi" || true
    echo "peak MiB over the whole run (nvidia-smi): $(sort -n "$LOGS/gpu_memory_mib.txt" | tail -1)" | tee -a "$LOGS/walls.txt"
  fi
  for row in "$WORK"/rows/*/; do  # each row's step records and the end of its ms-swift log, for a later look
    local name; name=$(basename "$row"); mkdir -p "$LOGS/rows/$name"
    cp "$row"/{logging.jsonl,probe.jsonl,bare.json,profile.json,profile.md} "$LOGS/rows/$name/" 2>/dev/null || true
    for log in swift run; do [[ -f $row/$log.log ]] && tail -n 80 "$row/$log.log" > "$LOGS/rows/$name/${log}_tail.log"; done
  done
  return $status
}

case $PHASE in
  all) benchmark ;;
  start) rm -rf "$WORK/rows" "$LOGS"; mkdir -p "$LOGS"; start_detached "$0" "$OUT_DIR" ;;
  await) await_run ;;
  *) echo "unknown phase $PHASE (all, start or await)" >&2; exit 2 ;;
esac
