"""The one record every stage reads and writes: a multi-turn thinking-with-code trajectory.

Images are kept as encoded bytes (PNG/JPEG) so that a trajectory is
self-contained: it can be written to parquet, shipped to another machine and
replayed without the files it came from.
"""

from __future__ import annotations

import io
from typing import Any, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

AnswerType = Literal["choice", "number", "text", "open"]
CHOICE_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
StopReason = Literal["answer", "max_turns", "max_tokens", "repeated_failure", "no_code", "error", "scripted"]


def encode_image(image: Image.Image, format: str = "PNG") -> bytes:
    """PIL image -> encoded bytes (PNG keeps crops of charts lossless)."""
    buffer = io.BytesIO()
    if format.upper() == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    image.save(buffer, format=format)
    return buffer.getvalue()


def decode_image(data: bytes) -> Image.Image:
    """Encoded bytes -> loaded PIL image."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


class Observation(BaseModel):
    """What one code cell produced, as the sandbox reports it and the model sees it."""

    model_config = ConfigDict(extra="forbid")

    stdout: str = Field("", description="Captured stdout, truncated with a marker past the sandbox limit.")
    stderr: str = Field("", description="Captured stderr (warnings), truncated likewise.")
    images: list[bytes] = Field(default_factory=list, description="PNG bytes of images the code displayed, returned, plotted or saved.")
    error_type: str | None = Field(None, description="Exception class name, 'Timeout', 'MemoryLimit', 'Killed', ... None when the cell ran.")
    error: str | None = Field(None, description="Cleaned traceback / reason, without sandbox-internal frames.")
    duration_s: float = Field(0.0, description="Wall time of the cell.")
    timed_out: bool = Field(False, description="The cell hit the wall-clock limit and was killed.")
    truncated: bool = Field(False, description="Output was cut to the size limit.")

    @property
    def ok(self) -> bool:
        return self.error_type is None and not self.timed_out


class Turn(BaseModel):
    """One assistant message and, if it contained code, what executing the code gave."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The assistant's raw message (reasoning, code block or tool call, maybe the answer).")
    code: str | None = Field(None, description="The code extracted from `text`, if any.")
    observation: Observation | None = Field(None, description="Result of running `code`.")
    prompt_tokens: int | None = Field(None, description="Prompt tokens of the request that produced this turn.")
    completion_tokens: int | None = Field(None, description="Tokens generated for this turn.")
    generation_s: float | None = Field(None, description="Wall time spent generating this turn.")


class Trajectory(BaseModel):
    """One task and the model's whole attempt at it."""

    model_config = ConfigDict(extra="forbid")

    task_id: str = Field(description="Stable id, unique within a dataset.")
    question: str = Field(description="The user's question.")
    images: list[bytes] = Field(default_factory=list, description="Input image(s), encoded.")
    ground_truth: str | None = Field(None, description="Reference answer, if known.")
    answer_type: AnswerType = Field("text", description="How answers are compared: choice letter, number, short text, open (judge).")
    choices: list[str] | None = Field(None, description="Options for multiple-choice items, in order (A, B, ...).")
    system_prompt: str | None = Field(None, description="System prompt used, when the trajectory was generated.")
    prompt_version: str | None = Field(None, description="Version id of the prompt template.")
    turns: list[Turn] = Field(default_factory=list, description="Assistant turns in order.")
    final_answer: str | None = Field(None, description="Content of the answer tag, when one was given.")
    stop_reason: StopReason | None = Field(None, description="Why the loop stopped.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="JSON-able extras: source, family, difficulty, pass_rate, ...")

    @property
    def num_tool_calls(self) -> int:
        return sum(1 for turn in self.turns if turn.code is not None)

    @property
    def num_failed_calls(self) -> int:
        return sum(1 for turn in self.turns if turn.observation is not None and not turn.observation.ok)

    def pil_images(self) -> list[Image.Image]:
        return [decode_image(data) for data in self.images]


def item_source(metadata: dict[str, Any] | None, default: str) -> str:
    """The data source an item came from: the original set's name when an import kept it (metadata.data_source,
    e.g. CodeDance-RL's `thinklite_eureka`), else the importer or generator that made it (metadata.source).
    The reward routes math items by it, and the engines group their metrics by it."""
    metadata = metadata or {}
    return str(metadata.get("data_source") or metadata.get("source") or default)


def question_text(task: Trajectory) -> str:
    """The user's question, with lettered options appended for multiple choice (as every prompt shows it)."""
    if not task.choices:
        return task.question
    options = "\n".join(f"{CHOICE_LETTERS[i]}. {choice}" for i, choice in enumerate(task.choices[: len(CHOICE_LETTERS)]))
    return f"{task.question}\nOptions:\n{options}"
