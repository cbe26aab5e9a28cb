"""Replays recorded assistant turns: the test double at the model boundary.

A random tiny model writes gibberish, not code, so tests, benchmarks and demos
drive the real loop (sandbox, parser, formatting) with turns recorded from a
real model. The conversation is recognised by its question text (the first
user turn); the turn index is the number of assistant turns already in it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from codedance_cli.clients.base import Generation, Messages, approx_tokens
from codedance_cli.trajectory.schema import Trajectory, question_text


class ScriptExhausted(LookupError):
    """The script has no turn for this conversation at this point."""


def first_user_text(messages: Messages) -> str:
    """Text of the first user message (the question), the key a script is looked up by."""
    for message in messages:
        if message["role"] == "user":
            content = message["content"]
            if isinstance(content, str):
                return content
            return "".join(part.get("text", "") for part in content if part.get("type") == "text")
    return ""


class ScriptedClient:
    """Returns recorded turns, in order, per conversation, after an optional fixed latency."""

    def __init__(
        self,
        turns: Sequence[str] | Mapping[str, Sequence[str]],
        *,
        latency_s: float = 0.0,
        finish_reason: str = "stop",
        record: bool = False,
        jitter: float = 0.0,
    ) -> None:
        """`turns`: one list replayed for every conversation, or {question text: turns}.

        `jitter` in [0, 1) spreads each turn's latency over latency_s * (1 ± jitter),
        deterministically per (question, turn), so two runs of the same tasks wait
        the same; `record=True` keeps every request's messages in `requests`.
        """
        self._shared = list(turns) if not isinstance(turns, Mapping) else None
        self._by_question = {key: list(value) for key, value in turns.items()} if isinstance(turns, Mapping) else {}
        self.latency_s = latency_s
        self.jitter = jitter
        self.finish_reason = finish_reason
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.record = record
        self.requests: list[Messages] = []

    @classmethod
    def for_tasks(cls, tasks: Iterable[Trajectory], turns_by_task_id: Mapping[str, Sequence[str]], **options: Any) -> ScriptedClient:
        """Scripts keyed by task id (mapped to each task's question text)."""
        by_question = {question_text(task): turns_by_task_id[task.task_id] for task in tasks if task.task_id in turns_by_task_id}
        return cls(by_question, **options)

    @classmethod
    def from_trajectories(cls, trajectories: Iterable[Trajectory], **options: Any) -> ScriptedClient:
        """Replay the assistant turns of recorded trajectories."""
        trajectories = list(trajectories)
        return cls.for_tasks(trajectories, {t.task_id: [turn.text for turn in t.turns] for t in trajectories}, **options)

    def latency_for(self, key: str, index: int) -> float:
        """The (deterministic) latency of turn `index` of the conversation `key`."""
        if not self.jitter:
            return self.latency_s
        digest = hashlib.sha256(f"{key}\0{index}".encode()).digest()
        unit = int.from_bytes(digest[:8], "big") / 2**64 * 2 - 1  # uniform in [-1, 1)
        return self.latency_s * (1 + self.jitter * unit)

    def _script_for(self, messages: Messages) -> list[str]:
        if self._shared is not None:
            return self._shared
        key = first_user_text(messages)
        if key not in self._by_question:
            raise ScriptExhausted(f"no script for the question {key[:80]!r}")
        return self._by_question[key]

    async def generate(
        self,
        messages: Messages,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: list[str] | None = None,
    ) -> Generation:
        started = time.perf_counter()
        script = self._script_for(messages)
        index = sum(1 for message in messages if message["role"] == "assistant")
        if index >= len(script):
            raise ScriptExhausted(f"script has {len(script)} turns; turn {index + 1} was asked for")
        self.calls += 1
        if self.record:
            self.requests.append(messages)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency_s > 0:
                await asyncio.sleep(self.latency_for(first_user_text(messages), index))
        finally:
            self.in_flight -= 1
        text = script[index]
        prompt_chars = sum(len(first_user_text([m])) if m["role"] == "user" else len(str(m.get("content") or "")) for m in messages)
        return Generation(
            text=text,
            prompt_tokens=max(1, prompt_chars // 4),
            completion_tokens=approx_tokens(text),
            seconds=time.perf_counter() - started,
            finish_reason=self.finish_reason,
        )

    async def aclose(self) -> None:
        return None
