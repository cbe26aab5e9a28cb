"""What every model client is: chat messages in, one generation out, asynchronously.

The loop only knows this protocol, so a served endpoint, an in-process model,
a vLLM engine and a scripted replay are interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

Messages = list[dict[str, Any]]


@dataclass
class Generation:
    """One assistant turn as the model produced it, with its cost."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seconds: float = 0.0
    finish_reason: str | None = None  # "stop", "length", ... when the backend reports it

    @property
    def hit_length_limit(self) -> bool:
        return self.finish_reason == "length"


@runtime_checkable
class ModelClient(Protocol):
    """Async generation from OpenAI-style messages (see codedance_cli.loop.format.build_messages)."""

    async def generate(
        self,
        messages: Messages,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: list[str] | None = None,
    ) -> Generation: ...

    async def aclose(self) -> None: ...


def approx_tokens(text: str) -> int:
    """A rough token count (~4 characters a token) for clients that have no tokenizer."""
    return max(1, len(text) // 4) if text else 0
