"""The balanced adaptive tool-call reward's group and batch terms on stock verl, through its public plug-in points.

verl scores each rollout as it finishes and keeps one number of it; its advantage
estimators see only the token rewards, the response mask, the group ids and the
algorithm config. The two terms that need more are added here:

- `CodeDanceAgentLoopManager` (`actor_rollout_ref.rollout.agent.agent_loop_manager_class`)
  runs in the trainer process and sees every finished batch before the trainer
  does. From each rollout's per-rollout reward fields (`verl_reward.outcome_fields`)
  and its GRPO group (`uid`) it computes the batch terms with the one reward
  implementation (`codedance_cli.rewards.score.combine`), rewrites `rm_scores` to
  outcome + R_seq, and writes each assistant turn's offset onto that turn's tokens
  in a `[batch, response]` tensor under `reward_baselines`: the one batch tensor
  verl hands to a registered estimator.
- `grpo_bat` (`algorithm.adv_estimator=grpo_bat`) is verl's own GRPO advantage plus
  those offsets, after group normalisation.

Assistant turns are the runs of 1s in verl's `response_mask` (tool responses are 0).
This needs verl's classic trainer (`trainer.use_v1=False`): the v1 trainer reads
only a fixed list of fields when it computes advantages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from verl import DataProto
from verl.experimental.agent_loop import AgentLoopManager
from verl.trainer.ppo import core_algos
from verl.utils.ray_utils import auto_await

from codedance_cli.recipes.rl import RewardConfig
from codedance_cli.rewards.config_file import load_reward_config
from codedance_cli.rewards.score import RolloutReward, combine
from codedance_cli.engines.verl.reward import ERRORS_FIELD, FAILURES_FIELD, outcome_from_fields
from codedance_cli.engines.verl.command import ESTIMATOR
from codedance_cli.engines.verl.metrics import FAILED_KIND, STATS_PREFIX

OFFSETS_KEY = "reward_baselines"  # the batch tensor verl passes to registered estimators
PER_ROLLOUT_KEYS = ("outcome", "accuracy", "format", "is_math", "judged", "tool_component", FAILURES_FIELD)


def turn_runs(response_mask: torch.Tensor) -> list[tuple[int, int]]:
    """(start, end) of each run of 1s in one row's response mask: the assistant turns, in order."""
    mask = response_mask.to(torch.int8).tolist()
    runs, start = [], None
    for position, value in enumerate([*mask, 0]):
        if value and start is None:
            start = position
        elif not value and start is not None:
            runs.append((start, position))
            start = None
    return runs


def offsets_tensor(response_mask: torch.Tensor, turn_offsets: Sequence[Sequence[float]]) -> torch.Tensor:
    """Each assistant turn's offset on its tokens (turns past the offsets, or offsets past the turns, drop out)."""
    offsets = torch.zeros_like(response_mask, dtype=torch.float32)
    for row, values in enumerate(turn_offsets):
        for (start, end), value in zip(turn_runs(response_mask[row]), values):
            offsets[row, start:end] = float(value)
    return offsets


def score_positions(data: DataProto) -> torch.Tensor:
    """Where verl's agent loop put each rollout's score: its last valid response token."""
    prompt_length = data.batch["prompts"].size(1)
    return data.batch["attention_mask"][:, prompt_length:].sum(dim=1) - 1


def apply_batch_terms(data: DataProto, group_ids: Sequence[Any], config: RewardConfig) -> list[RolloutReward]:
    """Rewrite a finished batch's `rm_scores` to outcome + R_seq and add the per-turn offsets (in place)."""
    fields = data.non_tensor_batch
    missing = [key for key in PER_ROLLOUT_KEYS if key not in fields]
    if missing:
        raise RuntimeError(f"verl batch lacks the reward fields {missing}: is reward.custom_reward_function our compute_score?")
    outcomes = [outcome_from_fields({key: fields[key][row] for key in PER_ROLLOUT_KEYS}) for row in range(len(data))]
    results = combine([str(group) for group in group_ids], outcomes, config)
    rows = torch.arange(len(data))
    scores = torch.tensor([result.score for result in results], dtype=torch.float32)
    rm_scores = torch.zeros_like(data.batch["rm_scores"])
    rm_scores[rows, score_positions(data)] = scores
    data.batch["rm_scores"] = rm_scores
    data.batch[OFFSETS_KEY] = offsets_tensor(data.batch["response_mask"], [result.turn_offsets for result in results])
    added = ("score", "sequence_term", "group_mean", "decay")
    for name in added:
        fields[name] = np.array([getattr(result, name) for result in results], dtype=np.float64)
    if "reward_extra_keys" in data.meta_info:  # so verl logs and dumps them with the rest
        data.meta_info["reward_extra_keys"] = list(dict.fromkeys([*data.meta_info["reward_extra_keys"], *added]))
    return results


def batch_stats(group_ids: Sequence[Any], results: Sequence[RolloutReward], errors: Sequence[Any] = ()) -> dict[str, float]:
    """What verl does not log: the reward's spread, the share of groups with equal rewards (no GRPO signal), the tool
    calls a rollout made, how many failed, and what they raised (`errors`: each rollout's ERRORS_FIELD; a share of
    all calls per kind, `failed/NameError`...). `engines/verl/metrics.py` reads them back."""
    scores = np.array([result.score for result in results], dtype=np.float64)
    groups: dict[str, list[float]] = {}
    for group, score in zip(group_ids, scores, strict=True):
        groups.setdefault(str(group), []).append(float(score))
    calls = sum(result.tool_calls for result in results)
    kinds = Counter(kind for text in errors for kind in str(text).split(",") if kind)
    return {
        f"{STATS_PREFIX}reward_std": float(scores.std()) if len(scores) else 0.0,
        f"{STATS_PREFIX}equal_groups": sum(max(g) - min(g) < 1e-9 for g in groups.values()) / max(len(groups), 1),
        f"{STATS_PREFIX}tool_calls": calls / max(len(results), 1),
        f"{STATS_PREFIX}tool_failed": sum(result.tool_failed for result in results) / max(calls, 1),
        **{f"{STATS_PREFIX}{FAILED_KIND}{kind}": count / max(calls, 1) for kind, count in kinds.items()},
    }


class CodeDanceAgentLoopManager(AgentLoopManager):
    """verl's agent loop manager; training batches come back with the group and batch reward terms added."""

    @auto_await
    async def generate_sequences(self, prompts: DataProto) -> DataProto:
        output = await super().generate_sequences(prompts)
        if prompts.meta_info.get("validate", False) or "uid" not in prompts.non_tensor_batch:
            return output  # validation reports the outcome alone
        config_path = self.config.reward.get("custom_reward_function", {}).get("reward_kwargs", {}).get("reward_config")
        group_ids = prompts.non_tensor_batch["uid"]
        results = apply_batch_terms(output, group_ids, load_reward_config(config_path))
        # verl copies a generated batch's "timing" dict into the step's metrics (as timing_s/...)
        errors = output.non_tensor_batch.get(ERRORS_FIELD, ())
        output.meta_info.setdefault("timing", {}).update(batch_stats(group_ids, results, errors))
        return output


@core_algos.register_adv_est(ESTIMATOR)
def compute_grpo_bat_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray | None = None,
    config: Any = None,
    reward_baselines: torch.Tensor | None = None,
    **_: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl's GRPO advantage, then each assistant turn's offset added to its tokens (R_turn)."""
    norm_by_std = config.get("norm_adv_by_std_in_grpo", True) if config is not None else True
    advantages, returns = core_algos.compute_grpo_outcome_advantage(
        token_level_rewards=token_level_rewards, response_mask=response_mask, index=index, norm_adv_by_std_in_grpo=norm_by_std
    )
    if reward_baselines is not None:
        advantages = advantages + reward_baselines.to(advantages.dtype) * response_mask
    return advantages, returns
