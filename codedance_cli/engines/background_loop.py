"""A private event loop on a daemon thread, for async resources used from sync or short-lived loops.

ms-swift drives scheduler hooks from a fresh event loop per rollout (and
`step` synchronously), while a sandbox session's pipes belong to the loop that
opened them. Running every sandbox call on one long-lived loop keeps sessions
valid across turns and rollouts.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    """Runs coroutines on its own thread; `call` from sync code, `run` from any other loop."""

    def __init__(self, name: str = "codedance-sandbox-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Block until `coro` finished on the background loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` from another event loop without blocking it."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
