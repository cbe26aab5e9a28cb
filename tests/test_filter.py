"""`codedance filter`: dedup, re-execution (failing / non-deterministic code), weak-to-strong sampling, report, resume.

The weak model is a real OpenAI-compatible HTTP server on loopback with scripted
answers (see test_synth.ReplayServer); the sandbox is real. The nano recipe runs
with the tiny random model through the CLI.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from codedance_cli.procedural import generate_item
from codedance_cli.procedural.solve import solve_item
from codedance_cli.recipes.filter import FilterRecipe
from codedance_cli.sandbox import create_sandbox
from codedance_cli.trajectory.schema import Observation, Turn
from codedance_cli.trajectory.store import read_trajectories, write_trajectories
from conftest import run_codedance
from test_synth import ReplayServer, user_text


@pytest.fixture(scope="module")
def solved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 verified procedural trajectories, written once for the module."""

    async def solve():
        async with create_sandbox() as sandbox:
            return await asyncio.gather(*(solve_item(generate_item(2, i), sandbox, 2, i) for i in range(8)))

    trajectories = [r.trajectory for r in asyncio.run(solve())]
    assert all(t is not None for t in trajectories)
    path = tmp_path_factory.mktemp("solved") / "synth"
    write_trajectories(path, trajectories)
    return path


def _with_problems(solved: Path, out: Path) -> dict[str, str]:
    """Input = the solved set plus a reworded duplicate, a tampered observation, a failed step and random code."""
    base = read_trajectories(solved)
    duplicate = base[0].model_copy(update={"task_id": "dup", "question": "  " + base[0].question.upper() + "!!"})
    tampered = base[1].model_copy(deep=True, update={"task_id": "tampered"})
    tampered.question += " (variant)"
    first_code = next(t for t in tampered.turns if t.code)
    first_code.observation = first_code.observation.model_copy(update={"stdout": first_code.observation.stdout + "extra\n"})
    failed = base[2].model_copy(deep=True, update={"task_id": "failed"})
    failed.question += " (failed)"
    failed.turns.insert(0, Turn(text="```python\n1/0\n```", code="1/0", observation=Observation(error_type="ZeroDivisionError", error="division by zero")))
    randomised = base[3].model_copy(deep=True, update={"task_id": "random"})
    randomised.question += " (random)"
    randomised.turns.insert(0, Turn(text="```python\nimport random\nprint(random.random())\n```", code="import random\nprint(random.random())",
                                    observation=Observation(stdout="0.5\n")))
    write_trajectories(out, [*base, duplicate, tampered, failed, randomised])
    return {"dup": "duplicate", "tampered": "nondeterministic", "failed": "code_failed", "random": "nondeterministic"}


def test_filter_end_to_end_and_resume(solved: Path, tmp_path: Path) -> None:
    from codedance_cli.filter.run import DECISIONS_FILE, run

    source = tmp_path / "input"
    expected_drops = _with_problems(solved, source)
    base = read_trajectories(solved)
    by_question = {t.question: t for t in read_trajectories(source)}
    calls: dict[str, int] = {}

    def respond(body: dict) -> str:
        question = user_text(body).split("\nOptions:")[0]
        task = by_question[question]
        calls[task.task_id] = calls.get(task.task_id, 0) + 1
        family = task.metadata["family"]
        if family == "counting":  # always right: trivial
            return f"<think>easy</think><answer>{task.ground_truth}</answer>"
        if family == "charts":  # right every other time: medium
            return f"<answer>{task.ground_truth if calls[task.task_id] % 2 else 'nope'}</answer>"
        return "<think>hmm</think><answer>no idea</answer>"

    with ReplayServer(respond) as server:
        recipe = FilterRecipe.model_validate({
            "stage": "filter", "input": {"path": str(source)}, "output": str(tmp_path / "out"),
            "weak_model": {"endpoint": server.url, "served_name": "weak"}, "samples_per_item": 4, "concurrency": 3,
        })
        report = run(recipe, json_output=True)
    assert report is not None
    kept = {t.task_id: t for t in read_trajectories(tmp_path / "out")}
    trivial = {t.task_id for t in base if t.metadata["family"] == "counting"}
    assert set(kept) == {t.task_id for t in base} - trivial
    assert report.dropped == {"duplicate": 1, "nondeterministic": 2, "code_failed": 1, "trivial": len(trivial)}
    for traj in kept.values():
        assert traj.metadata["weak_samples"] == 4
        expected = ("medium", 0.5) if traj.metadata["family"] == "charts" else ("hard", 0.0)
        assert (traj.metadata["difficulty"], traj.metadata["pass_rate"]) == expected
    decisions = [json.loads(line) for line in (tmp_path / "out" / DECISIONS_FILE).read_text().splitlines()]
    reasons = {d["task_id"]: d["reason"] for d in decisions}
    for task_id, kind in expected_drops.items():
        assert reasons[task_id].startswith(kind)
    assert "stdout differs" in reasons["tampered"]
    summary = json.loads((tmp_path / "out" / "report" / "report.json").read_text())
    assert summary["kept"] == len(kept) and summary["difficulty"]["medium"] == 2
    assert (tmp_path / "out" / "report" / "histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # resume: everything was decided; the report still counts it all and nothing is re-sampled
    with ReplayServer(respond) as server:
        recipe = recipe.model_copy(update={"weak_model": recipe.weak_model.model_copy(update={"endpoint": server.url})})
        again = run(recipe, json_output=True)
        assert server.requests == []
    assert again is not None and again.resumed == again.seen == 12 and again.kept == len(kept)
    assert again.dropped == report.dropped


def test_nano_filter_with_the_tiny_model(solved: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "filtered"
    result = run_codedance("filter", "recipes/nano/filter.yaml", "--set", f"input.path={solved}", "--set", f"output={out}",
                           "--set", "input.limit=3", "--set", f"weak_model.path={tiny_model_dir}", "--json", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["seen"] == 3 and summary["kept"] + sum(summary["dropped"].values()) == 3
    assert Path(summary["histogram_png"]).is_file()
    for traj in read_trajectories(out):
        assert traj.metadata["weak_samples"] == 2 and traj.metadata["difficulty"] in ("hard", "medium", "easy")


def test_filter_bad_input_is_one_line(tmp_path: Path, tiny_model_dir: Path) -> None:
    result = run_codedance("filter", "recipes/nano/filter.yaml", "--set", f"input.path={tmp_path / 'missing'}",
                           "--set", f"weak_model.path={tiny_model_dir}")  # else a missing model folder is reported first
    assert result.returncode == 2 and "input.path" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_weak_sampling_through_the_loop(solved: Path, tmp_path: Path) -> None:
    """weak_mode: loop — the weak model runs code in the real sandbox; solving every time makes an item trivial."""
    from codedance_cli.filter.run import run
    from codedance_cli.procedural.solve import answer_turn_text, code_turn_text
    from test_synth import assistant_turns

    base = read_trajectories(solved)[:2]
    write_trajectories(tmp_path / "input", base)
    solver = {t.question: t for t in base[:1]}

    def respond(body: dict) -> str:
        task = solver.get(user_text(body).split("\nOptions:")[0])
        if task is None:
            return "<think>guess</think><answer>no idea</answer>"
        code_turns = [t for t in task.turns if t.code]
        turn = assistant_turns(body)
        if turn < len(code_turns):
            return code_turn_text("replay", code_turns[turn].code)
        return answer_turn_text("done", task.ground_truth)

    with ReplayServer(respond) as server:
        recipe = FilterRecipe.model_validate({
            "stage": "filter", "input": {"path": str(tmp_path / "input")}, "output": str(tmp_path / "out"), "reexecute": False,
            "weak_model": {"endpoint": server.url, "served_name": "weak"}, "weak_mode": "loop", "samples_per_item": 2,
            "loop": {"max_turns": 4},
        })
        report = run(recipe, json_output=True)
        assert any("```python" in m["content"] for b in server.requests for m in b["messages"] if m["role"] == "assistant")
    assert report is not None and report.dropped == {"trivial": 1} and report.difficulty == {"hard": 1}
