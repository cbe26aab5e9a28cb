"""The local backend: a few warm workers (bubblewrap-wrapped when possible), sessions spread over them.

Each worker is a long-lived process (the `worker/` package) that has pre-imported numpy/PIL/cv2/matplotlib
and forks one locked-down child per session. This module only schedules: it starts workers,
places sessions on the least-loaded one, recycles a worker after `sessions_per_worker` sessions
or when it dies, and moves a session whose worker died to a fresh worker (variables lost, said so).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from codedance_cli.recipes.common import SandboxConfig
from codedance_cli.sandbox.base import InputImage, Sandbox
from codedance_cli.sandbox import bwrap
from codedance_cli.sandbox.protocol import (
    WorkerClient,
    WorkerError,
    encode_input_image,
    limits_from_config,
)
from codedance_cli.sandbox.worker_session import WorkerSession

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 120.0  # cold imports on a busy 2-core machine can take several seconds
_worker_serial = itertools.count(1)


def matplotlib_cache_dir() -> Path:
    """Shared, pre-built matplotlib font cache so that no worker rebuilds it."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / "codedance" / "matplotlib"
    path.mkdir(parents=True, exist_ok=True)
    return path


class LocalWorker:
    """One worker process, its protocol client and its session bookkeeping."""

    def __init__(self, config: SandboxConfig, python: str) -> None:
        self.config, self.python = config, python
        self.serial = next(_worker_serial)
        self.session_dir: str | None = None  # host directory for sessions, only without bwrap (else a private tmpfs)
        self.process: asyncio.subprocess.Process | None = None
        self.client: WorkerClient | None = None
        self.info: dict = {}
        self.active = 0
        self.opened = 0
        self.stderr_tail: list[str] = []

    @property
    def usable(self) -> bool:
        return self.client is not None and self.client.alive and self.opened < self.config.sessions_per_worker

    async def start(self) -> None:
        # a random block of 1000 uids per worker: sessions of different workers (or of another orchestrator on
        # the same host) never share a uid, so they can neither signal each other nor read each other's files
        uid_base = 200_000 + secrets.randbelow(2_000_000) * 1000
        if not (self.config.use_bwrap and bwrap.bwrap_usable()):
            self.session_dir = tempfile.mkdtemp(prefix="codedance-sbx-")
            os.chmod(self.session_dir, 0o711)
        plan = bwrap.launch_plan(self.python, self.session_dir, str(matplotlib_cache_dir()), uid_base,
                                 self.config.use_bwrap, self.config.use_seccomp)
        self.process = await asyncio.create_subprocess_exec(
            *plan.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=plan.env, cwd=plan.cwd, limit=1 << 20,
        )
        self.client = WorkerClient(self.process.stdout, self.process.stdin, name=f"sandbox worker {self.serial}")
        self.stderr_task = asyncio.create_task(self._log_stderr())
        try:
            self.info = await self.client.wait_ready(STARTUP_TIMEOUT_S)
        except WorkerError as exc:
            await self.stop()
            tail = " | ".join(self.stderr_tail[-3:])
            raise WorkerError(f"{exc}{': ' + tail if tail else ''}") from exc
        self.info["bwrap"] = plan.isolated
        for warning in self.info.get("warnings", []):
            _warn_once(f"sandbox worker: {warning}")

    async def _log_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for line in self.process.stderr:
            text = line.decode(errors="replace").rstrip()
            self.stderr_tail = (self.stderr_tail + [text])[-20:]
            log.debug("worker %s: %s", self.serial, text)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.shutdown()
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.process.wait(), 10)
        if self.session_dir:
            shutil.rmtree(self.session_dir, ignore_errors=True)


class LocalSession(WorkerSession):
    """A session living in one worker process; moved to another worker if its worker dies."""

    def __init__(self, sandbox: LocalSandbox, worker: LocalWorker, session_id: str, images: list[str]) -> None:
        super().__init__(sandbox, session_id, images, sandbox.config.timeout_s)
        self.worker = worker

    def _client(self) -> WorkerClient | None:
        return self.worker.client

    async def _replace(self) -> None:
        await self.sandbox._reopen(self)

    async def _retire_unit(self) -> None:
        await self.sandbox._retire(self.worker, kill=True)


class LocalSandbox(Sandbox):
    """Warm forked workers on this machine (see docs/sandbox.md for the isolation layers)."""

    def __init__(self, config: SandboxConfig | None = None, python: str | None = None) -> None:
        self.config = config or SandboxConfig()
        self.python = python or sys.executable
        self.limits = limits_from_config(self.config)
        self.workers: list[LocalWorker] = []
        self.start_lock: asyncio.Lock | None = None
        self.retired: set[asyncio.Task] = set()
        self.closed = False

    async def start(self) -> None:
        """Start the workers now (otherwise the first `open_session` does)."""
        if self.start_lock is None:
            self.start_lock = asyncio.Lock()
        async with self.start_lock:
            # draining workers (recycled after `sessions_per_worker`) stay until their sessions close
            missing = max(1, self.config.workers) - sum(1 for w in self.workers if w.usable)
            if missing > 0:
                fresh = [LocalWorker(self.config, self.python) for _ in range(missing)]
                results = await asyncio.gather(*(w.start() for w in fresh), return_exceptions=True)
                for worker, result in zip(fresh, results):
                    if isinstance(result, BaseException):
                        log.error("sandbox worker failed to start: %s", result)
                    else:
                        self.workers.append(worker)
                if not self.workers:
                    raise WorkerError(f"no sandbox worker could start: {results[0]}")

    @property
    def layers(self) -> dict:
        """Isolation layers active in the first worker (bwrap, seccomp, setuid)."""
        return {**self.workers[0].info.get("layers", {}), "bwrap": self.workers[0].info.get("bwrap")} if self.workers else {}

    async def open_session(self, images: Sequence[InputImage] = ()) -> LocalSession:
        if self.closed:
            raise WorkerError("the sandbox is closed")
        encoded = await asyncio.to_thread(lambda: [encode_input_image(image) for image in images])  # keep the loop free
        session = LocalSession(self, None, uuid.uuid4().hex[:16], encoded)  # type: ignore[arg-type]
        await self._place(session)
        return session

    async def _place(self, session: LocalSession) -> None:
        for _ in range(3):
            worker = await self._pick_worker()
            worker.active += 1
            worker.opened += 1
            try:
                await worker.client.open_session(session.session_id, session.images, self.limits)
            except WorkerError:
                worker.active -= 1
                if worker.client.alive:
                    raise
                continue
            session.worker = worker
            return
        raise WorkerError("sandbox workers keep dying while opening a session")

    async def _pick_worker(self) -> LocalWorker:
        await self.start()
        for worker in [w for w in self.workers if not (w.client and w.client.alive)]:
            await self._retire(worker)
        return min((w for w in self.workers if w.usable), key=lambda w: w.active)

    async def _reopen(self, session: LocalSession) -> None:
        session.worker.active -= 1
        await self._place(session)

    async def _release(self, session: LocalSession) -> None:
        worker = session.worker
        worker.active -= 1
        if worker.client and worker.client.alive:
            with contextlib.suppress(WorkerError):
                await worker.client.close_session(session.session_id)
        if worker.opened >= self.config.sessions_per_worker and worker.active <= 0:
            await self._retire(worker)

    async def _retire(self, worker: LocalWorker, kill: bool = False) -> None:
        """Take a worker out of rotation; a fresh one replaces it on the next `start`."""
        if worker in self.workers:
            self.workers.remove(worker)
        if kill and worker.process is not None and worker.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.process.kill()
        task = asyncio.create_task(worker.stop())
        self.retired.add(task)
        task.add_done_callback(self.retired.discard)

    async def close(self) -> None:
        self.closed = True
        workers, self.workers = self.workers, []
        await asyncio.gather(*(w.stop() for w in workers), *self.retired, return_exceptions=True)


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)
