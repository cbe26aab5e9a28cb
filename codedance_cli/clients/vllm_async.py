"""vLLM `AsyncLLM` client: every request goes to the engine on its own, as `vllm serve` does.

The offline client (`vllm_offline`) gathers concurrent requests into one `LLM.chat` call and waits for the whole
batch: in the tool loop, a trajectory whose code just finished waits for the slowest sequence of the batch in
flight before its next turn starts. Here each `generate` renders its chat (vLLM's own renderer: chat template and
image processing, the path `LLM.chat` takes) and adds one request to the running engine, whose scheduler admits it
at the next step (continuous batching); it returns when that request alone finishes.

The engine lives on its own thread with its own event loop, started (and loaded) when the client is built:
`AsyncLLM` ties its output handler and ZMQ sockets to the loop it starts in, and the stages build a client before
`asyncio.run` and may run several loops with it. Its per-step output handling then never competes with the
caller's loop, which drives the sandboxes. A first version started the engine lazily on the caller's loop; its
load time then landed inside the first requests (a 75 s first turn on the GPU run).
`renderer.render_chat_async` is vLLM 0.24's API (`vllm/entrypoints/offline_utils.py` calls the synchronous twin);
`engine_factory` lets tests drive the same code with any object of that shape.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from codedance_cli.clients.base import Generation, Messages
from codedance_cli.clients.vllm_offline import engine_kwargs, generation_from_output, sampling_kwargs
from codedance_cli.errors import BadInput, EngineFailed


class VLLMAsyncClient:
    """One `AsyncLLM` on a background loop; requests are independent (no batch barrier)."""

    def __init__(self, engine_factory: Callable[[], Any], *, sampling_params_factory: Any = None, chat_params_factory: Any = None) -> None:
        self._make_params = sampling_params_factory or (lambda **kwargs: kwargs)
        self._make_chat_params = chat_params_factory or (lambda **kwargs: kwargs)
        self._ids = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="codedance-vllm-async", daemon=True)
        self._thread.start()

        async def start() -> Any:  # inside the engine loop, so AsyncLLM binds to it
            return engine_factory()

        try:
            self._engine = asyncio.run_coroutine_threadsafe(start(), self._loop).result()
        except BaseException:
            self._stop_loop()
            raise

    @classmethod
    def from_spec(cls, spec: Any) -> VLLMAsyncClient:
        try:
            from vllm import SamplingParams
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.renderers.params import ChatParams
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:
            raise BadInput(f"model.backend 'vllm': cannot import vLLM's AsyncLLM ({exc}); install vllm on a GPU machine") from None
        kwargs = engine_kwargs(spec)

        def start() -> Any:
            return AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))

        return cls(start, sampling_params_factory=SamplingParams, chat_params_factory=ChatParams)

    async def generate(
        self,
        messages: Messages,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: list[str] | None = None,
    ) -> Generation:
        if self._engine is None:
            raise EngineFailed("vLLM AsyncLLM client used after aclose()")
        params = self._make_params(**sampling_kwargs(max_new_tokens, temperature, top_p, stop))
        request = self._generate(messages, params, f"codedance-{next(self._ids)}", time.perf_counter())
        # Cancelling the caller's await cancels the task on the engine loop, and vLLM aborts the request.
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(request, self._loop))

    async def _generate(self, messages: Messages, params: Any, request_id: str, started: float) -> Generation:
        """On the engine loop: render the chat, run one request to its end."""
        engine = self._engine
        renderer = engine.renderer
        chat_params = self._make_chat_params(chat_template_kwargs={"add_generation_prompt": True, "continue_final_message": False})
        _, (prompt,) = await renderer.render_chat_async([messages], chat_params, renderer.default_chat_tok_params)
        final = None
        async for output in engine.generate(prompt, params, request_id):
            final = output
        if final is None:
            raise EngineFailed("vLLM AsyncLLM returned no output for a request")
        return generation_from_output(final, started)

    async def aclose(self) -> None:
        """Shut the engine down on its loop, then end the loop's thread (idempotent)."""
        if self._engine is not None:
            engine, self._engine = self._engine, None

            async def shutdown() -> None:
                engine.shutdown()

            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(shutdown(), self._loop))
        self._stop_loop()

    def _stop_loop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()
