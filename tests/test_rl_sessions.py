"""SandboxSessions' own guard: a sandbox that itself stops answering still cannot stall a training step.

The real sandbox kills hanging *cells* (tests/test_rl_verl_tool.py); a sandbox *backend* that hangs or fails
to start cannot be provoked on demand, so these two tests use a backend double for exactly that failure."""

from __future__ import annotations

import asyncio
import time

from codedance_cli.recipes.common import SandboxConfig
from codedance_cli.loop.format import observation_text
from codedance_cli.loop.grammar import observation_failed
from codedance_cli.engines.sandbox_sessions import SandboxSessions
from codedance_cli.sandbox.base import Sandbox, SandboxSession


class StuckSession(SandboxSession):
    def __init__(self) -> None:
        self.closed = False

    async def run(self, code: str, timeout_s: float | None = None):
        await asyncio.sleep(3600)

    async def close(self) -> None:
        self.closed = True


class StuckSandbox(Sandbox):
    def __init__(self, fail_open: bool = False) -> None:
        self.fail_open, self.sessions = fail_open, []

    async def open_session(self, images=()):
        if self.fail_open:
            raise RuntimeError("worker pool is down")
        self.sessions.append(StuckSession())
        return self.sessions[-1]

    async def close(self) -> None:
        pass


def test_unresponsive_sandbox_times_out_and_drops_the_session() -> None:
    sandbox = StuckSandbox()
    sessions = SandboxSessions(SandboxConfig(timeout_s=0.2), guard_s=0.2, sandbox_factory=lambda config: sandbox)

    async def scenario():
        started = time.monotonic()
        obs = await sessions.run("t", "print(1)")
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.05)  # the dropped session closes in the background
        return obs, elapsed

    obs, elapsed = asyncio.run(scenario())
    assert obs.timed_out and obs.error_type == "Timeout" and observation_failed(observation_text(obs, 0))
    assert elapsed < 1.0
    assert sessions.open_sessions == 0 and sandbox.sessions[0].closed


def test_sandbox_that_cannot_start_is_an_observation() -> None:
    sessions = SandboxSessions(SandboxConfig(timeout_s=0.2), guard_s=0.2, sandbox_factory=lambda config: StuckSandbox(fail_open=True))
    obs = asyncio.run(sessions.run("t", "print(1)"))
    assert obs.error_type == "SandboxError" and "worker pool is down" in obs.error
