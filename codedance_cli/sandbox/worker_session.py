"""The session logic both backends share: run a cell on a warm worker, survive the worker's death.

A local worker process and a Docker container differ only in how a session is
(re)placed on one, how a hung one is retired, and what extra a failure can be
explained by; the rest — per-session lock, restart with a note, the grace
period before a silent worker is declared hung — lives here once.
"""

from __future__ import annotations

import abc
import asyncio
import time
from typing import Any

from codedance_cli.sandbox.base import SandboxSession
from codedance_cli.sandbox.protocol import WorkerError, failed_observation
from codedance_cli.trajectory.schema import Observation

GRACE_S = 10.0  # beyond the cell timeout, before we decide the worker itself hangs and replace it


class WorkerSession(SandboxSession):
    """A session living on one worker (`unit`: "worker" or "container"); moved to a fresh one if it dies."""

    unit = "worker"
    replaced = "restarted"  # what happens to a hung unit, as the observation says it

    def __init__(self, sandbox: Any, session_id: str, images: list[str], default_timeout_s: float) -> None:
        self.sandbox, self.session_id, self.images = sandbox, session_id, images
        self.default_timeout_s = default_timeout_s
        self.lock = asyncio.Lock()
        self.closed = False

    @abc.abstractmethod
    def _client(self) -> Any:
        """The protocol client of the unit this session is on, or None when it has none."""

    @abc.abstractmethod
    async def _replace(self) -> None:
        """Open this session again on a live unit (raises WorkerError when none can be had)."""

    @abc.abstractmethod
    async def _retire_unit(self) -> None:
        """Kill the unit that stopped answering."""

    async def _explain(self, observation: Observation) -> None:
        """Backend-specific detail on a failed cell (e.g. which memory limit killed it)."""

    async def run(self, code: str, timeout_s: float | None = None) -> Observation:
        timeout = float(timeout_s if timeout_s is not None else self.default_timeout_s)
        async with self.lock:
            if self.closed:
                return failed_observation("SessionClosed", "this sandbox session is closed")
            note = None
            client = self._client()
            if not (client and client.alive):
                note = f"[sandbox] the sandbox {self.unit} died; this session was restarted: variables from earlier cells are lost"
                try:
                    await self._replace()
                except WorkerError as exc:
                    return failed_observation("SandboxError", f"could not restart the session: {exc}")
                client = self._client()
            started = time.monotonic()
            try:
                observation = await asyncio.wait_for(client.run(self.session_id, code, timeout), timeout + GRACE_S)
            except asyncio.TimeoutError:
                await self._retire_unit()
                return failed_observation("SandboxError", f"the sandbox {self.unit} stopped answering and was {self.replaced}",
                                          time.monotonic() - started)
            except WorkerError as exc:
                return failed_observation("SandboxError", f"the sandbox {self.unit} failed: {exc}", time.monotonic() - started)
            await self._explain(observation)
            if note:
                observation.stderr = f"{note}\n{observation.stderr}" if observation.stderr else note
            return observation

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        await self.sandbox._release(self)
