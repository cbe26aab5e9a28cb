"""The one way to make a rich Console, so that piped output keeps every character.

On a terminal rich fits output to the window. Piped or redirected it assumes 80 columns, so long lines are
wrapped, code blocks cropped and table cells cut with '…'; a log, `| grep` or `| tee` must see every character
on the line it was printed on. A console whose stream is not a terminal therefore gets a canvas wide enough that
text never wraps and tables take their natural width ($CODEDANCE_PIPE_WIDTH, default 10000); decorations that
fill the width (rules, expanding panels) are drawn at `decoration_width` instead.
"""

from __future__ import annotations

import os

from rich.console import Console

PIPE_WIDTH = 10_000
DECORATION_WIDTH = 80


def make_console(*, stderr: bool = False) -> Console:
    """A Console on stdout (or stderr) that never wraps or crops when the stream is not a terminal."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console.width = pipe_width()
    return console


def pipe_width() -> int:
    """The canvas width of piped output: $CODEDANCE_PIPE_WIDTH when it is a positive number, else PIPE_WIDTH."""
    raw = os.environ.get("CODEDANCE_PIPE_WIDTH", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else PIPE_WIDTH


def decoration_width(console: Console) -> int | None:
    """Width for rules and boxes that fill the line: the terminal's (None: rich decides), or 80 when piped."""
    return None if console.is_terminal else DECORATION_WIDTH
