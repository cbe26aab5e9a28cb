"""Turn one raw assistant message into reasoning, code to run and/or a final answer.

Models write malformed output all the time; every case below has one defined
result so that a rollout never crashes on text and the reward can see what went
wrong through `flags`:

- empty or whitespace-only output: nothing to do, flag `empty`.
- enormous output: only the first `MAX_PARSE_CHARS` characters are parsed, flag `truncated_input`.
- several code blocks (or tool calls) in one turn: they run **concatenated in order**
  as one cell, flag `several_code_blocks` (the model meant all of them to run
  before it sees output; running only the first would drop its display step).
- unterminated code fence / `<tool_call>`: the code runs from the opening to the
  end of the text (typically cut by the token limit; a SyntaxError goes back to
  the model), flags `unterminated_code`, `malformed`.
- `<answer>` inside a code block (e.g. `print("<answer>3</answer>")`): not an
  answer, flag `answer_in_code`.
- several answers: the first one counts (the reward grades the first), flag `several_answers`.
- `<answer>` without `</answer>`: the rest of the text is the answer, flags
  `unterminated_answer`, `malformed`.
- code and an answer in one turn: the answer ends the trajectory and the code is
  not run (`code` is None), flag `code_and_answer`.
- tool call that is not valid JSON / not `execute_python_code` / no `code`:
  `code` is None and `tool_error` says why (the loop returns it to the model as a
  failed call), flag `bad_tool_call`.
- the other format's code (a fenced block under the tool-call format or the
  reverse) is accepted, flag `off_format`.
- unbalanced `<think>` tags: flag `unbalanced_think`, `malformed`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from codedance_cli.loop.prompts import TOOL_NAME, is_toolcall

MAX_PARSE_CHARS = 200_000

_FENCE_OPEN = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n", re.MULTILINE)
_FENCE_CLOSE = re.compile(r"^[ \t]*```[ \t]*$", re.MULTILINE)
_PYTHON_LANGS = {"", "python", "py", "python3", "ipython"}
_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)
_ANSWER_OPEN = "<answer>"
_ANSWER_CLOSE = "</answer>"
_TOOL_OPEN = "<tool_call>"
_TOOL_CLOSE = "</tool_call>"


@dataclass
class ParsedTurn:
    """What the loop does with one assistant message."""

    reasoning: str = ""
    code: str | None = None
    answer: str | None = None
    tool_error: str | None = None
    flags: set[str] = field(default_factory=set)

    @property
    def malformed(self) -> bool:
        return "malformed" in self.flags

    @property
    def several_code_blocks(self) -> bool:
        return "several_code_blocks" in self.flags

    @property
    def wants_execution(self) -> bool:
        """True when the loop should run something (code) or report a bad tool call."""
        return self.answer is None and (self.code is not None or self.tool_error is not None)


@dataclass
class _Span:
    start: int
    end: int
    body: str
    terminated: bool


def _fenced_blocks(text: str) -> list[_Span]:
    """Python fenced blocks in order; an unterminated one runs to the end of the text."""
    spans: list[_Span] = []
    pos = 0
    while True:
        opening = _FENCE_OPEN.search(text, pos)
        if opening is None:
            return spans
        closing = _FENCE_CLOSE.search(text, opening.end())
        language = opening.group(1).lower()
        end = closing.end() if closing else len(text)
        body = text[opening.end() : closing.start() if closing else len(text)]
        if language in _PYTHON_LANGS:
            spans.append(_Span(opening.start(), end, body.rstrip("\n"), closing is not None))
        if closing is None:
            return spans
        pos = end


def _tagged(text: str, open_tag: str, close_tag: str) -> list[_Span]:
    """`<tag>…</tag>` regions in order; an unclosed last one runs to the end."""
    spans: list[_Span] = []
    pos = 0
    while (start := text.find(open_tag, pos)) != -1:
        inner = start + len(open_tag)
        stop = text.find(close_tag, inner)
        if stop == -1:
            spans.append(_Span(start, len(text), text[inner:], False))
            return spans
        spans.append(_Span(start, stop + len(close_tag), text[inner:stop], True))
        pos = stop + len(close_tag)
    return spans


def _inside(position: int, spans: list[_Span]) -> bool:
    return any(span.start <= position < span.end for span in spans)


def _code_from_tool_call(body: str) -> tuple[str | None, str | None]:
    """(code, error) from the JSON of one `<tool_call>`; tolerant of raw newlines and double encoding."""
    raw = body.strip()
    if raw.startswith("```"):
        raw = raw.strip("`").removeprefix("json").strip()
    try:
        payload = json.loads(raw, strict=False)
    except json.JSONDecodeError as exc:
        return None, f"tool call is not valid JSON ({exc.msg} at char {exc.pos})"
    if not isinstance(payload, dict):
        return None, "tool call must be a JSON object with 'name' and 'arguments'"
    name = payload.get("name")
    if name != TOOL_NAME:
        return None, f"unknown tool {name!r}; the only tool is {TOOL_NAME!r}"
    arguments = payload.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments, strict=False)
        except json.JSONDecodeError:
            return None, "tool call 'arguments' is a string that is not valid JSON"
    code = arguments.get("code") if isinstance(arguments, dict) else None
    if not isinstance(code, str) or not code.strip():
        return None, "tool call has no 'code' string argument"
    return code, None


def _extract_code(text: str, toolcall: bool, flags: set[str]) -> tuple[str | None, str | None, list[_Span]]:
    """(code, tool_error, code spans) following the version's primary form, then the other."""
    fenced = _fenced_blocks(text)
    calls = _tagged(text, _TOOL_OPEN, _TOOL_CLOSE)
    primary, secondary = (calls, fenced) if toolcall else (fenced, calls)
    spans = primary or secondary
    if not spans:
        return None, None, fenced + calls
    if not primary:
        flags.add("off_format")
    if len(spans) > 1:
        flags.add("several_code_blocks")
    if not all(span.terminated for span in spans):
        flags.update({"unterminated_code", "malformed"})
    if spans is fenced:
        return "\n\n".join(span.body for span in spans), None, fenced + calls
    pieces: list[str] = []
    errors: list[str] = []
    for span in spans:
        code, error = _code_from_tool_call(span.body)
        if code is not None:
            pieces.append(code)
        else:
            errors.append(error or "bad tool call")
    if errors:
        flags.update({"bad_tool_call", "malformed"})
    if pieces:
        return "\n\n".join(pieces), None, fenced + calls
    return None, "; ".join(errors), fenced + calls


def _extract_answer(text: str, code_spans: list[_Span], flags: set[str]) -> str | None:
    answers = _tagged(text, _ANSWER_OPEN, _ANSWER_CLOSE)
    outside = [span for span in answers if not _inside(span.start, code_spans)]
    if len(outside) < len(answers):
        flags.add("answer_in_code")
    if not outside:
        return None
    if len(outside) > 1:
        flags.add("several_answers")
    first = outside[0]
    if not first.terminated:
        flags.update({"unterminated_answer", "malformed"})
    return first.body.strip()


def _reasoning(text: str, code_spans: list[_Span], flags: set[str]) -> str:
    opens, closes = text.count("<think>"), text.count("</think>")
    if opens != closes or opens > 1:
        flags.update({"unbalanced_think", "malformed"} if opens != closes else {"several_think"})
    thoughts = [match.group(1).strip() for match in _THINK.finditer(text)]
    if thoughts:
        return "\n\n".join(thoughts)
    # No think tags: the prose before the first code block / answer is the reasoning.
    cut = min([span.start for span in code_spans] + [i for i in (text.find(_ANSWER_OPEN),) if i != -1] + [len(text)])
    return text[:cut].replace("</think>", "").strip()


def code_and_answer_regions(text: str) -> list[tuple[int, int, str]]:
    """(start, end, "code" | "answer") of every Python code block, tool call and answer tag in `text`, in order,
    as `parse_turn` finds them (an unterminated one runs to the end).

    Why: a viewer shows the model's prose (the text outside these) beside the extracted code and answer; cutting
    with the parser's own spans means an unterminated fence is shown once, as code, and never again as prose.
    """
    text = text[:MAX_PARSE_CHARS]
    code = _fenced_blocks(text) + _tagged(text, _TOOL_OPEN, _TOOL_CLOSE)
    answers = [span for span in _tagged(text, _ANSWER_OPEN, _ANSWER_CLOSE) if not _inside(span.start, code)]
    return sorted([(span.start, span.end, "code") for span in code] + [(span.start, span.end, "answer") for span in answers])


def parse_turn(text: str, version: str) -> ParsedTurn:
    """Parse one assistant message under a prompt version (see the module docstring for every case)."""
    toolcall = is_toolcall(version)
    flags: set[str] = set()
    if not text or not text.strip():
        return ParsedTurn(flags={"empty"})
    if len(text) > MAX_PARSE_CHARS:
        text = text[:MAX_PARSE_CHARS]
        flags.add("truncated_input")
    code, tool_error, code_spans = _extract_code(text, toolcall, flags)
    answer = _extract_answer(text, code_spans, flags)
    reasoning = _reasoning(text, code_spans, flags)
    if answer is not None and (code is not None or tool_error is not None):
        flags.add("code_and_answer")
        code, tool_error = None, None
    return ParsedTurn(reasoning=reasoning, code=code, answer=answer, tool_error=tool_error, flags=flags)
