"""Our sandbox as an RL engine's code tool: one session per trajectory, never a stalled step.

Engines call the tool once per code cell and know nothing of sessions, so this
keeps them keyed by trajectory id: opened on the first call (with the
trajectory's input images), reused by later calls (variables persist, as in the
system prompt), closed when the trajectory ends or has been idle too long.

Whatever the code does, `run` returns an Observation: the sandbox's own timeout
kills a hanging cell, and a guard timeout around it covers a sandbox that
itself stops answering (the session is then dropped). A training step waits at
most `timeout_s + guard_s` per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from codedance_cli.recipes.common import SandboxConfig
from codedance_cli.sandbox.base import InputImage, Sandbox, SandboxSession
from codedance_cli.trajectory.schema import Observation

ImagesFactory = Callable[[], Sequence[InputImage]]


def error_observation(error_type: str, message: str, *, timed_out: bool = False, duration_s: float = 0.0) -> Observation:
    """An Observation for a failure outside the code (bad call, sandbox trouble)."""
    return Observation(error_type=error_type, error=message, timed_out=timed_out, duration_s=duration_s)


@dataclass
class _Entry:
    session: SandboxSession
    last_used: float


class SandboxSessions:
    """Per-trajectory sessions of one lazily created sandbox, bound to the event loop that uses it."""

    def __init__(self, config: SandboxConfig, *, idle_s: float = 1800.0, guard_s: float = 10.0, sandbox_factory=None) -> None:
        self.config = config
        self.idle_s = idle_s
        self.guard_s = guard_s
        self._sandbox_factory = sandbox_factory
        self._sandbox: Sandbox | None = None
        self._sessions: dict[str, _Entry] = {}
        self._opening: dict[str, asyncio.Future] = {}

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    async def _get_sandbox(self) -> Sandbox:
        if self._sandbox is None:
            if self._sandbox_factory is not None:
                self._sandbox = self._sandbox_factory(self.config)
            else:
                from codedance_cli.sandbox import create_sandbox

                self._sandbox = create_sandbox(self.config)
        return self._sandbox

    async def _session(self, key: str, images: ImagesFactory) -> SandboxSession:
        entry = self._sessions.get(key)
        if entry is not None:
            entry.last_used = time.monotonic()
            return entry.session
        pending = self._opening.get(key)
        if pending is not None:  # a parallel call of the same trajectory is opening it
            return await asyncio.shield(pending)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._opening[key] = future
        try:
            sandbox = await self._get_sandbox()
            session = await sandbox.open_session(list(images()))
            self._sessions[key] = _Entry(session, time.monotonic())
            future.set_result(session)
            return session
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) get it through shield
            raise
        finally:
            self._opening.pop(key, None)

    async def run(self, key: str, code: str, images: ImagesFactory = tuple) -> Observation:
        """Run one cell in trajectory `key`'s session; always an Observation, within timeout_s + guard_s."""
        await self.close_idle()
        started = time.monotonic()
        limit = self.config.timeout_s + self.guard_s
        try:
            session = await asyncio.wait_for(self._session(key, images), limit)
        except Exception as exc:  # noqa: BLE001 - sandbox trouble is an observation, not a crashed step
            return error_observation("SandboxError", f"could not start a sandbox session: {type(exc).__name__}: {exc}")
        try:
            return await asyncio.wait_for(session.run(code, timeout_s=self.config.timeout_s), limit)
        except asyncio.TimeoutError:
            await self.close_session(key, wait=False)
            return error_observation(
                "Timeout", f"the cell did not finish within {self.config.timeout_s:g} s and was killed",
                timed_out=True, duration_s=time.monotonic() - started,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001
            await self.close_session(key, wait=False)
            return error_observation("SandboxError", f"{type(exc).__name__}: {exc}", duration_s=time.monotonic() - started)

    async def close_session(self, key: str, *, wait: bool = True) -> None:
        """End trajectory `key`'s session (no-op when it has none)."""
        entry = self._sessions.pop(key, None)
        if entry is None:
            return
        closing = asyncio.ensure_future(self._close_quietly(entry.session))
        if wait:
            await closing

    async def close_idle(self) -> None:
        """Close sessions whose trajectory stopped calling (ended without telling us)."""
        now = time.monotonic()
        for key in [key for key, entry in self._sessions.items() if now - entry.last_used > self.idle_s]:
            await self.close_session(key, wait=False)

    async def close(self) -> None:
        """Close every session and the sandbox."""
        for key in list(self._sessions):
            await self.close_session(key)
        if self._sandbox is not None:
            sandbox, self._sandbox = self._sandbox, None
            await self._close_quietly(sandbox)

    async def _close_quietly(self, closable: SandboxSession | Sandbox) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(closable.close(), self.guard_s)
