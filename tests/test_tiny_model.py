"""The tiny random Qwen2.5-VL loads with the Auto classes and generates on an image on CPU."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None
needs_torchvision = pytest.mark.skipif(
    not HAS_TORCHVISION,
    reason="transformers 5 builds AutoProcessor / AutoImageProcessor of Qwen2.5-VL only with torchvision, and PyPI's torchvision does not load beside the CPU torch 2.13 build",
)


def _picture() -> Image.Image:
    image = Image.new("RGB", (224, 168), "white")
    ImageDraw.Draw(image).rectangle((20, 20, 90, 80), fill="red")
    return image


def _messages() -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many red squares?"}]}]


def test_config_token_ids_match_the_tokenizer(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    for field, token in [("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
                         ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")]:
        assert config[field] == tokenizer.convert_tokens_to_ids(token), field
    assert config["text_config"]["eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert config["text_config"]["vocab_size"] >= len(tokenizer)
    for tag in ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>", "<answer>", "</answer>"]:
        assert len(tokenizer(tag, add_special_tokens=False)["input_ids"]) == 1, tag
    # tags the model writes survive decoding; chat control tokens are special
    ids = tokenizer("<think>a</think><|im_end|>", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "<think>a</think>"


def test_chat_template_renders_tools_images_and_tool_responses(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tools = [{"type": "function", "function": {"name": "execute_python_code", "parameters": {"type": "object"}}}]
    messages = [
        *_messages(),
        {"role": "assistant", "content": "<think>crop</think>",
         "tool_calls": [{"type": "function", "function": {"name": "execute_python_code", "arguments": {"code": "print(1)"}}}]},
        {"role": "tool", "content": "1"},
        {"role": "tool", "content": [{"type": "text", "text": "fig"}, {"type": "image"}]},
    ]
    text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n")
    assert '"name": "execute_python_code"' in text
    assert "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>How many red squares?<|im_end|>" in text
    assert '<tool_call>\n{"name": "execute_python_code", "arguments": {"code": "print(1)"}}\n</tool_call><|im_end|>' in text
    assert ("<|im_start|>user\n<tool_response>\n1\n</tool_response>\n<tool_response>\nfig"
            "<|vision_start|><|image_pad|><|vision_end|>\n</tool_response><|im_end|>\n<|im_start|>assistant\n") in text
    # A system prompt that already lists the tools (the tool-call format's) is not given a second list.
    from codedance_cli.loop.prompts import TOOLCALL_VERSION, system_prompt

    listed = [{"role": "system", "content": system_prompt(TOOLCALL_VERSION)}, *_messages()]
    assert tokenizer.apply_chat_template(listed, tools=tools, tokenize=False) == tokenizer.apply_chat_template(listed, tokenize=False)


def test_model_loads_and_generates_on_an_image(tiny_model_dir: Path) -> None:
    """Model + tokenizer + the saved Qwen2-VL image processor settings, without needing AutoProcessor."""
    from transformers import AutoModelForImageTextToText, AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    settings = json.loads((tiny_model_dir / "processor_config.json").read_text())["image_processor"]
    assert settings["image_processor_type"] == "Qwen2VLImageProcessor"
    settings.pop("image_processor_type")
    image_processor = Qwen2VLImageProcessorPil(**settings)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert sum(p.numel() for p in model.parameters()) < 5_000_000

    vision = image_processor(images=[_picture()], return_tensors="pt")
    merge = image_processor.merge_size**2
    n_tokens = int(vision["image_grid_thw"][0].prod()) // merge
    assert n_tokens <= settings["size"]["longest_edge"] // (28 * 28)  # the small pixel budget holds
    prompt = tokenizer.apply_chat_template(_messages(), tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(prompt.replace("<|image_pad|>", "<|image_pad|>" * n_tokens), return_tensors="pt")
    started = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**inputs, **vision, max_new_tokens=8, do_sample=False)
    assert time.perf_counter() - started < 30  # ~0.1 s alone; generous for 2 busy cores
    new = out[0, inputs["input_ids"].shape[1]:]
    assert 1 <= len(new) <= 8
    assert isinstance(tokenizer.decode(new), str)


@needs_torchvision
def test_auto_processor_round_trip_and_generate(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    text = processor.apply_chat_template(_messages(), add_generation_prompt=True)
    inputs = processor(text=[text], images=[_picture()], return_tensors="pt")
    assert (inputs["input_ids"] == model.config.image_token_id).sum() == inputs["image_grid_thw"][0].prod() // 4
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_build_is_deterministic(tmp_path: Path, repo_root: Path) -> None:
    """Same seed, same files: the tokenizer and the weights are byte-identical across builds (in-process: fast)."""
    import importlib.util as loader

    from safetensors.torch import load_file

    spec = loader.spec_from_file_location("make_tiny_model", repo_root / "scripts" / "make_tiny_model.py")
    script = loader.module_from_spec(spec)
    spec.loader.exec_module(script)
    for name in ("again", "reference"):
        script.main([str(tmp_path / name), "--layers", "1"])
    out, reference = tmp_path / "again", tmp_path / "reference"
    assert (out / "tokenizer.json").read_bytes() == (reference / "tokenizer.json").read_bytes()
    assert (out / "processor_config.json").read_bytes() == (reference / "processor_config.json").read_bytes()
    a, b = load_file(out / "model.safetensors"), load_file(reference / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_presets_give_the_real_shapes_and_flags_still_win() -> None:
    """The GPU benchmarks build Qwen2.5-VL-3B/7B-shaped models from a preset (values from their config.json)."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "make_tiny_model.py"
    spec = importlib.util.spec_from_file_location("make_tiny_model", script)
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    seven = tiny.parse_args(["out", "--preset", "qwen2.5-vl-7b"])
    assert (seven.hidden_size, seven.layers, seven.heads, seven.kv_heads, seven.intermediate_size) == (3584, 28, 28, 4, 18944)
    assert seven.padded_vocab_size == 152064 and not seven.tie_word_embeddings and seven.vision_depth == 32
    three = tiny.parse_args(["out", "--preset", "qwen2.5-vl-3b", "--layers", "2"])
    assert (three.hidden_size, three.layers, three.tie_word_embeddings) == (2048, 2, True)
