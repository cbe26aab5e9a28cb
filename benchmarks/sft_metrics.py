"""One row's numbers from what its `codedance sft` run left: ms-swift's logging.jsonl and the probe's probe.jsonl.

Step time comes from ms-swift: each step record carries `train_speed(s/it)`, the mean seconds a step since training
began, so `speed x step` is the time to the end of that step and the steady state is the difference between the
last step and the last warm-up step. Peak memory is ms-swift's `memory(GiB)` (torch's max reserved). What was
computed (real tokens, samples, padded slots, ViT patches) and the time spent waiting on the dataloader come from
the probe's lines for the same steps (benchmarks/sft_probe.py).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from sft_flops import Shape, micro_batch_flops

from codedance_cli.common.jsonl import read_records


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
