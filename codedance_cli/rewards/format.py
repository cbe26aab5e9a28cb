"""The format penalty f in {-1, 0} and the graded answer, per path, as the CodeDance release applies them.

Both paths read the model's own words (`<tool_response>` blocks removed: a tag the
code printed is not the model's).

- **general**: f = -1 when `<think>` tags are unbalanced, when there is not exactly
  one `<answer>` and one `</answer>`, or when no complete answer block exists; the
  *first* block is graded; an empty answer is simply wrong (not a format failure);
  an answer of `max_answer_chars` or more fails the format and scores accuracy 0.
- **math**: f = -1 when `<think>` tags are unbalanced, when a tool call follows the
  last `</think>`, or when no answer block follows it; the *last* block after the
  last `</think>` is graded; no length limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from codedance_cli.loop.grammar import after_last_think, general_answer, math_answer, model_text


@dataclass(frozen=True)
class FormatCheck:
    """Outcome of the format rules for one response."""

    penalty: float  # 0.0 or -1.0
    answer: str | None  # the graded answer; None when the response has no complete answer block
    reason: str | None  # which rule failed; None when the format is fine
    answer_too_long: bool = False  # accuracy is forced to 0


def check_general(response: str, *, max_answer_chars: int = 1000) -> FormatCheck:
    """The general path's rules (see the module docstring)."""
    text = model_text(response)
    reasons: list[str] = []
    if text.count("<think>") != text.count("</think>"):
        reasons.append("unbalanced <think> tags")
    opens, closes = text.count("<answer>"), text.count("</answer>")
    if opens != 1 or closes != 1:
        reasons.append(f"expected one <answer> pair, found {opens} open / {closes} close")
    answer = general_answer(response)
    if answer is None and opens == 1 and closes == 1:
        reasons.append("</answer> before <answer>")
    too_long = answer is not None and len(answer) >= max_answer_chars
    if too_long:
        reasons.append(f"answer of {len(answer)} characters (limit {max_answer_chars})")
    return FormatCheck(-1.0 if reasons else 0.0, answer, "; ".join(reasons) or None, too_long)


def check_math(response: str) -> FormatCheck:
    """The math path's rules (see the module docstring)."""
    text = model_text(response)
    reasons: list[str] = []
    if text.count("<think>") != text.count("</think>"):
        reasons.append("unbalanced <think> tags")
    if "tool_call" in after_last_think(response):
        reasons.append("a tool call after the last </think>")
    answer = math_answer(response)
    if answer is None:
        reasons.append("no <answer> after the last </think>")
    return FormatCheck(-1.0 if reasons else 0.0, answer, "; ".join(reasons) or None)


def check_format(response: str, *, math: bool = False, max_answer_chars: int = 1000) -> FormatCheck:
    """The rules of the item's path."""
    return check_math(response) if math else check_general(response, max_answer_chars=max_answer_chars)
