"""What a GRPO run did, step by step: did the policy get a learning signal at all? (both engines)

GRPO learns only from groups whose rewards differ. A run where every group's rewards were equal at every step,
or whose gradients were all zero, trained nothing however long it ran; `codedance rl` says so instead of reporting a
checkpoint as if it had learned. Each engine reads its own log into this summary, written to `rl_summary.json`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codedance_cli.common.atomic import atomic_write_text


@dataclass
class ToolCallStats:
    """The run's tool calls: how many a rollout, the share that failed, and the share of calls per failure kind
    (`NameError`, `timeout`...: loop/grammar.py's failure_kind), so a run whose calls mostly break says so."""

    calls_per_rollout: float
    failed_share: float
    failure_kinds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_rollouts(cls, records: list[dict[str, Any]]) -> ToolCallStats | None:
        """From per-rollout reward records (`tool_calls`, `tool_failed`, `tool_errors`); None without any."""
        records = [record for record in records if "tool_calls" in record]
        if not records:
            return None
        calls = sum(float(record["tool_calls"]) for record in records)
        kinds = Counter(kind for record in records for kind in record.get("tool_errors") or [])
        return cls(calls_per_rollout=calls / len(records),
                   failed_share=sum(float(record.get("tool_failed", 0)) for record in records) / calls if calls else 0.0,
                   failure_kinds={kind: count / calls for kind, count in kinds.most_common()} if calls else {})

    def line(self) -> str:
        top = next(iter(self.failure_kinds.items()), None)
        most = f" (most: {top[0]}, {100 * top[1]:.0f} % of calls)" if top else ""
        return f"tool calls a rollout: {self.calls_per_rollout:.2f}; failed: {100 * self.failed_share:.0f} %{most}"


@dataclass
class RlSummary:
    steps: int
    first_reward: float
    first_reward_std: float
    last_reward: float
    last_reward_std: float
    mean_frac_reward_zero_std: float
    max_grad_norm: float
    tools: ToolCallStats | None = None

    @classmethod
    def from_steps(
        cls, steps: list[dict[str, Any]], *, reward: str, grad_norm: str,
        reward_std: Callable[[dict[str, Any]], float], equal_groups: Callable[[dict[str, Any]], float],
    ) -> RlSummary | None:
        """The summary of an engine's per-step records, read under that engine's names; None without a training step
        (a record that has no `reward` or no `grad_norm` key is not one)."""
        steps = [entry for entry in steps if reward in entry and grad_norm in entry]
        if not steps:
            return None
        first, last = steps[0], steps[-1]
        return cls(
            steps=len(steps),
            first_reward=float(first[reward]),
            first_reward_std=reward_std(first),
            last_reward=float(last[reward]),
            last_reward_std=reward_std(last),
            mean_frac_reward_zero_std=sum(equal_groups(entry) for entry in steps) / len(steps),
            max_grad_norm=max(float(entry[grad_norm]) for entry in steps),
        )

    @property
    def trained(self) -> bool:
        """Some step had a group with differing rewards and a non-zero gradient."""
        return self.steps > 0 and self.mean_frac_reward_zero_std < 1.0 and self.max_grad_norm > 0.0

    def lines(self) -> list[str]:
        verdict = "the policy got a learning signal" if self.trained else "NO LEARNING SIGNAL: every group's rewards were equal or every gradient was zero"
        return [
            f"GRPO steps: {self.steps}",
            f"reward mean/std: first step {self.first_reward:.3f} / {self.first_reward_std:.3f}, "
            f"last step {self.last_reward:.3f} / {self.last_reward_std:.3f}",
            f"groups with equal rewards (mean over steps): {100 * self.mean_frac_reward_zero_std:.0f} %; max grad norm {self.max_grad_norm:.4g}",
            *([self.tools.line()] if self.tools else []),
            verdict,
        ]


def write_summary(summary: RlSummary, path: Path) -> None:
    atomic_write_text(path, json.dumps({**asdict(summary), "trained": summary.trained}, indent=2))
