"""The grammar of a turn, defined once: what the answer is, which option a text picks, when a call failed.

The reward, the eval scorer, the verl tool and the ms-swift scheduler all read
model output through these functions, so what RL trains on is what eval measures.

- **The model's own words** are the response with `<tool_response>` blocks removed:
  a tag the code printed is not the model's.
- **The answer** has two readings, as in the CodeDance release's reward:
  the *general* path grades the first `<answer>…</answer>` block; the *math* path
  grades the last block after the last `</think>`.
- **An option letter** is read from 'B', '(B)', 'B. cat', 'the answer is B', or the
  text of exactly one option; options come from the item or, failing that, from
  lettered lines in the question text.
- **A failed call** is a tool response that shows "Error" or "timeout" (the
  release's markers; our sandbox renders every error and timeout with "Error:");
  a cell that printed and showed nothing counts as failed only when asked to.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from codedance_cli.loop.prompts import NO_OUTPUT_MESSAGE

LETTERS = string.ascii_uppercase
# Words that offer more than one answer: a careful grader calls such a reply a hedge, not an answer.
HEDGES = frozenset({"or", "either", "maybe", "perhaps", "possibly", "probably", "could", "might"})
FAILURE_MARKERS = ("Error", "timeout")

_TOOL_RESPONSE = re.compile(r"<tool_response>(.*?)</tool_response>", re.DOTALL)
# Stripping also removes a last block cut off by the token limit (its text is still not the model's).
_TOOL_RESPONSE_OR_TAIL = re.compile(r"<tool_response>.*?(?:</tool_response>|$)", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_EXCEPTION_NAME = re.compile(r"\b([A-Z][A-Za-z]*(?:Error|Exception|Exit|Interrupt))\b")
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])\s*[).:]\s+(.+?)\s*$", re.MULTILINE)
_OPTION_PREFIX = re.compile(r"^\s*\(?[A-Za-z]\s*[).:]\s+")
_LEAD_IN = re.compile(
    r"^\s*(?:(?:so|thus|therefore),?\s*)?(?:the\s+)?(?:final\s+|correct\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:：]?\s*",
    re.IGNORECASE,
)
_LETTER_PATTERNS = (
    r"^\(?([A-Za-z])\)?\s*(?:[.:)\]]|$)",  # B | (B) | B. | b) | B: text
    r"^\(?([A-Z])\)?(?=\s)",  # "B because ..." (capital only, so "a dog" is not A)
    r"\(([A-Z])\)",  # "... so (B)"
    r"\b(?:answer|option|choice)\s*(?:is\s*)?[:：]?\s*\(?([A-Z])\b",
)


def model_text(response: str) -> str:
    """The model's own words: `<tool_response>` blocks (sandbox output) removed."""
    return _TOOL_RESPONSE_OR_TAIL.sub("", response)


def tool_responses(response: str) -> list[str]:
    """The bodies of the complete `<tool_response>` blocks of a rendered rollout, one per call."""
    return _TOOL_RESPONSE.findall(response)


def observation_failed(text: str, *, silent_fails: bool = False) -> bool:
    """Whether a rendered tool response counts as a failed call (see the module docstring)."""
    if any(marker in text for marker in FAILURE_MARKERS):
        return True
    return silent_fails and NO_OUTPUT_MESSAGE in text


def call_failures(response: str, *, silent_fails: bool = False) -> list[bool]:
    """Per tool response of a rendered rollout, in order: did that call fail?"""
    return [observation_failed(block, silent_fails=silent_fails) for block in tool_responses(response)]


def failure_kind(text: str, *, silent_fails: bool = False) -> str | None:
    """What a failed call's rendered response says went wrong: the exception's name (`NameError`), `timeout`,
    `no_output` or `Error`; None for a call that worked. For counting kinds, not for deciding failure."""
    if not observation_failed(text, silent_fails=silent_fails):
        return None
    named = _EXCEPTION_NAME.search(text)
    if named:
        return named.group(1)
    if "timeout" in text.lower():
        return "timeout"
    return "Error" if "Error" in text else "no_output"


def call_failure_kinds(response: str, *, silent_fails: bool = False) -> list[str]:
    """The kinds of a rendered rollout's failed calls, in order (working calls left out)."""
    kinds = (failure_kind(block, silent_fails=silent_fails) for block in tool_responses(response))
    return [kind for kind in kinds if kind is not None]


def answer_blocks(text: str) -> list[str]:
    """Contents of the complete `<answer>` blocks of `text`, stripped, in order."""
    return [block.strip() for block in _ANSWER.findall(text)]


def general_answer(response: str) -> str | None:
    """The graded answer of the general path: the first `<answer>` block of the model's own words."""
    blocks = answer_blocks(model_text(response))
    return blocks[0] if blocks else None


def after_last_think(response: str) -> str:
    """The model's own words after its last `</think>` (all of them when it never closed a think)."""
    return model_text(response).split("</think>")[-1]


def math_answer(response: str) -> str | None:
    """The graded answer of the math path: the last `<answer>` block after the last `</think>`."""
    blocks = answer_blocks(after_last_think(response))
    return blocks[-1] if blocks else None


def answer_or_text(text: str) -> str:
    """What a free-text reply answers: its graded `<answer>` block, else its last `\\boxed{}`, else all of it."""
    tagged = general_answer(text)
    if tagged is not None:
        text = tagged
    boxed = _BOXED.findall(text)
    if boxed:
        text = boxed[-1]
    return text.strip()


def options_in_question(question: str) -> list[str]:
    """Lettered options listed in a question ('A. cat' / '(B) dog' lines, A first and consecutive); [] if none."""
    options: list[str] = []
    for letter, option in _OPTION_LINE.findall(question or ""):
        if letter != LETTERS[len(options)]:
            if letter == "A":  # a second list starts: the last one is the question's options
                options = []
            else:
                continue
        options.append(option)
    return options if len(options) >= 2 else []


def normalize_text(text: str) -> str:
    """Lower-case, drop punctuation, articles and extra spaces: 'The Red car.' -> 'red car'."""
    text = text.lower().replace("\u2019", "'")
    text = "".join(" " if ch in string.punctuation and ch != "'" else ch for ch in text)
    words = [word.strip("'") for word in text.split()]
    return " ".join(word for word in words if word and word not in ("a", "an", "the"))


def is_hedge(text: str) -> bool:
    """Whether an answer offers alternatives ('STOP or GO', 'maybe 3', 'A or B')."""
    return bool(HEDGES & set(normalize_text(text).split()))


def answer_letter(text: str, choices: Sequence[str] | None = None, question: str = "") -> str | None:
    """The option letter a reply picks (see the module docstring); None when it names none, or hedges."""
    choices = list(choices or []) or options_in_question(question)
    answer = answer_or_text(text)
    if not answer:
        return None
    wanted = normalize_text(answer)
    option_texts = [normalize_text(_OPTION_PREFIX.sub("", choice)) for choice in choices]
    for index, choice in enumerate(choices):
        if wanted and wanted in (normalize_text(choice), option_texts[index]):
            return LETTERS[index]
    if is_hedge(answer):
        return None
    valid = LETTERS[: len(choices)] if choices else LETTERS
    stripped = _LEAD_IN.sub("", answer)
    for pattern in _LETTER_PATTERNS:
        match = re.search(pattern, stripped)
        if match and match.group(1).upper() in valid:
            return match.group(1).upper()
    # "the red one" inside a longer sentence: a single option whose text appears wins.
    found = [LETTERS[i] for i, option in enumerate(option_texts) if option and f" {option} " in f" {wanted} "]
    return found[0] if len(found) == 1 else None


def rendered_rollout(turns: Sequence[str], observations: Sequence[str]) -> str:
    """One rollout as the reward reads it: assistant turns with each call's observation between them.

    An observation rendered without `<tool_response>` tags (the fenced-code format) is wrapped in them, so
    that calls are counted and kept out of the model's own words the same way in every format.
    """
    parts: list[str] = []
    for index, turn in enumerate(turns):
        parts.append(turn)
        if index < len(observations):
            text = observations[index]
            parts.append(text if "<tool_response>" in text else f"<tool_response>\n{text}\n</tool_response>")
    return "\n".join(parts)
