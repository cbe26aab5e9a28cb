"""Format, tool-call terms and the composed score against hand-computed values."""

from __future__ import annotations

import asyncio

import pytest

from codedance_cli.recipes.rl import RewardConfig
from codedance_cli.rewards.format import check_format
from codedance_cli.rewards.score import RolloutForReward, score_rollout, tool_failures_from_text
from codedance_cli.rewards.tool_call import (
    discounted_turn_returns,
    item_difficulty,
    sequence_tool_incentive,
    turn_level_term,
    turn_step_scores,
)

CALL = '<tool_call>\n{"name": "execute_python_code", "arguments": {"code": "print(1)"}}\n</tool_call>'


def run(coro):
    return asyncio.run(coro)


# --- format -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "penalty", "answer"),
    [
        ("<think>look</think><answer>B</answer>", 0.0, "B"),
        ("<think>a</think>" + CALL + "<tool_response><answer>x</answer></tool_response><think>b</think><answer>7</answer>", 0.0, "7"),
        ("<think>look<answer>B</answer>", -1.0, "B"),  # unbalanced think
        ("<think>a</think>no answer here", -1.0, None),
        ("<answer>A</answer><answer>B</answer>", -1.0, "B"),
        ("<answer>   </answer>", -1.0, ""),
        ("</answer>x<answer>", -1.0, None),
    ],
)
def test_format(response: str, penalty: float, answer: str | None) -> None:
    check = check_format(response)
    assert check.penalty == penalty
    assert check.answer == answer
    assert (check.reason is None) == (penalty == 0.0)


def test_format_long_answer_flags_accuracy() -> None:
    check = check_format("<answer>" + "x" * 1000 + "</answer>")
    assert check.penalty == -1.0 and check.answer_too_long
    assert check_format("<answer>" + "x" * 999 + "</answer>").penalty == 0.0


# --- tool-call terms --------------------------------------------------------------------------


def test_discounted_turn_returns_by_hand() -> None:
    steps = turn_step_scores([True, False, True], failure_penalty=-0.5)
    assert steps == [-0.5, 0.0, -0.5, 0.0]
    # c3 = 0; c2 = -0.5; c1 = 0 + 0.2 * -0.5 = -0.1; c0 = -0.5 + 0.2 * -0.1 = -0.52
    assert discounted_turn_returns(steps, gamma=0.2) == pytest.approx([-0.52, -0.1, -0.5, 0.0])
    mean, returns = turn_level_term([True, False, True], failure_penalty=-0.5, gamma=0.2)
    assert mean == pytest.approx(-1.12 / 4)
    assert turn_level_term([]) == (0.0, [0.0])


@pytest.mark.parametrize(
    ("calls", "failed", "correct", "difficulty", "expected"),
    [
        (0, 0, True, 1.0, 0.0),  # no calls: nothing to reward or punish
        (2, 1, True, 1.0, 0.5 * 1.5),  # hard item: rate 0.5 times the correct bonus
        (2, 0, False, 1.0, 1.0 * 0.5),  # hard item, wrong answer: the smaller bonus
        (2, 0, True, 0.0, -2 / 3),  # easy item: 2 of 3 capped calls wasted
        (5, 0, True, 0.0, -1.0),  # the waste saturates at the cap
        (3, 0, True, 0.5, 0.5 * 1.5 - 0.5 * 1.0),
    ],
)
def test_sequence_tool_incentive(calls: int, failed: int, correct: bool, difficulty: float, expected: float) -> None:
    value = sequence_tool_incentive(num_calls=calls, num_failed=failed, correct=correct, difficulty=difficulty, redundancy_cap=3)
    assert value == pytest.approx(expected)


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"difficulty": "hard"}, 1.0),
        ({"difficulty": "Easy"}, 0.0),
        ({"difficulty": 0.3}, 0.3),
        ({"difficulty": 1.7}, 1.0),
        ({"pass_rate": 0.25}, 0.75),
        ({"difficulty": "0.2", "pass_rate": 0.9}, 0.2),
        ({"difficulty": "hard", "pass_rate": 0.1}, 0.9),  # what the filter writes: the pass rate is finer than the label
        ({}, 0.5),
        (None, 0.5),
    ],
)
def test_item_difficulty(metadata, expected: float) -> None:
    assert item_difficulty(metadata) == pytest.approx(expected)


def test_tool_failures_from_text() -> None:
    text = (
        CALL + "<tool_response>3\n</tool_response>" + CALL + "<tool_response>ZeroDivisionError: division by zero</tool_response>"
        + CALL + "<tool_response>Code executed successfully. No explicit output or figures produced.</tool_response>"
        + CALL + "<tool_response>Execution timeout after 15 s"
    )  # fmt: skip
    assert tool_failures_from_text(text) == [False, True, True, True]


# --- composed score ---------------------------------------------------------------------------


def test_score_correct_with_one_failed_call_on_hard_item() -> None:
    response = "<think>a</think>" + CALL + "<tool_response>NameError: x</tool_response><think>b</think><answer>(B)</answer>"
    rollout = RolloutForReward(response, "B", "choice", ["cat", "dog"], metadata={"difficulty": "hard"})
    result = run(score_rollout(rollout, RewardConfig()))
    # a=1 (R=1), f=0, T = 1 * rate 0 * 1.5 = 0, turn: c=[-0.5, 0] mean -0.25, times 0.1
    assert result.score == pytest.approx(1.0 - 0.025)
    assert (result.accuracy, result.format, result.tool_calls, result.tool_failed) == (1.0, 0.0, 1, 1)
    assert result.turn_returns == pytest.approx([-0.5, 0.0])


def test_score_hard_item_successful_call_pays_and_easy_item_call_costs() -> None:
    response = "<think>a</think>" + CALL + "<tool_response>42</tool_response><think>b</think><answer>42</answer>"
    config = RewardConfig()
    hard = run(score_rollout(RolloutForReward(response, "42", "number", metadata={"pass_rate": 0.0}), config))
    easy = run(score_rollout(RolloutForReward(response, "42", "number", metadata={"pass_rate": 1.0}), config))
    no_tool = run(
        score_rollout(RolloutForReward("<think>a</think><answer>42</answer>", "42", "number", metadata={"pass_rate": 1.0}), config)
    )
    assert hard.score == pytest.approx(1.0 + 0.1 * 1.5)
    assert easy.score == pytest.approx(1.0 - 0.1 * (1 / 3))
    assert no_tool.score == pytest.approx(1.0)
    assert hard.score > no_tool.score > easy.score


def test_score_math_item_uses_math_weights_and_math_verify() -> None:
    rollout = RolloutForReward("<think>s</think><answer>2</answer>", "\\sqrt{4}", "text", data_source="MathVista")
    result = run(score_rollout(rollout, RewardConfig()))
    assert result.is_math == 1.0 and result.accuracy == 1.0
    assert result.score == pytest.approx(1.2)
    missing = run(score_rollout(RolloutForReward("<think>s</think>2", "2", "number", data_source="mathverse"), RewardConfig()))
    assert missing.score == pytest.approx(-0.4)  # no answer block: a = 0, f = -1 with math weight 0.4


def test_score_long_answer_gets_no_accuracy() -> None:
    rollout = RolloutForReward("<answer>" + "red " * 300 + "</answer>", "red", "text")
    result = run(score_rollout(rollout, RewardConfig()))
    assert result.accuracy == 0.0 and result.score == pytest.approx(-0.2)


def test_score_uses_structured_failures_over_text() -> None:
    rollout = RolloutForReward("<answer>5</answer>", "5", "number", tool_failures=[False, False], metadata={"difficulty": 1.0})
    result = run(score_rollout(rollout, RewardConfig(tool_weight=1.0)))
    assert result.tool_calls == 2 and result.tool_sequence == pytest.approx(1.5)
    assert result.score == pytest.approx(1.0 + 1.5)


class FixedJudge:
    def __init__(self, answer: bool, delay_s: float = 0.0) -> None:
        self.answer, self.delay_s, self.calls = answer, delay_s, []

    async def verdict(self, question: str, reference: str, candidate: str) -> bool:
        self.calls.append((question, reference, candidate))
        await asyncio.sleep(self.delay_s)
        return self.answer


def test_judge_decides_open_answers_only_when_rules_fail() -> None:
    config = RewardConfig()
    judge = FixedJudge(True)
    rollout = RolloutForReward("<answer>a small brown dog</answer>", "puppy", "open", question="What animal?")
    result = run(score_rollout(rollout, config, judge))
    assert result.accuracy == 1.0 and result.judged == 1.0
    assert judge.calls == [("What animal?", "puppy", "a small brown dog")]
    exact = run(score_rollout(RolloutForReward("<answer>puppy</answer>", "puppy", "open"), config, judge))
    assert exact.judged == 0.0 and len(judge.calls) == 1
    choice = run(score_rollout(RolloutForReward("<answer>A</answer>", "B", "choice"), config, judge))
    assert choice.accuracy == 0.0 and len(judge.calls) == 1  # choice items never go to the judge by default


def test_hanging_judge_times_out_as_wrong() -> None:
    config = RewardConfig(judge_timeout_s=0.05)
    result = run(score_rollout(RolloutForReward("<answer>x</answer>", "y", "open"), config, FixedJudge(True, delay_s=30)))
    assert result.accuracy == 0.0 and result.judged == 1.0
