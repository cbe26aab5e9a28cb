"""`codedance judge serve` for real: a `transformers serve` child on loopback, the judge and HTTP clients against it.

The judge is a text model (the release's judge is Qwen2.5-72B-Instruct), so the
served model here is the tiny random text-only Qwen2 LM that
`scripts/make_tiny_model.py --text-only` builds on the tiny model's tokenizer: its verdicts are noise, but every byte goes through the real
launcher, server, HTTP client and verdict parser. Serving the tiny *vision*
model needs torchvision (transformers' Qwen2-VL video processor), which a
CPU-only torch machine does not have; that test runs where torchvision imports.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from codedance_cli.clients.openai_http import OpenAIClient
from codedance_cli.rewards.judge_client import JudgeClient
from conftest import free_port

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def judge_server(tiny_judge_dir, tmp_path_factory):
    """`codedance judge serve RECIPE` as a real subprocess; yields (process, exports)."""
    work = tmp_path_factory.mktemp("judge")
    model = tiny_judge_dir
    recipe = work / "judge.yaml"
    recipe.write_text(f"stage: judge\nmodel: {model}\nengine: transformers\ndevice: cpu\ndtype: float32\nport: {free_port()}\nstartup_timeout_s: 240\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "codedance_cli", "judge", "serve", str(recipe)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"},
    )
    exports: dict[str, str] = {}
    deadline = time.monotonic() + 300
    while len(exports) < 2 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if line.startswith("export "):
            key, _, value = line[len("export "):].strip().partition("=")
            exports[key] = value
    if len(exports) < 2:
        process.kill()
        pytest.fail(f"judge serve did not come up: {process.stderr.read()[-2000:]}")
    yield process, exports
    if process.poll() is None:
        process.kill()
        process.wait(30)


def test_judge_serve_exports_a_healthy_openai_endpoint(judge_server, tiny_judge_dir):
    _, exports = judge_server
    url = exports["CODEDANCE_JUDGE_URL"]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    assert httpx.get(url.removesuffix("/v1") + "/health", timeout=10).status_code == 200
    assert Path(exports["CODEDANCE_JUDGE_MODEL"]).name == Path(tiny_judge_dir).name


def test_openai_client_against_transformers_serve(judge_server):
    _, exports = judge_server
    client = OpenAIClient(exports["CODEDANCE_JUDGE_URL"], exports["CODEDANCE_JUDGE_MODEL"])
    generation = asyncio.run(client.generate([{"role": "user", "content": "Say hi."}], max_new_tokens=6))
    assert generation.completion_tokens == 6 and generation.prompt_tokens > 3 and generation.finish_reason == "length"
    assert isinstance(generation.text, str) and generation.seconds > 0


def test_judge_client_named_judge_finds_the_pinned_model(judge_server, tmp_path):
    _, exports = judge_server
    judge = JudgeClient(exports["CODEDANCE_JUDGE_URL"], "judge", cache=tmp_path / "cache.jsonl", max_new_tokens=6)
    verdicts = asyncio.run(judge.judge_many([("How many?", "3", "3"), ("Color?", "red", "blue")]))
    assert len(verdicts) == 2 and all(isinstance(v.raw, str) for v in verdicts)
    assert judge.http.model == exports["CODEDANCE_JUDGE_MODEL"]  # adopted from the server's 400 reply
    # A random model rarely writes a readable verdict; unreadable ones are not cached, readable ones are.
    assert len(judge.cache) == sum(v.correct is not None for v in verdicts)


def test_infer_against_the_served_endpoint(judge_server, tmp_path, capsys):
    """`codedance infer --model URL`: the whole loop over real HTTP (a text model ignores the image parts)."""
    from PIL import Image

    from codedance_cli.infer.run import run, with_model_override
    from codedance_cli.recipes import load_recipe

    _, exports = judge_server
    image = tmp_path / "in.png"
    Image.new("RGB", (64, 48), "red").save(image)
    recipe = load_recipe(REPO / "recipes/nano/infer.yaml", ["loop.max_turns=2", "loop.max_new_tokens=5", f"output_dir={tmp_path}"], expect_stage="infer")
    trajectory = run(with_model_override(recipe, exports["CODEDANCE_JUDGE_URL"]), question="What color?", images=[image], as_json=True)
    assert trajectory.turns and trajectory.turns[0].prompt_tokens > 100 and trajectory.turns[0].completion_tokens <= 5
    assert trajectory.stop_reason in ("answer", "no_code", "max_tokens", "max_turns", "repeated_failure")
    assert json.loads(capsys.readouterr().out)["task_id"] == trajectory.task_id


def test_ctrl_c_stops_the_server_cleanly(judge_server):
    process, exports = judge_server
    url = exports["CODEDANCE_JUDGE_URL"]
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(url.removesuffix("/v1") + "/health", timeout=3)


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="transformers serve needs torchvision to load a Qwen2-VL processor")
def test_vision_model_served_over_http(tiny_model_dir):
    from PIL import Image

    from codedance_cli.judge.server import ServedModel, build_serve_command
    from codedance_cli.loop.format import build_messages
    from codedance_cli.trajectory.schema import Trajectory, encode_image

    command = build_serve_command(str(tiny_model_dir), engine="transformers", port=free_port(), device="cpu", dtype="float32")
    with ServedModel(command, startup_timeout_s=240):
        task = Trajectory(task_id="v", question="What color?", images=[encode_image(Image.new("RGB", (64, 64), "red"))])
        client = OpenAIClient(command.base_url, command.served_name)
        generation = asyncio.run(client.generate(build_messages(task, [], "codedance-v1"), max_new_tokens=4))
        assert generation.prompt_tokens > 10 and generation.completion_tokens == 4
