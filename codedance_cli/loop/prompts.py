"""Versioned system prompts: the contract between a model and the loop.

A trajectory records the version it was generated with, so data made today can
be re-rendered (SFT export, eval) with exactly the prompt the model saw. Never
edit a published template in place: add a new version.

Two formats:

- `codedance-v1` (default): reasoning in `<think>…</think>`, code in a fenced
  ```python block, the execution result comes back as the next user message,
  the final answer in `<answer>…</answer>`.
- `codedance-toolcall-v1`: the CodeDance release's format. Qwen function
  calling: `<tool_call>{"name": "execute_python_code", "arguments": {"code": …}}</tool_call>`;
  results come back wrapped in `<tool_response>…</tool_response>` followed by
  a fixed nudge.
- `direct-v1`: no tools, the answer straight from the image: the no-tool baseline (eval `mode: direct`,
  the filter's weak model, and SFT of a no-tool model on the same items, which keeps only the answer turn).
"""

from __future__ import annotations

import json

from codedance_cli.errors import BadInput

DEFAULT_VERSION = "codedance-v1"
TOOLCALL_VERSION = "codedance-toolcall-v1"
DIRECT_VERSION = "direct-v1"

TOOL_NAME = "execute_python_code"

# What a cell that printed and showed nothing returns (same words as the release, so rewards can match on it).
NO_OUTPUT_MESSAGE = "Code executed successfully. No explicit output or figures produced."

# Appended after every tool response in the tool-call format (the release's fixed nudge).
TOOL_RESPONSE_NUDGE = (
    "Think with the tool's result, then answer. Determine if it adequately answers the user's question. "
    "If the information is insufficient or irrelevant, formulate a new strategy and execute a new tool call "
    "to obtain a helpful result."
)

_ENVIRONMENT = """\
The code runs in a persistent, sandboxed Python environment (a notebook: variables, imports and files \
persist between your code cells within this conversation). PIL, numpy, cv2 (OpenCV) and matplotlib are \
installed; there is no network access.
Predefined variables:
- `input_image`: the first input image as a PIL.Image.Image
- `input_images`: all input images, a list of PIL.Image.Image
- `input_image_path`: the path of the first input image on disk ("input_image.png" in the working directory)
To see something, output it: `print(...)` text; show an image with `plt.show()`, `display(img)`, `img.show()`, \
or by making a PIL image (or an image-like numpy array) the last expression of the cell. Image files you save \
are returned too. Printed text and shown images come back to you in the next message."""

CODEDANCE_V1 = f"""\
You are a visual reasoning assistant that thinks with code. You look at images, write Python to inspect, \
crop, zoom, measure, count, enhance or plot them, read the results, and reason until you can answer.

In every reply, first reason step by step inside <think>...</think>. Then do exactly one of:
1. Run code: write one fenced code block
```python
...
```
and end your reply there. Its output is returned to you in the next message.
2. Answer: give the final answer inside <answer>...</answer> (only the answer: a letter for multiple \
choice, a number, or a short phrase).

{_ENVIRONMENT}

Use code when looking more closely helps (small details, counting, reading values, geometry); answer \
directly when the image is clear. If code fails, read the error and fix it."""

_TOOL_SCHEMA = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": (
            "Execute Python code in a persistent sandboxed environment with PIL, cv2, matplotlib and numpy. "
            "The input image is available as `input_image` (PIL) and at `input_image_path`; all inputs as "
            "`input_images`. Return results with print(), plt.show(), display(img) or a final image expression."
        ),
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "The Python code to execute."}},
            "required": ["code"],
        },
    },
}

CODEDANCE_TOOLCALL_V1 = f"""\
You are a visual reasoning assistant that thinks with code. Reason step by step inside <think>...</think>; \
call the code tool whenever inspecting, cropping, measuring or plotting the image helps; when you are sure, \
give the final answer inside <answer>...</answer>.

{_ENVIRONMENT}

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{json.dumps(_TOOL_SCHEMA, ensure_ascii=False)}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""

# The no-tool baseline: same answer tag as the tool prompts, so extraction and format numbers compare.
DIRECT_V1 = (
    "You are a visual reasoning assistant. Look at the image(s) and answer the question. "
    "You cannot run code. Reason briefly inside <think>...</think>, then give the final answer inside "
    "<answer>...</answer> (only the answer: a letter for multiple choice, a number, or a short phrase)."
)

SYSTEM_PROMPTS: dict[str, str] = {
    DEFAULT_VERSION: CODEDANCE_V1,
    TOOLCALL_VERSION: CODEDANCE_TOOLCALL_V1,
    DIRECT_VERSION: DIRECT_V1,
}


def check_version(version: str) -> str:
    """`version` if known, else a BadInput listing the known ones (recipes name versions by string)."""
    if version not in SYSTEM_PROMPTS:
        raise BadInput(f"unknown prompt_version {version!r}; known: {', '.join(SYSTEM_PROMPTS)}")
    return version


def system_prompt(version: str = DEFAULT_VERSION) -> str:
    """The system prompt text of a template version."""
    return SYSTEM_PROMPTS[check_version(version)]


def is_toolcall(version: str) -> bool:
    """Whether the version uses `<tool_call>` / `<tool_response>` (else fenced code + plain user turns)."""
    return check_version(version) == TOOLCALL_VERSION


def tool_call_text(code: str) -> str:
    """The exact assistant text of one tool call (codedance-toolcall-v1)."""
    payload = json.dumps({"name": TOOL_NAME, "arguments": {"code": code}}, ensure_ascii=False)
    return f"<tool_call>\n{payload}\n</tool_call>"


def fenced_code(code: str) -> str:
    """The exact assistant text of one code cell in the fenced versions (codedance-v1)."""
    return f"```python\n{code.rstrip()}\n```"


def cell_text(code: str, version: str) -> str:
    """One code cell as `version` writes it: a `<tool_call>` or a fenced block."""
    return tool_call_text(code) if is_toolcall(version) else fenced_code(code)


def code_in_version(text: str, code: str, version: str) -> str:
    """A code turn's text with its cell written the way `version` writes cells.

    Training data rendered with another version than it was made in would otherwise pair one version's system
    prompt with the other's cells (a model SFT'd that way calls tools in a form verl's parser never sees). The
    cell must appear in the text exactly as one of the two forms writes it; otherwise ValueError.
    """
    wanted = cell_text(code, version)
    other = fenced_code(code) if is_toolcall(version) else tool_call_text(code)
    if wanted in text:
        return text
    if other in text:
        return text.replace(other, wanted, 1)
    raise ValueError(f"the turn's code is not written as a {'<tool_call>' if is_toolcall(version) else 'fenced'} "
                     "or the other version's cell, so it cannot be rendered in that version")
