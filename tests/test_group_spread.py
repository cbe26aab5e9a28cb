"""scripts/group_spread.py: which items' sampled answers differ (the groups GRPO can learn from)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _sample(task_id: str, answer: str | None, truth: str = "12") -> str:
    trajectory = {"task_id": task_id, "final_answer": answer, "ground_truth": truth, "answer_type": "number",
                  "choices": None, "question": "How many?"}
    return json.dumps({"benchmark": "procedural", "task_id": task_id, "sample": 0, "trajectory": trajectory})


def _run(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "group_spread.py"), str(path), *extra],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_counts_mixed_groups_per_family_and_skips_items_cut_short(tmp_path: Path) -> None:
    lines = [_sample("proc-geometry-s1-000000", a) for a in ("12", "11", "12.0", None)]  # mixed: 2 of 4 right
    lines += [_sample("proc-geometry-s1-000001", "3") for _ in range(4)]                 # all wrong: no gradient
    lines += [_sample("proc-charts-s1-000000", "12") for _ in range(4)]                  # all right: no gradient
    lines += [_sample("proc-charts-s1-000001", "12")]                                    # cut short: left out
    path = tmp_path / "samples.jsonl"
    path.write_text("\n".join(lines) + "\n")
    done = _run(path, "--json")
    assert done.returncode == 0, done.stderr
    families = json.loads(done.stdout)
    assert families["geometry"] == {"items": 2, "rollouts": 8, "right": 2, "mixed_groups": 1, "right_per_item": [2, 0]}
    assert families["charts"] == {"items": 1, "rollouts": 4, "right": 4, "mixed_groups": 0, "right_per_item": [4]}
    table = _run(path).stdout
    assert "| geometry | 2 | 8 | 25.0 | 1 of 2 |" in table


def test_a_line_that_is_not_a_sample_is_named(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_text(_sample("proc-geometry-s1-000000", "12") + "\n{not json\n")
    done = _run(path)
    assert done.returncode != 0 and f"{path}:2: not an eval sample" in done.stderr
