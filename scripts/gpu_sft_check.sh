#!/usr/bin/env bash
# GPU check of `codedance sft`: the nano recipe's path (export -> swift sft -> checkpoint) on one GPU with a
# larger random-init Qwen2.5-VL-shaped model (~1.2B parameters), reporting samples/s and peak GPU memory.
#
# Usage (repo root, a CUDA machine with torch + transformers; ms-swift and friends on PYTHONPATH or installed):
#   bash scripts/gpu_sft_check.sh [OUT_DIR]
# On the lent device machine, carry wheels in .whl/ (see docs/performance.md) and they are installed first.
# Environment knobs: STEPS (40), BATCH (8), HIDDEN (2048), LAYERS (24), HEADS (16), VIT_DEPTH (16), VIT_HIDDEN (1280).
set -euo pipefail
OUT_DIR=${1:-${OUT:-/tmp/gpu-sft-check}}
WORK=${WORK:-/tmp/gpu-sft-work}
STEPS=${STEPS:-40}
BATCH=${BATCH:-8}
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR" "$WORK"
export PYTHONUNBUFFERED=1

if compgen -G ".whl/*.whl" > /dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
  export PATH=/tmp/site/bin:$PATH
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
$PY -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, torch.cuda.get_device_name(0))'

# 1. A larger random model with the same tokenizer / processor recipe as the tiny one (512 visual tokens per image).
$PY scripts/make_tiny_model.py "$WORK/model" --hidden-size "${HIDDEN:-2048}" --layers "${LAYERS:-24}" --heads "${HEADS:-16}" \
  --vision-depth "${VIT_DEPTH:-16}" --vision-hidden-size "${VIT_HIDDEN:-1280}" --max-pixels 401408 --dtype bfloat16

# 2. Trajectories with real images, code turns and observations (the SFT tests' generator: no sandbox needed).
$PY - "$WORK/data" <<'EOF'
import sys
sys.path.insert(0, "tests")
from sft_trajectories import make_trajectories
from codedance_cli.trajectory import write_trajectories
print("trajectories:", write_trajectories(sys.argv[1], make_trajectories(96)))
EOF

# 3. The nano recipe, sized for a GPU; nvidia-smi samples memory beside it.
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$OUT_DIR/gpu_memory_mib.txt" &
SMI=$!
trap 'kill $SMI 2>/dev/null || true' EXIT
SWIFT=$(command -v swift)
START=$(date +%s)
$PY -m codedance_cli sft recipes/nano/sft.yaml \
  --set model="$WORK/model" --set dataset.path="$WORK/data" --set output_dir="$WORK/sft" --set swift_command="$SWIFT" --set model.max_pixels=401408 \
  --set model.dtype=bfloat16 --set train.max_steps="$STEPS" --set train.per_device_train_batch_size="$BATCH" \
  --set train.learning_rate=1e-4 --set train.gradient_checkpointing=true --set train.attn_impl=sdpa \
  --set train.dataloader_num_workers=4 --set train.logging_steps=5 --set train.save_steps="$STEPS" \
  --set train.max_length=8192 2>&1 | tail -n 5
END=$(date +%s)
kill $SMI 2>/dev/null || true

# 4. Summary: ms-swift's own step records + the sampled GPU memory.
$PY - "$WORK/sft" "$OUT_DIR" "$BATCH" "$((END - START))" <<'EOF'
import json, sys
from pathlib import Path
sft, out, batch, wall = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
records = [json.loads(l) for l in (sft / "logging.jsonl").read_text().splitlines()]
steps = [r for r in records if "loss" in r]
final = next((r for r in reversed(records) if "train_samples_per_second" in r), {})
mem = [int(x) for x in (out / "gpu_memory_mib.txt").read_text().split() if x.strip().isdigit()]
# steady state: from the 2nd logged step on (first steps include CUDA warm-up)
first, last = steps[1], steps[-1]
def secs(r): return float(r["train_speed(s/it)"]) * int(str(r["global_step/max_steps"]).split("/")[0])
steady = (int(last["global_step/max_steps"].split("/")[0]) - int(first["global_step/max_steps"].split("/")[0])) * batch / max(secs(last) - secs(first), 1e-9)
summary = {
    "samples_per_second_trainer": final.get("train_samples_per_second"),
    "samples_per_second_steady": round(steady, 2),
    "peak_gpu_memory_gib_nvidia_smi": round(max(mem) / 1024, 2) if mem else None,
    "peak_gpu_memory_gib_swift": max((float(r["memory(GiB)"]) for r in steps if "memory(GiB)" in r), default=None),
    "losses": [r["loss"] for r in steps], "steps": len(steps), "batch": batch, "wall_s_including_startup": wall,
}
(out / "gpu_sft_summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
EOF
grep -m1 "model_parameter_info" "$WORK/sft/swift.log" || true
cp "$WORK/sft/logging.jsonl" "$OUT_DIR/" 2>/dev/null || true
tail -n 200 "$WORK/sft/swift.log" > "$OUT_DIR/swift_tail.log" || true
