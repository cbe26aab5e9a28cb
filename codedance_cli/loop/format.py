"""The one conversation format every client consumes and SFT export writes.

`build_messages` turns a task plus the turns so far into OpenAI-style chat
messages (images as data URLs). The HTTP client sends them as they are; the
transformers and vLLM clients convert them; the SFT exporter writes them. Keeping
one renderer means the model is trained on exactly what it sees at rollout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from codedance_cli.loop.prompts import NO_OUTPUT_MESSAGE, TOOL_RESPONSE_NUDGE, is_toolcall, system_prompt
from codedance_cli.recipes.common import LoopConfig

from codedance_cli.trajectory.media import data_url, fit_image
from codedance_cli.trajectory.schema import Observation, Trajectory, Turn, question_text


def observation_text(obs: Observation, num_images: int) -> str:
    """The observation as plain text: output, then the error, or the fixed no-output message."""
    parts: list[str] = []
    if obs.stdout.strip():
        parts.append(obs.stdout.rstrip())
    if obs.timed_out:
        parts.append(f"Error: Timeout: {obs.error or 'the cell exceeded its time limit and was killed'}")
    elif obs.error_type is not None:
        detail = (obs.error or "").strip()
        # A traceback already names the exception; a bare message does not.
        parts.append(f"Error: {detail}" if obs.error_type in detail else f"Error: {obs.error_type}: {detail}".rstrip(": "))
    if num_images:
        parts.append(f"[{num_images} image{'s' if num_images > 1 else ''} attached]")
    if not parts:
        return NO_OUTPUT_MESSAGE
    return "\n".join(parts)


def render_observation(
    obs: Observation,
    version: str,
    *,
    max_pixels: int = LoopConfig.model_fields["observation_max_pixels"].default,
    max_images: int = LoopConfig.model_fields["max_observation_images"].default,
) -> tuple[str, list[bytes]]:
    """(text the model sees, images resized to the pixel budget) for one executed cell.

    The text is the whole user turn: for the tool-call format it is wrapped in
    `<tool_response>` and followed by the fixed nudge (images sit inside the
    response in `observation_content`).
    """
    images = [fitted for data in obs.images[:max_images] if (fitted := fit_image(data, max_pixels)) is not None]
    body = observation_text(obs, len(images))
    if is_toolcall(version):
        return f"<tool_response>\n{body}\n</tool_response>\n{TOOL_RESPONSE_NUDGE}", images
    return f"Code execution result:\n{body}", images


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _image(data: bytes) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": data_url(data)}}


def observation_content(obs: Observation, version: str, config: LoopConfig) -> list[dict[str, Any]]:
    """Content parts of the user turn carrying an observation (images before the closing tag)."""
    text, images = render_observation(obs, version, max_pixels=config.observation_max_pixels, max_images=config.max_observation_images)
    if is_toolcall(version) and images:
        head, _, tail = text.partition("\n</tool_response>")
        return [_text(head + "\n"), *(_image(data) for data in images), _text("</tool_response>" + tail)]
    return [_text(text), *(_image(data) for data in images)]


def task_messages(task: Trajectory, version: str) -> list[dict[str, Any]]:
    """System prompt + the first user turn (input images, then the question)."""
    return [
        {"role": "system", "content": system_prompt(version)},
        {"role": "user", "content": [*(_image(data) for data in task.images), _text(question_text(task))]},
    ]


def build_messages(task: Trajectory, turns: Sequence[Turn], version: str, config: LoopConfig | None = None) -> list[dict[str, Any]]:
    """OpenAI-style chat messages for `task` after `turns`, ready for the next assistant turn."""
    config = config or LoopConfig()
    messages = task_messages(task, version)
    for turn in turns:
        messages.append({"role": "assistant", "content": turn.text})
        if turn.observation is not None:
            messages.append({"role": "user", "content": observation_content(turn.observation, version, config)})
    return messages
