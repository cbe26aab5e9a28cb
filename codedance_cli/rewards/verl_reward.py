"""The CodeDance reward in verl's custom reward function signatures.

verl loads `reward.custom_reward_function.path` / `.name` and calls
`compute_score(data_source, solution_str, ground_truth, extra_info, **reward_kwargs)`
(the naive reward manager awaits it when it is a coroutine function, which lets
judge calls overlap); the batch managers call
`compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos, **reward_kwargs)`.
`reward_kwargs.reward_config` points at the run's reward.json (written by `codedance rl`).

`extra_info` is what `export_verl` wrote (answer_type, choices, question,
metadata) merged with the agent loop's extra fields, where our tool records
`codedance_tool_failures` (one bool per call); without it the failures are read
from the `<tool_response>` blocks of `solution_str`.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from codedance_cli.recipes.rl import RewardConfig
from codedance_cli.rewards.score import Judge, RolloutForReward, make_judge, parse_choices, score_many_sync, score_rollout

REWARD_CONFIG_ENV = "CODEDANCE_REWARD_CONFIG"
TOOL_FAILURES_FIELD = "codedance_tool_failures"

_judges: dict[tuple[int, str], Judge | None] = {}


@lru_cache(maxsize=8)
def load_reward_config(path: str | None) -> RewardConfig:
    """RewardConfig from a JSON file (the kwarg, else env CODEDANCE_REWARD_CONFIG), else the defaults."""
    path = path or os.environ.get(REWARD_CONFIG_ENV)
    if not path:
        return RewardConfig()
    return RewardConfig.model_validate(json.loads(Path(path).read_text()))


def rollout_from_verl(data_source: str, solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None) -> RolloutForReward:
    """Translate verl's per-sample arguments into the engine-neutral rollout record."""
    extra = dict(extra_info or {})
    metadata = extra.get("metadata") or {}
    if isinstance(metadata, str):
        metadata = json.loads(metadata) if metadata.strip().startswith("{") else {}
    failures = extra.get(TOOL_FAILURES_FIELD)
    return RolloutForReward(
        response=solution_str,
        ground_truth=None if ground_truth is None else str(ground_truth),
        answer_type=str(extra.get("answer_type") or "text"),
        choices=parse_choices(extra.get("choices")),
        question=str(extra.get("question") or ""),
        metadata=metadata,
        data_source=str(data_source or ""),
        tool_failures=[bool(item) for item in failures] if failures is not None else None,
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
    """verl per-sample entry: {"score": ..., plus every term} (the terms land in reward_extra_info)."""
    config = load_reward_config(reward_config)
    rollout = rollout_from_verl(data_source, solution_str, ground_truth, extra_info)
    result = await score_rollout(rollout, config, _judge_for_loop(config))
    return result.metrics()


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
    return [result.metrics() for result in score_many_sync(rollouts, config)]
