"""Bounded concurrent mapping over a lazy stream: the refill loop every pass (synth, filter, loop, eval) shares.

Items are pulled from the iterable only as slots free up, so a stream of a
million items never sits in memory; results come back as they finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def bounded_map(
    items: Iterable[T], fn: Callable[[T], Awaitable[R]], limit: int, *, ordered: bool = False
) -> AsyncIterator[tuple[T, R]]:
    """Yield `(item, await fn(item))` with at most `limit` calls in flight, refilling as each finishes.

    Results come in completion order (calls finishing together: in input order), or in input
    order with `ordered=True`; then a finished result waiting for an earlier one still holds its
    slot, so memory stays bounded. An exception from `fn` or from `items` propagates after the
    calls still running are cancelled and awaited; so does closing the generator or cancelling
    its consumer. Iterate inside `contextlib.aclosing(...)` so an error or `break` in the loop
    body cancels the calls at once rather than when the generator is garbage-collected.
    """
    limit = max(1, limit)
    iterator = iter(items)
    running: dict[asyncio.Future[R], tuple[int, T]] = {}
    waiting: dict[int, tuple[T, R]] = {}  # ordered: finished results, by input index, not yet yielded
    submitted = yielded = 0

    def refill() -> None:
        nonlocal submitted
        while len(running) + len(waiting) < limit:
            try:
                item = next(iterator)
            except StopIteration:
                return
            running[asyncio.ensure_future(fn(item))] = (submitted, item)
            submitted += 1

    try:
        refill()
        while running:
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: running[f][0]):
                index, item = running[future]
                result = future.result()  # raises fn's exception; the futures still in `running` are cancelled below
                del running[future]
                if ordered:
                    waiting[index] = (item, result)
                else:
                    yield item, result
            while yielded in waiting:
                yield waiting.pop(yielded)
                yielded += 1
            refill()
    finally:
        for future in running:
            future.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
