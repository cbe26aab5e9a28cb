"""Judge client (verdict parsing, caching, concurrency) and the serve launcher's command lines."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codedance_cli.rewards.judge_client import JudgeClient, VerdictCache, judge_messages, parse_verdict
from codedance_cli.judge.server import build_serve_command
from test_clients import FlakyServer

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "reply, verdict",
    [
        ("Judgement: yes", True),
        ("Judgement: no", False),
        ("The candidate says 3, the reference 3.\nJudgement: YES", True),
        ("**Judgment:** no", False),
        ("Judgement: 1", True),
        ("judgement：0", False),
        ("Judgement: no\nWait, actually they match.\nJudgement: yes", True),
        ("Yes, they are equivalent.", True),
        ("no.", False),
        ("I cannot decide.", None),
        ("", None),
    ],
)
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) is verdict


def test_rubric_has_examples_and_the_item_last():
    messages = judge_messages("Q?", "ref", "cand")
    assert messages[0]["role"] == "system" and "Judgement: yes" in messages[0]["content"]
    assert messages[-1] == {"role": "user", "content": "Question: Q?\nReference answer: ref\nCandidate answer: cand"}
    assert sum(m["role"] == "assistant" for m in messages) >= 5


def _judge_reply_server(delay_s: float = 0.0) -> FlakyServer:
    """Replies with some chatter and 'Judgement: yes' when candidate == reference, else 'no'."""

    def reply(body: dict) -> str:
        item = body["messages"][-1]["content"]
        reference = item.split("Reference answer: ")[1].split("\n")[0]
        candidate = item.split("Candidate answer: ")[1]
        return f"Comparing the two.\nJudgement: {'yes' if reference.strip() == candidate.strip() else 'no'}"

    return FlakyServer(delay_s=delay_s, reply=reply)


def test_judge_client_caches_in_memory_and_on_disk(tmp_path):
    server = _judge_reply_server()
    try:
        cache_file = tmp_path / "verdicts.jsonl"
        judge = JudgeClient(server.url, cache=cache_file)
        first = asyncio.run(judge.judge("How many?", "3", "3"))
        again = asyncio.run(judge.judge("How many?", "3", "3"))
        wrong = asyncio.run(judge.judge("How many?", "3", "4"))
        assert first.correct is True and not first.cached and again.cached and wrong.correct is False
        assert len(server.requests) == 2 and server.requests[0]["model"] == "judge" and server.requests[0]["temperature"] == 0.0
        reloaded = JudgeClient(server.url, cache=cache_file)
        assert len(reloaded.cache) == 2
        assert asyncio.run(reloaded.judge("How many?", "3", "4")).cached and len(server.requests) == 2
        with cache_file.open("a") as handle:
            handle.write('{"key": "torn')
        assert len(VerdictCache(cache_file)) == 2
    finally:
        server.close()


def test_judge_many_is_concurrent_and_ordered():
    server = _judge_reply_server(delay_s=0.2)
    try:
        judge = JudgeClient(server.url, concurrency=8)
        items = [("q", "a", "a" if i % 2 == 0 else "b") for i in range(8)]
        t0 = time.perf_counter()
        verdicts = asyncio.run(judge.judge_many([(q + str(i), r, c) for i, (q, r, c) in enumerate(items)]))
        elapsed = time.perf_counter() - t0
        assert [v.correct for v in verdicts] == [i % 2 == 0 for i in range(8)]
        assert elapsed < 8 * 0.2 * 0.75  # ran concurrently, not one by one
    finally:
        server.close()


def test_serve_command_lines(tmp_path):
    vllm = build_serve_command("Qwen/Qwen2.5-72B-Instruct", engine="vllm", served_name="judge", port=18901, tensor_parallel_size=8, max_model_len=32768)
    assert vllm.argv[1:4] == ["serve", "Qwen/Qwen2.5-72B-Instruct", "--host"]
    joined = " ".join(vllm.argv)
    for flag in ("--port 18901", "--served-model-name judge", "--tensor-parallel-size 8", "--max-model-len 32768"):
        assert flag in joined
    assert vllm.served_name == "judge" and vllm.base_url == "http://127.0.0.1:18901/v1"
    local = build_serve_command(str(tmp_path), engine="transformers", port=18555, host="0.0.0.0", device="cpu", extra_args=["--default-seed", "1"])
    assert Path(local.argv[0]).name == "transformers" and local.argv[1:3] == ["serve", str(tmp_path.resolve())]
    assert "--device cpu" in " ".join(local.argv) and local.argv[-2:] == ["--default-seed", "1"]
    assert local.served_name == str(tmp_path.resolve()) and local.base_url == "http://127.0.0.1:18555/v1"
    assert local.env == {"HF_HUB_OFFLINE": "1"}


def test_judge_serve_dry_run_prints_the_exact_command():
    result = subprocess.run(
        [sys.executable, "-m", "codedance_cli", "judge", "serve", "recipes/qwen2.5-vl-7b/judge.yaml", "--dry-run", "--set", "port=19000"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert "vllm serve Qwen/Qwen2.5-72B-Instruct" in first and "--port 19000" in first and "--tensor-parallel-size 8" in first


def test_judge_recipe_bad_port_names_the_field(tmp_path):
    from codedance_cli.errors import BadInput
    from codedance_cli.recipes import load_recipe

    recipe = tmp_path / "judge.yaml"
    recipe.write_text("stage: judge\nmodel: m\nport: 99999999\n")
    with pytest.raises(BadInput, match="port"):
        load_recipe(recipe, expect_stage="judge")


def test_vllm_serve_falls_back_to_the_cli_module_when_the_script_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the GPU machine a later `pip install --target` replaced the folder holding vLLM's console script."""
    import sys

    from codedance_cli.judge import server

    monkeypatch.setattr(server, "_executable", lambda name: "/nowhere/vllm")
    monkeypatch.setattr(server, "vllm_importable", lambda: True)
    command = server.build_serve_command("/models/judge", engine="vllm")
    assert command.argv[:4] == [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve"]
    monkeypatch.setattr(server, "vllm_importable", lambda: False)
    assert server.build_serve_command("/models/judge", engine="vllm").argv[:2] == ["/nowhere/vllm", "serve"]
