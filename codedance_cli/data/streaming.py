"""Bounded concurrent mapping over a lazy stream: the pattern every data pass (synth, filter) uses.

Items are pulled from the iterable only as slots free up, so a stream of a
million trajectories never sits in memory; results come back as they finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def bounded_map(items: Iterable[T], fn: Callable[[T], Awaitable[R]], limit: int) -> AsyncIterator[tuple[T, R]]:
    """Yield (item, fn(item)) in completion order with at most `limit` calls in flight.

    An exception raised by `fn` propagates (after cancelling the calls still running).
    """
    iterator = iter(items)
    pending: dict[asyncio.Task[R], T] = {}

    def refill() -> None:
        while len(pending) < max(1, limit):
            try:
                item = next(iterator)
            except StopIteration:
                return
            pending[asyncio.ensure_future(fn(item))] = item

    refill()
    try:
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                item = pending.pop(task)
                yield item, task.result()
            refill()
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
