"""The orchestrator's side of the warm-worker protocol, shared by the local and Docker backends.

The worker (the `worker/` package next to this file) is self-contained and may run inside bubblewrap
or inside a container; whatever carries its stdin/stdout (a pipe, `docker run -i`, an attached socket)
is wrapped in an asyncio reader/writer pair and handed to `WorkerClient`. Frames are a 4-byte
big-endian length followed by a UTF-8 JSON object, defined once in `worker/framing.py` and imported
from there; docs/sandbox.md lists every message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import itertools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from codedance_cli.recipes.common import SandboxConfig
from codedance_cli.sandbox.trace_paths import scrub_host_paths
from codedance_cli.sandbox.worker.framing import HEADER, decode_body, encode_frame, frame_size
from codedance_cli.trajectory.schema import Observation

# The folder that runs inside the sandbox: bind-mounted by bwrap, copied into the Docker image, hashed for its label.
WORKER_DIR = Path(__file__).with_name("worker")


class WorkerError(RuntimeError):
    """The worker refused a request or is gone; the session should be reopened elsewhere."""


def worker_files() -> Iterator[tuple[str, Path]]:
    """The worker folder's files as (posix path relative to it, path), sorted; caches (__pycache__, .pyc) left out.

    This is what goes into the image and what its label hashes (scripts/build_sandbox_rootfs.sh lists the same).
    """
    found = [
        (path.relative_to(WORKER_DIR).as_posix(), path) for path in WORKER_DIR.rglob("*")
        if path.is_file() and "__pycache__" not in path.relative_to(WORKER_DIR).parts and path.suffix != ".pyc"
    ]
    yield from sorted(found)


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """One frame, or None at end of stream; a frame over the worker's own size limit is a protocol error."""
    try:
        header = await reader.readexactly(HEADER.size)
        return decode_body(await reader.readexactly(frame_size(header)))
    except asyncio.IncompleteReadError:
        return None


def limits_from_config(config: SandboxConfig) -> dict[str, int]:
    """The per-session limits the worker applies (names match worker/loop.py DEFAULT_LIMITS)."""
    return {
        "cpu_s": config.cpu_s,
        "memory_mb": config.memory_mb,
        "file_size_mb": config.file_size_mb,
        "max_open_files": config.max_open_files,
        "max_processes": config.max_processes,
        "max_output_chars": config.max_output_chars,
        "max_images_per_cell": config.max_images_per_cell,
    }


def encode_input_image(image: Image.Image | bytes | Path | str) -> str:
    """Input image -> base64 of its encoded bytes; decoding happens inside the sandbox, not here."""
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)
        data = buffer.getvalue()
    elif isinstance(image, (str, Path)):
        data = Path(image).read_bytes()
    else:
        data = bytes(image)
    return base64.b64encode(data).decode()


def observation_from_wire(payload: dict[str, Any]) -> Observation:
    """The worker's reply as an Observation; tracebacks and warnings lose the sandbox Python's install folder."""
    error = payload.get("error")
    return Observation(
        stdout=payload.get("stdout", ""),
        stderr=scrub_host_paths(payload.get("stderr", "")),
        images=[base64.b64decode(item) for item in payload.get("images", [])],
        error_type=payload.get("error_type"),
        error=scrub_host_paths(error) if error else error,
        duration_s=float(payload.get("duration_s", 0.0)),
        timed_out=bool(payload.get("timed_out", False)),
        truncated=bool(payload.get("truncated", False)),
    )


def failed_observation(error_type: str, message: str, duration_s: float = 0.0) -> Observation:
    """An observation for failures outside the cell (worker died, session lost)."""
    return Observation(error_type=error_type, error=message, duration_s=duration_s)


class WorkerClient:
    """Talks to one worker: numbered requests, one reader task resolving replies by id.

    Replies may arrive out of order (sessions run concurrently inside the worker), so every
    request waits on its own future; when the stream ends every pending request fails.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str = "worker") -> None:
        self.reader, self.writer, self.name = reader, writer, name
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.on_close: list[Callable[[], None]] = []
        self.reader_task = asyncio.create_task(self._read_loop(), name=f"{name}-reader")

    @property
    def alive(self) -> bool:
        return not self.closed

    async def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        """The worker's hello: pid, python version, active layers, warnings."""
        try:
            return await asyncio.wait_for(asyncio.shield(self.ready), timeout_s)
        except asyncio.TimeoutError as exc:
            raise WorkerError(f"{self.name} did not become ready within {timeout_s:g} s") from exc

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        if self.closed:
            raise WorkerError(f"{self.name} is not running")
        request_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        try:
            self.writer.write(encode_frame({"id": request_id, "op": op, **fields}))
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            self.pending.pop(request_id, None)
            raise WorkerError(f"{self.name} is gone: {exc}") from exc
        try:
            reply = await future
        finally:
            self.pending.pop(request_id, None)
        if not reply.get("ok"):
            raise WorkerError(reply.get("error") or f"{op} failed")
        return reply

    async def open_session(self, session_id: str, images: Sequence[str], limits: dict[str, int]) -> None:
        await self.request("open", session=session_id, images=list(images), limits=limits)

    async def run(self, session_id: str, code: str, timeout_s: float) -> Observation:
        reply = await self.request("run", session=session_id, code=code, timeout_s=timeout_s)
        return observation_from_wire(reply["observation"])

    async def close_session(self, session_id: str) -> None:
        await self.request("close", session=session_id)

    async def shutdown(self, timeout_s: float = 5.0) -> None:
        if self.closed:
            return
        with contextlib.suppress(WorkerError, asyncio.TimeoutError, ConnectionError):
            await asyncio.wait_for(self.request("shutdown"), timeout_s)
        self._close_stream()

    async def _read_loop(self) -> None:
        error: BaseException = WorkerError(f"{self.name} exited")
        try:
            while True:
                frame = await read_frame(self.reader)
                if frame is None:
                    break
                if frame.get("op") == "ready" and not self.ready.done():
                    self.ready.set_result(frame)
                    continue
                future = self.pending.get(frame.get("id"))
                if future is not None and not future.done():
                    future.set_result(frame)
        except (WorkerError, ValueError, ConnectionError) as exc:
            error = WorkerError(f"{self.name} protocol error: {exc}")
        finally:
            self.closed = True
            for future in [*self.pending.values(), self.ready]:
                if not future.done():
                    future.set_exception(error)
            if self.ready.done() and not self.ready.cancelled():
                self.ready.exception()  # mark retrieved: a worker that dies before ready is reported by wait_ready
            for callback in self.on_close:
                callback()

    def _close_stream(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
