"""Every stage that reads user data fails cleanly on bad data: one line naming the file, exit 2, before any model
loads, and no output folder left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from codedance_cli.trajectory.schema import Trajectory
from codedance_cli.trajectory.store import shard_paths, write_trajectories
from conftest import REPO_ROOT, run_codedance


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """name -> (path, the file the error must name)."""
    root = tmp_path_factory.mktemp("bad")
    good = root / "good"
    write_trajectories(good, [Trajectory(task_id="t", question="q", ground_truth="1")])
    truncated = root / "truncated.parquet"
    truncated.write_bytes(shard_paths(good)[0].read_bytes()[:300])
    folder = root / "folder"
    folder.mkdir()
    (folder / "part-00000.parquet").write_bytes(truncated.read_bytes())
    wrong = root / "rows.jsonl"
    wrong.write_text('{"question": "q"}\n')
    empty = root / "empty"
    empty.mkdir()
    return {
        "truncated parquet": (truncated, str(truncated)),
        "folder holding a truncated shard": (folder, str(folder / "part-00000.parquet")),
        "wrong format": (wrong, str(wrong)),
        "empty folder": (empty, str(empty)),
    }


STAGES = {
    "filter": ("filter", REPO_ROOT / "recipes" / "nano" / "filter.yaml", "input.path", "output"),
    "sft": ("sft", REPO_ROOT / "recipes" / "nano" / "sft.yaml", "dataset.path", "output_dir"),
    "rl": ("rl", REPO_ROOT / "recipes" / "nano" / "rl.yaml", "dataset", "output_dir"),
}


@pytest.mark.parametrize("stage", sorted(STAGES))
@pytest.mark.parametrize("case", ["truncated parquet", "folder holding a truncated shard", "wrong format", "empty folder"])
def test_stage_rejects_bad_data_before_doing_anything(stage: str, case: str, bad_inputs, tmp_path: Path, tiny_model_dir: Path) -> None:
    command, recipe, input_field, output_field = STAGES[stage]
    path, named = bad_inputs[case]
    output = tmp_path / "out"
    model = ["--set", f"model={tiny_model_dir}"] if stage != "filter" else ["--set", f"weak_model.path={tiny_model_dir}"]
    result = run_codedance(command, recipe, "--set", f"{input_field}={path}", "--set", f"{output_field}={output}", *model)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not output.exists()
