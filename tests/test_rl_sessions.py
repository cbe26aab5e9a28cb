"""SandboxSessions' own guard: a sandbox that itself stops answering still cannot stall a training step.

The real sandbox kills hanging *cells* (tests/test_rl_verl_tool.py); a sandbox *backend* that hangs or fails
to start cannot be provoked on demand, so these two tests use a backend double for exactly that failure."""

from __future__ import annotations

import asyncio
import time

from codedance_cli.recipes.common import SandboxConfig
from codedance_cli.loop.format import observation_text
from codedance_cli.loop.grammar import call_failure_kinds, failure_kind, observation_failed
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
    assert failure_kind(observation_text(obs, 0)) == "timeout"
    assert elapsed < 1.0
    assert sessions.open_sessions == 0 and sandbox.sessions[0].closed


def test_sandbox_that_cannot_start_is_an_observation() -> None:
    sessions = SandboxSessions(SandboxConfig(timeout_s=0.2), guard_s=0.2, sandbox_factory=lambda config: StuckSandbox(fail_open=True))
    obs = asyncio.run(sessions.run("t", "print(1)"))
    assert obs.error_type == "SandboxError" and "worker pool is down" in obs.error


def test_failed_calls_are_counted_by_what_they_raised_in_the_real_sandbox() -> None:
    """The kinds the RL step statistics count (verl's `codedance/failed/<kind>`), read off real rendered responses."""
    sessions = SandboxSessions(SandboxConfig(timeout_s=5))

    async def scenario():
        try:
            return [await sessions.run("t", code) for code in ("print(undefined_name)", "def f(:", "print(3)",
                                                                 "raise ValueError('bad')")]
        finally:
            await sessions.close()

    texts = [observation_text(obs, 0) for obs in asyncio.run(scenario())]
    assert [failure_kind(text) for text in texts] == ["NameError", "SyntaxError", None, "ValueError"]
    rollout = "".join(f"<tool_call>x</tool_call><tool_response>{text}</tool_response>" for text in texts)
    assert call_failure_kinds(rollout) == ["NameError", "SyntaxError", "ValueError"]
