"""The one conversation format every client consumes and SFT export writes.

`build_messages` turns a task plus the turns so far into OpenAI-style chat
messages (images as data URLs). The HTTP client sends them as they are; the
transformers and vLLM clients convert them; the SFT exporter writes them. Keeping
one renderer means the model is trained on exactly what it sees at rollout.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

from PIL import Image

from codedance_cli.loop.prompts import NO_OUTPUT_MESSAGE, TOOL_RESPONSE_NUDGE, is_toolcall, system_prompt
from codedance_cli.recipes.common import LoopConfig
from codedance_cli.trajectory.schema import Observation, Trajectory, Turn

# Qwen2.5-VL needs sides >= 28 px and an aspect ratio < 200; the release upscales tiny images to 112 px.
MIN_SIDE = 56
UPSCALED_SIDE = 112
MAX_ASPECT = 200
CHOICE_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def image_mime(data: bytes) -> str:
    """MIME type of encoded image bytes from their magic number (PNG, JPEG, GIF, WebP; else PNG)."""
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data.startswith(b"GIF8"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


def data_url(data: bytes) -> str:
    """Encoded image bytes -> `data:image/...;base64,...`."""
    return f"data:{image_mime(data)};base64,{base64.b64encode(data).decode('ascii')}"


def decode_data_url(url: str) -> bytes:
    """`data:...;base64,...` -> bytes (the inverse of `data_url`)."""
    header, _, payload = url.partition(",")
    if not header.startswith("data:") or ";base64" not in header:
        raise ValueError(f"not a base64 data URL: {url[:40]}...")
    return base64.b64decode(payload)


def fit_image(data: bytes, max_pixels: int) -> bytes | None:
    """Resize to at most `max_pixels` (aspect kept), upscale tiny images, drop degenerate ones (None).

    Unchanged images keep their original bytes, so re-rendering is byte-stable.
    """
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
    except Exception:
        return None
    if width < 1 or height < 1 or max(width, height) / min(width, height) > MAX_ASPECT:
        return None
    scale = 1.0
    if width * height > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
    elif min(width, height) < MIN_SIDE:
        scale = UPSCALED_SIDE / min(width, height)
    if scale == 1.0:
        return data
    # floor, so the budget is never exceeded by rounding
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    image.load()
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
    buffer = io.BytesIO()
    image.resize(size, resample).save(buffer, format="PNG")
    return buffer.getvalue()


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


def question_text(task: Trajectory) -> str:
    """The user's question, with lettered options appended for multiple choice."""
    if not task.choices:
        return task.question
    options = "\n".join(f"{CHOICE_LETTERS[i]}. {choice}" for i, choice in enumerate(task.choices[: len(CHOICE_LETTERS)]))
    return f"{task.question}\nOptions:\n{options}"


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
