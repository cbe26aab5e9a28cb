"""`scripts/demo.sh` (what `make demo` runs) end to end in QUICK mode: every stage for real, on a few items.

A break anywhere in the synth -> filter -> eval -> sft -> rl -> eval -> infer chain fails here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from codedance_cli.trajectory import count_trajectories
from conftest import REPO_ROOT

STAGES = ["synth", "heldout", "filter", "eval-before", "sft", "eval-sft", "rl", "eval-after", "sample", "infer"]


def run_demo(art: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    """`ART=art QUICK=1 bash scripts/demo.sh` with the venv first on PATH (as the Makefile does); stdout+stderr together."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("FROM", "FRESH")}
    full_env.update(ART=str(art), QUICK="1", COLUMNS="200", NO_COLOR="1",
                    PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **env)
    return subprocess.run(["bash", str(REPO_ROOT / "scripts" / "demo.sh")], cwd=REPO_ROOT, env=full_env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)


@pytest.mark.slow
def test_quick_demo_runs_every_stage_and_restarts_from_a_missing_marker(tiny_model_dir: Path, tmp_path: Path) -> None:
    art = tmp_path / "nano"
    first = run_demo(art, CODEDANCE_TINY_MODEL=str(tiny_model_dir))
    assert first.returncode == 0, first.stdout[-4000:]
    assert sorted(p.name for p in (art / ".done").iterdir()) == sorted(STAGES)

    # data: QUICK sizes, read from (and written to) ART
    assert count_trajectories(art / "synth") == 4
    assert count_trajectories(art / "heldout") == 4
    assert 1 <= count_trajectories(art / "filtered") <= 4

    # the three evals: the model each should have run, on the 4 held-out items, with the baseline compared
    for name, model in [("eval-before", tiny_model_dir), ("eval-sft", art / "sft" / "last"), ("eval-after", art / "rl" / "last")]:
        results = json.loads((art / name / "results.json").read_text())
        assert results["model"]["path"] == str(model), name
        assert results["loop"]["max_new_tokens"] == 16, name
        proc = results["benchmarks"]["procedural"]
        assert proc["items"] == 4 and proc["samples"] == 4, (name, proc)
        assert 0.0 <= proc["accuracy"] <= 1.0 and 0.0 <= proc["format"]["adherence"] <= 1.0, (name, proc)
    assert "this run vs" in first.stdout  # eval-sft and eval-after compared against their baselines

    # checkpoints and the final trajectory page
    assert (art / "sft" / "last" / "config.json").is_file()
    assert (art / "rl" / "last" / "config.json").is_file()
    page = (art / "infer.html").read_text()
    assert "<html" in page.lower()
    assert f"Artifacts:\n  {art}/synth\n" in first.stdout and f"  {art}/infer.html" in first.stdout
    made = re.search(r"wrote \S+synth\.html \(4 trajectories, (\d+) images made by their code\)", first.stdout)
    assert made and int(made.group(1)) >= 1  # the demo shows at least one cell whose output is an image
    assert 'class="obs-img"' in (art / "synth.html").read_text() or "<img" in (art / "synth.html").read_text()

    # restart: only the stage whose marker is gone runs again
    (art / ".done" / "infer").unlink()
    (art / "infer.html").unlink()
    again = run_demo(art, timeout=300, CODEDANCE_TINY_MODEL=str(tiny_model_dir))
    assert again.returncode == 0, again.stdout[-4000:]
    for stage in STAGES[:-1]:
        assert f"== {stage}: done earlier" in again.stdout, stage
    assert "== infer: codedance infer" in again.stdout
    assert (art / ".done" / "infer").is_file() and (art / "infer.html").is_file()

    # FROM=rl redoes rl and what follows from scratch: no stage resumes from the outputs of the run before
    redo = run_demo(art, timeout=300, FROM="rl", CODEDANCE_TINY_MODEL=str(tiny_model_dir))
    assert redo.returncode == 0, redo.stdout[-4000:]
    for stage in STAGES[: STAGES.index("rl")]:
        assert f"== {stage}: done earlier" in redo.stdout, stage
    assert "already trained to max_steps" not in redo.stdout  # rl trained again
    assert "tool mode: 4 to run" in redo.stdout.split("== eval-after: codedance eval")[1]  # eval-after did not resume


def test_a_failing_stage_stops_the_chain_without_its_marker(tmp_path: Path) -> None:
    art = tmp_path / "nano"
    (art / ".done").mkdir(parents=True)
    for stage in ("synth", "heldout"):  # "done", but their data is not there: filter fails on its missing input
        (art / ".done" / stage).touch()
    result = run_demo(art, timeout=120)
    assert result.returncode != 0, result.stdout[-4000:]
    assert "== filter: codedance filter" in result.stdout
    assert "does not exist" in result.stdout
    assert "== eval-before" not in result.stdout and "Artifacts:" not in result.stdout
    assert sorted(p.name for p in (art / ".done").iterdir()) == ["heldout", "synth"]


def test_an_unknown_from_stage_is_a_one_line_error(tmp_path: Path) -> None:
    art = tmp_path / "nano"
    result = run_demo(art, timeout=60, FROM="trian")
    assert result.returncode == 2
    assert result.stdout.strip().splitlines() == [
        "demo.sh: unknown FROM stage 'trian' (one of: synth heldout filter eval-before sft eval-sft rl eval-after sample infer)"
    ]
    assert not art.exists()
