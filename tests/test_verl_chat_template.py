"""Our verl chat template renders a rollout as verl holds it (tool results as `tool` messages) to exactly what SFT
trains on: the loop's `build_messages` under the same template, and ms-swift's `codedance_qwen2_5_vl` encoding of the
exported record, text and token ids (image pads collapsed: the processors expand them by their own pixel budgets)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("verl")

from codedance_cli.data.export_swift import swift_record  # noqa: E402
from codedance_cli.engines.tool_schema import tool_schema_dict  # noqa: E402
from codedance_cli.engines.verl.chat_template import CHAT_TEMPLATE  # noqa: E402
from codedance_cli.engines.verl.tool import observation_response  # noqa: E402
from codedance_cli.loop.format import build_messages, task_messages  # noqa: E402
from codedance_cli.loop.prompts import TOOL_RESPONSE_NUDGE, TOOLCALL_VERSION  # noqa: E402
from codedance_cli.recipes.common import LoopConfig  # noqa: E402
from codedance_cli.trajectory.schema import Observation, Trajectory, decode_image, question_text  # noqa: E402
from sft_trajectories import make_trajectories  # noqa: E402

CONFIG = LoopConfig(prompt_version=TOOLCALL_VERSION)
IMAGE_PAD = "<|image_pad|>"


@pytest.fixture(scope="module")
def processor(tiny_model_dir: Path) -> Any:
    """The tiny model's processor with our template set, as verl's agent loop workers set it."""
    from codedance_cli.models.qwen_processor import load_processor

    processor = load_processor(str(tiny_model_dir))
    processor.chat_template = processor.tokenizer.chat_template = CHAT_TEMPLATE
    return processor


@pytest.fixture(scope="module")
def swift_template(tiny_model_dir: Path) -> Any:
    """ms-swift's template the nano recipe trains with, in training mode."""
    from swift import get_processor, get_template

    from codedance_cli.engines.swift.qwen_pil import NAME, register

    register()
    template = get_template(get_processor(str(tiny_model_dir), model_type=NAME), template_type=NAME)
    template.set_mode("train")
    return template


def tool_message(obs: Observation) -> dict[str, Any]:
    """Our tool's response to `obs` as verl's ToolAgentLoop makes it a message (images first, then the text)."""
    response = observation_response(obs, CONFIG.observation_max_pixels, CONFIG.max_observation_images)
    if not response.image:
        return {"role": "tool", "content": response.text}
    return {"role": "tool", "content": [*({"type": "image", "image": image} for image in response.image),
                                        {"type": "text", "text": response.text}]}  # fmt: skip


def verl_messages(traj: Trajectory) -> list[dict[str, Any]]:
    """`traj` as verl's tool agent loop holds it: the prompt as RLHFDataset builds it from our export, each assistant
    turn as its text, each result as a tool message."""
    images = [{"type": "image", "image": decode_image(data)} for data in traj.images]
    messages = [{"role": "system", "content": task_messages(traj, TOOLCALL_VERSION)[0]["content"]},
                {"role": "user", "content": [*images, {"type": "text", "text": question_text(traj)}]}]  # fmt: skip
    for turn in traj.turns:
        messages.append({"role": "assistant", "content": turn.text})
        if turn.observation is not None:
            messages.append(tool_message(turn.observation))
    return messages


def render(processor: Any, messages: list[dict[str, Any]], **kwargs: Any) -> str:
    return processor.apply_chat_template(messages, tokenize=False, **kwargs)


def collapse(ids: list[int], pad: int) -> list[int]:
    return [token for index, token in enumerate(ids) if token != pad or index == 0 or ids[index - 1] != pad]


def test_a_rollout_renders_as_the_sft_data(processor: Any, swift_template: Any, tmp_path: Path) -> None:
    tokenizer = processor.tokenizer
    pad = tokenizer.convert_tokens_to_ids(IMAGE_PAD)
    for index, traj in enumerate(make_trajectories(3, prompt_version=TOOLCALL_VERSION)):  # crops (images), a failing cell
        verl_form = verl_messages(traj)
        assert [m["role"] for m in verl_form].count("tool") == len(traj.turns) - 1
        text = render(processor, verl_form, tools=[tool_schema_dict()])  # verl always passes tools=: ignored
        assert text == render(processor, verl_form)
        # the loop's own SFT messages (results as user turns) under the same template
        assert text == render(processor, build_messages(traj, traj.turns, TOOLCALL_VERSION, CONFIG))
        assert text.count(f"</tool_response>\n{TOOL_RESPONSE_NUDGE}<|im_end|>\n") == len(traj.turns) - 1
        assert f"[1 image attached]\n<|vision_start|>{IMAGE_PAD}<|vision_end|></tool_response>" in text
        # what ms-swift trains on: the exported record through its template, text and token ids
        encoded = swift_template.encode(swift_record(traj, tmp_path / f"images{index}"))
        swift_ids = collapse(encoded["input_ids"], pad)
        assert tokenizer.decode(swift_ids) == text
        assert swift_ids == tokenizer.encode(text, add_special_tokens=False)
        # the prompt verl renders first (generation prompt on) is the loop's prompt
        prompt = render(processor, verl_form[:2], add_generation_prompt=True, tools=[tool_schema_dict()])
        assert prompt == render(processor, task_messages(traj, TOOLCALL_VERSION), add_generation_prompt=True)
        assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_default_system_and_parallel_results(processor: Any, swift_template: Any, tmp_path: Path) -> None:
    """No system message: Qwen2.5-VL's (and ms-swift's) default one. Consecutive results: one user turn, one nudge."""
    from PIL import Image

    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "red.png")
    swift_messages = [{"role": "user", "content": "<image>What colour?"}, {"role": "assistant", "content": "<answer>red</answer>"}]
    encoded = swift_template.encode({"messages": swift_messages, "images": [str(tmp_path / "red.png")]})
    pad = processor.tokenizer.convert_tokens_to_ids(IMAGE_PAD)
    ours = render(processor, [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]},
                              {"role": "assistant", "content": "<answer>red</answer>"}])  # fmt: skip
    assert processor.tokenizer.decode(collapse(encoded["input_ids"], pad)) == ours
    assert ours.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")

    results = [{"role": "tool", "content": "1"}, {"role": "tool", "content": "2"}]
    text = render(processor, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, *results],
                  add_generation_prompt=True)  # fmt: skip
    assert text.endswith(
        "<|im_start|>user\n<tool_response>\n1\n</tool_response>\n<tool_response>\n2\n</tool_response>\n"
        f"{TOOL_RESPONSE_NUDGE}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert "${" not in CHAT_TEMPLATE and re.search(r"<\|im_start\|>tool", text) is None
