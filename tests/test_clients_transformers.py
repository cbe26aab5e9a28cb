"""The in-process transformers client on the tiny random Qwen2.5-VL: real processor, chat template, generate."""

from __future__ import annotations

import asyncio
import gc
import random
import subprocess
import sys
import time
import weakref

import pytest
from PIL import Image

from codedance_cli.clients import Generation, create_client
from codedance_cli.clients.generate_batcher import GenerateBatcher
from codedance_cli.clients.transformers_local import RowEnd, TransformersClient, collate_left_padded, finish_row, to_processor_messages
from codedance_cli.loop.format import build_messages
from codedance_cli.trajectory.media import data_url
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
    from codedance_cli.clients.transformers_local import to_processor_messages
    from codedance_cli.models.qwen_processor import load_processor

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


def has_torchvision() -> bool:
    import importlib.util

    return importlib.util.find_spec("torchvision") is not None


def prepared(processor, trajectory: Trajectory):
    return processor.apply_chat_template(to_processor_messages(build_messages(trajectory, [], DEFAULT_VERSION)), add_generation_prompt=True,
                                         tokenize=True, return_dict=True, return_tensors="pt")


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


PHOTO = Trajectory(task_id="p", question="q", images=[encode_image(Image.frombytes("RGB", (640, 480), random.Random(7).randbytes(640 * 480 * 3)))])


@pytest.mark.parametrize("max_pixels", [None, 64 * 28 * 28, 256 * 28 * 28])
def test_the_processor_in_use_gives_the_grid_the_pixel_budget_allows(tiny_model_dir, max_pixels):
    """Whichever processor `load_processor` builds (the real one with torchvision, else the image-only one),
    `max_pixels` reaches the image processor: no argument keeps the saved 50176 (a 640x480 image -> 12x18 patches,
    54 visual tokens); 200704 gives 26x36 (234). An eval whose budget is silently ignored, or silently different from
    training, feeds the model a different number of visual tokens than it learned (that made a nano SFT model babble).
    """
    from codedance_cli.models.qwen_processor import load_processor

    processor = load_processor(str(tiny_model_dir), **({} if max_pixels is None else {"max_pixels": max_pixels}))
    inputs = prepared(processor, PHOTO)
    expected = {None: [1, 12, 18], 64 * 28 * 28: [1, 12, 18], 256 * 28 * 28: [1, 26, 36]}[max_pixels]
    assert inputs["image_grid_thw"].tolist() == [expected]
    pad_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((inputs["input_ids"] == pad_id).sum()) == expected[1] * expected[2] // 4
    assert torch_equal(inputs["mm_token_type_ids"], (inputs["input_ids"] == pad_id).long())


@pytest.mark.skipif(not has_torchvision(), reason="the real Qwen2.5-VL processor needs torchvision")
@pytest.mark.parametrize("max_pixels", [64 * 28 * 28, 256 * 28 * 28])
def test_the_real_processor_and_the_image_only_one_give_the_model_the_same_inputs(tiny_model_dir, max_pixels):
    """Where torchvision is present AutoProcessor builds the real Qwen2_5_VLProcessor; it must agree with the image-only
    processor used without torchvision (same tokens, grids and token types; pixels up to resize rounding)."""
    from transformers import Qwen2_5_VLProcessor

    from codedance_cli.models.qwen_processor import image_only_processor, load_processor

    real = load_processor(str(tiny_model_dir), max_pixels=max_pixels)
    assert isinstance(real, Qwen2_5_VLProcessor)
    ours, theirs = prepared(image_only_processor(str(tiny_model_dir), max_pixels=max_pixels), PHOTO), prepared(real, PHOTO)
    for name in ("input_ids", "attention_mask", "mm_token_type_ids", "image_grid_thw"):
        assert torch_equal(ours[name], theirs[name]), name
    assert ours["pixel_values"].shape == theirs["pixel_values"].shape
    assert float((ours["pixel_values"] - theirs["pixel_values"]).abs().mean()) < 0.01


def test_a_pixel_budget_above_the_checkpoints_saved_one_is_warned_about(tiny_model_dir, capsys):
    from codedance_cli.models.pixel_budget import check_pixel_budget, saved_max_pixels

    assert saved_max_pixels(str(tiny_model_dir)) == 64 * 28 * 28
    assert check_pixel_budget(str(tiny_model_dir), 64 * 28 * 28) is None
    assert check_pixel_budget(str(tiny_model_dir), None) is None
    assert check_pixel_budget(str(tiny_model_dir), 16 * 28 * 28) is None  # capping below the saved budget is routine
    message = check_pixel_budget(str(tiny_model_dir), 256 * 28 * 28)
    assert message is not None and "200704" in message and "50176" in message and "256 visual tokens instead of 64" in message
    from codedance_cli.clients.factory import create_client
    from codedance_cli.recipes.common import ModelSpec

    made = create_client(ModelSpec(path=str(tiny_model_dir), backend="transformers", device="cpu", dtype="float32", max_pixels=256 * 28 * 28))
    asyncio.run(made.aclose())
    assert "warning: model.max_pixels=200704 exceeds the pixel budget saved" in capsys.readouterr().err
    unset = ModelSpec.model_validate(str(tiny_model_dir))  # a plain string is the path; the budget defaults to the saved one
    assert unset.path == str(tiny_model_dir) and unset.max_pixels is None


def test_no_saved_budget_means_no_warning(tmp_path):
    from codedance_cli.models.pixel_budget import check_pixel_budget, saved_max_pixels

    assert saved_max_pixels(str(tmp_path)) is None and check_pixel_budget(str(tmp_path), 1234) is None
    (tmp_path / "preprocessor_config.json").write_text('{"max_pixels": 12845056, "min_pixels": 3136}')
    assert saved_max_pixels(str(tmp_path)) == 12845056 and check_pixel_budget(str(tmp_path), 12845056) is None


# --- batching: concurrent generate calls coalesce into one left-padded model.generate ---------------------------

def noise(width: int, height: int, seed: int) -> bytes:
    """A random-pixel image: distinct images make the random model's outputs differ, so comparisons bite."""
    return encode_image(Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(width * height * 3)))


def user(text: str, *images: bytes) -> list[dict]:
    if not images:
        return [{"role": "user", "content": text}]
    return [{"role": "user", "content": [*({"type": "image_url", "image_url": {"url": data_url(image)}} for image in images),
                                         {"type": "text", "text": text}]}]


MIXED = [  # different prompt lengths, text-only rows between image rows, different image sizes (so grids differ)
    user("hi", noise(120, 90, 1)),
    user("What is in the picture? Tell me in detail, please, and take your time."),
    user("count", noise(60, 200, 2)),
    user("Describe the colours and shapes you see here.", noise(300, 300, 3), noise(56, 56, 6)),
    user("xyz"),
    user("Where is the cat?", noise(90, 45, 4)),
    user("ok go"),
    user("zoom in on the left", noise(256, 128, 5)),
]


def comparable(generation: Generation) -> tuple:
    return generation.text, generation.prompt_tokens, generation.completion_tokens, generation.finish_reason


def concurrently(client: TransformersClient, requests: list, **options) -> list[Generation]:
    async def all_at_once():
        return await asyncio.gather(*(client.generate(messages, **options) for messages in requests))

    return asyncio.run(all_at_once())


def one_at_a_time(client: TransformersClient, requests: list, **options) -> list[Generation]:
    return [asyncio.run(client.generate(messages, **options)) for messages in requests]


def tiny_client(path, **kwargs) -> TransformersClient:
    return TransformersClient(str(path), device="cpu", dtype="float32", max_pixels=64 * 28 * 28, **kwargs)


@pytest.fixture(scope="module")
def single(tiny_model_dir):
    """The reference: batch size 1, every request alone."""
    made = tiny_client(tiny_model_dir, max_batch_size=1)
    yield made
    asyncio.run(made.aclose())


@pytest.fixture(scope="module")
def batched(tiny_model_dir):
    """A gather window, so that a whole `asyncio.gather` lands in one batch and the tests can count calls."""
    made = tiny_client(tiny_model_dir, max_batch_size=32, gather_s=0.2)
    yield made
    asyncio.run(made.aclose())


@pytest.fixture
def batch_sizes(batched, monkeypatch) -> list[int]:
    """Rows of each real `model.generate` call the batched client makes."""
    sizes: list[int] = []
    generate = batched.model.generate

    def counting(**inputs):
        sizes.append(int(inputs["input_ids"].shape[0]))
        return generate(**inputs)

    monkeypatch.setattr(batched.model, "generate", counting)
    return sizes


def test_concurrent_greedy_requests_run_as_one_batch_with_the_outputs_of_one_at_a_time(single, batched, batch_sizes):
    reference = one_at_a_time(single, MIXED, max_new_tokens=16)
    together = concurrently(batched, MIXED, max_new_tokens=16)
    assert batch_sizes == [len(MIXED)]
    assert [comparable(g) for g in together] == [comparable(g) for g in reference]
    assert len({g.prompt_tokens for g in reference}) >= 6  # rows of many lengths, so most are left-padded
    assert len({g.text for g in reference}) >= 4  # the random model says different things, so equality means something
    assert len({g.seconds for g in together}) == 1  # one call's wall time


def test_left_padded_rows_score_every_step_as_they_do_alone(batched):
    """Stricter than greedy equality (a random model's argmax hides small errors): per-step logits match to 1e-4.

    Wrong 3D rope positions for padded image rows (Qwen2.5-VL derives them from attention_mask and
    mm_token_type_ids) move these logits by ~1e-3; padding done right leaves only float noise (~1e-6).
    """
    import torch

    features = [batched.processor.apply_chat_template(to_processor_messages(m), add_generation_prompt=True, tokenize=True,
                                                      return_dict=True, return_tensors="pt") for m in MIXED]
    options = {"max_new_tokens": 4, "do_sample": False, "output_scores": True, "return_dict_in_generate": True,
               "pad_token_id": batched.pad_token_id}
    with torch.inference_mode():
        together = batched.model.generate(**collate_left_padded(features, batched.pad_token_id), **options)
        for row, feature in enumerate(features):
            alone = batched.model.generate(**collate_left_padded([feature], batched.pad_token_id), **options)
            for step, scores in enumerate(alone.scores):
                torch.testing.assert_close(together.scores[step][row], scores[0], atol=1e-4, rtol=0, msg=f"row {row} step {step}")


def test_each_row_stops_at_its_own_stop_string(single, batched, batch_sizes):
    full = one_at_a_time(single, MIXED, max_new_tokens=16)
    stopper, runner = pick_stop_rows([g.text for g in full])
    stop = [full[stopper].text[len(full[stopper].text) // 3:][:2]]
    assert stop[0] and stop[0] not in full[runner].text

    reference = one_at_a_time(single, MIXED, max_new_tokens=16, stop=stop)
    together = concurrently(batched, MIXED, max_new_tokens=16, stop=stop)
    assert batch_sizes == [len(MIXED)]
    assert [comparable(g) for g in together] == [comparable(g) for g in reference]
    cut = together[stopper]
    assert cut.finish_reason == "stop" and cut.text == full[stopper].text[: full[stopper].text.find(stop[0])]
    assert cut.completion_tokens < 16
    # The row without the stop string ran on, untouched by its neighbour's stop.
    assert comparable(together[runner]) == comparable(full[runner]) and together[runner].finish_reason == "length"


def pick_stop_rows(texts: list[str]) -> tuple[int, int]:
    """A row to stop mid-way and a row whose text lacks that row's stop string."""
    for stopper, text in enumerate(texts):
        stop = text[len(text) // 3:][:2]
        for runner, other in enumerate(texts):
            if len(stop) == 2 and stop not in other and len(other) > 0:
                return stopper, runner
    raise AssertionError(f"no pair of rows to test stop strings with: {texts}")


def test_requests_with_different_options_in_one_gather_run_as_separate_batches(single, batched, batch_sizes):
    options = [{"max_new_tokens": 3}, {"max_new_tokens": 9}, {"max_new_tokens": 3}, {"max_new_tokens": 9, "temperature": 0.0, "top_p": 0.5}]
    requests = MIXED[:4]

    async def mixed_gather():
        return await asyncio.gather(*(batched.generate(m, **o) for m, o in zip(requests, options, strict=True)))

    together = asyncio.run(mixed_gather())
    reference = [asyncio.run(single.generate(m, **o)) for m, o in zip(requests, options, strict=True)]
    assert sorted(batch_sizes) == [2, 2]  # greedy ignores top_p, so the last two share a call
    assert [comparable(g) for g in together] == [comparable(g) for g in reference]
    assert [g.completion_tokens for g in together] == [3, 9, 3, 9] and {g.finish_reason for g in together} == {"length"}


def test_an_unreadable_image_fails_only_its_own_request(batched, batch_sizes):
    broken = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "/nonexistent/picture.png"}}]}]

    async def with_a_broken_one():
        return await asyncio.gather(*(batched.generate(m, max_new_tokens=4) for m in [MIXED[0], broken, MIXED[1]]),
                                    return_exceptions=True)

    good, failed, also_good = asyncio.run(with_a_broken_one())
    assert isinstance(failed, FileNotFoundError)
    assert isinstance(good, Generation) and isinstance(also_good, Generation) and batch_sizes == [2]
    assert asyncio.run(batched.generate(MIXED[2], max_new_tokens=2)).completion_tokens == 2  # still serving


def test_the_text_only_judge_batches_too(tiny_judge_dir):
    requests = [user(text) for text in ("Is 3 equal to three?", "yes", "Grade this answer: the square is red, and it is large.",
                                        "Reference: red. Candidate: crimson. Same?")]
    alone, together_client = (TransformersClient(str(tiny_judge_dir), device="cpu", dtype="float32", max_batch_size=size, gather_s=0.2)
                              for size in (1, 8))
    reference = one_at_a_time(alone, requests, max_new_tokens=10)
    together = concurrently(together_client, requests, max_new_tokens=10)
    assert [comparable(g) for g in together] == [comparable(g) for g in reference]
    assert len({g.seconds for g in together}) == 1 and len({g.prompt_tokens for g in together}) == len(requests)
    for made in (alone, together_client):
        asyncio.run(made.aclose())
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(together_client.generate(requests[0], max_new_tokens=1))


def test_a_finished_row_ends_at_its_own_eos_or_stop_string_not_at_the_batch_padding():
    """After a row finishes, generate pads it until the batch is done; none of that padding is the row's output."""
    pieces = {1: "ab", 2: "c", 3: "```", 4: "d", 9: "", 0: "<pad>"}  # 9: EOS (decodes to nothing), 0: a pad that is no EOS

    def decode(tokens: list[int]) -> str:
        return "".join(pieces[t] for t in tokens)

    assert finish_row([1, 2, 9, 0, 0], eos_ids={9}, stop=(), decode=decode) == RowEnd(tokens=3, text="abc", finish_reason="stop")
    assert finish_row([1, 3, 4, 0, 0], eos_ids={9}, stop=("```",), decode=decode) == RowEnd(tokens=2, text="ab", finish_reason="stop")
    assert finish_row([1, 2, 4, 1], eos_ids={9}, stop=("```",), decode=decode) == RowEnd(tokens=4, text="abcdab", finish_reason="length")
    assert finish_row([2, 1, 2, 9, 0], eos_ids={9}, stop=("ca", "bc"), decode=decode) == RowEnd(tokens=2, text="", finish_reason="stop")


# --- the batcher alone: errors, shutdown, garbage collection ----------------------------------------------------

def shout(requests: list[str]) -> list[str]:
    if "boom" in requests:
        raise ValueError("boom")
    return [request.upper() for request in requests]


def test_a_raising_batch_fails_every_request_in_it_and_the_worker_keeps_serving():
    batcher = GenerateBatcher(shout, key=len, gather_s=0.2)

    async def go():
        first = await asyncio.gather(*(batcher.submit(r) for r in ("boom", "abcd", "ab")), return_exceptions=True)
        return first, await batcher.submit("ok")

    (boom, same_batch, other_batch), after = asyncio.run(go())
    assert isinstance(boom, ValueError) and isinstance(same_batch, ValueError)  # "abcd" shared the call with "boom"
    assert other_batch == "AB" and after == "OK"
    asyncio.run(batcher.aclose())


def test_aclose_serves_what_is_queued_then_ends_the_thread():
    def slow(requests: list[int]) -> list[int]:
        time.sleep(0.05)
        return [r * 2 for r in requests]

    batcher = GenerateBatcher(slow, key=lambda r: r % 2, max_batch_size=2)

    async def go():
        pending = [asyncio.ensure_future(batcher.submit(r)) for r in range(6)]
        await asyncio.sleep(0)
        await batcher.aclose()
        return await asyncio.gather(*pending)

    assert asyncio.run(go()) == [0, 2, 4, 6, 8, 10]
    assert not batcher._thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(batcher.submit(1))


def test_a_dropped_owner_ends_its_worker_thread():
    class Owner:
        def __init__(self) -> None:
            self.batcher = GenerateBatcher(self.run, key=lambda r: 0)
            weakref.finalize(self, self.batcher.stop)

        def run(self, requests: list[int]) -> list[int]:
            return requests

    owner = Owner()
    assert asyncio.run(owner.batcher.submit(7)) == 7
    thread = owner.batcher._thread
    del owner
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_the_interpreter_exits_without_aclose():
    script = ("import asyncio\nfrom codedance_cli.clients.generate_batcher import GenerateBatcher\n"
              "b = GenerateBatcher(lambda rs: rs, key=lambda r: 0)\nprint(asyncio.run(b.submit(5)))\n")
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "5"
