"""A frozen vision encoder gets no backward pass under gradient checkpointing (codedance_cli/engines/swift/frozen_vit.py).

Two real `codedance sft` runs of the nano model with gradient checkpointing, the ViT frozen and its merger trained
(the recipes' `freeze_vit: true`, `freeze_aligner: false`), profiled by benchmarks/sft_probe.py: with ms-swift's own
set-up (CODEDANCE_KEEP_VIT_BACKWARD=1) every ViT attention call also runs backward; with ours only the LLM's do, and
the losses and gradient norms are the same to the last logged digit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("swift")

from conftest import REPO_ROOT, run_codedance  # noqa: E402

BACKWARD = "aten::_scaled_dot_product_flash_attention_for_cpu_backward"


def _run(tiny_model_dir: Path, items: Path, out: Path, keep: bool) -> tuple[dict, list[dict]]:
    env = {"CODEDANCE_PROFILE_STEPS": "1:2", "PYTHONPATH": str(REPO_ROOT / "benchmarks"),
           **({"CODEDANCE_KEEP_VIT_BACKWARD": "1"} if keep else {})}
    result = run_codedance(
        "sft", REPO_ROOT / "recipes" / "nano" / "sft.yaml", "--set", f"model={tiny_model_dir}", "--set", f"dataset.path={items}",
        "--set", f"output_dir={out}", "--set", "train.max_steps=4", "--set", "train.logging_steps=1", "--set", "train.save_steps=4",
        "--set", "train.per_device_train_batch_size=1", "--set", "train.gradient_accumulation_steps=2",
        "--set", "train.gradient_checkpointing=true",
        "--set", f"extra_args=[--custom_register_path, {REPO_ROOT / 'benchmarks' / 'sft_probe.py'}]", env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    steps = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    return json.loads((out / "profile.json").read_text()), [step for step in steps if "loss" in step]


def _calls(profile: dict, op: str) -> float:
    return next((entry["calls_per_step"] for entry in profile["top_ops"] if entry["op"] == op), 0.0)


def test_frozen_encoder_skips_its_backward_and_keeps_the_gradients(tiny_model_dir: Path, nano_items: Path, tmp_path: Path) -> None:
    kept, kept_steps = _run(tiny_model_dir, nano_items, tmp_path / "kept", keep=True)
    ours, our_steps = _run(tiny_model_dir, nano_items, tmp_path / "ours", keep=False)
    llm_calls = 2 * 2  # 2 LLM layers x 2 micro-batches a step: the only attention that still runs backward
    assert _calls(ours, BACKWARD) == llm_calls
    assert _calls(kept, BACKWARD) > llm_calls  # ms-swift's set-up: the frozen ViT's attention runs backward too
    assert [s["loss"] for s in our_steps] == [s["loss"] for s in kept_steps]
    assert [s["grad_norm"] for s in our_steps] == [s["grad_norm"] for s in kept_steps]  # the merger still trains
