"""The format penalty: a response that does not follow the turn format earns f = -1.

Rules (from the CodeDance release, see /work/shared/reference/codedance-facts.md):
unbalanced `<think>` tags, not exactly one `<answer>…</answer>` pair, an empty
answer, or an answer of `max_answer_chars`+ characters. An over-long answer also
zeroes accuracy, so that dumping text into the answer can never pay.
Tool responses are removed first: text the code printed is not the model's format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TOOL_RESPONSE_BLOCK = re.compile(r"<tool_response>.*?(?:</tool_response>|$)", re.DOTALL)
ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


@dataclass(frozen=True)
class FormatCheck:
    """Outcome of the format rules for one response."""

    penalty: float  # 0.0 or -1.0
    answer: str | None  # content of the single answer block, when there is one
    reason: str | None  # which rule failed; None when the format is fine
    answer_too_long: bool = False


def strip_tool_responses(text: str) -> str:
    """The model's own words: `<tool_response>` blocks (sandbox output) removed."""
    return TOOL_RESPONSE_BLOCK.sub("", text)


def check_format(response: str, *, max_answer_chars: int = 1000) -> FormatCheck:
    """Apply the format rules to a whole response (all assistant turns joined)."""
    text = strip_tool_responses(response)
    if text.count("<think>") != text.count("</think>"):
        return FormatCheck(-1.0, _last_answer(text), "unbalanced <think> tags")
    opens, closes = text.count("<answer>"), text.count("</answer>")
    if opens == 0 and closes == 0:
        return FormatCheck(-1.0, None, "no <answer>")
    if opens != 1 or closes != 1:
        return FormatCheck(-1.0, _last_answer(text), f"expected one <answer> pair, found {opens} open / {closes} close")
    match = ANSWER_BLOCK.search(text)
    if match is None:
        return FormatCheck(-1.0, None, "</answer> before <answer>")
    answer = match.group(1).strip()
    if not answer:
        return FormatCheck(-1.0, "", "empty answer")
    if len(answer) >= max_answer_chars:
        return FormatCheck(-1.0, answer, f"answer of {len(answer)} characters (limit {max_answer_chars})", answer_too_long=True)
    return FormatCheck(0.0, answer, None)


def _last_answer(text: str) -> str | None:
    found = ANSWER_BLOCK.findall(text)
    return found[-1].strip() if found else None
