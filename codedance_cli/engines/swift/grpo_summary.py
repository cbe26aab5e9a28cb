"""ms-swift GRPO's `logging.jsonl` read into the engines' shared run summary (`engines/rl_summary.py`)."""

from __future__ import annotations

from pathlib import Path

from codedance_cli.engines.rl_summary import RlSummary
from codedance_cli.engines.swift.launch import read_records


def summarize_swift_log(logging_jsonl: Path) -> RlSummary | None:
    """Read ms-swift's `logging.jsonl`; None when it logged no training step."""
    steps = [entry for entry in read_records(logging_jsonl) if "reward" in entry and "grad_norm" in entry]
    if not steps:
        return None
    first, last = steps[0], steps[-1]
    return RlSummary(
        steps=len(steps),
        first_reward=float(first["reward"]),
        first_reward_std=float(first.get("reward_std", 0.0)),
        last_reward=float(last["reward"]),
        last_reward_std=float(last.get("reward_std", 0.0)),
        mean_frac_reward_zero_std=sum(float(entry.get("frac_reward_zero_std", 0.0)) for entry in steps) / len(steps),
        max_grad_norm=max(float(entry["grad_norm"]) for entry in steps),
    )
