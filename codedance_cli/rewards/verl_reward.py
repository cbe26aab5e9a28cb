"""The CodeDance reward in verl's custom reward function signatures.

verl loads `reward.custom_reward_function.path` / `.name` and calls
`compute_score(data_source, solution_str, ground_truth, extra_info, **reward_kwargs)`
per rollout in its reward loop (streamed as rollouts finish), or
`compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos, **reward_kwargs)`
from a batch reward manager. `reward_kwargs.reward_config` points at the run's
reward.json (written by `codedance rl`).

Stock verl hands a per-rollout reward function one rollout and keeps one number of
it, so what trains on verl today is the outcome score R*a + w*f; the tool terms,
which need the GRPO group (R_seq) and the whole batch (R_turn), are returned
beside it for the logs. docs/reward.md says where each engine stands.

Failed calls are read from the `<tool_response>` blocks of `solution_str` with the
one grammar of a turn (`codedance_cli.loop.grammar`).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from codedance_cli.recipes.rl import RewardConfig
from codedance_cli.rewards.config_file import load_reward_config
from codedance_cli.rewards.score import Judge, RolloutForReward, RolloutReward, make_judge, parse_choices, score_batch, score_batch_sync

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
) -> dict[str, float]:
    """verl per-rollout entry: {"score": outcome, plus every term} (the terms land in reward_extra_info)."""
    config = load_reward_config(reward_config)
    rollout = rollout_from_verl(data_source, solution_str, ground_truth, extra_info)
    (result,) = await score_batch([rollout], config, _judge_for_loop(config))
    return verl_result(result)


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None],
    reward_config: str | None = None,
    **_: Any,
) -> list[dict[str, float]]:
    """verl batch entry: one dict per sample, judge calls of the batch run concurrently."""
    config = load_reward_config(reward_config)
    rollouts = [rollout_from_verl(*args) for args in zip(data_sources, solution_strs, ground_truths, extra_infos, strict=True)]
    return [verl_result(result) for result in score_batch_sync(rollouts, config)]


def verl_result(result: RolloutReward) -> dict[str, float]:
    """verl's per-rollout reward dict: `score` is what trains (the outcome), every term beside it is logged."""
    return {**result.metrics(), "score": result.outcome, "bat_score": result.score}
