"""scripts/group_spread.py: which items' sampled answers differ (the groups GRPO can learn from)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _row(task_id: str, category: str, correct: bool) -> dict[str, object]:
    return {"benchmark": "procedural", "task_id": task_id, "sample": 0, "category": category, "correct": correct}


def _run(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "group_spread.py"), str(path), *extra],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_counts_mixed_groups_per_family_from_the_evals_verdicts(tmp_path: Path) -> None:
    rows = [_row("proc-geometry-s1-000000", "geometry", ok) for ok in (True, False, True, False)]  # mixed: 2 of 4
    rows += [_row("proc-geometry-s1-000001", "geometry", False) for _ in range(4)]                 # all wrong
    rows += [_row("proc-charts-s1-000000", "charts", True) for _ in range(4)]                      # all right
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"per_sample": rows}))
    done = _run(path, "--json")
    assert done.returncode == 0, done.stderr
    families = json.loads(done.stdout)
    assert families["geometry"] == {"items": 2, "rollouts": 8, "right": 2, "mixed_groups": 1, "right_per_item": [2, 0]}
    assert families["charts"] == {"items": 1, "rollouts": 4, "right": 4, "mixed_groups": 0, "right_per_item": [4]}
    table = _run(path).stdout
    assert "| geometry | 2 | 8 | 25.0 | 1 of 2 |" in table


def test_a_file_that_is_not_an_evals_results_is_named(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"per_sample": [{"task_id": "x"}]}))
    done = _run(path)
    assert done.returncode == 2 and f"{path}: no per_sample rows with task_id and correct" in done.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    done = _run(broken)
    assert done.returncode == 2 and f"{broken}: not readable as JSON" in done.stderr
