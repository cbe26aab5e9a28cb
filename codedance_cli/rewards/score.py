"""The balanced adaptive tool-call reward of a GRPO batch: one entry point for both engines.

Per rollout:

    outcome = R * a + w * f                         (R, w: 1.0, 0.2 general; 1.2, 0.4 math)
    score   = outcome + seq_weight * decay(mu_group) * T      (what GRPO normalises per group)
    turn offsets: beta * normalised c_i per assistant turn     (added to the advantages of its tokens)

a in {0, 1} comes from the judge policy (`always`: every general rollout is judged,
as the release does; `rules_first`: rule matching decides when it can, the judge
when it cannot); math items take math_verify, then a TRUE/FALSE judge. f and the
graded answer come from `format.py`, T, decay and c_i from `tool_call.py`. The
engines' plug-ins (verl's reward manager and advantage estimator, ms-swift's reward
function and trainer) translate their batches into `RolloutForReward`s and call
`score_batch`; nothing else computes a reward.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from codedance_cli.loop.grammar import call_failures
from codedance_cli.recipes.rl import RewardConfig
from codedance_cli.rewards.format import check_format
from codedance_cli.rewards.matching import answers_match
from codedance_cli.rewards.tool_call import (
    difficulty_decay,
    discounted_turn_returns,
    normalised_turn_values,
    tool_component,
    tool_success_rate,
    turn_step_scores,
)

JUDGE_URL_ENV = "CODEDANCE_JUDGE_URL"


class Judge(Protocol):
    """What the score needs of a judge (`JudgePool` below wraps `codedance_cli.rewards.judge_client.JudgeClient`)."""

    async def verdict(self, question: str, reference: str, candidate: str, *, math: bool = False) -> bool: ...


@dataclass
class RolloutForReward:
    """What the reward needs to know about one rollout, whichever engine produced it."""

    response: str  # the model's turns with the rendered <tool_response> blocks between them
    ground_truth: str | None
    answer_type: str = "text"
    choices: list[str] | None = None
    question: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    data_source: str = ""
    group_id: str = ""  # the GRPO group: rollouts of the same prompt share it
    # One entry per tool call: did it fail? None: read the <tool_response> blocks of `response`.
    tool_failures: list[bool] | None = None


@dataclass
class OutcomeScore:
    """The per-rollout part of the reward: accuracy and format, and what the tool terms need."""

    outcome: float  # R * a + w * f
    accuracy: float
    format: float
    is_math: bool
    judged: bool
    answer: str | None
    format_reason: str | None
    tool_failures: list[bool]
    tool_component: float  # T


@dataclass
class RolloutReward:
    """Every term of one rollout's reward; `score` and `turn_offsets` are what the engines train on."""

    score: float  # outcome + seq_weight * sequence_term
    outcome: float  # R * a + w * f
    sequence_term: float  # R_seq = decay * T
    turn_offsets: list[float]  # beta * normalised c_i, one per assistant turn (the answer turn's is 0)
    accuracy: float
    format: float
    tool_component: float  # T
    group_mean: float  # mu: mean outcome of the GRPO group
    decay: float
    tool_calls: int
    tool_failed: int
    tool_success_rate: float
    is_math: float
    judged: float
    turn_returns: list[float] = field(default_factory=list)  # c_i, before normalisation
    answer: str | None = None
    format_reason: str | None = None

    def metrics(self) -> dict[str, float]:
        """Scalar terms only, the shape verl's reward_extra_info and loggers accept."""
        data = asdict(self)
        return {key: float(value) for key, value in data.items() if isinstance(value, (int, float)) and not isinstance(value, bool)}


def is_math_item(data_source: str, metadata: Mapping[str, Any], sources: Sequence[str]) -> bool:
    """The math path applies when the item's source is a math set (exact name, or a name followed by '_' or '-')."""
    wanted = [name.lower() for name in sources]
    candidates = [str(value).lower() for value in (data_source, metadata.get("source"), metadata.get("data_source")) if value]
    if str(metadata.get("domain", "")).lower() == "math":
        return True
    return any(candidate == name or candidate.startswith((f"{name}_", f"{name}-")) for candidate in candidates for name in wanted)


def math_verify_match(prediction: str, ground_truth: str) -> bool:
    """Symbolic equality by math_verify, parsed as the release parses (plain strings); False when it cannot say."""
    try:
        from math_verify import parse, verify
    except ImportError:
        return False
    try:
        # Timeouts use SIGALRM, which only works in the main thread; reward workers are often not.
        return bool(verify(parse(ground_truth, parsing_timeout=None), parse(prediction, parsing_timeout=None), timeout_seconds=None))
    except Exception:  # noqa: BLE001 - a parser crash on odd model output is a "no", never a failed step
        return False


def make_judge(config: RewardConfig) -> JudgePool | None:
    """The judge for this config (env CODEDANCE_JUDGE_URL wins; comma-separated URLs are used in turn), or None."""
    endpoint = os.environ.get(JUDGE_URL_ENV) or config.judge_endpoint
    if not endpoint:
        return None
    from codedance_cli.rewards.judge_client import JudgeClient

    urls = [url.strip() for url in endpoint.split(",") if url.strip()]
    clients = [
        JudgeClient(url, model=config.judge_model, timeout_s=config.judge_timeout_s, max_retries=2, temperature=config.judge_temperature)
        for url in urls
    ]
    return JudgePool(clients)


@contextlib.asynccontextmanager
async def open_judge(config: RewardConfig) -> AsyncIterator[JudgePool | None]:
    """The config's judge (None without one) for one event loop's use, closed after (its HTTP client is the loop's)."""
    judge = make_judge(config)
    try:
        yield judge
    finally:
        if judge is not None:
            await judge.aclose()


class JudgePool:
    """`JudgeClient`s behind the `Judge` protocol: verdicts spread over servers, unreadable replies count as no."""

    def __init__(self, clients: list[Any]) -> None:
        self._clients = clients
        self._next = 0

    async def verdict(self, question: str, reference: str, candidate: str, *, math: bool = False) -> bool:
        client = self._clients[self._next % len(self._clients)]
        self._next += 1
        result = await client.judge(question, reference, candidate, rubric="math" if math else "general")
        return result.correct is True

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


async def _ask_judge(judge: Judge, rollout: RolloutForReward, answer: str, *, math: bool, timeout_s: float) -> bool:
    try:
        verdict = judge.verdict(rollout.question, str(rollout.ground_truth), answer, math=math)
        return bool(await asyncio.wait_for(verdict, timeout_s))
    except Exception:  # noqa: BLE001 - an unreachable or slow judge must not stall a training step
        return False


async def _accuracy(rollout: RolloutForReward, answer: str, is_math: bool, config: RewardConfig, judge: Judge | None) -> tuple[bool, bool]:
    """(correct, judged) under the recipe's judge policy (see the module docstring)."""
    reference = str(rollout.ground_truth)

    def rules() -> bool:
        return answers_match(answer, reference, rollout.answer_type, rollout.choices, rollout.question)

    if config.judge_policy == "rules_first" and rules():
        return True, False
    if is_math and math_verify_match(answer, reference):
        return True, False
    if judge is None:  # the rules are all there is (rules_first has asked them already)
        return config.judge_policy == "always" and rules(), False
    if config.judge_policy == "rules_first" and rollout.answer_type not in config.judge_answer_types:
        return False, False
    return await _ask_judge(judge, rollout, answer, math=is_math, timeout_s=config.judge_timeout_s), True


async def score_outcome(rollout: RolloutForReward, config: RewardConfig, judge: Judge | None = None) -> OutcomeScore:
    """Accuracy, format and T of one rollout (everything that does not need the rest of the batch)."""
    is_math = is_math_item(rollout.data_source, rollout.metadata or {}, config.math_sources)
    check = check_format(rollout.response, math=is_math, max_answer_chars=config.max_answer_chars)
    correct = judged = False
    if check.answer and not check.answer_too_long and rollout.ground_truth is not None:
        correct, judged = await _accuracy(rollout, check.answer, is_math, config, judge)
    failures = rollout.tool_failures
    if failures is None:
        failures = call_failures(rollout.response, silent_fails=config.silent_cell_fails)
    calls, failed = len(failures), sum(failures)
    accuracy = 1.0 if correct else 0.0
    r_weight, w_weight = (config.math_accuracy_weight, config.math_format_weight) if is_math else (config.accuracy_weight, config.format_weight)
    bonuses = (config.math_tool_correct_bonus, config.math_tool_wrong_bonus) if is_math else (config.tool_correct_bonus, config.tool_wrong_bonus)
    return OutcomeScore(
        outcome=r_weight * accuracy + w_weight * check.penalty,
        accuracy=accuracy,
        format=check.penalty,
        is_math=is_math,
        judged=judged,
        answer=check.answer,
        format_reason=check.reason,
        tool_failures=list(failures),
        tool_component=tool_component(calls, failed, correct, correct_bonus=bonuses[0], wrong_bonus=bonuses[1]),
    )


def combine(group_ids: Sequence[str], outcomes: Sequence[OutcomeScore], config: RewardConfig) -> list[RolloutReward]:
    """The batch terms: group means and decay for R_seq, batch-normalised per-turn values for R_turn.

    An empty group id puts the rollout in a group of its own.
    """
    groups = [group or f"#{index}" for index, group in enumerate(group_ids)]
    by_group: dict[str, list[float]] = defaultdict(list)
    for group, outcome in zip(groups, outcomes, strict=True):
        by_group[group].append(outcome.outcome)
    returns = [
        discounted_turn_returns(turn_step_scores(outcome.tool_failures, config.failed_call_penalty), config.turn_discount)
        for outcome in outcomes
    ]
    turn_values = normalised_turn_values(returns)
    results = []
    for index, outcome in enumerate(outcomes):
        group = by_group[groups[index]]
        mean = sum(group) / len(group)
        decay = difficulty_decay(mean, gamma=config.difficulty_gamma, delta=config.difficulty_delta)
        sequence_term = decay * outcome.tool_component
        calls, failed = len(outcome.tool_failures), sum(outcome.tool_failures)
        results.append(
            RolloutReward(
                score=outcome.outcome + config.sequence_weight * sequence_term,
                outcome=outcome.outcome,
                sequence_term=sequence_term,
                turn_offsets=[config.turn_weight * value for value in turn_values[index]],
                accuracy=outcome.accuracy,
                format=outcome.format,
                tool_component=outcome.tool_component,
                group_mean=mean,
                decay=decay,
                tool_calls=calls,
                tool_failed=failed,
                tool_success_rate=tool_success_rate(calls, failed) if calls else math.nan,
                is_math=1.0 if outcome.is_math else 0.0,
                judged=1.0 if outcome.judged else 0.0,
                turn_returns=returns[index],
                answer=outcome.answer,
                format_reason=outcome.format_reason,
            )
        )
    return results


async def score_outcomes(rollouts: Sequence[RolloutForReward], config: RewardConfig, judge: Judge | None = None) -> list[OutcomeScore]:
    """The per-rollout half of the reward, judge calls overlapping."""
    return list(await asyncio.gather(*(score_outcome(rollout, config, judge) for rollout in rollouts)))


async def score_batch(rollouts: Sequence[RolloutForReward], config: RewardConfig, judge: Judge | None = None) -> list[RolloutReward]:
    """The reward of a GRPO batch (judge calls overlap); rollouts of one prompt share a `group_id`."""
    outcomes = await score_outcomes(rollouts, config, judge)
    return combine([rollout.group_id for rollout in rollouts], outcomes, config)


def score_batch_sync(rollouts: Sequence[RolloutForReward], config: RewardConfig) -> list[RolloutReward]:
    """`score_batch` from synchronous code (a fresh event loop, so the judge's HTTP client lives inside it)."""

    async def _run() -> list[RolloutReward]:
        async with open_judge(config) as judge:
            return await score_batch(rollouts, config, judge)

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
