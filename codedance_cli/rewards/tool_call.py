"""The balanced adaptive tool-call terms of the CodeDance reward.

Two terms, both pure functions of what happened in a rollout:

- **Sequence level, difficulty aware.** A tool is worth calling on a hard item
  and wasteful on an easy one. With difficulty d in [0, 1] (from the filter's
  metadata: `difficulty`, or 1 - `pass_rate` of the weak model),

      rate  = successful calls / calls          (0 without calls)
      bonus = rate * (correct_bonus if correct else wrong_bonus)
      waste = min(calls, redundancy_cap) / redundancy_cap
      T     = d * bonus - (1 - d) * redundancy_penalty * waste

  so on a hard item (d -> 1) working calls pay, more when the answer is right;
  on an easy item (d -> 0) every call costs; an item answered without calls gets
  T = 0 either way. The release logs `bonus` (1.5/0.5 general, 2/1 math) but
  describes the difficulty-aware incentive only in words; the `d`/`1 - d`
  weighting and the redundancy cap are our reading of that description.

- **Turn level.** Each tool response scores s_i = failure_penalty (-0.5) when
  the call failed (error, timeout, or no output at all), else 0, followed by a
  final 0 for the answer turn; the discounted return from the back,
  c_i = s_i + gamma * c_{i+1} (gamma = 0.2), gives each turn the cost of the
  failures it led to. The release feeds c_i into a per-turn advantage in its
  verl fork; stock verl and ms-swift take one scalar per rollout, so the score
  adds weight * mean(c_i) and the per-turn values are logged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Words that mark a failed call in a rendered tool response (the release's rule).
FAILURE_MARKERS = ("Error", "timeout", "Timeout", "timed out")
DIFFICULTY_LABELS = {"easy": 0.0, "medium": 0.5, "moderate": 0.5, "hard": 1.0}


def response_failed(text: str, no_output_message: str) -> bool:
    """A rendered tool response counts as failed if it shows an error, a timeout or no output at all."""
    return any(marker in text for marker in FAILURE_MARKERS) or no_output_message in text


def item_difficulty(metadata: Mapping[str, Any] | None, default: float = 0.5) -> float:
    """Difficulty in [0, 1] from filter metadata.

    A numeric `difficulty` wins; else 1 - `pass_rate` (the weak model's, finer than a label); else the
    `difficulty` label (easy 0, medium 0.5, hard 1); else `default`.
    """
    metadata = metadata or {}
    value, label = metadata.get("difficulty"), None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value, label = None, value.strip().lower()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _clamp(float(value))
    pass_rate = metadata.get("pass_rate")
    if isinstance(pass_rate, (int, float)) and not isinstance(pass_rate, bool):
        return _clamp(1.0 - float(pass_rate))
    if label in DIFFICULTY_LABELS:
        return DIFFICULTY_LABELS[label]
    return _clamp(default)


def tool_success_rate(num_calls: int, num_failed: int) -> float:
    """(calls - failed) / calls; 0 when no call was made."""
    if num_calls <= 0:
        return 0.0
    return max(0, num_calls - num_failed) / num_calls


def sequence_tool_incentive(
    *,
    num_calls: int,
    num_failed: int,
    correct: bool,
    difficulty: float,
    correct_bonus: float = 1.5,
    wrong_bonus: float = 0.5,
    redundancy_penalty: float = 1.0,
    redundancy_cap: int = 3,
) -> float:
    """T = d * rate * bonus - (1 - d) * redundancy_penalty * min(calls, cap) / cap (see the module docstring)."""
    if num_calls <= 0:
        return 0.0
    d = _clamp(difficulty)
    bonus = tool_success_rate(num_calls, num_failed) * (correct_bonus if correct else wrong_bonus)
    waste = min(num_calls, max(1, redundancy_cap)) / max(1, redundancy_cap)
    return d * bonus - (1.0 - d) * redundancy_penalty * waste


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


def turn_level_term(failed: Sequence[bool], *, failure_penalty: float = -0.5, gamma: float = 0.2) -> tuple[float, list[float]]:
    """mean(c_i) over the rollout's turns, and the c_i themselves (for logging)."""
    returns = discounted_turn_returns(turn_step_scores(failed, failure_penalty), gamma)
    return sum(returns) / len(returns), returns


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))
