"""The think -> code -> execute -> reflect loop, for one trajectory and for many at once.

Each trajectory alternates model generation and sandbox execution. Many run
concurrently on one event loop, so while one trajectory's code runs in the
sandbox the model is generating for the others; `concurrency` bounds how many
are in flight (and so how many sandbox sessions are open).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import aclosing
from typing import Any

from codedance_cli.clients.base import ModelClient
from codedance_cli.common.concurrency import bounded_map
from codedance_cli.loop.format import build_messages
from codedance_cli.loop.parser import ParsedTurn, parse_turn
from codedance_cli.loop.prompts import check_version, system_prompt
from codedance_cli.recipes.common import LoopConfig
from codedance_cli.sandbox.base import Sandbox, SandboxSession
from codedance_cli.trajectory.schema import Observation, Trajectory, Turn

TurnCallback = Callable[[Trajectory, Turn], Any]
log = logging.getLogger(__name__)


def _tool_error_observation(parsed: ParsedTurn) -> Observation:
    """A bad tool call goes back to the model as a failed execution, so it can fix the call."""
    return Observation(error_type="ToolCallError", error=parsed.tool_error or "bad tool call")


class _SessionHandle:
    """The trajectory's sandbox session, opened ahead of need and closed off the critical path.

    Opening starts with the first generation (prefetch), so the fork and the
    image upload overlap the model's first turn; `waited_s` counts only the time
    the trajectory actually waited for the sandbox.
    """

    def __init__(self, sandbox: Sandbox, images: list[bytes], prefetch: bool) -> None:
        self.sandbox, self.images = sandbox, images
        self._opening: asyncio.Future[SandboxSession] | None = None
        self.waited_s = 0.0
        if prefetch:
            self._start()

    def _start(self) -> asyncio.Future[SandboxSession]:
        if self._opening is None:
            self._opening = asyncio.ensure_future(self.sandbox.open_session(self.images))
        return self._opening

    async def run(self, code: str) -> Observation:
        started = time.perf_counter()
        try:
            session = await self._start()
            return await session.run(code)
        finally:
            self.waited_s += time.perf_counter() - started

    async def close(self) -> None:
        """Close the session if one was (being) opened; a failed open has nothing to close."""
        if self._opening is None:
            return
        try:
            session = await self._opening
        except Exception:
            return
        await session.close()


async def _close_quietly(handle: _SessionHandle) -> None:
    try:
        await handle.close()
    except Exception as exc:  # a background close has no trajectory left to report to
        log.warning("sandbox session close failed: %s: %s", type(exc).__name__, exc)


class _Budget:
    """Token accounting: the conversation so far is the last prompt plus its completion."""

    def __init__(self, config: LoopConfig) -> None:
        self.config = config
        self.context_tokens = 0

    def next_max_new_tokens(self) -> int:
        return min(self.config.max_new_tokens, self.config.max_total_tokens - self.context_tokens)

    def add(self, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        if prompt_tokens is not None:
            self.context_tokens = prompt_tokens + (completion_tokens or 0)
        else:
            self.context_tokens += completion_tokens or 0


async def run_trajectory(
    task: Trajectory,
    client: ModelClient,
    sandbox: Sandbox,
    config: LoopConfig,
    *,
    on_turn: TurnCallback | None = None,
    prefetch_session: bool = True,
    background: set[asyncio.Task] | None = None,
) -> Trajectory:
    """Run the loop on one task (a Trajectory without turns) and return the filled trajectory.

    Never raises for what the model or its code does: a client or sandbox failure
    ends the trajectory with stop_reason "error" and the message in metadata.
    `prefetch_session` opens the sandbox session while the first turn is generated;
    with `background`, the session is closed in a task added to that set (the
    caller awaits it) instead of before returning.
    """
    version = check_version(config.prompt_version)
    result = task.model_copy(deep=True)
    result.turns, result.final_answer, result.stop_reason = [], None, None
    result.system_prompt, result.prompt_version = system_prompt(version), version
    flags: list[list[str]] = []
    budget = _Budget(config)
    failures = 0
    session = _SessionHandle(sandbox, result.images, prefetch_session)
    started, started_at = time.perf_counter(), time.time()
    try:
        while True:
            if len(result.turns) >= config.max_turns:
                result.stop_reason = "max_turns"
                break
            max_new_tokens = budget.next_max_new_tokens()
            if max_new_tokens <= 0:
                result.stop_reason = "max_tokens"
                break
            generation = await client.generate(
                build_messages(result, result.turns, version, config),
                max_new_tokens=max_new_tokens,
                temperature=config.temperature,
                top_p=config.top_p,
            )
            budget.add(generation.prompt_tokens, generation.completion_tokens)
            parsed = parse_turn(generation.text, version)
            flags.append(sorted(parsed.flags))
            turn = Turn(
                text=generation.text,
                code=parsed.code if parsed.answer is None else None,
                prompt_tokens=generation.prompt_tokens,
                completion_tokens=generation.completion_tokens,
                generation_s=round(generation.seconds, 4),
            )
            result.turns.append(turn)
            if parsed.answer is not None:
                result.final_answer, result.stop_reason = parsed.answer, "answer"
            elif parsed.code is not None:
                turn.observation = await session.run(parsed.code)
            elif parsed.tool_error is not None:
                turn.observation = _tool_error_observation(parsed)
            else:
                result.stop_reason = "max_tokens" if generation.hit_length_limit else "no_code"
            if on_turn is not None:
                on_turn(result, turn)
            if result.stop_reason is not None:
                break
            failures = failures + 1 if turn.observation is not None and not turn.observation.ok else 0
            if failures >= config.max_consecutive_failures:
                result.stop_reason = "repeated_failure"
                break
    except Exception as exc:  # the trajectory records the failure; the rollout goes on
        result.stop_reason = "error"
        result.metadata["error"] = f"{type(exc).__name__}: {exc}"[:2000]
    finally:
        if background is not None:
            closing = asyncio.ensure_future(_close_quietly(session))
            background.add(closing)
            closing.add_done_callback(background.discard)
        else:
            closed_at = time.perf_counter()
            await _close_quietly(session)
            session.waited_s += time.perf_counter() - closed_at
    result.metadata["loop"] = {
        "parse_flags": flags,
        "tool_s": round(session.waited_s, 4),
        "generation_s": round(sum(turn.generation_s or 0.0 for turn in result.turns), 4),
        "wall_s": round(time.perf_counter() - started, 4),
        "started_at": round(started_at, 3),  # epoch seconds: a run's rollout phase is first start to last end
    }
    return result


async def run_many(
    tasks: Iterable[Trajectory],
    client: ModelClient,
    sandbox: Sandbox,
    config: LoopConfig,
    on_done: Callable[[Trajectory], Any] | None = None,
) -> AsyncIterator[Trajectory]:
    """Run tasks with at most `config.concurrency` in flight; yield trajectories as they finish.

    Tasks are pulled from the iterable lazily, so a stream of millions is fine.
    """
    closing: set[asyncio.Task] = set()

    def run(task: Trajectory) -> Awaitable[Trajectory]:
        return run_trajectory(task, client, sandbox, config, background=closing)

    try:
        async with aclosing(bounded_map(tasks, run, config.concurrency)) as finished:
            async for _, trajectory in finished:
                if on_done is not None:
                    on_done(trajectory)
                yield trajectory
    finally:  # the trajectories still running are cancelled (and their sessions sent to `closing`) by now
        if closing:  # sessions still closing in the background: done before the caller closes the sandbox
            await asyncio.gather(*list(closing), return_exceptions=True)
