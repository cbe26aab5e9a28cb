"""The two tool terms of the balanced adaptive tool-call reward, as pure functions.

**Sequence level, difficulty aware (R_seq).** Per rollout, with its calls and failed calls,

    T     = bonus * (calls - failed) / calls        (0 without calls)
    bonus = 1.5 if the answer is right else 0.5     (2 and 1 on the math path)
    decay = (1 + tanh(gamma * (0.5 - mu))) / 2 - delta
    R_seq = decay * T

where mu is the mean outcome score (R*a + w*f) of the rollout's GRPO group (the
rollouts of the same prompt). decay runs from 0.8 on a group that fails
everything down to -0.2 on one that solves everything (gamma 4, delta 0.2): a
working call pays on hard prompts and costs on easy ones. It needs the whole group,
so it is computed where the engine hands over a batch.

**Turn level (R_turn).** Per tool response s_i = -0.5 when the call failed, else 0,
then a final 0 for the answer turn; c_i = s_i + 0.2 * c_{i+1} from the back. The
non-final c_i of the whole batch are normalised (mean, population std); each
assistant turn's tokens then get beta * (its normalised c_i) added to their GRPO
advantage, the answer turn 0. When the batch's c_i do not vary (std <= 1e-8) they
are passed on as they are, which is what the release's batch reward manager does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

STD_FLOOR = 1e-8


def tool_success_rate(num_calls: int, num_failed: int) -> float:
    """(calls - failed) / calls; 0 when no call was made."""
    if num_calls <= 0:
        return 0.0
    return max(0, num_calls - num_failed) / num_calls


def tool_component(num_calls: int, num_failed: int, correct: bool, *, correct_bonus: float, wrong_bonus: float) -> float:
    """T = bonus * success rate (0 without calls)."""
    if num_calls <= 0:
        return 0.0
    return (correct_bonus if correct else wrong_bonus) * tool_success_rate(num_calls, num_failed)


def difficulty_decay(group_mean: float, *, gamma: float = 4.0, delta: float = 0.2) -> float:
    """decay(mu) = (1 + tanh(gamma * (0.5 - mu))) / 2 - delta."""
    return (1.0 + math.tanh(gamma * (0.5 - group_mean))) / 2.0 - delta


def turn_step_scores(failed: Sequence[bool], failure_penalty: float = -0.5) -> list[float]:
    """s_i per tool response (failure_penalty if failed, else 0), then a final 0 for the answer turn."""
    return [failure_penalty if is_failed else 0.0 for is_failed in failed] + [0.0]


def discounted_turn_returns(step_scores: Sequence[float], gamma: float = 0.2) -> list[float]:
    """c_i = s_i + gamma * c_{i+1}, computed from the last turn backwards."""
    returns = [0.0] * len(step_scores)
    following = 0.0
    for index in range(len(step_scores) - 1, -1, -1):
        following = step_scores[index] + gamma * following
        returns[index] = following
    return returns


def normalised_turn_values(batch_returns: Sequence[Sequence[float]]) -> list[list[float]]:
    """Per rollout, its non-final c_i normalised over the batch, then 0 for the answer turn (see the module docstring)."""
    pooled = [value for returns in batch_returns for value in returns[:-1]]
    mean = sum(pooled) / len(pooled) if pooled else 0.0
    std = math.sqrt(sum((value - mean) ** 2 for value in pooled) / len(pooled)) if pooled else 0.0
    normalised: list[list[float]] = []
    for returns in batch_returns:
        head = list(returns[:-1])
        if head and std > STD_FLOOR:
            head = [(value - mean) / std for value in head]
        normalised.append([*head, 0.0] if returns else [])
    return normalised
