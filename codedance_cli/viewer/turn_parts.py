"""How the trajectory page reads one assistant turn: the model's prose apart from its code, and what was malformed.

Why: the page shows the extracted code highlighted and the prose beside it. Cutting the prose with the parser's own
spans (not a second regex) means what the page calls code is what the loop ran, and a fence the model never closed
is shown once, as code, never again inside the reasoning. The parser is imported inside the functions, so that
`codedance_cli.trajectory` stays importable on its own.
"""

from __future__ import annotations

import re

# What a parse flag means, for the turn's heading.
FLAG_NOTES = {
    "unterminated_code": "code block not closed",
    "unterminated_answer": "answer tag not closed",
    "several_code_blocks": "several code blocks, run as one cell",
    "answer_in_code": "an answer tag inside code (not an answer)",
    "several_answers": "several answers, the first counts",
    "code_and_answer": "code and answer in one turn: the code was not run",
    "bad_tool_call": "bad tool call",
    "off_format": "code in the other format",
    "unbalanced_think": "unbalanced think tags",
    "truncated_input": "only the start was parsed",
}


def split_turn(text: str) -> tuple[str, list[str]]:
    """(the model's prose, the raw code regions) of a turn: everything outside code blocks and answer tags, think
    tags dropped, and the code regions as written (shown only when nothing was extracted from them)."""
    from codedance_cli.loop.parser import code_and_answer_regions

    pieces: list[str] = []
    code: list[str] = []
    pos = 0
    for start, end, kind in code_and_answer_regions(text):
        if start >= pos:
            pieces.append(text[pos:start])
            if kind == "code":
                code.append(text[start:end])
        pos = max(pos, end)
    pieces.append(text[pos:])
    prose = "\n".join(piece.replace("<think>", "").replace("</think>", "").strip() for piece in pieces)
    return re.sub(r"\n{3,}", "\n\n", prose).strip(), code


def flag_notes(text: str, version: str | None) -> list[str]:
    """What the parser made of a malformed turn, in words (empty for a well-formed one)."""
    from codedance_cli.loop.parser import parse_turn

    try:
        flags = parse_turn(text, version or "codedance-v1").flags
    except Exception:  # noqa: BLE001 - an unknown prompt version must not break the page
        return []
    return [note for flag, note in FLAG_NOTES.items() if flag in flags]
