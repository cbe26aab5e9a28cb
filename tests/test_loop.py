"""The think -> code -> execute loop with the real local sandbox, driven by recorded CodeDance-style turns.

Only the model is replaced (ScriptedClient); parsing, formatting and the sandbox
are real. One sandbox serves the module: it lives on an event loop in a
background thread, and each test submits its coroutine to that loop.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from PIL import Image, ImageDraw

from codedance_cli.clients import ScriptedClient
from codedance_cli.loop.format import build_messages
from codedance_cli.loop.prompts import DEFAULT_VERSION, NO_OUTPUT_MESSAGE, TOOL_RESPONSE_NUDGE, TOOLCALL_VERSION, tool_call_text
from codedance_cli.loop.runner import run_many, run_trajectory
from codedance_cli.recipes.common import LoopConfig, SandboxConfig
from codedance_cli.sandbox import create_sandbox
from codedance_cli.trajectory.schema import Trajectory, decode_image, encode_image


def dots_image() -> bytes:
    """320x240 white image with three red dots (two in the top-left quadrant)."""
    image = Image.new("RGB", (320, 240), "white")
    draw = ImageDraw.Draw(image)
    for x, y in [(40, 40), (110, 80), (250, 180)]:
        draw.ellipse((x - 12, y - 12, x + 12, y + 12), fill=(230, 20, 20))
    return encode_image(image)


@pytest.fixture(scope="module")
def on_loop():
    """Run coroutines on one long-lived loop that owns one real local sandbox."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sandbox = create_sandbox(SandboxConfig(workers=1, timeout_s=2.0, cpu_s=5))

    def run(coroutine_factory, timeout=120):
        return asyncio.run_coroutine_threadsafe(coroutine_factory(sandbox), loop).result(timeout)

    yield run
    asyncio.run_coroutine_threadsafe(sandbox.close(), loop).result(60)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


COUNT_TURNS = [
    "<think>I need to count the red dots. A color mask and connected components will count them exactly.</think>\n"
    "```python\nimport numpy as np\nimport cv2\n"
    "arr = np.array(input_image.convert('RGB'))\n"
    "mask = (arr[:, :, 0] > 200) & (arr[:, :, 1] < 80) & (arr[:, :, 2] < 80)\n"
    "n, labels = cv2.connectedComponents(mask.astype('uint8'))\n"
    "print('red blobs:', n - 1)\n```",
    "<think>Three blobs. Let me zoom into the top-left quadrant to check two of them are separate dots.</think>\n"
    "```python\ncrop = input_image.crop((0, 0, 160, 120)).resize((320, 240))\ncrop\n```",
    "<think>The zoomed crop shows two separate dots there and one more bottom right: 3 dots.</think>\n<answer>3</answer>",
]

FIX_TURNS = [
    "<think>First get the image size.</think>\n```python\nprint(input_imag.size)\n```",
    "<think>Typo in the variable name; fix it.</think>\n```python\nw, h = input_image.size\nprint(w, h)\n```",
    "<think>Plot the histogram of the red channel to see the two populations.</think>\n"
    "```python\nimport numpy as np\nimport matplotlib.pyplot as plt\n"
    "plt.hist(np.array(input_image)[:, :, 0].ravel(), bins=16)\nplt.title(f'{w}x{h}')\nplt.show()\n```",
    "<think>Nothing to print here, just store a value.</think>\n```python\nratio = w / h\n```",
    "<think>The image is 320 by 240.</think>\n<answer>320x240</answer>",
]


def test_counting_with_crop_and_zoom(on_loop):
    task = Trajectory(task_id="dots", question="How many red dots are in the image?", images=[dots_image()], ground_truth="3")
    client = ScriptedClient.for_tasks([task], {"dots": COUNT_TURNS}, record=True)
    result = on_loop(lambda sandbox: run_trajectory(task, client, sandbox, LoopConfig()))
    assert result.stop_reason == "answer" and result.final_answer == "3"
    assert result.system_prompt and result.prompt_version == DEFAULT_VERSION and result.ground_truth == "3"
    first, second, third = result.turns
    assert first.observation.stdout == "red blobs: 3\n" and first.observation.ok
    assert second.observation.images and decode_image(second.observation.images[0]).size == (320, 240)
    assert third.code is None and third.observation is None
    for turn in result.turns:
        assert turn.generation_s is not None and turn.prompt_tokens and turn.completion_tokens
    # The model saw the printed count and the zoomed image in the following turns.
    seen = client.requests[1][-1]["content"]
    assert seen[0]["text"] == "Code execution result:\nred blobs: 3"
    later = client.requests[2][-1]["content"]
    assert later[0]["text"].endswith("[1 image attached]") and later[1]["type"] == "image_url"
    assert result.metadata["loop"]["tool_s"] > 0 and len(result.metadata["loop"]["parse_flags"]) == 3


def test_failing_cell_then_fix_plot_and_state_persists(on_loop):
    task = Trajectory(task_id="size", question="What is the image size (WxH)?", images=[dots_image()])
    client = ScriptedClient.for_tasks([task], {"size": FIX_TURNS}, record=True)
    result = on_loop(lambda sandbox: run_trajectory(task, client, sandbox, LoopConfig()))
    assert result.stop_reason == "answer" and result.final_answer == "320x240"
    failed, fixed, plotted, silent, _ = result.turns
    assert failed.observation.error_type == "NameError" and not failed.observation.ok
    assert fixed.observation.stdout == "320 240\n"
    assert len(plotted.observation.images) == 1 and plotted.observation.ok  # w, h from an earlier cell
    assert silent.observation.ok and result.num_tool_calls == 4 and result.num_failed_calls == 1
    error_text = client.requests[1][-1]["content"][0]["text"]
    assert "Error:" in error_text and "NameError" in error_text and "input_imag" in error_text
    assert client.requests[4][-1]["content"][0]["text"] == f"Code execution result:\n{NO_OUTPUT_MESSAGE}"


def test_tool_call_format_round_trip_with_a_bad_call(on_loop):
    task = Trajectory(task_id="tc", question="What is the width?", images=[dots_image()])
    turns = [
        "<think>call the tool</think>\n<tool_call>\n{\"name\": \"execute_python_code\", \"arguments\": {\"code\": }}\n</tool_call>",
        "<think>fix the JSON</think>\n" + tool_call_text("print(input_image.width)\ninput_image.resize((64, 48))"),
        "<think>320 wide.</think>\n<answer>320</answer>",
    ]
    client = ScriptedClient(turns, record=True)
    config = LoopConfig(prompt_version=TOOLCALL_VERSION)
    result = on_loop(lambda sandbox: run_trajectory(task, client, sandbox, config))
    assert result.stop_reason == "answer" and result.final_answer == "320"
    assert result.turns[0].code is None and result.turns[0].observation.error_type == "ToolCallError"
    assert result.turns[1].observation.stdout == "320\n" and len(result.turns[1].observation.images) == 1
    response = client.requests[2][-1]["content"]
    assert response[0]["text"] == "<tool_response>\n320\n[1 image attached]\n"
    assert response[1]["type"] == "image_url" and response[2]["text"] == f"</tool_response>\n{TOOL_RESPONSE_NUDGE}"
    # The recorded turns re-render to exactly what the model saw (the SFT export relies on this).
    assert build_messages(result, result.turns[:2], TOOLCALL_VERSION, config) == client.requests[2]


def test_timeout_is_an_observation_and_the_loop_goes_on(on_loop):
    task = Trajectory(task_id="slow", question="q", images=[dots_image()])
    client = ScriptedClient(["```python\nwhile True:\n    pass\n```", "```python\nprint('alive')\n```", "<answer>ok</answer>"], record=True)
    result = on_loop(lambda sandbox: run_trajectory(task, client, sandbox, LoopConfig()))
    assert result.turns[0].observation.timed_out and result.turns[1].observation.stdout == "alive\n"
    assert "Error: Timeout" in client.requests[1][-1]["content"][0]["text"] and result.stop_reason == "answer"


@pytest.mark.parametrize(
    "turns, config, finish, stop_reason, n_turns",
    [
        (["```python\n1/0\n```"] * 5, LoopConfig(max_consecutive_failures=3), "stop", "repeated_failure", 3),
        (["```python\nprint(1)\n```"] * 5, LoopConfig(max_turns=2), "stop", "max_turns", 2),
        (["I think the answer is obvious."], LoopConfig(), "stop", "no_code", 1),
        (["<think>long thoughts that were cut"], LoopConfig(), "length", "max_tokens", 1),
        (["```python\nprint(1)\n```"] * 5, LoopConfig(max_new_tokens=64, max_total_tokens=40), "stop", "max_tokens", 1),
        (["```python\nprint(1)\n```"], LoopConfig(), "stop", "error", 1),
    ],
    ids=["repeated_failure", "max_turns", "no_code", "length", "token_budget", "client_error"],
)
def test_stop_reasons(on_loop, turns, config, finish, stop_reason, n_turns):
    task = Trajectory(task_id="s", question="What is shown?", images=[dots_image()])
    client = ScriptedClient(turns, finish_reason=finish)
    result = on_loop(lambda sandbox: run_trajectory(task, client, sandbox, config))
    assert result.stop_reason == stop_reason and len(result.turns) == n_turns
    assert result.final_answer is None
    if stop_reason == "error":
        assert "ScriptExhausted" in result.metadata["error"]


def test_run_many_bounds_concurrency_and_returns_every_task(on_loop):
    tasks = [Trajectory(task_id=f"t{i}", question=f"question {i}", images=[dots_image()]) for i in range(8)]
    scripts = {t.task_id: [f"```python\nprint({i} * 2)\n```", f"<answer>{i * 2}</answer>"] for i, t in enumerate(tasks)}
    client = ScriptedClient.for_tasks(tasks, scripts, latency_s=0.05)
    done: list[str] = []

    async def collect(sandbox):
        return [t async for t in run_many(iter(tasks), client, sandbox, LoopConfig(concurrency=3), on_done=lambda t: done.append(t.task_id))]

    results = on_loop(collect)
    assert sorted(t.task_id for t in results) == sorted(t.task_id for t in tasks) == sorted(done)
    assert all(t.final_answer == str(int(t.task_id[1:]) * 2) for t in results)
    assert all(t.turns[0].observation.stdout == f"{int(t.task_id[1:]) * 2}\n" for t in results)
    assert client.max_in_flight == 3


class CountingSandbox:
    """The real sandbox with open/close counted: every session the loop opens must be closed."""

    def __init__(self, inner):
        self.inner, self.opened, self.closed = inner, 0, 0

    async def open_session(self, images=()):
        session = await self.inner.open_session(images)
        self.opened += 1
        outer = self
        original_close = session.close

        async def close():
            outer.closed += 1
            await original_close()

        session.close = close
        return session


def test_sessions_are_prefetched_and_always_closed(on_loop):
    tasks = [Trajectory(task_id=f"c{i}", question=f"count {i}", images=[dots_image()]) for i in range(5)]
    scripts = {
        "c0": ["<answer>direct</answer>"],  # prefetched session never used
        "c1": ["```python\nprint(1)\n```", "<answer>1</answer>"],
        "c2": ["```python\n1/0\n```"] * 3,  # repeated failure
        "c3": ["```python\nprint(3)\n```"],  # script runs out: stop_reason error
        "c4": ["no code, no answer"],
    }
    client = ScriptedClient.for_tasks(tasks, scripts, latency_s=0.02)

    async def go(sandbox):
        counting = CountingSandbox(sandbox)
        results = [t async for t in run_many(tasks, client, counting, LoopConfig(concurrency=5))]
        single = await run_trajectory(tasks[1], client, counting, LoopConfig(), prefetch_session=False)
        return counting, results, single

    counting, results, single = on_loop(go)
    reasons = {t.task_id: t.stop_reason for t in results}
    assert reasons == {"c0": "answer", "c1": "answer", "c2": "repeated_failure", "c3": "error", "c4": "no_code"}
    assert single.final_answer == "1" and single.metadata["loop"]["tool_s"] > 0
    assert counting.opened == counting.closed == 6
