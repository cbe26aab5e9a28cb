"""vLLM offline engine client: in-process `vllm.LLM` with continuous batching for rollouts on a GPU.

Concurrent `generate` calls are gathered into one `LLM.chat` call (a list of
conversations, one SamplingParams each) so vLLM batches them; the engine runs on
one dedicated thread (`generate_batcher`, shared with the transformers client). Images stay data URLs, which vLLM's chat parser accepts.
Cannot run on a machine without vLLM and a GPU; the batching and the
SamplingParams composition are plain code and tested with any engine object that
has vLLM's `chat` signature.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from codedance_cli.clients.base import Generation, Messages
from codedance_cli.clients.generate_batcher import GenerateBatcher
from codedance_cli.errors import BadInput


def sampling_kwargs(max_new_tokens: int, temperature: float, top_p: float, stop: list[str] | None) -> dict[str, Any]:
    """Keyword arguments for `vllm.SamplingParams` of one request."""
    kwargs: dict[str, Any] = {"max_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p if temperature > 0 else 1.0}
    if stop:
        kwargs["stop"] = list(stop)
    return kwargs


def engine_kwargs(
    spec: Any, *, tensor_parallel_size: int = 1, gpu_memory_utilization: float | None = None, max_model_len: int | None = None
) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM` / `AsyncEngineArgs` from a recipe ModelSpec (its `vllm` section unless overridden)."""
    options = spec.vllm
    kwargs: dict[str, Any] = {
        "model": spec.path,
        "dtype": spec.dtype,
        "tensor_parallel_size": tensor_parallel_size,
        "gpu_memory_utilization": options.gpu_memory_utilization if gpu_memory_utilization is None else gpu_memory_utilization,
        "enforce_eager": options.enforce_eager,
        "mm_processor_kwargs": {key: value for key, value in (("max_pixels", spec.max_pixels), ("min_pixels", spec.min_pixels)) if value is not None},  # unset: the checkpoint's own
        "limit_mm_per_prompt": {"image": 16},
    }
    if (length := options.max_model_len if max_model_len is None else max_model_len) is not None:
        kwargs["max_model_len"] = length
    return kwargs


def generation_from_output(output: Any, started: float) -> Generation:
    """Our Generation from one vLLM `RequestOutput` (both vLLM clients), timed from `started`."""
    completion = output.outputs[0]
    return Generation(
        text=completion.text,
        prompt_tokens=len(output.prompt_token_ids or []),
        completion_tokens=len(completion.token_ids),
        seconds=time.perf_counter() - started,
        finish_reason=completion.finish_reason,
    )


@dataclass(frozen=True, eq=False)
class _Request:
    messages: Messages
    params: dict[str, Any]
    started: float = field(default_factory=time.perf_counter)


class VLLMClient:
    """Micro-batching async front of a `vllm.LLM` (or anything with its `chat` signature).

    The transformers client's `GenerateBatcher` does the gathering: vLLM takes one SamplingParams per
    conversation, so every pending request joins the same `chat` call (a single group).
    """

    def __init__(self, engine: Any, *, sampling_params_factory: Any = None, batch_window_s: float = 0.005, max_batch: int = 256) -> None:
        self.engine = engine
        self._make_params = sampling_params_factory or (lambda **kwargs: kwargs)
        self._batcher: GenerateBatcher[_Request, Generation] = GenerateBatcher(
            self._run_batch, key=lambda request: None, max_batch_size=max_batch, gather_s=batch_window_s, name="codedance-vllm"
        )
        weakref.finalize(self, self._batcher.stop)  # dropped without aclose: the worker thread still ends

    @classmethod
    def from_spec(cls, spec: Any, **engine_options: Any) -> VLLMClient:
        try:
            from vllm import LLM, SamplingParams
        except ImportError:
            raise BadInput("model.backend 'vllm': vllm is not installed (pip install vllm on a GPU machine)") from None
        return cls(LLM(**engine_kwargs(spec, **engine_options)), sampling_params_factory=SamplingParams)

    def _run_batch(self, batch: list[_Request]) -> list[Generation]:
        """One `LLM.chat` over the batch (on the batcher's worker thread)."""
        conversations = [request.messages for request in batch]
        params = [self._make_params(**request.params) for request in batch]
        outputs = self.engine.chat(conversations, params, use_tqdm=False)
        return [generation_from_output(output, request.started) for request, output in zip(batch, outputs, strict=True)]

    async def generate(
        self,
        messages: Messages,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: list[str] | None = None,
    ) -> Generation:
        return await self._batcher.submit(_Request(messages, sampling_kwargs(max_new_tokens, temperature, top_p, stop)))

    async def aclose(self) -> None:
        await self._batcher.aclose()
