"""scripts/plot_rl_curves.py on a small gpu_rl_check.sh output: the curves' PNG and the per-family table."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT


def test_per_family_accuracy_shows_which_families_moved(tmp_path: Path) -> None:
    steps = [{"reward": 0.1 * step, "reward_std": 0.2} for step in range(1, 9)]
    (tmp_path / "rl_bat-s7_logging.jsonl").write_text("\n".join(json.dumps(step) for step in steps))
    with gzip.open(tmp_path / "rl_bat-s7_rewards.jsonl.gz", "wt") as handle:
        for step in range(1, 9):  # geometry never right (no gradient), counting right from step 5 on, with one call fewer
            for family, accuracy, calls in (("geometry", 0.0, 1), ("counting", 1.0 if step > 4 else 0.0, 1 if step > 4 else 2)):
                handle.write(json.dumps({"step": step, "family": family, "accuracy": accuracy, "tool_calls": calls}) + "\n")
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "plot_rl_curves.py"), str(tmp_path),
                           str(tmp_path / "curves.png")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "rollout accuracy (first 5 / last 5 steps) 0.100 -> 0.400" in lines[0]
    assert "counting         rollout accuracy 0.200 -> 0.800, calls a rollout 1.80 -> 1.20 (8 rollouts)" in lines[1]
    assert "geometry         rollout accuracy 0.000 -> 0.000, calls a rollout 1.00 -> 1.00 (8 rollouts)" in lines[2]
    assert (tmp_path / "curves.png").stat().st_size > 0
