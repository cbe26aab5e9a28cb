"""The sandbox interface every backend implements.

A `Sandbox` owns warm workers; a `SandboxSession` is one trajectory's private,
notebook-like namespace: variables persist across `run` calls of the session
and never leak to another session. Everything is async so that a rollout can
keep many sessions busy while the model generates for others.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from PIL import Image

from codedance_cli.trajectory.schema import Observation

# Names the model's code can rely on (documented in the system prompt):
#   input_image       the first input image (PIL.Image)
#   input_images      all input images (list of PIL.Image)
#   input_image_path  path of the first input image inside the session dir ("input_image.png")
InputImage = Image.Image | bytes | Path


class SandboxSession(abc.ABC):
    """One trajectory's isolated, stateful code environment."""

    @abc.abstractmethod
    async def run(self, code: str, timeout_s: float | None = None) -> Observation:
        """Execute one cell; never raises for anything the code does (errors become the Observation)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Kill the session's process tree and remove its private directory."""

    async def __aenter__(self) -> SandboxSession:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()


class Sandbox(abc.ABC):
    """A pool of warm workers that opens sessions."""

    @abc.abstractmethod
    async def open_session(self, images: Sequence[InputImage] = ()) -> SandboxSession:
        """A fresh session with the given input images available to the code."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop all workers / containers."""

    async def __aenter__(self) -> Sandbox:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()
