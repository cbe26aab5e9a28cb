"""OpenAI-compatible HTTP client: vLLM `serve`, `transformers serve`, or any chat-completions API.

Retries with exponential backoff on 429 / 5xx / connection errors and timeouts
(honouring Retry-After), and bounds the requests in flight so a rollout of
hundreds of trajectories does not open hundreds of connections.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from typing import Any

import httpx

from codedance_cli.clients.base import Generation, Messages
from codedance_cli.errors import EngineFailed

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# `transformers serve MODEL` accepts only the pinned name and says which one in a 400.
_PINNED = re.compile(r"pinned to '([^']+)'")


def normalize_endpoint(endpoint: str) -> str:
    """`http://host:8000`, `.../v1/` or `.../v1/chat/completions` -> `http://host:8000/v1`."""
    url = endpoint.strip().rstrip("/")
    url = url.removesuffix("/chat/completions")
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    return url if url.endswith("/v1") else url + "/v1"


def list_models(endpoint: str, timeout_s: float = 5.0, api_key: str | None = None) -> list[str]:
    """Model ids the server lists at /v1/models (raises httpx errors when it is down)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    response = httpx.get(normalize_endpoint(endpoint) + "/models", timeout=timeout_s, headers=headers)
    response.raise_for_status()
    return [entry["id"] for entry in response.json().get("data", []) if "id" in entry]


class OpenAIClient:
    """Chat completions over HTTP with retries, timeouts and bounded concurrency."""

    def __init__(
        self,
        endpoint: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeout_s: float = 300.0,
        max_retries: int = 5,
        concurrency: int = 64,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.endpoint = normalize_endpoint(endpoint)
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.concurrency = concurrency
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._model_resolved = model is not None
        self._http: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_spec(cls, spec: Any, concurrency: int = 64) -> OpenAIClient:
        """From a recipe ModelSpec (endpoint, served_name, api_key_env, timeout, retries)."""
        return cls(
            spec.endpoint,
            spec.served_name,
            api_key=os.environ.get(spec.api_key_env) or None,
            timeout_s=spec.request_timeout_s,
            max_retries=spec.max_retries,
            concurrency=concurrency,
        )

    def _bind(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        """HTTP pool and semaphore of the running loop (asyncio objects must not cross loops)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._http is None or self._semaphore is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s, connect=10.0), limits=limits, headers=headers)
            self._semaphore = asyncio.Semaphore(self.concurrency)
            self._loop = loop
        return self._http, self._semaphore

    async def _resolve_model(self, http: httpx.AsyncClient) -> None:
        """Use the first listed model when none was named; none listed -> omit the field."""
        if self._model_resolved:
            return
        try:
            response = await http.get(self.endpoint + "/models")
            if response.status_code == 200:
                ids = [entry["id"] for entry in response.json().get("data", []) if "id" in entry]
                self.model = ids[0] if ids else None
        except (httpx.HTTPError, ValueError):
            self.model = None
        self._model_resolved = True

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None and (after := response.headers.get("retry-after")):
            try:
                return min(float(after), self.max_backoff_s)
            except ValueError:
                pass
        return min(self.backoff_s * 2**attempt, self.max_backoff_s) * (0.5 + random.random() / 2)

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /chat/completions with retries; the parsed JSON response."""
        http, semaphore = self._bind()
        async with semaphore:
            await self._resolve_model(http)
            last_error = "no attempt made"
            for attempt in range(self.max_retries + 1):
                request = dict(body)
                if self.model is not None:
                    request["model"] = self.model
                response: httpx.Response | None = None
                try:
                    response = await http.post(self.endpoint + "/chat/completions", json=request)
                except (httpx.TransportError, httpx.TimeoutException) as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
                else:
                    if response.status_code == 200:
                        return response.json()
                    detail = response.text[:500]
                    pinned = _PINNED.search(detail) if response.status_code == 400 else None
                    if pinned and pinned.group(1) != request.get("model"):
                        self.model = pinned.group(1)
                        continue
                    last_error = f"HTTP {response.status_code}: {detail}"
                    if response.status_code not in RETRY_STATUS:
                        break
                if attempt < self.max_retries:
                    await asyncio.sleep(self._delay(attempt, response))
            raise EngineFailed(f"{self.endpoint}/chat/completions failed: {last_error}")

    async def generate(
        self,
        messages: Messages,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: list[str] | None = None,
    ) -> Generation:
        body: dict[str, Any] = {"messages": messages, "max_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
        if stop:
            body["stop"] = stop
        started = time.perf_counter()
        data = await self.chat(body)
        seconds = time.perf_counter() - started
        choice = (data.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        text = message.get("content") or ""
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if reasoning and "<think>" not in text:
            text = f"<think>{reasoning}</think>{text}"
        usage = data.get("usage") or {}
        return Generation(
            text=text,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            seconds=seconds,
            finish_reason=choice.get("finish_reason"),
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
