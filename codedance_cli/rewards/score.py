"""The whole CodeDance reward of one rollout: accuracy + format + the two tool terms.

    score = R * a  +  w * f  +  tool_weight * T  +  turn_weight * mean(c_i)

a in {0, 1}: rules (`answers_match`), `math_verify` for math items, then the LLM
judge for the answer types the recipe sends to it; f in {-1, 0}: `check_format`;
T and c_i: `tool_call.py`. Every coefficient is a `RewardConfig` field. The
engine adapters (verl, ms-swift) only translate their arguments into a
`RolloutForReward` and call `score_rollout`.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from codedance_cli.recipes.rl import RewardConfig
from codedance_cli.rewards.format import TOOL_RESPONSE_BLOCK, check_format
from codedance_cli.rewards.matching import answers_match
from codedance_cli.rewards.tool_call import (
    item_difficulty,
    response_failed,
    sequence_tool_incentive,
    tool_success_rate,
    turn_level_term,
)

JUDGE_URL_ENV = "CODEDANCE_JUDGE_URL"
# Same words as codedance_cli/loop/prompts.py NO_OUTPUT_MESSAGE (kept here so the reward imports no loop code).
NO_OUTPUT_MESSAGE = "Code executed successfully. No explicit output or figures produced."


class Judge(Protocol):
    """What the score needs of `codedance_cli.judge.client.JudgeClient`."""

    async def verdict(self, question: str, reference: str, candidate: str) -> bool: ...


@dataclass
class RolloutForReward:
    """What the reward needs to know about one rollout, whichever engine produced it."""

    response: str  # the model's turns joined (tool responses inside are ignored by the format rules)
    ground_truth: str | None
    answer_type: str = "text"
    choices: list[str] | None = None
    question: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    data_source: str = ""
    # One entry per tool call: did it fail? None: read the <tool_response> blocks of `response`.
    tool_failures: list[bool] | None = None


@dataclass
class RewardBreakdown:
    """The score and every term it was made of (logged by both engines)."""

    score: float
    accuracy: float
    format: float
    tool_sequence: float
    tool_turn: float
    tool_calls: int
    tool_failed: int
    tool_success_rate: float
    difficulty: float
    is_math: float
    judged: float
    turn_returns: list[float] = field(default_factory=list)
    format_reason: str | None = None

    def metrics(self) -> dict[str, float]:
        """Scalar terms only, the shape verl's reward_extra_info and loggers accept."""
        data = asdict(self)
        return {key: float(value) for key, value in data.items() if isinstance(value, (int, float))}


def tool_failures_from_text(response: str, no_output_message: str = NO_OUTPUT_MESSAGE) -> list[bool]:
    """Per `<tool_response>` block in a rendered rollout: did that call fail?"""
    return [response_failed(block, no_output_message) for block in TOOL_RESPONSE_BLOCK.findall(response)]


def is_math_item(data_source: str, metadata: Mapping[str, Any], markers: Sequence[str]) -> bool:
    """Math weights apply when the source or metadata.domain names a math set."""
    haystack = f"{data_source} {metadata.get('domain', '')} {metadata.get('source', '')}".lower()
    return any(marker.lower() in haystack for marker in markers)


def math_verify_match(prediction: str, ground_truth: str) -> bool:
    """Symbolic equality by math_verify; False when it is not installed or cannot parse."""
    try:
        from math_verify import parse, verify
    except ImportError:
        return False
    try:
        # Timeouts use SIGALRM, which only works in the main thread; reward workers are often not.
        gold = parse(f"${ground_truth}$", parsing_timeout=None)
        answer = parse(f"${prediction}$", parsing_timeout=None)
        return bool(gold and answer and verify(gold, answer, timeout_seconds=None))
    except Exception:  # noqa: BLE001 - a parser crash on odd model output is a "no", never a failed step
        return False


def make_judge(config: RewardConfig) -> Judge | None:
    """The judge for this config (env CODEDANCE_JUDGE_URL wins; comma-separated URLs are used in turn), or None."""
    endpoint = os.environ.get(JUDGE_URL_ENV) or config.judge_endpoint
    if not endpoint:
        return None
    from codedance_cli.judge.client import JudgeClient

    urls = [url.strip() for url in endpoint.split(",") if url.strip()]
    return JudgePool([JudgeClient(url, model=config.judge_model, timeout_s=config.judge_timeout_s, max_retries=2) for url in urls])


class JudgePool:
    """`JudgeClient`s behind the `Judge` protocol: verdicts spread over servers, unreadable replies count as no."""

    def __init__(self, clients: list[Any]) -> None:
        self._clients = clients
        self._next = 0

    async def verdict(self, question: str, reference: str, candidate: str) -> bool:
        client = self._clients[self._next % len(self._clients)]
        self._next += 1
        result = await client.judge(question, reference, candidate)
        return result.correct is True

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


async def _ask_judge(judge: Judge, rollout: RolloutForReward, answer: str, timeout_s: float) -> bool:
    try:
        return bool(await asyncio.wait_for(judge.verdict(rollout.question, str(rollout.ground_truth), answer), timeout_s))
    except Exception:  # noqa: BLE001 - an unreachable or slow judge must not stall a training step
        return False


async def score_rollout(rollout: RolloutForReward, config: RewardConfig, judge: Judge | None = None) -> RewardBreakdown:
    """Score one rollout under `config`; the judge (if any) is asked only when the rules cannot say yes."""
    metadata = rollout.metadata or {}
    is_math = is_math_item(rollout.data_source, metadata, config.math_markers)
    check = check_format(rollout.response, max_answer_chars=config.max_answer_chars)

    correct, judged = False, False
    answer = check.answer
    if answer and not check.answer_too_long and rollout.ground_truth is not None:
        correct = answers_match(answer, rollout.ground_truth, rollout.answer_type, rollout.choices)
        if not correct and is_math and rollout.answer_type != "choice":
            correct = math_verify_match(answer, str(rollout.ground_truth))
        if not correct and judge is not None and rollout.answer_type in config.judge_answer_types:
            judged = True
            correct = await _ask_judge(judge, rollout, answer, config.judge_timeout_s)

    failures = rollout.tool_failures if rollout.tool_failures is not None else tool_failures_from_text(rollout.response)
    calls, failed = len(failures), sum(1 for is_failed in failures if is_failed)
    difficulty = item_difficulty(metadata, config.default_difficulty)
    incentive = sequence_tool_incentive(
        num_calls=calls,
        num_failed=failed,
        correct=correct,
        difficulty=difficulty,
        correct_bonus=config.math_tool_correct_bonus if is_math else config.tool_correct_bonus,
        wrong_bonus=config.math_tool_wrong_bonus if is_math else config.tool_wrong_bonus,
        redundancy_penalty=config.redundancy_penalty,
        redundancy_cap=config.redundancy_cap,
    )
    turn_term, returns = turn_level_term(failures, failure_penalty=config.failed_call_penalty, gamma=config.turn_discount)

    accuracy_weight = config.math_accuracy_weight if is_math else config.accuracy_weight
    format_weight = config.math_format_weight if is_math else config.format_weight
    accuracy = 1.0 if correct else 0.0
    score = accuracy_weight * accuracy + format_weight * check.penalty + config.tool_weight * incentive + config.turn_weight * turn_term
    return RewardBreakdown(
        score=score,
        accuracy=accuracy,
        format=check.penalty,
        tool_sequence=incentive,
        tool_turn=turn_term,
        tool_calls=calls,
        tool_failed=failed,
        tool_success_rate=tool_success_rate(calls, failed),
        difficulty=difficulty,
        is_math=1.0 if is_math else 0.0,
        judged=1.0 if judged else 0.0,
        turn_returns=returns,
        format_reason=check.reason,
    )


async def score_many(rollouts: Sequence[RolloutForReward], config: RewardConfig, judge: Judge | None = None) -> list[RewardBreakdown]:
    """Score a batch concurrently (judge calls overlap)."""
    return list(await asyncio.gather(*(score_rollout(rollout, config, judge) for rollout in rollouts)))


def score_many_sync(rollouts: Sequence[RolloutForReward], config: RewardConfig, judge_factory=make_judge) -> list[RewardBreakdown]:
    """`score_many` from synchronous code (a fresh event loop, so the judge's HTTP client lives inside it)."""

    async def _run() -> list[RewardBreakdown]:
        judge = judge_factory(config)
        try:
            return await score_many(rollouts, config, judge)
        finally:
            closer = getattr(judge, "aclose", None)
            if closer is not None:
                await closer()

    return asyncio.run(_run())


def parse_choices(value: Any) -> list[str] | None:
    """Choices arrive as a list, a JSON-ish string or numpy array depending on the engine's storage."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        if value.startswith("["):
            import json

            try:
                return [str(item) for item in json.loads(value)]
            except ValueError:
                pass
        return [part.strip() for part in re.split(r"\n|\|\|", value) if part.strip()]
    try:
        items = list(value)
    except TypeError:
        return None
    return [str(item) for item in items] or None
