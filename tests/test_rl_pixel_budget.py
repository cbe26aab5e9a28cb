"""The pixel budget a checkpoint was trained at, recorded by our training and held to by `codedance rl`.

Two GPU RL runs (docs/results.md, fourth run, seed 7) trained the policy at 50176 pixels an image (the nano recipes'
shared model section) from an SFT model trained at 200704: nearly every rollout failed the format and RL could only
drift. These tests pin the record and the refusal that would have caught it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from codedance_cli.models.pixel_budget import (
    TRAINED_BUDGET_FILE,
    check_pixel_budget,
    record_pixel_budget,
    trained_max_pixels,
)
from conftest import REPO_ROOT, run_codedance

NANO_RL = REPO_ROOT / "recipes" / "nano" / "rl.yaml"
SFT_BUDGET = 256 * 28 * 28  # 200704, what scripts/gpu_rl_check.sh trains SFT at


def trained_checkpoint(tiny_model_dir: Path, folder: Path, max_pixels: int) -> Path:
    """The tiny model as a checkpoint our SFT wrote at `max_pixels`: its processor config and the record beside it."""
    shutil.copytree(tiny_model_dir, folder)
    record_pixel_budget(folder / "processor_config.json", (3136, max_pixels))
    return folder


def test_training_records_its_budget_and_a_smaller_one_is_then_a_mismatch_too(tiny_model_dir: Path, tmp_path: Path) -> None:
    checkpoint = trained_checkpoint(tiny_model_dir, tmp_path / "sft", SFT_BUDGET)
    assert json.loads((checkpoint / TRAINED_BUDGET_FILE).read_text()) == {"min_pixels": 3136, "max_pixels": SFT_BUDGET}
    assert trained_max_pixels(checkpoint) == SFT_BUDGET and trained_max_pixels(tiny_model_dir) is None
    assert check_pixel_budget(checkpoint, SFT_BUDGET) is None and check_pixel_budget(checkpoint, None) is None
    smaller = check_pixel_budget(checkpoint, 50176)
    assert smaller is not None and "64 visual tokens instead of 256" in smaller
    # without the record (a released model) a smaller budget is still the routine cap
    assert check_pixel_budget(tiny_model_dir, 16 * 28 * 28) is None


def test_rl_refuses_a_budget_other_than_the_one_sft_trained_at(tiny_model_dir: Path, tmp_path: Path) -> None:
    checkpoint = trained_checkpoint(tiny_model_dir, tmp_path / "sft", SFT_BUDGET)
    common = ("rl", NANO_RL, "--dry-run", "--set", f"model={checkpoint}", "--set", f"output_dir={tmp_path / 'rl'}")
    refused = run_codedance(*common)  # the nano recipes' model section says 50176
    assert refused.returncode == 2, refused.stdout + refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "model.max_pixels=50176 differs" in lines[0] and TRAINED_BUDGET_FILE in lines[0], refused.stderr
    for fix in ("model.max_pixels=null", f"model.max_pixels={SFT_BUDGET}"):
        planned = run_codedance(*common, "--set", fix)
        assert planned.returncode == 0, planned.stderr
        assert f"MAX_PIXELS={SFT_BUDGET}" in planned.stdout
