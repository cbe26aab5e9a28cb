"""`codedance synth`: procedural synthesis through the CLI (and its resume), teacher synthesis end to end.

The teacher is a real OpenAI-compatible HTTP server on loopback that replays
scripted assistant turns (the only double, at the model boundary); the tool loop,
parsing, the sandbox and verification are real.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from codedance_cli.procedural import generate_item, make_tasks
from codedance_cli.procedural.solve import answer_turn_text, code_turn_text
from codedance_cli.recipes.synth import SynthRecipe
from codedance_cli.trajectory.store import read_trajectories
from conftest import run_codedance

Responder = Callable[[dict], str]


class ReplayServer:
    """OpenAI-compatible /v1/models + /v1/chat/completions on loopback; `respond(request body) -> reply text`."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def _send(self, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._send({"object": "list", "data": [{"id": "teacher", "object": "model"}]})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                text = outer.respond(body)
                self._send({"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 100, "completion_tokens": len(text) // 4}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ReplayServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def user_text(body: dict) -> str:
    """The text of the first user message (the question, plus the teacher template)."""
    for message in body["messages"]:
        if message["role"] == "user":
            content = message["content"]
            return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return ""


def assistant_turns(body: dict) -> int:
    return sum(1 for m in body["messages"] if m["role"] == "assistant")


def test_procedural_synth_cli_then_resume(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    result = run_codedance("synth", "recipes/nano/synth.yaml", "--set", f"output={out}", "--set", "num_items=8", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["kept"] == 8 and summary["dropped"] == {}
    assert set(summary["kept_by_family"]) == {"counting", "visual_search", "charts", "geometry"}
    trajectories = {t.task_id: t for t in read_trajectories(out)}
    assert len(trajectories) == 8
    for traj in trajectories.values():
        assert traj.final_answer == traj.ground_truth
        assert traj.stop_reason == "answer" and traj.prompt_version == "codedance-v1"
        assert all(t.observation is not None and t.observation.ok and t.observation.stdout for t in traj.turns if t.code)
        assert "<answer>" in traj.turns[-1].text
    # resume: a second run with more items only does the new ones
    from codedance_cli.recipes import load_recipe
    from codedance_cli.synth.run import run

    recipe = load_recipe(Path("recipes/nano/synth.yaml"), [f"output={out}", "num_items=10", "families=[charts,geometry]"])
    again = run(recipe, json_output=True)
    # an item is seeded by (seed, index, family): charts #2 / geometry #3, #6, #7 are the same items as before
    assert again is not None and again.already_done == 4 and again.kept == 6
    recipe = load_recipe(Path("recipes/nano/synth.yaml"), [f"output={out}", "num_items=10"])
    third = run(recipe, json_output=True)
    assert third is not None and third.already_done == 8 and third.kept == 2


def _teacher_script(tasks, wrong_ids: set[str], failing_ids: set[str], paraphrase_ids: set[str]) -> Responder:
    """Replays each task's procedural solution; some tasks answer wrong, run failing code, or paraphrase."""
    items = {task.question: generate_item(task.metadata["seed"], task.metadata["index"]) for task in tasks}
    by_question = {task.question: task for task in tasks}

    def respond(body: dict) -> str:
        text = user_text(body)
        if text.startswith("Question:"):  # a judge request (few-shot; the real case is the last user turn)
            candidate = body["messages"][-1]["content"].split("Candidate answer:")[-1]
            return "The candidate spells out the same code.\nJudgement: yes" if "-" in candidate else "Judgement: no"
        question = next(q for q in items if text.startswith(q))
        item, task, turn = items[question], by_question[question], assistant_turns(body)
        steps = list(item.steps)
        if task.task_id in failing_ids and turn == 0:
            return code_turn_text("Let me look at the image.", "print(undefined_name)")
        if task.task_id in failing_ids:
            turn -= 1
        if turn < len(steps):
            return code_turn_text(steps[turn].thought, steps[turn].code)
        answer = item.ground_truth
        if task.task_id in wrong_ids:
            answer = "999"
        if task.task_id in paraphrase_ids:
            answer = "-".join(answer)
        return answer_turn_text("Done.", answer)

    return respond


def test_teacher_synthesis_end_to_end(tmp_path: Path) -> None:
    from codedance_cli.synth.run import run

    tasks = make_tasks(5, seed=1)
    ids = [t.task_id for t in tasks]
    assert tasks[1].metadata["variant"] == "text"  # seed 1 gives a tiny-text item at index 1
    wrong, failing, paraphrase = {ids[0]}, {ids[2]}, {ids[1]}
    respond = _teacher_script(tasks, wrong, failing, paraphrase)
    with ReplayServer(respond) as server:
        recipe = SynthRecipe.model_validate({
            "stage": "synth", "generator": "teacher", "output": str(tmp_path / "kept"), "num_items": 5, "seed": 1,
            "teacher": {"endpoint": server.url, "served_name": "teacher"},
            "judge": {"endpoint": server.url, "model": "teacher"},
            "rejected_output": str(tmp_path / "rejected"),
            "loop": {"max_turns": 5, "concurrency": 3},
        })
        summary = run(recipe, json_output=True)
        assert summary is not None
        teacher_questions = [user_text(b) for b in server.requests if not user_text(b).startswith("Question:")]
    kept = {t.task_id: t for t in read_trajectories(tmp_path / "kept")}
    rejected = {t.task_id: t for t in read_trajectories(tmp_path / "rejected")}
    assert set(kept) == set(ids) - wrong - failing
    assert rejected[ids[0]].metadata["rejected"] == "wrong_answer"
    assert rejected[ids[2]].metadata["rejected"] == "code_failed"
    assert summary.dropped == {"wrong_answer": 1, "code_failed": 1}
    assert summary.judge_rescued == len(paraphrase)
    for traj in kept.values():
        assert traj.question == next(t.question for t in tasks if t.task_id == traj.task_id)  # template not stored
        assert traj.metadata["teacher_template"] in {"visual_operations", "math_computation", "open_ended"}
        assert traj.metadata["verified_by"] == ("judge" if traj.task_id in paraphrase else "rule")
        assert all(t.observation is not None and t.observation.ok for t in traj.turns if t.code)
    # the teacher saw the family instruction appended to the question
    assert any("predefined visual operations" in q or "mathematical computation" in q or "custom code" in q for q in teacher_questions)
    # resume: nothing is asked again
    with ReplayServer(respond) as server:
        recipe = recipe.model_copy(update={"teacher": recipe.teacher.model_copy(update={"endpoint": server.url}), "judge": None})
        again = run(recipe, json_output=True)
        assert again is not None and again.already_done == 5 and again.kept == 0 and server.requests == []


def test_teacher_recipe_needs_teacher(tmp_path: Path) -> None:
    result = run_codedance("synth", "recipes/nano/synth.yaml", "--set", "generator=teacher", "--set", f"output={tmp_path}")
    assert result.returncode == 2
    assert "teacher" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("version", ["codedance-v1", "codedance-toolcall-v1"])
def test_solution_turns_parse_back(version: str) -> None:
    from codedance_cli.loop.parser import parse_turn

    item = generate_item(0, 1)
    parsed = parse_turn(code_turn_text(item.steps[0].thought, item.steps[0].code, version), version)
    assert parsed.code is not None and parsed.code.strip() == item.steps[0].code.strip() and parsed.answer is None
    assert parse_turn(answer_turn_text("x", "B"), version).answer == "B"
