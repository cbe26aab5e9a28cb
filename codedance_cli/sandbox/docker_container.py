"""One hardened, long-lived sandbox container running the warm worker, driven through the docker SDK.

The container is the `docker run -i --rm --init --network none --read-only ...` equivalent: the worker's
stdin/stdout are reached through one attach socket (made before the container starts, so that the worker's
`ready` frame cannot be missed), Docker's 8-byte stream headers are removed here, and the worker's stdout
becomes an asyncio stream for `protocol.WorkerClient`. When this process dies the socket closes, the
worker sees EOF on stdin and exits, and `auto_remove` deletes the container: nothing is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import random
from typing import Any

from codedance_cli.recipes.common import SandboxConfig
from codedance_cli.sandbox.protocol import WorkerClient, WorkerError, worker_files

log = logging.getLogger(__name__)

WORKER_IN_IMAGE = "/opt/codedance/worker"  # the worker package folder, run as `python3 -I <folder>`
MPL_CACHE_IN_IMAGE = "/opt/codedance/mplconfig"  # prebuilt font cache, copied to the writable /tmp at start
MPL_CACHE_RUNTIME = "/tmp/mplconfig"
WORKER_LABEL = "org.codedance.worker-sha256"
OWNER_LABEL = "org.codedance.sandbox-owner"
# What the worker keeps as container root: create session processes, drop to their uids, kill and clean them.
WORKER_CAPS = ("SETUID", "SETGID", "KILL", "CHOWN")
SESSION_UID_COUNT = 1000
STARTUP_TIMEOUT_S = 120.0
STDOUT, STDERR = 1, 2
# Session uids are unique per container of this process (and, likely, of concurrent processes): RLIMIT_NPROC
# counts per host uid when containers share the host user namespace, so one container's fork bomb must not
# use up another container's process budget.
_serial = itertools.count(random.randrange(1000))


def worker_sha256() -> str:
    """Hash of the worker folder this checkout ships; the image carries the hash of the worker it contains.

    sha256 of `sha256sum`-style lines ("<file sha256>  ./<path>"), one per file in sorted order, so that
    scripts/build_sandbox_rootfs.sh computes the same value with coreutils.
    """
    lines = "".join(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  ./{name}\n" for name, path in worker_files())
    return hashlib.sha256(lines.encode()).hexdigest()


def docker_client() -> Any:
    """A docker SDK client for $DOCKER_HOST or the default socket; a one-line error when no engine answers."""
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - docker raises several unrelated types for "no engine"
        raise WorkerError(f"no Docker engine answers ({exc}); start one with scripts/start_dockerd.sh") from exc
    return client


def container_options(config: SandboxConfig, uid_base: int, owner: str) -> dict[str, Any]:
    """`containers.create` keyword arguments: the hardening flags, resource limits and the worker command."""
    docker_cfg = config.docker
    worker_args = ["--uid-base", str(uid_base), "--uid-count", str(SESSION_UID_COUNT)]
    if not config.use_seccomp:
        worker_args.append("--no-seccomp")
    command = (
        f"cp -r {MPL_CACHE_IN_IMAGE} {MPL_CACHE_RUNTIME} 2>/dev/null; "
        f"exec python3 -I {WORKER_IN_IMAGE} {' '.join(worker_args)}"
    )
    options: dict[str, Any] = {
        "image": docker_cfg.image,
        "command": ["/bin/sh", "-c", command],
        "stdin_open": True,  # with detach=False the SDK also sets StdinOnce: closing our socket closes stdin
        "tty": False,
        "init": True,  # tini as pid 1 reaps processes that sessions orphan
        "auto_remove": True,
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={docker_cfg.tmpfs_mb}m,mode=1777"},
        "shm_size": f"{min(64, docker_cfg.tmpfs_mb)}m",
        "mem_limit": f"{docker_cfg.memory_mb}m",
        "memswap_limit": f"{docker_cfg.memory_mb}m",  # equal to the memory limit: no swap
        "nano_cpus": int(docker_cfg.cpus * 1e9),
        "pids_limit": docker_cfg.pids_limit,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "environment": {
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": MPL_CACHE_RUNTIME,
            "XDG_CACHE_HOME": "/tmp/.cache",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        },
        "hostname": "sandbox",
        "working_dir": "/tmp",
        "labels": {OWNER_LABEL: owner},
    }
    if docker_cfg.user:
        options["user"] = docker_cfg.user
    else:
        options["user"] = "0:0"
        options["cap_add"] = list(WORKER_CAPS)
    if docker_cfg.runtime != "runc":
        options["runtime"] = docker_cfg.runtime
    return options


async def _demultiplex(raw: asyncio.StreamReader, stdout: asyncio.StreamReader, stderr_tail: list[str]) -> None:
    """Split Docker's attach stream (8-byte header: stream id, 3 zero bytes, big-endian length) into its parts."""
    try:
        while True:
            header = await raw.readexactly(8)
            size = int.from_bytes(header[4:8], "big")
            data = await raw.readexactly(size) if size else b""
            if header[0] == STDOUT:
                stdout.feed_data(data)
            elif header[0] == STDERR:
                lines = data.decode(errors="replace").splitlines()
                stderr_tail[:] = (stderr_tail + lines)[-20:]
                for line in lines:
                    log.debug("sandbox container: %s", line)
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        pass
    finally:
        stdout.feed_eof()


class SandboxContainer:
    """One container, its worker client and the scheduler's bookkeeping (sessions placed, sessions active)."""

    def __init__(self, docker: Any, config: SandboxConfig, owner: str) -> None:
        self.docker, self.config, self.owner = docker, config, owner
        self.serial = next(_serial)
        self.uid_base = 1_000_000 + (self.serial % 1000) * SESSION_UID_COUNT
        self.container: Any = None
        self.client: WorkerClient | None = None
        self.info: dict[str, Any] = {}
        self.active = 0
        self.opened = 0
        self.stderr_tail: list[str] = []
        self._attach_socket: Any = None
        self._demux_task: asyncio.Task[None] | None = None
        self._memory_failures = 0
        self.started_s = 0.0

    @property
    def name(self) -> str:
        return f"sandbox container {self.container.short_id if self.container else self.serial}"

    @property
    def alive(self) -> bool:
        return self.client is not None and self.client.alive

    @property
    def usable(self) -> bool:
        return self.alive and self.opened < self.config.docker.sessions_per_container

    async def start(self) -> None:
        """Create, attach, start; returns once the worker inside said `ready` (its imports are done)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        options = container_options(self.config, self.uid_base, self.owner)
        try:
            self.container = await asyncio.to_thread(self.docker.containers.create, **options)
            sock = await asyncio.to_thread(
                self.docker.api.attach_socket, self.container.id, {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            self._attach_socket = sock  # keep the SDK's wrapper alive: dropping it may close the connection
            raw_reader, writer = await asyncio.open_connection(sock=getattr(sock, "_sock", sock), limit=1 << 20)
            stdout = asyncio.StreamReader(limit=1 << 20)
            self._demux_task = asyncio.create_task(_demultiplex(raw_reader, stdout, self.stderr_tail))
            self.client = WorkerClient(stdout, writer, name=f"sandbox container {self.container.short_id}")
            await asyncio.to_thread(self.container.start)
        except Exception as exc:  # noqa: BLE001 - docker.errors.* and OS errors alike: one line for the user
            await self.stop()
            raise WorkerError(f"could not start a sandbox container from {self.config.docker.image}: {_one_line(exc)}") from exc
        try:
            self.info = await self.client.wait_ready(STARTUP_TIMEOUT_S)
        except WorkerError as exc:
            await self.stop()
            tail = " | ".join(self.stderr_tail[-3:])
            raise WorkerError(f"{exc}{': ' + tail if tail else ''}") from exc
        self.started_s = loop.time() - started

    async def memory_limit_hit(self) -> bool:
        """Did the container's memory cgroup hit its limit since the last check? (cgroup v1 failcnt)."""
        if self.container is None:
            return False
        try:
            stats = await asyncio.to_thread(self.docker.api.stats, self.container.id, stream=False, one_shot=True)
        except Exception:  # noqa: BLE001 - a gone container or an engine without one-shot stats: unknown
            return False
        memory = stats.get("memory_stats") or {}
        failures = int(memory.get("failcnt") or 0)
        hit = failures > self._memory_failures
        self._memory_failures = failures
        if not hit and "failcnt" not in memory:  # cgroup v2 reports no failcnt: fall back to the peak usage
            limit, peak = memory.get("limit") or 0, memory.get("max_usage") or memory.get("usage") or 0
            hit = bool(limit) and peak >= 0.95 * limit
        return hit

    async def stop(self, kill: bool = False) -> None:
        """Ask the worker to exit (its container then removes itself); force-remove what is left."""
        if self.client is not None:
            if not kill:
                await self.client.shutdown()
            with contextlib.suppress(Exception):
                self.client.writer.close()
        if self.container is not None:
            with contextlib.suppress(Exception):  # already gone (auto_remove) or removal in progress
                await asyncio.to_thread(self.container.remove, force=True)
        if self._demux_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._demux_task, 5)
        if self._attach_socket is not None:
            with contextlib.suppress(Exception):
                self._attach_socket.close()
            self._attach_socket = None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def owner_tag() -> str:
    """Label value that lets tests and operators find this process's containers."""
    return f"{os.uname().nodename}:{os.getpid()}"
