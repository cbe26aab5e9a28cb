"""Observation rendering and the one conversation format all clients consume."""

from __future__ import annotations

import io

from PIL import Image

from codedance_cli.loop.format import build_messages, render_observation
from codedance_cli.loop.prompts import (
    DEFAULT_VERSION,
    NO_OUTPUT_MESSAGE,
    SYSTEM_PROMPTS,
    TOOL_RESPONSE_NUDGE,
    TOOLCALL_VERSION,
    system_prompt,
)
from codedance_cli.recipes.common import LoopConfig
from codedance_cli.trajectory.media import data_url, decode_data_url, fit_image
from codedance_cli.trajectory.schema import Observation, Trajectory, Turn, encode_image, question_text


def png(width: int, height: int, color=(200, 30, 30)) -> bytes:
    return encode_image(Image.new("RGB", (width, height), color))


def size_of(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def test_system_prompts_document_the_environment():
    assert set(SYSTEM_PROMPTS) == {DEFAULT_VERSION, TOOLCALL_VERSION, "direct-v1"}
    for version in (DEFAULT_VERSION, TOOLCALL_VERSION):
        text = system_prompt(version)
        for name in ("input_image", "input_images", "input_image_path", "plt.show()", "display(img)", "<answer>", "<think>"):
            assert name in text, (version, name)
    assert "```python" in system_prompt(DEFAULT_VERSION)
    assert '"name": "execute_python_code"' in system_prompt(TOOLCALL_VERSION) and "<tool_call>" in system_prompt(TOOLCALL_VERSION)


def test_no_output_message_is_the_fixed_text():
    text, images = render_observation(Observation(), DEFAULT_VERSION)
    assert text == f"Code execution result:\n{NO_OUTPUT_MESSAGE}" and images == []


def test_tool_format_wraps_and_nudges():
    text, _ = render_observation(Observation(stdout="(640, 480)\n"), TOOLCALL_VERSION)
    assert text == f"<tool_response>\n(640, 480)\n</tool_response>\n{TOOL_RESPONSE_NUDGE}"


def test_errors_are_shown_with_the_word_error():
    obs = Observation(stdout="partial\n", error_type="ZeroDivisionError", error="Traceback ...\nZeroDivisionError: division by zero")
    text, _ = render_observation(obs, DEFAULT_VERSION)
    assert "partial" in text and "Error: Traceback ...\nZeroDivisionError: division by zero" in text
    text, _ = render_observation(Observation(error_type="NameError", error="name 'x' is not defined"), DEFAULT_VERSION)
    assert "Error: NameError: name 'x' is not defined" in text
    text, _ = render_observation(Observation(timed_out=True, error_type="Timeout"), TOOLCALL_VERSION)
    assert "Error: Timeout" in text


def test_images_are_resized_to_the_pixel_budget_and_capped_in_number():
    obs = Observation(images=[png(2000, 1000)] * 6)
    text, images = render_observation(obs, DEFAULT_VERSION, max_pixels=100_000, max_images=4)
    assert len(images) == 4 and "[4 images attached]" in text
    width, height = size_of(images[0])
    assert width * height <= 100_000 and abs(width / height - 2.0) < 0.02


def test_fit_image_keeps_small_images_byte_identical_upscales_tiny_and_drops_degenerate():
    small = png(300, 200)
    assert fit_image(small, 1_000_000) is small
    assert min(size_of(fit_image(png(20, 40), 1_000_000))) == 112
    assert fit_image(png(4000, 10), 10_000_000) is None
    assert fit_image(b"not an image", 1000) is None


def test_question_text_appends_lettered_options():
    task = Trajectory(task_id="t", question="Which is red?", choices=["apple", "sky"])
    assert question_text(task) == "Which is red?\nOptions:\nA. apple\nB. sky"


def test_build_messages_shape():
    image = png(64, 64)
    task = Trajectory(task_id="t1", question="How many?", images=[image])
    turns = [
        Turn(text="<think>count</think>\n```python\nprint(3)\n```", code="print(3)", observation=Observation(stdout="3\n", images=[png(80, 80)])),
        Turn(text="<think>ok</think><answer>3</answer>"),
    ]
    messages = build_messages(task, turns, DEFAULT_VERSION, LoopConfig())
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert messages[0]["content"] == system_prompt(DEFAULT_VERSION)
    first = messages[1]["content"]
    assert first[0]["type"] == "image_url" and decode_data_url(first[0]["image_url"]["url"]) == image
    assert first[1] == {"type": "text", "text": "How many?"}
    assert messages[2]["content"] == turns[0].text
    observation = messages[3]["content"]
    assert observation[0]["text"].startswith("Code execution result:\n3") and observation[1]["type"] == "image_url"


def test_build_messages_tool_format_puts_images_inside_the_response():
    task = Trajectory(task_id="t1", question="q")
    turns = [Turn(text="<tool_call>...</tool_call>", code="x", observation=Observation(images=[png(64, 64)]))]
    content = build_messages(task, turns, TOOLCALL_VERSION)[-1]["content"]
    assert content[0]["text"].startswith("<tool_response>\n") and content[1]["type"] == "image_url"
    assert content[2]["text"].startswith("</tool_response>\n" ) and content[2]["text"].endswith(TOOL_RESPONSE_NUDGE)


def test_data_url_mime_from_magic():
    assert data_url(png(4, 4)).startswith("data:image/png;base64,")
    assert data_url(encode_image(Image.new("RGB", (4, 4)), "JPEG")).startswith("data:image/jpeg;base64,")
