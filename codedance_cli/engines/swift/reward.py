"""The CodeDance reward as an ms-swift reward function (`--reward_funcs codedance_reward`).

ms-swift calls a registered ORM once per generation batch of this process with the
last assistant message as `completions` and, as keyword lists, `prompt_id` (the
GRPO group: rollouts of one prompt share it), `rollout_infos` (where our scheduler
records each assistant turn and each rendered observation: earlier assistant turns
reach `messages` only as token ids), `messages`, and the columns `codedance rl`
writes: `solution`, `answer_type`, `choices`, `question`, `metadata`, `data_source`.

It returns the score GRPO normalises (outcome + R_seq) and leaves each rollout's
per-turn advantage offsets (R_turn) in its `rollout_infos`, the dict the trainer
keeps for that sample, where `codedance_cli.engines.swift.trainer` adds them to the
token advantages. Every term is appended to the JSON-lines file named by env
CODEDANCE_REWARD_LOG. Registered by codedance_cli/engines/swift/grpo_plugin.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from swift.rewards import AsyncORM

from codedance_cli.loop.grammar import call_failure_kinds, rendered_rollout
from codedance_cli.rewards.rollout_fields import OBSERVATIONS_FIELD, TURN_OFFSETS_FIELD, TURNS_FIELD
from codedance_cli.engines.swift.processes import gather_across_processes
from codedance_cli.rewards.score import (
    OutcomeScore, RolloutForReward, RolloutReward, combine, open_judge, parse_choices, score_outcomes,
)
from codedance_cli.rewards.config_file import load_reward_config

REWARD_LOG_ENV = "CODEDANCE_REWARD_LOG"
COLUMNS = ("messages", "rollout_infos", "prompt_id", "solution", "answer_type", "choices", "question", "metadata", "data_source")


def _message_text(content: Any) -> str:
    if isinstance(content, list):  # multimodal content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def rollout_response(messages: Sequence[dict[str, Any]] | None, infos: dict[str, Any] | None, completion: str) -> str:
    """The rendered rollout: from the scheduler's records, else from text messages (a rollout without our scheduler)."""
    infos = infos or {}
    if infos.get(TURNS_FIELD):
        return rendered_rollout(list(infos[TURNS_FIELD]), list(infos.get(OBSERVATIONS_FIELD) or []))
    if not messages:
        return completion
    first_assistant = next((i for i, message in enumerate(messages) if message.get("role") == "assistant"), len(messages))
    parts = [_message_text(message.get("content")) for message in messages[first_assistant:]]
    return "\n".join(parts) if parts else completion


def _column(kwargs: dict[str, Any], name: str, size: int) -> list[Any]:
    values = kwargs.get(name)
    return list(values) if values is not None else [None] * size


def rollouts_from_swift(completions: list[str], kwargs: dict[str, Any]) -> list[RolloutForReward]:
    """ms-swift's reward keyword lists -> engine-neutral rollout records."""
    columns = {name: _column(kwargs, name, len(completions)) for name in COLUMNS}
    rollouts = []
    for index, completion in enumerate(completions):
        row = {name: values[index] for name, values in columns.items()}
        metadata = row["metadata"]
        if isinstance(metadata, str):
            metadata = json.loads(metadata) if metadata.strip() else {}
        rollouts.append(
            RolloutForReward(
                response=rollout_response(row["messages"], row["rollout_infos"], completion),
                ground_truth=row["solution"],
                answer_type=row["answer_type"] or "text",
                choices=parse_choices(row["choices"]),
                question=row["question"] or "",
                metadata=metadata or {},
                data_source=row["data_source"] or "",
                group_id=str(row["prompt_id"] or ""),
            )
        )
    return rollouts


class _Row(NamedTuple):
    """What every process contributes per rollout to the batch's reward terms and the reward log."""

    group: str
    outcome: OutcomeScore
    failure_kinds: list[str]  # what its failed calls raised (grammar.failure_kind)
    family: str  # the item's task family (procedural items) or, for other data, where it came from


def _row(rollout: RolloutForReward, outcome: OutcomeScore, silent_fails: bool) -> _Row:
    family = str(rollout.metadata.get("family") or rollout.data_source or "")
    return _Row(rollout.group_id, outcome, call_failure_kinds(rollout.response, silent_fails=silent_fails), family)


class CodeDanceReward(AsyncORM):
    """score = R*a + w*f + R_seq per rollout; R_turn offsets left for the trainer (codedance_cli.rewards.score)."""

    def __init__(self, args: Any = None, **kwargs: Any) -> None:
        super().__init__(args, **kwargs)
        self.config = load_reward_config(None)
        self.log_path = os.environ.get(REWARD_LOG_ENV)

    async def __call__(self, completions: list[str], **kwargs: Any) -> list[float]:
        rollouts = rollouts_from_swift(completions, kwargs)
        async with open_judge(self.config) as judge:
            outcomes = await score_outcomes(rollouts, self.config, judge)
        # With several processes each holds a slice of the batch, and a group's rollouts may sit in several slices:
        # the group and batch terms are computed over everything, then each process keeps its own rows.
        silent = self.config.silent_cell_fails
        local = [_row(rollout, outcome, silent) for rollout, outcome in zip(rollouts, outcomes, strict=True)]
        everything, start = gather_across_processes(local)
        all_results = combine([row.group for row in everything], [row.outcome for row in everything], self.config)
        results = all_results[start:start + len(rollouts)]
        for infos, result in zip(_column(kwargs, "rollout_infos", len(completions)), results, strict=True):
            if isinstance(infos, dict):  # the sample's own dict: the trainer reads the offsets from it
                infos[TURN_OFFSETS_FIELD] = list(result.turn_offsets)
        if self.log_path and start == 0:  # one process writes the whole batch
            self._log(all_results, everything, kwargs.get("trainer_state"))
        return [result.score for result in results]

    def _log(self, results: list[RolloutReward], rows: list[_Row], trainer_state: Any) -> None:
        step = getattr(trainer_state, "global_step", None)
        path = Path(self.log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            for result, row in zip(results, rows, strict=True):
                record = {
                    "step": step,
                    "group": row.group,
                    "family": row.family,  # so a run's curves can be split by task family (scripts/plot_rl_curves.py)
                    **result.metrics(),
                    "turn_returns": result.turn_returns,
                    "turn_offsets": result.turn_offsets,
                    "format_reason": result.format_reason,
                    "tool_errors": row.failure_kinds,
                }
                handle.write(json.dumps(record) + "\n")
