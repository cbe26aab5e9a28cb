"""Text into the trajectory page safely: escaped, control characters made visible, titles cut at a word.

Why: model output and sandbox output are arbitrary text. A raw control character is invisible (or, for a bidi
override, reorders what follows), so the page would show something other than what the model read; a title cut in
the middle of a word reads as a different word.
"""

from __future__ import annotations

import html
import re

# C0 and C1 controls except tab and newline, DEL, and the invisible format characters that reorder or hide text.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
ELLIPSIS = "\u2026"


def control_name(char: str) -> str:
    """How a control character is written on the page: `\\x07`, `\\u202e`."""
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def mark_controls(markup: str) -> str:
    """Already-escaped HTML with each control character replaced by a visible, styled `\\xNN` span."""
    def span(match: re.Match[str]) -> str:
        char = match.group()
        return f'<span class="ctl" title="control character U+{ord(char):04X}">{control_name(char)}</span>'

    return _CONTROL.sub(span, markup)


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n")  # Windows line ends are line ends; a lone \r (progress bars) stays visible


def visible(text: str | None) -> str:
    """Text as HTML element content: escaped, control characters shown as styled `\\xNN`."""
    return mark_controls(html.escape(_newlines(text or ""), quote=True))


def attribute(text: str | None) -> str:
    """Text as an HTML attribute value (or <title>): escaped, control characters written as plain `\\xNN`."""
    return html.escape(_CONTROL.sub(lambda m: control_name(m.group()), _newlines(text or "")), quote=True)


def shorten(text: str, limit: int) -> str:
    """One line of at most `limit` characters, cut at a word boundary with an ellipsis when it is longer.

    Whitespace runs (newlines too) become one space. A first word longer than half the room is cut inside the word,
    so a long unbroken string still shows its start.
    """
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    room = text[: max(1, limit - 1)]
    space = room.rfind(" ")
    if text[len(room)] != " " and space >= len(room) // 2:  # room ends inside a word: drop that word
        room = room[:space]
    return room.rstrip(" ,.;:-\u2013\u2014") + ELLIPSIS
