"""The CodeDance reward in verl's custom reward function signatures, and the way back from verl's batch.

verl loads `reward.custom_reward_function.path` / `.name` and calls
`compute_score(data_source, solution_str, ground_truth, extra_info, **reward_kwargs)`
once per rollout as it finishes (its reward loop), keeping `score` as the rollout's
reward and every other key in the batch's non-tensor fields.
`reward_kwargs.reward_config` points at the run's reward.json (written by `codedance rl`).

Per rollout only the outcome R*a + w*f and what the tool terms need (T, each call's
failure) can be known; the group and batch terms are added once the whole batch is
back, by `codedance_cli.engines.verl.bat`, which reads these fields through
`outcome_from_fields`. Failed calls are read from the `<tool_response>` blocks of
`solution_str` with the one grammar of a turn (`codedance_cli.loop.grammar`).
`compute_score_batch` is the same per rollout, for verl's batch reward managers.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from codedance_cli.loop.grammar import call_failure_kinds
from codedance_cli.recipes.rl import RewardConfig
from codedance_cli.rewards.config_file import load_reward_config
from codedance_cli.rewards.score import Judge, OutcomeScore, RolloutForReward, make_judge, open_judge, parse_choices, score_outcome, score_outcomes

FAILURES_FIELD = "tool_failures"  # one character per call: "1" failed, "0" worked
ERRORS_FIELD = "tool_errors"  # what the failed calls raised, comma-separated (grammar.failure_kind), for the step stats

_judges: dict[tuple[int, str], Judge | None] = {}


def rollout_from_verl(data_source: str, solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None) -> RolloutForReward:
    """Translate verl's per-sample arguments into the engine-neutral rollout record."""
    extra = dict(extra_info or {})
    metadata = extra.get("metadata") or {}
    if isinstance(metadata, str):
        metadata = json.loads(metadata) if metadata.strip().startswith("{") else {}
    return RolloutForReward(
        response=solution_str,
        ground_truth=None if ground_truth is None else str(ground_truth),
        answer_type=str(extra.get("answer_type") or "text"),
        choices=parse_choices(extra.get("choices")),
        question=str(extra.get("question") or ""),
        metadata=metadata,
        data_source=str(data_source or ""),
        group_id=str(extra.get("uid") or ""),
    )


def _judge_for_loop(config: RewardConfig) -> Judge | None:
    """One judge client per event loop (its HTTP connections belong to the loop)."""
    key = (id(asyncio.get_running_loop()), f"{config.judge_endpoint}|{os.environ.get('CODEDANCE_JUDGE_URL', '')}")
    if key not in _judges:
        _judges[key] = make_judge(config)
    return _judges[key]


async def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    reward_config: str | None = None,
    **_: Any,
) -> dict[str, float | str]:
    """verl per-rollout entry: {"score": outcome, plus every per-rollout term} (the terms land in the batch)."""
    config = load_reward_config(reward_config)
    rollout = rollout_from_verl(data_source, solution_str, ground_truth, extra_info)
    return outcome_fields(await score_outcome(rollout, config, _judge_for_loop(config))) | _errors_field(rollout, config)


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None],
    reward_config: str | None = None,
    **_: Any,
) -> list[dict[str, float | str]]:
    """verl batch entry: one dict per sample, judge calls of the batch run concurrently."""
    config = load_reward_config(reward_config)
    rollouts = [rollout_from_verl(*args) for args in zip(data_sources, solution_strs, ground_truths, extra_infos, strict=True)]

    async def run() -> list[OutcomeScore]:
        async with open_judge(config) as judge:
            return await score_outcomes(rollouts, config, judge)

    outcomes = asyncio.run(run())
    return [outcome_fields(outcome) | _errors_field(rollout, config) for rollout, outcome in zip(rollouts, outcomes, strict=True)]


def _errors_field(rollout: RolloutForReward, config: RewardConfig) -> dict[str, str]:
    return {ERRORS_FIELD: ",".join(call_failure_kinds(rollout.response, silent_fails=config.silent_cell_fails))}


def outcome_fields(outcome: OutcomeScore) -> dict[str, float | str]:
    """One rollout's reward dict for verl: scalars and one string (verl stacks each key into a batch array)."""
    return {
        "score": outcome.outcome,
        "outcome": outcome.outcome,
        "accuracy": outcome.accuracy,
        "format": outcome.format,
        "is_math": float(outcome.is_math),
        "judged": float(outcome.judged),
        "tool_component": outcome.tool_component,
        "tool_calls": float(len(outcome.tool_failures)),
        "tool_failed": float(sum(outcome.tool_failures)),
        FAILURES_FIELD: "".join("1" if failed else "0" for failed in outcome.tool_failures),
    }


def outcome_from_fields(fields: Mapping[str, Any]) -> OutcomeScore:
    """The inverse of `outcome_fields`, from one row of verl's batch."""
    return OutcomeScore(
        outcome=float(fields["outcome"]),
        accuracy=float(fields["accuracy"]),
        format=float(fields["format"]),
        is_math=bool(fields["is_math"]),
        judged=bool(fields["judged"]),
        answer=None,
        format_reason=None,
        tool_failures=[char == "1" for char in str(fields[FAILURES_FIELD])],
        tool_component=float(fields["tool_component"]),
    )
