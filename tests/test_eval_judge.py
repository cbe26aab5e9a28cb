"""The optional judge: asked only about answers the rules cannot read, over real HTTP, cached on disk.

The judge here is a small OpenAI-compatible server on loopback (a double at the model boundary);
the eval's scoring, the judge client and its HTTP stay real.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import eval_benchmark_files as files
from codedance_cli.clients import ScriptedClient
from codedance_cli.eval.benchmarks import get_benchmark
from codedance_cli.eval.run import run
from codedance_cli.trajectory.schema import question_text
from codedance_cli.recipes import load_recipe


class JudgeHandler(BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        item = body["messages"][-1]["content"]
        JudgeHandler.requests.append(item)
        reference = item.split("Reference answer: ")[1].split("\n")[0]
        candidate = item.split("Candidate answer: ")[1]
        verdict = "yes" if reference.split(". ", 1)[-1] in candidate else "no"
        reply = {
            "choices": [{"message": {"role": "assistant", "content": f"Judgement: {verdict}"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 3},
        }
        payload = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        return None


@pytest.fixture
def judge_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), JudgeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    JudgeHandler.requests = []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_judge_reads_what_the_rules_cannot_and_caches(tmp_path, judge_url):
    path = files.write_hrbench(tmp_path / "hr", "4k", "tsv")
    recipe_file = tmp_path / "eval.yaml"
    recipe_file.write_text(json.dumps({
        "stage": "eval", "mode": "direct", "model": {"endpoint": "http://127.0.0.1:9/v1"},
        "benchmarks": [{"name": "hrbench_4k", "path": str(path)}], "output_dir": str(tmp_path / "out"),
        "judge": {"endpoint": judge_url, "mode": "unreadable"},
    }))  # fmt: skip
    recipe = load_recipe(recipe_file, [])
    replies = {
        "0": "<answer>A or C: the sign says exit</answer>",  # two letters: the rules give up, the judge says yes (C = exit)
        "1": "<answer>I cannot read it</answer>",  # nothing readable: judged, wrong
        "2": "<answer>A</answer>",  # rules read A = right; the judge is not asked
    }
    tasks = list(get_benchmark("hrbench_4k").load(path))
    client = ScriptedClient({question_text(task): [replies[task.task_id]] for task in tasks})
    results = run(recipe, client=client)
    summary = results["benchmarks"]["hrbench_4k"]
    assert summary["judged"] == 2 and len(JudgeHandler.requests) == 2
    assert summary["accuracy"] == pytest.approx(2 / 3)
    by_id = {row["task_id"]: row for row in results["per_sample"]}
    assert by_id["0"]["correct"] and by_id["0"]["judged"] and by_id["0"]["prediction"] == "C"
    assert not by_id["1"]["correct"] and by_id["1"]["judged"]
    assert by_id["2"]["correct"] and not by_id["2"]["judged"]
    assert "Reference answer: C. exit" in JudgeHandler.requests[0] + JudgeHandler.requests[1]

    # re-scoring the finished run asks the judge nothing new: verdicts come from judge_cache.jsonl
    again = run(recipe, client=client)
    assert len(JudgeHandler.requests) == 2 and again["benchmarks"]["hrbench_4k"]["accuracy"] == pytest.approx(2 / 3)
    assert len((tmp_path / "out" / "judge_cache.jsonl").read_text().splitlines()) == 2
