"""Coalesce concurrent generation requests into batches served by one worker thread (transformers and vLLM clients).

An in-process model does one `generate` call at a time (one model instance is
not safe to run from several threads), but a batched call costs little more
than a single one. So requests queue up while the worker computes, and when it
is free it takes everything pending (up to `max_batch_size`), groups requests
that can share a call (same `key`), and runs each group as one batch. No
artificial waiting: the batch is whatever arrived during the previous one,
plus an optional short gather window.

The worker holds only a weak reference to the batch function, so a client
that is dropped without `aclose` can still be collected; its finalizer then
stops the thread.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

R = TypeVar("R")
T = TypeVar("T")

RunBatch = Callable[[list[Any]], list[Any]]


@dataclass
class _Job:
    request: Any
    future: Future


_STOP = object()  # queued by `stop`: serve what came before it, then end the thread


class GenerateBatcher(Generic[R, T]):
    """`await submit(request)` from any event loop; `run_batch(requests) -> results` runs on the worker thread.

    `run_batch` returns one result per request, in order; an exception instance as a result fails that request
    only, and an exception raised fails the whole group. Either way the worker goes on serving.
    """

    def __init__(
        self,
        run_batch: Callable[[list[R]], list[T | BaseException]],
        *,
        key: Callable[[R], Hashable],
        max_batch_size: int = 32,
        gather_s: float = 0.0,
        name: str = "codedance-generate",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.max_batch_size, self.gather_s = max_batch_size, gather_s
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        ref = weakref.WeakMethod(run_batch) if hasattr(run_batch, "__self__") else (lambda: run_batch)
        self._thread = threading.Thread(target=_serve, args=(self._jobs, ref, key, max_batch_size, gather_s), name=name, daemon=True)
        self._thread.start()

    async def submit(self, request: R) -> T:
        """Queue one request and wait for its result (or its batch's exception)."""
        if self._closed:
            raise RuntimeError("the generate worker is closed")
        future: Future = Future()
        self._jobs.put(_Job(request, future))
        return await asyncio.wrap_future(future)

    def stop(self) -> None:
        """Let the worker finish what is queued, then end; returns at once and may be called twice."""
        if not self._closed:
            self._closed = True
            self._jobs.put(_STOP)

    async def aclose(self) -> None:
        """Stop and wait for the worker thread to end (queued requests are served first)."""
        self.stop()
        await asyncio.to_thread(self._thread.join)


def _serve(jobs: queue.SimpleQueue, run_batch_ref: Callable[[], RunBatch | None], key: Callable[[Any], Hashable],
           max_batch_size: int, gather_s: float) -> None:
    """The worker loop: take what is pending, run it group by group, until `_STOP`."""
    stopping = False
    while not stopping:
        taken, stopping = _take(jobs, max_batch_size, gather_s)
        for group in _group(taken, key):
            run_batch = run_batch_ref()
            if run_batch is None:
                _fail(group, RuntimeError("the model client was garbage-collected"))
                continue
            _run_group(run_batch, group)
            del run_batch  # no strong reference to the client between batches
    _drain_after_stop(jobs)


def _take(jobs: queue.SimpleQueue, max_batch_size: int, gather_s: float) -> tuple[list[_Job], bool]:
    """Block for one job, then take whatever else is pending (waiting up to `gather_s` for more)."""
    taken: list[_Job] = []
    item = jobs.get()
    deadline = time.monotonic() + gather_s
    while True:
        if item is _STOP:
            return taken, True
        if item.future.set_running_or_notify_cancel():  # False: its caller was cancelled while it queued
            taken.append(item)
        if len(taken) >= max_batch_size:
            return taken, False
        try:
            remaining = deadline - time.monotonic()
            item = jobs.get(timeout=remaining) if remaining > 0 else jobs.get_nowait()
        except queue.Empty:
            return taken, False


def _group(taken: list[_Job], key: Callable[[Any], Hashable]) -> list[list[_Job]]:
    """Jobs with equal keys, in order of each key's first arrival."""
    groups: dict[Hashable, list[_Job]] = {}
    for job in taken:
        groups.setdefault(key(job.request), []).append(job)
    return list(groups.values())


def _run_group(run_batch: RunBatch, group: list[_Job]) -> None:
    """One batched call; its exception goes to every request in it, and the worker carries on."""
    try:
        results = run_batch([job.request for job in group])
        if len(results) != len(group):
            raise RuntimeError(f"batch function returned {len(results)} results for {len(group)} requests")
    except Exception as exc:  # noqa: BLE001 - handed to the callers, who see it from `await`
        _fail(group, exc)
        return
    for job, result in zip(group, results, strict=True):
        if isinstance(result, BaseException):  # that request alone failed (e.g. an unreadable image)
            job.future.set_exception(result)
        else:
            job.future.set_result(result)


def _fail(group: list[_Job], exc: BaseException) -> None:
    for job in group:
        job.future.set_exception(exc)


def _drain_after_stop(jobs: queue.SimpleQueue) -> None:
    """Requests that slipped in after `stop` get an error instead of waiting forever."""
    while True:
        try:
            item = jobs.get_nowait()
        except queue.Empty:
            return
        if item is not _STOP and item.future.set_running_or_notify_cancel():
            item.future.set_exception(RuntimeError("the generate worker is closed"))
