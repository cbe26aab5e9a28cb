"""scripts/rl_table.py on real `codedance eval` outputs: two evals of the procedural held-out set through the tool
loop (a scripted model at the model boundary, the real sandbox), laid out as gpu_rl_check.sh packs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from codedance_cli.clients import ScriptedClient
from codedance_cli.eval.benchmarks import get_benchmark
from codedance_cli.eval.run import run
from codedance_cli.recipes import load_recipe
from codedance_cli.trajectory.schema import question_text

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import rl_table  # noqa: E402

CODE_TURN = "<think>Count it.</think>\n```python\nprint('size', *input_image.size)\n```"


def eval_with_wrong_items(out: Path, items: Path, wrong: set[int]) -> list[str]:
    """One tool-mode eval of 6 procedural items, answering the items at positions `wrong` wrongly; their ids."""
    recipe_path = out.parent / f"{out.name}.yaml"
    recipe_path.write_text(json.dumps({
        "stage": "eval", "model": {"endpoint": "http://127.0.0.1:9/v1"}, "output_dir": str(out),
        "benchmarks": [{"name": "procedural", "path": str(items), "options": {"generate": 6, "seed": 7}}],
        "loop": {"max_turns": 3, "concurrency": 4}, "sandbox": {"workers": 2}}))
    recipe = load_recipe(recipe_path, [])
    ref = recipe.benchmarks[0]
    tasks = get_benchmark(ref.name, ref.options).load(ref.path)
    scripts = {question_text(task): [CODE_TURN, f"<answer>{'no such answer' if i in wrong else task.ground_truth}</answer>"]
               for i, task in enumerate(tasks)}
    run(recipe, client=ScriptedClient(scripts))
    return [task.task_id for task in tasks]


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Path:
    """out/ as gpu_rl_check.sh packs it: SFT wrong on items 0-2, the RL run wrong on 2-3 (gains 0, 1; loses 3)."""
    root = tmp_path_factory.mktemp("rl-table")
    items, out = root / "procedural", root / "out"
    out.mkdir()
    for name, wrong in {"sft": {0, 1, 2}, "acc_fmt-s7": {2, 3}, "acc_fmt-s8": {0, 1, 2}}.items():
        eval_with_wrong_items(root / f"eval-{name}", items, wrong)
        shutil.copy(root / f"eval-{name}" / "results.json", out / f"eval_{name}_results.json")
    (out / "walls.txt").write_text("eval-sft: /tmp/gpu-rl/sft-tool/last\neval-sft wall s: 80 (exit 0)\n"
                                   "eval-acc_fmt-s7: /tmp/gpu-rl/rl-acc_fmt-s7/checkpoints/checkpoint-45\n"
                                   "eval-acc_fmt-s8: /tmp/gpu-rl/rl-acc_fmt-s8/last\n")
    return root


def test_rows_pair_each_run_with_the_sft_items(packed):
    done = subprocess.run([sys.executable, "scripts/rl_table.py", str(packed), "--json"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    rows = {row["name"]: row for row in report["rows"]}
    assert rows["sft"]["accuracy"] == pytest.approx(3 / 6) and rows["sft"]["gained"] is None
    seven = rows["acc_fmt-s7"]
    assert (seven["accuracy"], seven["gained"], seven["lost"], seven["steps"]) == (pytest.approx(4 / 6), 2, 1, "45")
    assert seven["sign_p"] == pytest.approx(1.0)  # 2 against 1 of 3 flips: no evidence either way
    assert (rows["acc_fmt-s8"]["gained"], rows["acc_fmt-s8"]["lost"], rows["acc_fmt-s8"]["steps"]) == (0, 0, "last")
    assert report["variants"] == [{"variant": "acc_fmt", "seeds": 2, "mean_change_points": pytest.approx(100 / 12),
                                   "min_change_points": pytest.approx(0.0), "max_change_points": pytest.approx(100 / 6)}]
    assert seven["calls"] == pytest.approx(1.0) and seven["failed_calls"] == 0.0


def test_markdown_has_a_row_per_model_and_the_seed_summary(packed):
    done = subprocess.run([sys.executable, "scripts/rl_table.py", str(packed / "out")], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("| model | GRPO steps | acc % |") and "gained / lost vs sft" in lines[0]
    assert any(line.startswith("| `acc_fmt-s7` | 45 | 66.7 |") and "| 2 / 1 | 1 |" in line for line in lines)
    assert "| `acc_fmt` | 2 | +8.3 | +0.0 | +16.7 |" in lines


def test_sign_test_is_exact():
    assert rl_table.sign_test(0, 0) == 1.0
    assert rl_table.sign_test(5, 0) == pytest.approx(2 / 32)
    assert rl_table.sign_test(9, 1) == pytest.approx(2 * 11 / 1024)


def test_missing_baseline_is_one_line_naming_what_is_there(packed, tmp_path):
    (tmp_path / "eval_bat-s7_results.json").write_text((packed / "out" / "eval_acc_fmt-s7_results.json").read_text())
    done = subprocess.run([sys.executable, "scripts/rl_table.py", str(tmp_path)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f"{tmp_path}: no eval_sft_results.json to pair the runs with (have: bat-s7)"


def test_a_results_file_that_is_not_json_is_named_in_one_line(tmp_path):
    (tmp_path / "eval_sft_results.json").write_text('{"benchmarks": ')
    done = subprocess.run([sys.executable, "scripts/rl_table.py", str(tmp_path)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith(f"{tmp_path / 'eval_sft_results.json'}: not readable as JSON")
