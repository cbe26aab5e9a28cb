"""Model clients up to the network: retries, pinned-model discovery, bounded concurrency, scripted replay.

The HTTP tests talk to a real HTTP server on loopback that misbehaves on purpose
(429, 503, dropped connections), which a real model server rarely does on cue.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from codedance_cli.clients import ScriptedClient, ScriptExhausted, create_client, resolve_backend
from codedance_cli.clients.openai_http import OpenAIClient, normalize_endpoint
from codedance_cli.clients.vllm_offline import VLLMClient, engine_kwargs, sampling_kwargs
from codedance_cli.errors import BadInput, EngineFailed
from codedance_cli.loop.format import build_messages
from codedance_cli.loop.prompts import DEFAULT_VERSION
from codedance_cli.recipes.common import ModelSpec
from codedance_cli.trajectory.schema import Trajectory, Turn


def _last_text(body: dict) -> str:
    last = body["messages"][-1]["content"]
    return last if isinstance(last, str) else f"{len(last)} parts"


class FlakyServer:
    """Chat-completions server: fails `failures` times with `status`, then answers; records requests."""

    def __init__(self, failures: int = 0, status: int = 429, delay_s: float = 0.0, pinned: str | None = None, reply=None) -> None:
        self.failures, self.status, self.delay_s, self.pinned = failures, status, delay_s, pinned
        self.reply = reply or (lambda body: f"echo: {_last_text(body)}")
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send(200, {"object": "list", "data": []})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append(body)
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                    fail = outer.failures > 0
                    outer.failures -= 1
                try:
                    time.sleep(outer.delay_s)
                    if fail:
                        return self._send(outer.status, {"error": "busy"}, {"Retry-After": "0"})
                    if outer.pinned and body.get("model") != outer.pinned:
                        return self._send(400, {"detail": f"Server is pinned to '{outer.pinned}'; requested '{body.get('model')}'."})
                    self._send(200, {
                        "choices": [{"message": {"role": "assistant", "content": outer.reply(body)}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 11, "completion_tokens": 3},
                    })
                finally:
                    with outer.lock:
                        outer.in_flight -= 1

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the default backlog of 5 drops SYNs under a burst of connections
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server_factory():
    servers: list[FlakyServer] = []

    def make(**kwargs) -> FlakyServer:
        servers.append(FlakyServer(**kwargs))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def ask(client, text="hi", **kwargs):
    return asyncio.run(client.generate([{"role": "user", "content": text}], max_new_tokens=8, **kwargs))


def test_normalize_endpoint():
    assert normalize_endpoint("127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert normalize_endpoint("http://h:1/v1/") == "http://h:1/v1"
    assert normalize_endpoint("http://h:1/v1/chat/completions") == "http://h:1/v1"


def test_retries_on_429_and_5xx_then_succeeds(server_factory):
    server = server_factory(failures=3, status=429)
    generation = ask(OpenAIClient(server.url, "m", max_retries=4, backoff_s=0.01))
    assert generation.text == "echo: hi" and generation.prompt_tokens == 11 and generation.completion_tokens == 3
    assert generation.finish_reason == "stop" and len(server.requests) == 4
    assert server.requests[-1]["max_tokens"] == 8 and server.requests[-1]["model"] == "m"


def test_gives_up_after_max_retries(server_factory):
    server = server_factory(failures=10, status=503)
    with pytest.raises(EngineFailed, match="HTTP 503"):
        ask(OpenAIClient(server.url, "m", max_retries=2, backoff_s=0.01))
    assert len(server.requests) == 3


def test_client_errors_are_not_retried(server_factory):
    server = server_factory(failures=5, status=422)
    with pytest.raises(EngineFailed, match="HTTP 422"):
        ask(OpenAIClient(server.url, "m", max_retries=3, backoff_s=0.01))
    assert len(server.requests) == 1


def test_connection_refused_is_retried_then_reported():
    with pytest.raises(EngineFailed, match="ConnectError"):
        ask(OpenAIClient("http://127.0.0.1:9/v1", "m", max_retries=1, backoff_s=0.01))


def test_pinned_server_name_is_adopted(server_factory):
    server = server_factory(pinned="/models/tiny")
    client = OpenAIClient(server.url, "judge", backoff_s=0.01)
    assert ask(client).text == "echo: hi" and client.model == "/models/tiny"


def test_unnamed_model_and_empty_model_list_omits_the_field(server_factory):
    server = server_factory()
    ask(OpenAIClient(server.url))
    assert "model" not in server.requests[0]


def test_bounded_concurrency(server_factory):
    server = server_factory(delay_s=0.15)
    client = OpenAIClient(server.url, "m", concurrency=2)

    async def many():
        return await asyncio.gather(*(client.generate([{"role": "user", "content": str(i)}], max_new_tokens=4) for i in range(6)))

    results = asyncio.run(many())
    assert sorted(r.text for r in results) == sorted(f"echo: {i}" for i in range(6))
    assert server.max_in_flight == 2


def test_images_travel_as_data_urls(server_factory):
    from PIL import Image

    from codedance_cli.trajectory.schema import encode_image

    server = server_factory()
    task = Trajectory(task_id="t", question="what?", images=[encode_image(Image.new("RGB", (8, 8)))])
    asyncio.run(OpenAIClient(server.url, "m").generate(build_messages(task, [], DEFAULT_VERSION), max_new_tokens=4))
    part = server.requests[0]["messages"][1]["content"][0]
    assert part["type"] == "image_url" and part["image_url"]["url"].startswith("data:image/png;base64,")


def test_backend_resolution_and_factory_errors():
    assert resolve_backend(ModelSpec(endpoint="http://x/v1")) == "openai"
    assert resolve_backend(ModelSpec(path="/m")) in ("transformers", "vllm")
    assert isinstance(create_client(ModelSpec(endpoint="http://x/v1")), OpenAIClient)
    with pytest.raises(BadInput, match="model.path"):
        create_client(ModelSpec())
    with pytest.raises(BadInput, match="model.endpoint"):
        create_client(ModelSpec(backend="openai"))


def test_scripted_client_replays_per_question_and_in_order():
    tasks = [Trajectory(task_id="a", question="qa"), Trajectory(task_id="b", question="qb")]
    client = ScriptedClient.for_tasks(tasks, {"a": ["a1", "a2"], "b": ["b1"]}, latency_s=0.01)
    first = asyncio.run(client.generate(build_messages(tasks[0], [], DEFAULT_VERSION), max_new_tokens=4))
    second = asyncio.run(client.generate(build_messages(tasks[0], [Turn(text="a1")], DEFAULT_VERSION), max_new_tokens=4))
    other = asyncio.run(client.generate(build_messages(tasks[1], [], DEFAULT_VERSION), max_new_tokens=4))
    assert (first.text, second.text, other.text) == ("a1", "a2", "b1")
    assert first.seconds >= 0.01 and first.completion_tokens >= 1
    with pytest.raises(ScriptExhausted):
        asyncio.run(client.generate(build_messages(tasks[1], [Turn(text="b1")], DEFAULT_VERSION), max_new_tokens=4))
    shared = ScriptedClient(["same"])
    assert asyncio.run(shared.generate(build_messages(tasks[1], [], DEFAULT_VERSION), max_new_tokens=4)).text == "same"


class _EngineWithVllmSignature:
    """Stands in for vllm.LLM (not installable here): records batches, returns RequestOutput-shaped objects."""

    def __init__(self):
        self.batches: list[int] = []

    def chat(self, conversations, params, use_tqdm=False):
        from types import SimpleNamespace

        self.batches.append(len(conversations))
        return [
            SimpleNamespace(prompt_token_ids=[1] * 5, outputs=[SimpleNamespace(text=f"n={p['max_tokens']}", token_ids=[7, 8], finish_reason="stop")])
            for p in params
        ]


def test_vllm_client_batches_concurrent_requests_and_composes_params():
    engine = _EngineWithVllmSignature()
    client = VLLMClient(engine, batch_window_s=0.02)

    async def many():
        return await asyncio.gather(*(client.generate([{"role": "user", "content": "x"}], max_new_tokens=i + 1) for i in range(5)))

    results = asyncio.run(many())
    assert [r.text for r in results] == [f"n={i + 1}" for i in range(5)]
    assert engine.batches == [5] and results[0].prompt_tokens == 5 and results[0].completion_tokens == 2
    assert sampling_kwargs(16, 0.0, 0.9, ["</answer>"]) == {"max_tokens": 16, "temperature": 0.0, "top_p": 1.0, "stop": ["</answer>"]}
    kwargs = engine_kwargs(ModelSpec(path="/ckpt", dtype="bfloat16"), tensor_parallel_size=2, max_model_len=8192)
    assert kwargs["model"] == "/ckpt" and kwargs["tensor_parallel_size"] == 2 and kwargs["max_model_len"] == 8192
    assert kwargs["mm_processor_kwargs"] == {}  # no budget in the recipe: vLLM keeps the one saved with the checkpoint
    capped = engine_kwargs(ModelSpec(path="/ckpt", max_pixels=200704))
    assert capped["mm_processor_kwargs"] == {"max_pixels": 200704}


class _AsyncEngineWithVllmSignature:
    """Stands in for vllm's AsyncLLM (not installable here): a request's steps are its max_tokens, 10 ms each;
    every request runs on its own, as the engine's scheduler admits it at the next step."""

    def __init__(self):
        from types import SimpleNamespace

        self.rendered: list[list[dict]] = []
        self.finished: list[str] = []
        self.renderer = SimpleNamespace(render_chat_async=self._render, default_chat_tok_params="tok")

    async def _render(self, conversations, chat_params, tok_params):
        assert chat_params["chat_template_kwargs"]["add_generation_prompt"] is True and tok_params == "tok"
        self.rendered.extend(conversations)
        return conversations, [{"prompt": conversations[0][-1]["content"]}]

    async def generate(self, prompt, params, request_id):
        from types import SimpleNamespace

        for step in range(params["max_tokens"]):
            await asyncio.sleep(0.01)
            yield SimpleNamespace(prompt_token_ids=[1, 2], outputs=[SimpleNamespace(text=prompt["prompt"][: step + 1], token_ids=[0] * (step + 1), finish_reason=None)])
        self.finished.append(request_id)
        yield SimpleNamespace(prompt_token_ids=[1, 2], outputs=[SimpleNamespace(text=prompt["prompt"], token_ids=[0] * params["max_tokens"], finish_reason="stop")])

    def shutdown(self):
        self.finished.append("shutdown")


def test_vllm_async_client_finishes_a_short_request_before_a_long_one_started_earlier():
    from codedance_cli.clients.vllm_async import VLLMAsyncClient

    engines = []

    def start():
        asyncio.get_running_loop()  # AsyncLLM binds to the loop it starts in: the client's own
        engines.append(_AsyncEngineWithVllmSignature())
        return engines[-1]

    client = VLLMAsyncClient(start)
    assert len(engines) == 1  # loaded when the client is built, outside any request's time

    async def staggered():
        long = asyncio.ensure_future(client.generate([{"role": "user", "content": "long"}], max_new_tokens=30))
        await asyncio.sleep(0.05)  # a turn arriving while the long one decodes
        short = await client.generate([{"role": "user", "content": "short"}], max_new_tokens=2)
        return short, not long.done(), await long

    short, overlap, long = asyncio.run(staggered())
    assert overlap, "the short request waited for the long one (a batch barrier)"
    assert (short.text, short.completion_tokens, short.prompt_tokens, short.finish_reason) == ("short", 2, 2, "stop")
    assert long.completion_tokens == 30 and long.seconds > short.seconds

    async def cancelled_then_closed():  # a second event loop, as eval's judge pass runs one
        doomed = asyncio.ensure_future(client.generate([{"role": "user", "content": "doomed"}], max_new_tokens=50))
        await asyncio.sleep(0.05)
        doomed.cancel()
        again = await client.generate([{"role": "user", "content": "again"}], max_new_tokens=1)
        await client.aclose()
        await client.aclose()  # twice is fine
        return again

    assert asyncio.run(cancelled_then_closed()).text == "again"
    assert engines[0].finished == ["codedance-1", "codedance-0", "codedance-3", "shutdown"]  # request 2 never finished
    with pytest.raises(EngineFailed, match="after aclose"):
        asyncio.run(client.generate([{"role": "user", "content": "x"}], max_new_tokens=1))


def test_model_spec_vllm_options_reach_the_engine_arguments():
    spec = ModelSpec.model_validate({"path": "/ckpt", "vllm": {"gpu_memory_utilization": 0.3, "max_model_len": 4096, "batching": "batch"}})
    kwargs = engine_kwargs(spec)  # what both vLLM clients start their engine with
    assert kwargs["gpu_memory_utilization"] == 0.3 and kwargs["max_model_len"] == 4096 and kwargs["enforce_eager"] is False
    assert engine_kwargs(spec, max_model_len=8192)["max_model_len"] == 8192  # an explicit argument still wins
    with pytest.raises(ValueError):
        ModelSpec.model_validate({"path": "/ckpt", "vllm": {"batching": "fast"}})
