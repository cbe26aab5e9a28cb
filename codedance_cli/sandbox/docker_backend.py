"""The Docker backend (production): a pool of hardened containers, each running the same warm worker.

The container replaces bubblewrap as the outer boundary (`--network none --read-only --tmpfs /tmp --memory
--cpus --pids-limit --cap-drop ALL --security-opt no-new-privileges`, optionally gVisor's `runsc`); inside,
the worker forks one locked-down child per session exactly as in the local backend, so many sessions share a
container without sharing state. This module only schedules: it starts `pool_size` containers, places each
session on the least-loaded one, retires a container after `sessions_per_container` sessions, when its
worker dies, or when it stops answering, and moves a session whose container died to a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from codedance_cli.recipes.common import SandboxConfig
from codedance_cli.sandbox.base import InputImage, Sandbox
from codedance_cli.sandbox.docker_container import (
    WORKER_LABEL,
    SandboxContainer,
    docker_client,
    owner_tag,
    worker_sha256,
)
from codedance_cli.sandbox.protocol import WorkerError, encode_input_image, limits_from_config
from codedance_cli.sandbox.worker_session import WorkerSession
from codedance_cli.trajectory.schema import Observation

log = logging.getLogger(__name__)



class DockerSession(WorkerSession):
    """A session living in one container's worker; moved to a fresh container if that one dies."""

    unit = "container"
    replaced = "replaced"

    def __init__(self, sandbox: DockerSandbox, session_id: str, images: list[str]) -> None:
        super().__init__(sandbox, session_id, images, sandbox.config.timeout_s)
        self.container: SandboxContainer | None = None

    def _client(self) -> Any:
        return self.container.client if self.container is not None and self.container.alive else None

    async def _replace(self) -> None:
        await self.sandbox._place(self)

    async def _retire_unit(self) -> None:
        assert self.container is not None
        await self.sandbox._retire(self.container, kill=True)

    async def _explain(self, observation: Observation) -> None:
        if observation.error_type == "Killed" and self.container is not None and await self.container.memory_limit_hit():
            # The kernel's OOM killer picked the session process: say which limit it was.
            observation.error_type = "MemoryLimit"
            limit = self.sandbox.config.docker.memory_mb
            reason = observation.error or "the session process was killed"
            observation.error = f"{reason} (the container's memory limit of {limit} MB was reached)"


class DockerSandbox(Sandbox):
    """Sessions multiplexed over `config.docker.pool_size` long-lived hardened containers."""

    def __init__(self, config: SandboxConfig | None = None, docker: Any = None) -> None:
        self.config = config or SandboxConfig(backend="docker")
        self.limits = limits_from_config(self.config)
        self.docker = docker
        self.owner = owner_tag()
        self.containers: list[SandboxContainer] = []
        self.retiring: set[asyncio.Task[None]] = set()
        self.start_lock: asyncio.Lock | None = None
        self.closed = False

    async def start(self) -> None:
        """Bring the pool up to `pool_size` usable containers (the first `open_session` calls this)."""
        if self.start_lock is None:
            self.start_lock = asyncio.Lock()
        async with self.start_lock:
            if self.docker is None:
                self.docker = await asyncio.to_thread(docker_client)
                await asyncio.to_thread(self._check_image)
            # draining containers (recycled after sessions_per_container) stay until their sessions close
            missing = max(1, self.config.docker.pool_size) - sum(1 for c in self.containers if c.usable)
            if missing <= 0:
                return
            fresh = [SandboxContainer(self.docker, self.config, self.owner) for _ in range(missing)]
            results = await asyncio.gather(*(c.start() for c in fresh), return_exceptions=True)
            for container, result in zip(fresh, results):
                if isinstance(result, BaseException):
                    log.error("sandbox container failed to start: %s", result)
                else:
                    self.containers.append(container)
            if not any(c.usable for c in self.containers):
                error = next(r for r in results if isinstance(r, BaseException))
                raise error if isinstance(error, WorkerError) else WorkerError(str(error))

    def _check_image(self) -> None:
        """The image must exist; a worker older than this checkout's gets a warning (protocol drift)."""
        import docker.errors

        image_name = self.config.docker.image
        try:
            image = self.docker.images.get(image_name)
        except docker.errors.ImageNotFound as exc:
            raise WorkerError(f"sandbox image {image_name} not found; build it with `codedance sandbox build-image`") from exc
        if (image.labels or {}).get(WORKER_LABEL) not in (None, worker_sha256()):
            log.warning("sandbox image %s holds an older worker than this checkout; rebuild it with "
                        "`codedance sandbox build-image`", image_name)

    @property
    def layers(self) -> dict[str, Any]:
        """Isolation layers reported by the first container's worker, plus the container runtime."""
        if not self.containers:
            return {}
        return {**self.containers[0].info.get("layers", {}), "container": self.config.docker.runtime}

    async def open_session(self, images: Sequence[InputImage] = ()) -> DockerSession:
        if self.closed:
            raise WorkerError("the sandbox is closed")
        session = DockerSession(self, uuid.uuid4().hex[:16], [encode_input_image(image) for image in images])
        await self._place(session)
        return session

    async def _place(self, session: DockerSession) -> None:
        """Open `session` on the least-loaded container; a container dying meanwhile is replaced."""
        if session.container is not None:
            session.container.active -= 1
            session.container = None
        for _ in range(3):
            await self.start()
            for dead in [c for c in self.containers if not c.alive]:
                await self._retire(dead)
            candidates = [c for c in self.containers if c.usable]
            if not candidates:
                continue
            container = min(candidates, key=lambda c: c.active)
            container.active += 1
            container.opened += 1
            try:
                await container.client.open_session(session.session_id, session.images, self.limits)
            except WorkerError:
                container.active -= 1
                if container.alive:
                    raise
                continue
            session.container = container
            return
        raise WorkerError("sandbox containers keep dying while opening a session")

    async def _release(self, session: DockerSession) -> None:
        container, session.container = session.container, None
        if container is None:
            return
        container.active -= 1
        if container.alive:
            with contextlib.suppress(WorkerError):
                await container.client.close_session(session.session_id)
        if container.opened >= self.config.docker.sessions_per_container and container.active <= 0:
            await self._retire(container)

    async def _retire(self, container: SandboxContainer, kill: bool = False) -> None:
        """Take a container out of rotation and remove it in the background; `start` adds a fresh one."""
        if container in self.containers:
            self.containers.remove(container)
        task = asyncio.create_task(container.stop(kill=kill))
        self.retiring.add(task)
        task.add_done_callback(self.retiring.discard)

    async def close(self) -> None:
        self.closed = True
        containers, self.containers = self.containers, []
        await asyncio.gather(*(c.stop() for c in containers), *self.retiring, return_exceptions=True)
