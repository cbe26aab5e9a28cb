"""The balanced adaptive tool-call reward against hand-computed numbers (docs/reward.md states each rule).

Every expected value below was worked out by hand from the formulas; the comments show the arithmetic.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from codedance_cli.recipes.rl import RewardConfig
from codedance_cli.rewards import RolloutForReward, score_batch
from codedance_cli.rewards.format import check_format
from codedance_cli.rewards.tool_call import difficulty_decay, discounted_turn_returns, normalised_turn_values, turn_step_scores

CALL = '<tool_call>\n{"name": "execute_python_code", "arguments": {"code": "print(1)"}}\n</tool_call>'
OK = "<tool_response>\n42\n</tool_response>"
FAIL = "<tool_response>\nError: NameError: name 'x' is not defined\n</tool_response>"
SILENT = "<tool_response>\nCode executed successfully. No explicit output or figures produced.\n</tool_response>"


def rollout_text(*responses: str, answer: str = "42") -> str:
    """A rendered rollout: one assistant turn per tool response, then the answer turn."""
    turns = "".join(f"<think>step</think>{CALL}user\n{response}\n" for response in responses)
    return f"{turns}<think>so</think><answer>{answer}</answer>"


def batch(rollouts: list[RolloutForReward], config: RewardConfig | None = None, judge=None):
    return asyncio.run(score_batch(rollouts, config or RewardConfig(), judge))


# decay(mu) = (1 + tanh(4 (0.5 - mu))) / 2 - 0.2
DECAY_EASY = (1 + math.tanh(-2.0)) / 2 - 0.2  # mu = 1: -0.182014
DECAY_QUARTER = (1 + math.tanh(1.0)) / 2 - 0.2  # mu = 0.25: 0.680797
DECAY_HARD = (1 + math.tanh(2.0)) / 2 - 0.2  # mu = 0: 0.782014


def test_decay_by_hand() -> None:
    assert difficulty_decay(1.0) == pytest.approx(-0.1820138, abs=1e-6)
    assert difficulty_decay(0.0) == pytest.approx(0.7820138, abs=1e-6)
    assert difficulty_decay(0.5) == pytest.approx(0.3)


# --- R_seq: the group decides whether a call pays ----------------------------------------------


def test_easy_group_penalises_a_working_call() -> None:
    """Four rollouts of one prompt, all right (mu = 1): the one that called a tool scores less than the others."""
    with_tool = RolloutForReward(rollout_text(OK), "42", "number", group_id="p")
    plain = [RolloutForReward("<think>easy</think><answer>42</answer>", "42", "number", group_id="p") for _ in range(3)]
    results = batch([with_tool, *plain])
    tool, other = results[0], results[1]
    assert tool.group_mean == pytest.approx(1.0)
    assert tool.tool_component == pytest.approx(1.5)  # right answer, rate 1
    assert tool.sequence_term == pytest.approx(DECAY_EASY * 1.5)  # -0.273021
    assert tool.score == pytest.approx(1.0 + DECAY_EASY * 1.5)  # 0.726979
    assert other.score == pytest.approx(1.0) and other.sequence_term == 0.0
    assert tool.score < other.score


def test_hard_group_pays_a_working_call() -> None:
    """One of four right, with a working call (mu = 0.25): T = 1.5, R_seq = 0.680797 * 1.5."""
    solved = RolloutForReward(rollout_text(OK), "42", "number", group_id="hard")
    wrong = [RolloutForReward("<think>guess</think><answer>7</answer>", "42", "number", group_id="hard") for _ in range(3)]
    results = batch([solved, *wrong])
    assert results[0].group_mean == pytest.approx(0.25)
    assert results[0].score == pytest.approx(1.0 + DECAY_QUARTER * 1.5)  # 2.021196
    assert [r.score for r in results[1:]] == [0.0, 0.0, 0.0]


def test_wrong_answer_with_half_failed_calls_in_a_failing_group() -> None:
    """mu = 0; wrong, two calls, one failed: T = 0.5 * 0.5 = 0.25."""
    rollout = RolloutForReward(rollout_text(FAIL, OK, answer="7"), "42", "number", group_id="g")
    (result,) = batch([rollout])
    assert (result.tool_calls, result.tool_failed, result.tool_success_rate) == (2, 1, 0.5)
    assert result.sequence_term == pytest.approx(DECAY_HARD * 0.25)
    assert result.score == pytest.approx(DECAY_HARD * 0.25)


def test_group_mean_includes_the_format_penalty() -> None:
    """mu is the mean outcome R*a + w*f: a right answer with broken tags counts 0.8."""
    broken = RolloutForReward("<think>x<answer>42</answer>", "42", "number", group_id="g")
    clean = RolloutForReward(rollout_text(OK), "42", "number", group_id="g")
    results = batch([broken, clean])
    assert results[0].outcome == pytest.approx(0.8) and results[0].format == -1.0
    assert results[1].group_mean == pytest.approx(0.9)
    assert results[1].decay == pytest.approx((1 + math.tanh(4 * (0.5 - 0.9))) / 2 - 0.2)


def test_sequence_weight_zero_is_accuracy_and_format_only() -> None:
    rollout = RolloutForReward(rollout_text(OK), "42", "number", group_id="g")
    (result,) = batch([rollout], RewardConfig(sequence_weight=0.0, turn_weight=0.0))
    assert result.score == pytest.approx(1.0) and result.turn_offsets == [0.0, 0.0]


# --- R_turn: per-turn offsets normalised over the batch -----------------------------------------


def test_turn_returns_by_hand() -> None:
    steps = turn_step_scores([True, False, True], failure_penalty=-0.5)
    assert steps == [-0.5, 0.0, -0.5, 0.0]
    # c3 = 0; c2 = -0.5; c1 = 0 + 0.2 * -0.5 = -0.1; c0 = -0.5 + 0.2 * -0.1 = -0.52
    assert discounted_turn_returns(steps, gamma=0.2) == pytest.approx([-0.52, -0.1, -0.5, 0.0])


def test_successful_call_in_a_batch_with_failures_gets_a_positive_offset() -> None:
    """A: fail then ok -> c = [-0.5, 0, 0]; B: ok -> c = [0, 0]; C: no call -> [0].

    Pooled non-final c: [-0.5, 0, 0], mean -1/6, population std sqrt(1/18) = 0.235702.
    A: [-1.414214, 0.707107, 0]; B: [0.707107, 0]; C: [0]; offsets are 0.2 times these.
    """
    a = RolloutForReward(rollout_text(FAIL, OK), "42", "number", group_id="1")
    b = RolloutForReward(rollout_text(OK), "42", "number", group_id="2")
    c = RolloutForReward("<think>x</think><answer>42</answer>", "42", "number", group_id="3")
    results = batch([a, b, c])
    assert results[0].turn_returns == pytest.approx([-0.5, 0.0, 0.0])
    root2 = math.sqrt(2)
    assert results[0].turn_offsets == pytest.approx([-0.2 * root2, 0.2 * root2 / 2, 0.0])
    assert results[1].turn_offsets == pytest.approx([0.2 * root2 / 2, 0.0])
    assert results[2].turn_offsets == [0.0]
    assert results[1].turn_offsets[0] > 0


def test_constant_turn_values_pass_through_unnormalised() -> None:
    """std <= 1e-8: the raw c_i are kept (every rollout failed its one call: c = [-0.5, 0] -> offset -0.1)."""
    rollouts = [RolloutForReward(rollout_text(FAIL), "42", "number", group_id=str(i)) for i in range(3)]
    assert [r.turn_offsets for r in batch(rollouts)] == [pytest.approx([-0.1, 0.0])] * 3
    assert normalised_turn_values([[0.0, 0.0], [0.0]]) == [[0.0, 0.0], [0.0]]


# --- failed calls ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("silent_fails", "expected"),
    [(False, [False, True, False, True]), (True, [False, True, True, True])],
)
def test_failed_calls_are_read_from_the_observation_text(silent_fails: bool, expected: list[bool]) -> None:
    timeout = "<tool_response>\nExecution timeout after 15 s\n</tool_response>"
    rollout = RolloutForReward(rollout_text(OK, FAIL, SILENT, timeout), "42", "number")
    (result,) = batch([rollout], RewardConfig(silent_cell_fails=silent_fails))
    assert result.tool_calls == 4 and result.tool_failed == sum(expected)


def test_structured_failures_win_over_the_text() -> None:
    rollout = RolloutForReward("<answer>5</answer>", "5", "number", tool_failures=[False, False])
    (result,) = batch([rollout])
    assert result.tool_calls == 2 and result.tool_component == pytest.approx(1.5)


# --- format and answer rules, per path ------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "penalty", "answer"),
    [
        ("<think>look</think><answer>B</answer>", 0.0, "B"),
        ("<think>a</think>" + CALL + "<tool_response><answer>x</answer><think></tool_response><think>b</think><answer>7</answer>", 0.0, "7"),
        ("<think>look<answer>B</answer>", -1.0, "B"),  # unbalanced think; the answer is still graded
        ("<think>a</think>no answer here", -1.0, None),
        ("<answer>A</answer><answer>B</answer>", -1.0, "A"),  # two pairs: format fails, the first is graded
        ("<answer>   </answer>", 0.0, ""),  # empty: wrong, not a format failure
        ("</answer>x<answer>", -1.0, None),
        ("<answer>unclosed", -1.0, None),
    ],
)
def test_general_format(response: str, penalty: float, answer: str | None) -> None:
    check = check_format(response)
    assert (check.penalty, check.answer) == (penalty, answer)
    assert (check.reason is None) == (penalty == 0.0)


def test_general_answer_of_1000_characters_fails_and_scores_zero() -> None:
    assert check_format("<answer>" + "x" * 999 + "</answer>").penalty == 0.0
    long = RolloutForReward("<answer>" + "red " * 300 + "</answer>", "red", "text")
    (result,) = batch([long])
    assert result.accuracy == 0.0 and result.format == -1.0 and result.score == pytest.approx(-0.2)


@pytest.mark.parametrize(
    ("response", "penalty", "answer"),
    [
        ("<think>a</think><answer>1</answer><think>b</think><answer>2</answer>", 0.0, "2"),  # last after last </think>
        ("<think>a</think><answer>1</answer><answer>3</answer>", 0.0, "3"),  # several after it: the last
        ("<think>a</think><answer>1</answer><think>b</think>", -1.0, None),  # none after the last </think>
        ("<think>a</think>" + CALL + "<answer>2</answer>", -1.0, "2"),  # a tool call after the last </think>
        ("<think>a<answer>2</answer>", -1.0, "2"),  # unbalanced think
        ("<answer>" + "9" * 1500 + "</answer>", 0.0, "9" * 1500),  # no length limit on the math path
    ],
)
def test_math_format(response: str, penalty: float, answer: str | None) -> None:
    check = check_format(response, math=True)
    assert (check.penalty, check.answer) == (penalty, answer)


@pytest.mark.parametrize(
    ("data_source", "metadata", "is_math"),
    [
        ("thinklite_eureka", {}, True),
        ("xince", {}, True),
        ("MathVista_testmini", {}, True),
        ("mathverse", {}, True),
        ("vstar", {}, False),
        ("chart", {}, False),
        ("procedural", {"domain": "math"}, True),
        ("mathematics_club", {}, False),
    ],
)
def test_math_routing(data_source: str, metadata: dict, is_math: bool) -> None:
    (result,) = batch([RolloutForReward("<think>s</think><answer>2</answer>", "2", "number", data_source=data_source, metadata=metadata)])
    assert result.is_math == float(is_math)
    assert result.score == pytest.approx(1.2 if is_math else 1.0)


def test_math_path_weights_math_verify_and_bonus() -> None:
    right = RolloutForReward(rollout_text(OK, answer="\\frac{1}{2}"), "0.5", "text", data_source="xince", group_id="m")
    missing = RolloutForReward("<think>s</think>2", "2", "number", data_source="mathverse", group_id="n")
    results = batch([right, missing])
    assert results[0].accuracy == 1.0 and results[0].tool_component == pytest.approx(2.0)  # math bonus 2
    decay = (1 + math.tanh(4 * (0.5 - 1.2))) / 2 - 0.2  # mu = R = 1.2 on the math path: -0.196316
    assert results[0].decay == pytest.approx(decay)
    assert results[0].score == pytest.approx(1.2 + decay * 2.0)
    assert results[1].score == pytest.approx(-0.4)  # no answer block: a = 0, f = -1 at w = 0.4


# --- judge policy ---------------------------------------------------------------------------------


class RecordingJudge:
    """A judge that answers from a table and records what it was asked (the routing is under test, not the model)."""

    def __init__(self, verdicts: dict[str, bool], delay_s: float = 0.0) -> None:
        self.verdicts, self.delay_s, self.calls = verdicts, delay_s, []

    async def verdict(self, question: str, reference: str, candidate: str, *, math: bool = False) -> bool:
        self.calls.append((candidate, math))
        await asyncio.sleep(self.delay_s)
        return self.verdicts.get(candidate, False)


def test_policy_always_judges_every_general_rollout() -> None:
    judge = RecordingJudge({"puppy": True, "a cat": False})
    rollouts = [
        RolloutForReward("<answer>puppy</answer>", "puppy", "open", question="What animal?"),
        RolloutForReward("<answer>a cat</answer>", "puppy", "open"),
        RolloutForReward("<answer></answer>", "puppy", "open"),  # empty: wrong without asking
    ]
    results = batch(rollouts, RewardConfig(judge_policy="always"), judge)
    assert [r.accuracy for r in results] == [1.0, 0.0, 0.0]
    assert [r.judged for r in results] == [1.0, 1.0, 0.0]
    assert judge.calls == [("puppy", False), ("a cat", False)]


def test_policy_rules_first_asks_only_when_rules_say_no() -> None:
    judge = RecordingJudge({"a small brown dog": True})
    config = RewardConfig(judge_policy="rules_first")
    rollouts = [
        RolloutForReward("<answer>a small brown dog</answer>", "puppy", "open"),
        RolloutForReward("<answer>puppy</answer>", "puppy", "open"),
        RolloutForReward("<answer>A</answer>", "B", "choice"),  # choice is not a judged type by default
    ]
    results = batch(rollouts, config, judge)
    assert [(r.accuracy, r.judged) for r in results] == [(1.0, 1.0), (1.0, 0.0), (0.0, 0.0)]


def test_math_items_take_math_verify_then_the_true_false_judge() -> None:
    judge = RecordingJudge({"two": True})
    rollouts = [
        RolloutForReward("<think>s</think><answer>\\frac{4}{2}</answer>", "2", "text", data_source="xince"),
        RolloutForReward("<think>s</think><answer>two</answer>", "2", "text", data_source="xince"),
    ]
    results = batch(rollouts, RewardConfig(judge_policy="always"), judge)
    assert [(r.accuracy, r.judged) for r in results] == [(1.0, 0.0), (1.0, 1.0)]
    assert judge.calls == [("two", True)]


def test_hanging_judge_times_out_as_wrong() -> None:
    config = RewardConfig(judge_timeout_s=0.05)
    (result,) = batch([RolloutForReward("<answer>x</answer>", "y", "open")], config, RecordingJudge({"x": True}, delay_s=30))
    assert result.accuracy == 0.0 and result.judged == 1.0
