"""The in-process transformers client on the tiny random Qwen2.5-VL: real processor, chat template, generate."""

from __future__ import annotations

import asyncio

import pytest
from PIL import Image

from codedance_cli.clients import create_client
from codedance_cli.clients.transformers_local import TransformersClient
from codedance_cli.loop.format import build_messages
from codedance_cli.loop.prompts import DEFAULT_VERSION, TOOLCALL_VERSION
from codedance_cli.loop.runner import run_trajectory
from codedance_cli.recipes.common import LoopConfig, ModelSpec, SandboxConfig
from codedance_cli.sandbox import create_sandbox
from codedance_cli.trajectory.schema import Observation, Trajectory, Turn, encode_image


@pytest.fixture(scope="module")
def client(tiny_model_dir):
    spec = ModelSpec(path=str(tiny_model_dir), device="cpu", dtype="float32", max_pixels=64 * 28 * 28)
    made = create_client(spec)
    assert isinstance(made, TransformersClient)
    return made


def task() -> Trajectory:
    return Trajectory(task_id="red", question="What color is the square?", images=[encode_image(Image.new("RGB", (120, 90), (220, 30, 30)))])


def test_generate_with_image_counts_tokens(client):
    generation = asyncio.run(client.generate(build_messages(task(), [], DEFAULT_VERSION), max_new_tokens=5))
    assert generation.completion_tokens <= 5 and generation.prompt_tokens > 100 and generation.seconds > 0
    assert generation.finish_reason in ("stop", "length") and isinstance(generation.text, str)


def test_multi_turn_with_observation_image_and_concurrent_calls(client):
    turns = [Turn(text="```python\ninput_image.crop((0, 0, 60, 45))\n```", code="x", observation=Observation(images=[encode_image(Image.new("RGB", (60, 45)))]))]
    messages = build_messages(task(), turns, TOOLCALL_VERSION)

    async def both():
        return await asyncio.gather(
            client.generate(messages, max_new_tokens=4),
            client.generate(messages, max_new_tokens=4, temperature=0.8, top_p=0.9),
        )

    greedy, sampled = asyncio.run(both())
    assert greedy.prompt_tokens == sampled.prompt_tokens > 100  # two images' worth of vision tokens, same prompt


def test_loop_runs_end_to_end_with_the_tiny_model(client):
    async def go():
        async with create_sandbox(SandboxConfig(workers=1)) as sandbox:
            return await run_trajectory(task(), client, sandbox, LoopConfig(max_turns=2, max_new_tokens=8))

    result = asyncio.run(go())
    # A random model writes gibberish: the loop must end it cleanly with a defined reason and full accounting.
    assert result.stop_reason in ("no_code", "max_tokens", "max_turns", "answer", "repeated_failure")
    assert result.turns and all(t.completion_tokens is not None and t.generation_s is not None for t in result.turns)
    assert "error" not in result.metadata


def test_processor_expands_one_placeholder_per_merged_patch_and_honours_the_pixel_budget(tiny_model_dir):
    from codedance_cli.clients.transformers_local import load_processor, to_processor_messages

    big = Trajectory(task_id="b", question="q", images=[encode_image(Image.new("RGB", (448, 448))), encode_image(Image.new("RGB", (200, 100)))])
    counts = []
    for max_pixels in (16 * 28 * 28, 64 * 28 * 28):
        processor = load_processor(str(tiny_model_dir), max_pixels=max_pixels)
        inputs = processor.apply_chat_template(to_processor_messages(build_messages(big, [], DEFAULT_VERSION)), add_generation_prompt=True,
                                               tokenize=True, return_dict=True, return_tensors="pt")
        pad_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
        grids = inputs["image_grid_thw"]
        assert int((inputs["input_ids"] == pad_id).sum()) == int(grids.prod(dim=1).sum()) // 4
        assert all(int(h) * int(w) * 14 * 14 <= max_pixels for _, h, w in grids.tolist())
        counts.append(int((inputs["input_ids"] == pad_id).sum()))
    assert counts[0] < counts[1]
