"""The nano recipe end to end on CPU: procedural data -> `codedance sft` -> real ms-swift steps -> a loadable checkpoint."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from conftest import REPO_ROOT, run_codedance

pytestmark = pytest.mark.slow


def test_nano_sft_trains_and_writes_a_loadable_checkpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "synth"
    synth = run_codedance("synth", REPO_ROOT / "recipes" / "nano" / "synth.yaml", "--set", "num_items=8",
                          "--set", f"output={data}", timeout=300)
    assert synth.returncode == 0, synth.stderr[-2000:]

    out = tmp_path / "sft"
    result = run_codedance(
        "sft", REPO_ROOT / "recipes" / "nano" / "sft.yaml", "--set", f"model={tiny_model_dir}", "--set", f"dataset.path={data}",
        "--set", f"output_dir={out}", "--set", "train.max_steps=10", "--set", "train.logging_steps=1", "--set", "train.save_steps=10",
        timeout=600,
    )
    assert result.returncode == 0, (result.stderr[-3000:], (out / "swift.log").read_text()[-3000:] if (out / "swift.log").exists() else "")
    assert "done 10 logged steps" in result.stderr
    assert result.stderr.count("swift sft: step ") == 10  # piped: a plain line per logged step, not a silent bar

    # the losses ms-swift logged (its own logging.jsonl) fall as the model learns the turn format
    records = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 10
    assert sum(losses[-3:]) / 3 < losses[0] - 0.3, losses
    assert json.loads((out / "sft_summary.json").read_text())["losses"] == pytest.approx(losses, abs=1e-3)

    # `last` points at the checkpoint, which loads as a Qwen2.5-VL with its tokenizer and chat template
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    last = out / "last"
    assert last.is_symlink() and last.resolve() == (out / "checkpoint-10").resolve()
    model = AutoModelForImageTextToText.from_pretrained(last)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    tokenizer = AutoTokenizer.from_pretrained(last)
    assert "<|vision_start|>" in tokenizer.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}], tokenize=False, add_generation_prompt=True)
    saved = json.loads((last / "processor_config.json").read_text())
    assert saved["processor_class"] == "Qwen2_5_VLProcessor" and "video_processor" in saved  # stock AutoProcessor loads it
    if importlib.util.find_spec("torchvision") is not None:
        from transformers import AutoProcessor

        assert type(AutoProcessor.from_pretrained(last)).__name__ == "Qwen2_5_VLProcessor"
    assert (out / "data" / "train.jsonl").is_file() and (out / "swift.log").is_file()

    # and `codedance infer` runs the trained checkpoint on an image
    from PIL import Image

    Image.new("RGB", (120, 90), "red").save(tmp_path / "red.png")
    infer = run_codedance("infer", "What colour is it?", "-i", tmp_path / "red.png", "--model", last, "--json",
                          "--set", "loop.max_turns=1", "--set", "loop.max_new_tokens=4", timeout=300)
    assert infer.returncode == 0, infer.stderr[-2000:]
    trajectory = json.loads(infer.stdout)
    assert len(trajectory["turns"]) == 1 and trajectory["turns"][0]["completion_tokens"] >= 1
