"""LLM-as-judge: is a candidate answer equivalent to the reference? (used by rewards and eval)

A rubric prompt with worked examples asks for a final line `Judgement: yes|no`;
the verdict parser tolerates chatter around it. Verdicts are cached in memory
and optionally in an append-only JSONL file, so re-scoring a run costs nothing
and an interrupted eval resumes without re-asking.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from codedance_cli.clients.openai_http import OpenAIClient
from codedance_cli.errors import EngineFailed

RUBRIC_VERSION = "judge-rubric-v1"

RUBRIC_SYSTEM = """\
You grade answers to visual questions. You are given the question, the reference answer and a candidate \
answer. Decide whether the candidate answer means the same as the reference answer.
Rules:
- Judge meaning, not wording: "two" equals "2", "The car is red." equals "red", units may be omitted if the number matches.
- For multiple choice, the candidate is correct if it picks the same option (letter or option text).
- Numbers must match the reference (allow only rounding at the reference's precision).
- A candidate that gives several different answers, hedges, or refuses is wrong.
- Ignore the candidate's reasoning; judge its final answer only.
End your reply with exactly one line: "Judgement: yes" if equivalent, otherwise "Judgement: no"."""

# (question, reference, candidate, verdict): short worked examples written for this rubric.
EXAMPLES: list[tuple[str, str, str, str]] = [
    ("How many apples are on the table?", "3", "There are three apples.", "yes"),
    ("What color is the bus?", "yellow", "The bus is orange.", "no"),
    ("Which option shows the largest value? (A) 2019 (B) 2020 (C) 2021", "B", "(B) 2020", "yes"),
    ("What is the length of segment AB?", "12.5 cm", "12.5", "yes"),
    ("What is written on the sign?", "STOP", "It could be STOP or SLOW.", "no"),
    ("What percentage of revenue came from Asia?", "34%", "0.34", "yes"),
    ("Is the man wearing glasses?", "no", "Yes, he is.", "no"),
]

# Math items (the release's second judge): equivalence of a student's answer to the reference, TRUE or FALSE.
MATH_RUBRIC_SYSTEM = """\
You check answers to mathematics problems. You are given the problem, the reference answer, which is always \
correct, and a student's answer. Decide whether the student's answer is mathematically equivalent to the \
reference: the same value, expression or choice, whatever the notation (LaTeX, fractions, decimals, units). \
An answer that is almost right, or right up to a slip, is not equivalent. Give no explanation.
End your reply with exactly one line: "Judgement: TRUE" if equivalent, otherwise "Judgement: FALSE"."""

_VERDICT = re.compile(r"judge?ment\s*[:：]\s*\**\s*(yes|no|1|0|true|false|correct|incorrect)\b", re.IGNORECASE)
_POSITIVE = {"yes", "1", "true", "correct"}
_BARE = re.compile(r"^\W*(yes|no|true|false)\b", re.IGNORECASE)


def judge_user_prompt(question: str, reference: str, candidate: str) -> str:
    return f"Question: {question}\nReference answer: {reference}\nCandidate answer: {candidate}"


def judge_messages(question: str, reference: str, candidate: str) -> list[dict]:
    """The rubric conversation: system rules, worked examples as prior turns, then the item."""
    messages: list[dict] = [{"role": "system", "content": RUBRIC_SYSTEM}]
    for ex_question, ex_reference, ex_candidate, verdict in EXAMPLES:
        messages.append({"role": "user", "content": judge_user_prompt(ex_question, ex_reference, ex_candidate)})
        messages.append({"role": "assistant", "content": f"Judgement: {verdict}"})
    messages.append({"role": "user", "content": judge_user_prompt(question, reference, candidate)})
    return messages


def math_judge_messages(question: str, reference: str, candidate: str) -> list[dict]:
    """The math rubric conversation: one user turn with the problem, the reference and the student's answer."""
    user = f"Problem: {question}\nReference answer: {reference}\nStudent's answer: {candidate}"
    return [{"role": "system", "content": MATH_RUBRIC_SYSTEM}, {"role": "user", "content": user}]


def parse_verdict(text: str) -> bool | None:
    """True / False from the judge's reply; the last `Judgement:` line wins; None when unreadable."""
    matches = _VERDICT.findall(text or "")
    if matches:
        return matches[-1].lower() in _POSITIVE
    bare = _BARE.match((text or "").strip())
    if bare:
        return bare.group(1).lower() in _POSITIVE
    return None


@dataclass
class Verdict:
    """One judgement: `correct` is None when the judge's reply could not be read."""

    correct: bool | None
    raw: str
    cached: bool = False


class VerdictCache:
    """In-memory dict backed by an optional append-only JSONL file (a torn last line is ignored)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._entries: dict[str, dict] = {}
        self._lock = threading.Lock()
        if self.path is not None and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self._entries[entry["key"]] = entry
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> dict | None:
        return self._entries.get(key)

    def put(self, key: str, entry: dict) -> None:
        with self._lock:
            self._entries[key] = entry
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # One write() of one line: concurrent appenders never interleave within a line.
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"key": key, **entry}, ensure_ascii=False) + "\n")


class JudgeClient:
    """Asks a served judge model whether answers match references, with caching and bounded concurrency."""

    def __init__(
        self,
        endpoint: str,
        model: str | None = "judge",
        *,
        concurrency: int = 16,
        cache: VerdictCache | Path | str | None = None,
        max_retries: int = 5,
        timeout_s: float = 120.0,
        temperature: float = 0.0,
        max_new_tokens: int = 64,
        api_key: str | None = None,
    ) -> None:
        self.http = OpenAIClient(endpoint, model, api_key=api_key, timeout_s=timeout_s, max_retries=max_retries, concurrency=concurrency)
        self.cache = cache if isinstance(cache, VerdictCache) else VerdictCache(cache)
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens

    @staticmethod
    def cache_key(question: str, reference: str, candidate: str, rubric: str = "general") -> str:
        version = RUBRIC_VERSION if rubric == "general" else f"{RUBRIC_VERSION}/{rubric}"
        payload = json.dumps([version, question, reference, candidate], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    async def judge(self, question: str, reference: str, candidate: str, *, rubric: Literal["general", "math"] = "general") -> Verdict:
        """One verdict; raises EngineFailed only when the endpoint fails after all retries.

        The math rubric asks for TRUE/FALSE at temperature 0, as the release's math judge does.
        """
        key = self.cache_key(question, reference, candidate, rubric)
        if (hit := self.cache.get(key)) is not None:
            return Verdict(correct=hit["correct"], raw=hit["raw"], cached=True)
        math = rubric == "math"
        messages = (math_judge_messages if math else judge_messages)(question, reference, candidate)
        generation = await self.http.generate(messages, max_new_tokens=self.max_new_tokens, temperature=0.0 if math else self.temperature)
        verdict = Verdict(correct=parse_verdict(generation.text), raw=generation.text)
        if verdict.correct is not None:  # unreadable replies are retried next time, not cached
            self.cache.put(key, {"correct": verdict.correct, "raw": verdict.raw})
        return verdict

    async def judge_many(self, items: Iterable[Sequence[str]]) -> list[Verdict]:
        """Verdicts for (question, reference, candidate) items, in order, concurrently."""
        return list(await asyncio.gather(*(self.judge(*item) for item in items)))

    def judge_sync(self, question: str, reference: str, candidate: str) -> Verdict:
        """Blocking convenience for scripts and reward functions outside an event loop."""
        try:
            return asyncio.run(self.judge(question, reference, candidate))
        except RuntimeError as exc:
            if "running event loop" in str(exc):
                raise EngineFailed("JudgeClient.judge_sync called inside an event loop; await judge() instead") from None
            raise

    async def aclose(self) -> None:
        await self.http.aclose()


def verdict_dict(verdict: Verdict) -> dict:
    return asdict(verdict)
