"""ms-swift GRPO's `logging.jsonl` read into the engines' shared run summary (`engines/rl_summary.py`)."""

from __future__ import annotations

from pathlib import Path

from codedance_cli.engines.rl_summary import RlSummary, ToolCallStats
from codedance_cli.common.jsonl import read_records


def summarize_swift_log(logging_jsonl: Path, reward_log: Path | None = None) -> RlSummary | None:
    """Read ms-swift's `logging.jsonl` (and our per-rollout `rewards.jsonl` for the tool calls); None when it logged no
    training step."""
    summary = RlSummary.from_steps(
        read_records(logging_jsonl), reward="reward", grad_norm="grad_norm",
        reward_std=lambda entry: float(entry.get("reward_std", 0.0)),
        equal_groups=lambda entry: float(entry.get("frac_reward_zero_std", 0.0)),
    )
    if summary is not None and reward_log is not None and reward_log.exists():
        summary.tools = ToolCallStats.from_rollouts(read_records(reward_log))
    return summary
