"""ms-swift's Qwen2.5-VL template on the tiny model: loss on assistant turns only, observations get label -100.

The template is the one the nano recipe trains with (`codedance_qwen2_5_vl`: ms-swift's stock Qwen2.5-VL
template with a PIL image processor and the tokenizer's image ids), so this checks exactly what training sees.
"""

from __future__ import annotations

from itertools import accumulate
from pathlib import Path

import pytest

from codedance_cli.data.export_swift import swift_record
from sft_trajectories import make_trajectories


def _spans(ids: list[int], labels: list[int], decode) -> list[tuple[bool, str]]:
    """Runs of consecutive tokens that are trained (label != -100) or masked, decoded."""
    spans: list[tuple[bool, list[int]]] = []
    for token, label in zip(ids, labels):
        trained = label != -100
        if not spans or spans[-1][0] != trained:
            spans.append((trained, []))
        spans[-1][1].append(token)
    return [(trained, decode(tokens)) for trained, tokens in spans]


@pytest.mark.parametrize("version", ["codedance-v1", "codedance-toolcall-v1"])
def test_observation_tokens_are_masked(tiny_model_dir: Path, tmp_path: Path, monkeypatch, version: str) -> None:
    monkeypatch.setenv("MAX_PIXELS", "50176")
    from swift import get_processor, get_template

    from codedance_cli.engines.swift.qwen_pil import NAME, register

    register()
    traj = make_trajectories(1, prompt_version=version)[0]  # crop (with image), failing cell, answer
    record = swift_record(traj, tmp_path / "images")
    processor = get_processor(str(tiny_model_dir), model_type=NAME)
    template = get_template(processor, template_type=NAME)
    template.set_mode("train")
    encoded = template.encode({"messages": record["messages"], "images": record["images"]})
    ids, labels = encoded["input_ids"], encoded["labels"]
    assert len(ids) == len(labels)
    _assert_only_assistant_turns_trained(traj, ids, labels, processor.tokenizer.decode, version)
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    image_positions = [i for i, token in enumerate(ids) if token == image_id]
    grid = encoded["image_grid_thw"]
    assert len(image_positions) == int(grid.prod(dim=1).sum()) // 4  # every image expanded to its merged patches
    assert all(labels[i] == -100 for i in image_positions)
    assert encoded["image_grid_thw"].shape[0] == 2  # the input image and the observation's crop


def _assert_only_assistant_turns_trained(traj, ids: list[int], labels: list[int], decode, version: str) -> None:
    """Exactly the assistant turns carry labels; system, question, images and every observation are -100."""
    spans = _spans(ids, labels, decode)
    trained = [text for is_trained, text in spans if is_trained]
    masked = "".join(text for is_trained, text in spans if not is_trained)
    # exactly the assistant turns are trained, each through its <|im_end|>
    assert trained == [f"{turn.text}<|im_end|>\n" for turn in traj.turns]
    # system, question, image tokens and every observation (stdout, error, images) are -100
    assert masked.startswith("<|im_start|>system\n") and traj.question in masked
    assert "crop (" in masked
    if any(turn.observation and turn.observation.error_type for turn in traj.turns):
        assert "NameError" in masked
    if version == "codedance-toolcall-v1":
        assert "<tool_response>" in masked and "<tool_response>" not in "".join(trained)


@pytest.mark.parametrize("knob", ["padding_free", "packing"])
def test_observations_stay_masked_when_samples_share_a_row(tiny_model_dir: Path, tmp_path: Path, monkeypatch,
                                                           knob: str) -> None:
    """`--padding_free` / `--packing` (benchmarks/sft_throughput.py's rows) concatenate samples into one row: each
    sample's labels must be exactly those it has alone, so tool output stays masked and no loss crosses samples."""
    monkeypatch.setenv("MAX_PIXELS", "50176")
    from swift import get_model_processor, get_template

    from codedance_cli.engines.swift.qwen_pil import NAME, register

    register()
    version = "codedance-toolcall-v1"
    trajectories = make_trajectories(3, prompt_version=version)  # the first has a failing cell too
    model, processor = get_model_processor(str(tiny_model_dir), model_type=NAME)
    template = get_template(processor, template_type=NAME)
    template.set_mode("train")
    template.model = model  # a padding-free row's 3-D rope positions come from the model's get_rope_index
    alone = [template.encode(swift_record(traj, tmp_path / f"images{i}"), return_length=True)
             for i, traj in enumerate(trajectories)]
    template.padding_free = True
    if knob == "packing":  # what PackingDataset hands the collator: a list of the samples packed into one row
        template.packing = True
        row = template.data_collator([[dict(encoded) for encoded in alone]])
    else:
        row = template.data_collator([dict(encoded) for encoded in alone])

    assert row["input_ids"].shape[0] == 1 and "attention_mask" not in row  # one row, no padding
    bounds = row["cu_seq_lens_q"].tolist()
    assert bounds == [0, *accumulate(len(encoded["input_ids"]) for encoded in alone)]
    for traj, encoded, start, end in zip(trajectories, alone, bounds, bounds[1:]):
        ids, labels = row["input_ids"][0, start:end].tolist(), row["labels"][0, start:end].tolist()
        assert ids == encoded["input_ids"] and labels == encoded["labels"]
        assert labels[0] == -100  # a sample's first token is never the target of the previous sample's last
        _assert_only_assistant_turns_trained(traj, ids, labels, processor.tokenizer.decode, version)


@pytest.mark.parametrize("max_pixels, grid", [("50176", [1, 12, 18]), ("200704", [1, 26, 36])])
def test_the_template_resizes_to_the_recipes_pixel_budget(tiny_model_dir: Path, tmp_path: Path, monkeypatch,
                                                          max_pixels: str, grid: list[int]) -> None:
    """`codedance sft` passes the recipe's max_pixels as MAX_PIXELS; the PIL template must honour it (it once used the
    checkpoint's saved size instead, so a 'MAX_PIXELS=200704' run trained at 50176) and the checkpoint records it."""
    monkeypatch.setenv("MAX_PIXELS", max_pixels)
    from PIL import Image
    from swift import get_processor, get_template

    from codedance_cli.engines.swift.qwen_pil import NAME, register

    register()
    image = tmp_path / "wide.png"
    Image.new("RGB", (640, 480), (200, 30, 30)).save(image)
    messages = [{"role": "user", "content": "<image>What colour?"}, {"role": "assistant", "content": "<answer>red</answer>"}]
    processor = get_processor(str(tiny_model_dir), model_type=NAME)
    template = get_template(processor, template_type=NAME)
    template.set_mode("train")
    encoded = template.encode({"messages": messages, "images": [str(image)]})
    assert encoded["image_grid_thw"].tolist() == [grid]
    # the checkpoint's processor records the budget, so evaluation defaults to what training saw
    from codedance_cli.models.pixel_budget import saved_max_pixels, trained_max_pixels

    processor.save_pretrained(tmp_path / "checkpoint")
    assert saved_max_pixels(str(tmp_path / "checkpoint")) == int(max_pixels)
    assert trained_max_pixels(tmp_path / "checkpoint") == int(max_pixels)  # and the exact record `codedance rl` holds to
