"""One row's numbers from what its `codedance sft` run left: ms-swift's logging.jsonl and the probe's probe.jsonl.

Step time comes from ms-swift: each step record carries `train_speed(s/it)`, the mean seconds a step since training
began, so `speed x step` is the time to the end of that step and the steady state is the difference between the
last step and the last warm-up step. Peak memory is ms-swift's `memory(GiB)` (torch's max reserved). What was
computed (real tokens, samples, padded slots, ViT patches) and the time spent waiting on the dataloader come from
the probe's lines for the same steps (benchmarks/sft_probe.py).

As a command, for any `codedance sft` run made with the probe (`extra_args=[--custom_register_path,
benchmarks/sft_probe.py]`), e.g. the multi-GPU runs of scripts/gpu_node_check.sh:

    python benchmarks/sft_metrics.py RUN_DIR --model MODEL [--warmup 3] [--gpus 8]

With several processes the probe records rank 0's micro-batches, so the numbers are per GPU (ranks get equal shares).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sft_flops import Shape, load_shape, micro_batch_flops  # noqa: E402

from codedance_cli.common.atomic import atomic_write_text  # noqa: E402
from codedance_cli.common.jsonl import read_records  # noqa: E402


def swift_steps(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """ms-swift's per-step records by step number (those with a loss and a step speed)."""
    steps = {}
    for record in records:
        done = str(record.get("global_step/max_steps", "")).partition("/")[0]
        if done.isdigit() and "loss" in record and "train_speed(s/it)" in record:
            steps[int(done)] = record
    return steps


def elapsed_at(steps: dict[int, dict[str, Any]], step: int) -> float:
    """Seconds from the start of training to the end of `step` (0 before the first)."""
    return 0.0 if step == 0 else float(steps[step]["train_speed(s/it)"]) * step


def summarize(row_dir: Path, shape: Shape, warmup: int, *, vit_trained: bool = False, merger_trained: bool = True,
              peak_tflops: float = 790.0) -> dict[str, Any]:
    """The row's steady-state numbers (steps after `warmup`); {'error': ...} when there are no steps to measure."""
    steps = swift_steps(read_records(row_dir / "logging.jsonl"))
    probe = {r["step"]: r for r in read_records(row_dir / "probe.jsonl") if "step" in r}
    if not steps:
        return {"error": "no step logged"}
    last = max(steps)
    first = warmup if 0 < warmup < last and warmup in steps else 0  # too few steps: measure them all
    measured = [s for s in range(first + 1, last + 1) if s in probe]
    seconds = elapsed_at(steps, last) - elapsed_at(steps, first)
    micro = [m for s in measured for m in probe[s]["micro"]]
    lengths = [n for m in micro for n in m["lengths"]]
    tokens = sum(lengths)
    flops = sum(micro_batch_flops(shape, m, vit_trained, merger_trained) for m in micro)
    wait = sum(probe[s]["wait_s"] for s in measured)
    patches = sum(t * h * w for m in micro for t, h, w in m["grids"])
    slots = sum(m["slots"] for m in micro)
    memory = [float(r["memory(GiB)"]) for r in steps.values() if "memory(GiB)" in r]
    allocated = [probe[s]["peak_allocated_gib"] for s in probe if probe[s].get("peak_allocated_gib") is not None]
    return {
        "steps_measured": len(measured), "warmup_steps": first, "seconds": round(seconds, 3),
        "samples": len(lengths), "tokens": tokens, "vit_patches": patches,
        "samples_per_s": len(lengths) / seconds if seconds else None,
        "tokens_per_s": tokens / seconds if seconds else None,
        "tflops_per_s": flops / seconds / 1e12 if seconds else None,
        "mfu": flops / seconds / (peak_tflops * 1e12) if seconds else None,
        "data_wait_share": wait / seconds if seconds else None,
        "padding_share": 1 - tokens / slots if slots else None,
        "trained_tokens": sum(m["trained"] for m in micro),
        "median_length": statistics.median(lengths) if lengths else None,
        "peak_reserved_gib": max(memory) if memory else None,
        "peak_allocated_gib": max(allocated) if allocated else None,
        "step_s": [round(elapsed_at(steps, s) - elapsed_at(steps, s - 1), 3) for s in sorted(steps) if s - 1 in steps or s == 1],
        "losses": [float(steps[s]["loss"]) for s in sorted(steps)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Per-GPU throughput and MFU of a probed `codedance sft` run.")
    parser.add_argument("run_dir", type=Path, help="The run's output_dir (logging.jsonl and probe.jsonl).")
    parser.add_argument("--model", type=Path, required=True, help="The model it trained (for the FLOP count).")
    parser.add_argument("--warmup", type=int, default=3, help="Steps left out of the measurement.")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs of the run (for the whole-run tokens/s).")
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="Dense bf16 peak of one GPU.")
    args = parser.parse_args(argv)
    result = summarize(args.run_dir, load_shape(args.model), args.warmup, peak_tflops=args.peak_tflops)
    if "error" in result:
        print(f"{args.run_dir}: {result['error']}", file=sys.stderr)
        return 1
    result["gpus"] = args.gpus
    result["tokens_per_s_all_gpus"] = (result["tokens_per_s"] or 0) * args.gpus
    atomic_write_text(args.run_dir / "throughput.json", json.dumps(result, indent=2) + "\n")
    print(f"per GPU: {result['tokens_per_s']:,.0f} tokens/s, {result['samples_per_s']:.2f} samples/s, "
          f"MFU {100 * result['mfu']:.1f} %, data wait {100 * result['data_wait_share']:.1f} %, peak "
          f"{result['peak_reserved_gib']} GiB reserved; {args.gpus} GPUs: {result['tokens_per_s_all_gpus']:,.0f} tokens/s "
          f"({result['steps_measured']} steps after {result['warmup_steps']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
