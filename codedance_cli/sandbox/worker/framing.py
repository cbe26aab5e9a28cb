"""The wire format shared by the worker and the orchestrator: a 4-byte big-endian length, then a UTF-8 JSON object.

Both sides import this module (the host through `codedance_cli.sandbox.protocol`), so the format is
defined once. Stdlib only: it runs inside the sandbox's own Python.
"""

from __future__ import annotations

import json
import os
import select
import struct
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME = 512 << 20  # a larger length is a corrupt or hostile stream, never a real message


def encode_frame(message: dict[str, Any]) -> bytes:
    """One message as it goes on the wire."""
    data = json.dumps(message, separators=(",", ":")).encode()
    return HEADER.pack(len(data)) + data


def frame_size(header: bytes) -> int:
    """The body length a header announces; ValueError beyond MAX_FRAME (nobody buffers 4 GiB on a peer's word)."""
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes exceeds the limit")
    return size


def decode_body(body: bytes) -> dict[str, Any]:
    """A frame's body back into its message."""
    return json.loads(body)


class FrameBuffer:
    """Accumulates bytes from a non-blocking fd and yields complete JSON frames."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add bytes; return every frame they complete (a partial one stays buffered)."""
        self.buffer += data
        frames = []
        while len(self.buffer) >= HEADER.size:
            size = frame_size(bytes(self.buffer[: HEADER.size]))
            if len(self.buffer) < HEADER.size + size:
                break
            frames.append(decode_body(bytes(self.buffer[HEADER.size : HEADER.size + size])))
            del self.buffer[: HEADER.size + size]
        return frames


def write_all(fd: int, data: bytes) -> None:
    """Write everything, waiting out a full pipe when the fd is non-blocking."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        view = view[written:]


def read_frame_blocking(fd: int) -> dict[str, Any] | None:
    """One frame from a blocking fd, or None at end of stream (the session child's side of its control socket)."""
    header = _read_exact(fd, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    body = _read_exact(fd, size)
    return None if body is None else decode_body(body)


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
