"""Atomic writes: a reader sees the old file or the new one, never half of one.

Every write goes to a temp file in the target's folder (same filesystem, so the
final `os.replace` is atomic) and is renamed over the target only when complete;
on failure the temp file is removed and the old content stays. Temp files are
created with mode 0o666 minus the umask, like a plain `open(path, "w")`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from types import TracebackType
from typing import IO, Any


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


class AtomicFile:
    """A temp file beside `path` that becomes `path` on `commit()` and vanishes on `discard()`.

    As a context manager it yields the open handle and commits on success, discards on error.
    Use the object directly when the decision comes later (e.g. keep a log only if it got lines).
    """

    def __init__(self, path: Path | str, mode: str = "w", *, encoding: str | None = "utf-8", fsync: bool = False) -> None:
        if mode not in ("w", "wb"):
            raise ValueError(f"AtomicFile mode must be 'w' or 'wb', not {mode!r}")
        self.path = Path(path)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temp = _temp_name(self.path)
        fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            self.handle: IO[Any] = os.fdopen(fd, mode, encoding=None if mode == "wb" else encoding)
        except BaseException:
            os.close(fd)
            self.temp.unlink(missing_ok=True)
            raise

    def commit(self) -> Path:
        """Flush (and fsync if asked), close, rename over `path`; returns `path`."""
        try:
            self.handle.flush()
            if self.fsync:
                os.fsync(self.handle.fileno())
            self.handle.close()
            os.replace(self.temp, self.path)
        except BaseException:
            self.discard()
            raise
        return self.path

    def discard(self) -> None:
        """Close and remove the temp file; `path` is left as it was."""
        try:
            self.handle.close()
        finally:
            self.temp.unlink(missing_ok=True)

    def __enter__(self) -> IO[Any]:
        return self.handle

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def atomic_write_bytes(path: Path | str, data: bytes, *, fsync: bool = False) -> Path:
    """Replace `path` with `data` atomically (parent folders are created); returns `path`."""
    with AtomicFile(path, "wb", fsync=fsync) as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: Path | str, text: str, *, encoding: str = "utf-8", fsync: bool = False) -> Path:
    """Replace `path` with `text` atomically (parent folders are created); returns `path`."""
    with AtomicFile(path, "w", encoding=encoding, fsync=fsync) as handle:
        handle.write(text)
    return Path(path)


def atomic_symlink(link: Path | str, target: Path | str) -> Path:
    """Point `link` at `target` (stored as given, so relative targets stay relative), replacing any old link at once."""
    link = Path(link)
    temp = _temp_name(link)
    os.symlink(target, temp)
    try:
        os.replace(temp, link)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return link
