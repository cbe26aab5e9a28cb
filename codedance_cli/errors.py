"""Errors the CLI turns into one line on stderr and a non-zero exit.

Every user-facing failure goes through these so that `codedance` never shows a
traceback for bad input: 2 for bad input (recipe, paths, arguments), 3 for a
stage that is not built yet, 1 for a failure while running.
"""

from __future__ import annotations


class CodedanceError(Exception):
    """A failure the user can act on; `exit_code` follows the table above."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class BadInput(CodedanceError):
    """The user's recipe, file or argument is wrong; names what and where."""

    exit_code = 2


class StageNotBuilt(CodedanceError):
    """A stage whose engine integration does not exist yet: say so, never pretend."""

    exit_code = 3


class EngineFailed(CodedanceError):
    """An external engine (ms-swift, verl, vLLM, docker) exited non-zero."""

    exit_code = 1
