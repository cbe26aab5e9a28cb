"""The CodeDance reward as an ms-swift reward function (`--reward_funcs codedance_reward`).

ms-swift calls a registered ORM with the last assistant message as `completions`
and the dataset columns and rollout fields as keyword lists: `messages` (the
whole conversation, tool turns included), `rollout_infos` (where our multi-turn
scheduler records `codedance_tool_failures`), and the columns `codedance rl`
writes: `solution`, `answer_type`, `choices`, `question`, `metadata`,
`data_source`. Registered by codedance_cli/rl/swift_plugin.py.

Every breakdown is appended to the JSON-lines file named by env
CODEDANCE_REWARD_LOG, so a run shows which term moved, not only the sum.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from swift.rewards import AsyncORM

from codedance_cli.rewards.score import RolloutForReward, make_judge, parse_choices, score_many
from codedance_cli.rewards.verl_reward import TOOL_FAILURES_FIELD, load_reward_config

REWARD_LOG_ENV = "CODEDANCE_REWARD_LOG"


def _assistant_text(messages: Sequence[dict[str, Any]] | None, completion: str) -> str:
    """All assistant turns joined: the format rules apply to the whole rollout, not its last turn."""
    if not messages:
        return completion
    parts = []
    for message in messages:
        if message.get("role") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, list):  # multimodal content parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        parts.append(str(content or ""))
    return "\n".join(parts) if parts else completion


def _column(kwargs: dict[str, Any], name: str, size: int) -> list[Any]:
    values = kwargs.get(name)
    return list(values) if values is not None else [None] * size


class CodeDanceReward(AsyncORM):
    """score = R*a + w*f + tool terms, from codedance_cli.rewards.score."""

    def __init__(self, args: Any = None, **kwargs: Any) -> None:
        super().__init__(args, **kwargs)
        self.config = load_reward_config(None)
        self.log_path = os.environ.get(REWARD_LOG_ENV)

    async def __call__(self, completions: list[str], **kwargs: Any) -> list[float]:
        names = ("messages", "rollout_infos", "solution", "answer_type", "choices", "question", "metadata", "data_source")
        columns = {name: _column(kwargs, name, len(completions)) for name in names}
        rollouts = []
        for index, completion in enumerate(completions):
            row = {name: values[index] for name, values in columns.items()}
            metadata = row["metadata"]
            if isinstance(metadata, str):
                metadata = json.loads(metadata) if metadata.strip() else {}
            failures = (row["rollout_infos"] or {}).get(TOOL_FAILURES_FIELD)
            rollouts.append(
                RolloutForReward(
                    response=_assistant_text(row["messages"], completion),
                    ground_truth=row["solution"],
                    answer_type=row["answer_type"] or "text",
                    choices=parse_choices(row["choices"]),
                    question=row["question"] or "",
                    metadata=metadata or {},
                    data_source=row["data_source"] or "",
                    tool_failures=[bool(item) for item in failures] if failures is not None else None,
                )
            )
        judge = make_judge(self.config)
        try:
            results = await score_many(rollouts, self.config, judge)
        finally:
            closer = getattr(judge, "aclose", None)
            if closer is not None:
                await closer()
        if self.log_path:
            self._log(results, kwargs.get("trainer_state"))
        return [result.score for result in results]

    def _log(self, results: list, trainer_state: Any) -> None:
        step = getattr(trainer_state, "global_step", None)
        path = Path(self.log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            for result in results:
                record = {"step": step, **result.metrics(), "turn_returns": result.turn_returns, "format_reason": result.format_reason}
                handle.write(json.dumps(record) + "\n")
