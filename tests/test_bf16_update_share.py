"""scripts/bf16_update_share.py, the measurement behind `train.master_weights: float32` (docs/paper-settings.md):
on a real checkpoint, a step at an RL learning rate leaves most bfloat16 weights where they were, and a large
step moves nearly all of them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT


def test_small_steps_round_away_in_bfloat16(tiny_model_dir: Path) -> None:
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "bf16_update_share.py"), str(tiny_model_dir),
                           "--lr", "1e-6", "1e-2"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    shares = {lr: float(share) for lr, share in re.findall(r"^\| (\S+) \| ([\d.]+) % \|$", done.stdout, re.M)}
    assert shares["1e-06"] < 10 and shares["0.01"] > 90, done.stdout


def test_a_folder_without_weights_is_a_one_line_error(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "bf16_update_share.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    expected = f"error: {tmp_path}: no *.safetensors files (a transformers checkpoint folder is expected)"
    assert done.returncode == 2 and done.stderr.strip() == expected
