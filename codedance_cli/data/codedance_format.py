"""CodeDance-SFT and CodeDance-RL rows -> trajectories.

Column layout (from the datasets' hub cards, Peterwatwec/CodeDance-SFT and -RL):
- SFT: `messages` (list of {role, content}), `images` (list of encoded images).
- RL: `data_source`, `messages` (the prompt: system + user), `images`, `ability`,
  `reward_model` {ground_truth, style}, `extra_info` {answer, question, index, split,
  need_tools_kwargs, tools_kwargs.execute_python_code.create_kwargs.image {bytes, path}}.

Mapping (explicit, since the cards document columns, not conventions):
- `content` is a string with `<image>` placeholders (ms-swift style) or a list of
  {type: text|image} parts; placeholders consume `images` in order.
- system -> system_prompt; the first user message -> question (placeholders removed)
  and its images -> input images.
- each assistant message -> a Turn; code comes from `<tool_call>` JSON
  (execute_python_code.code) or a fenced python block, the answer from `<answer>`.
- a `tool` message, or a user message after an assistant turn with code -> that
  turn's Observation: text inside `<tool_response>` without the fixed nudge is
  stdout; an "...Error: ..." / Traceback line sets error_type; "timed out" sets
  timed_out; the no-output message means empty stdout; its placeholders take images.
- SFT rows have no ground truth column: the last assistant answer is the ground
  truth (metadata ground_truth_from = "final_answer").
"""

from __future__ import annotations

import base64
import io
import re
from typing import Any

from PIL import Image

from codedance_cli.loop.parser import parse_turn
from codedance_cli.loop.prompts import DEFAULT_VERSION, NO_OUTPUT_MESSAGE, TOOL_RESPONSE_NUDGE, TOOLCALL_VERSION
from codedance_cli.trajectory.schema import AnswerType, Observation, Trajectory, Turn

IMAGE_TOKEN = "<image>"
_ERROR_LINE = re.compile(r"^\s*(?:Error:\s*)?([A-Za-z_][\w.]*(?:Error|Exception|Interrupt))\b[:\s]", re.MULTILINE)
_CHOICE_HINT = re.compile(r"(?:^|\n|\s)\(?[A-E][).:]\s|options?:|choices?:", re.IGNORECASE)


class RowError(ValueError):
    """A row that cannot become a trajectory; the message is the reason reported with its index."""


def checked_image(data: bytes) -> bytes:
    """`data` if its header decodes as an image (cheap: no pixel decoding), else RowError."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception as exc:
        raise RowError(f"image does not decode ({type(exc).__name__})") from None
    if width < 1 or height < 1:
        raise RowError("image has zero size")
    return data


def image_bytes(cell: Any) -> bytes:
    """An image cell as bytes: raw bytes, {'bytes': ...}, a data URL or base64 text."""
    if isinstance(cell, (bytes, bytearray)):
        return bytes(cell)
    if isinstance(cell, dict) and cell.get("bytes") is not None:
        return bytes(cell["bytes"])
    if isinstance(cell, str):
        payload = cell.split(",", 1)[1] if cell.startswith("data:") else cell
        try:
            return base64.b64decode(payload, validate=True)
        except ValueError:
            raise RowError("image is a string that is neither a data URL nor base64") from None
    raise RowError(f"image cell of unsupported type {type(cell).__name__}")


def _content_parts(content: Any) -> tuple[str, int]:
    """(text, number of images) of a message content in either layout."""
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content.replace(IMAGE_TOKEN, "").strip(), content.count(IMAGE_TOKEN)
    if isinstance(content, list):
        texts, images = [], 0
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                text = str(part.get("text") or "")
                texts.append(text.replace(IMAGE_TOKEN, ""))
                images += text.count(IMAGE_TOKEN)
            elif kind in ("image", "image_url"):
                images += 1
            else:
                raise RowError(f"message content part of unknown type {kind!r}")
        return "\n".join(t for t in texts if t).strip(), images
    raise RowError(f"message content of unsupported type {type(content).__name__}")


def observation_from_text(text: str, images: list[bytes]) -> Observation:
    """A tool response's text (tags and nudge removed) and images -> Observation."""
    body = text.replace(TOOL_RESPONSE_NUDGE, "")
    inner = re.search(r"<tool_response>(.*?)(?:</tool_response>|$)", body, re.DOTALL)
    body = (inner.group(1) if inner else body).strip()
    body = re.sub(r"^Code execution result:\s*", "", body)
    body = re.sub(r"\[\d+ images? attached\]", "", body).strip()
    if body == NO_OUTPUT_MESSAGE:
        body = ""
    timed_out = bool(re.search(r"\btim(?:ed|e)[ -]?out\b", body, re.IGNORECASE))
    error = _ERROR_LINE.search(body)
    error_type = "Timeout" if timed_out else (error.group(1).split(".")[-1] if error else None)
    return Observation(stdout=body, images=images, error_type=error_type, error=body[-2000:] if error_type else None, timed_out=timed_out)


def infer_answer_type(answer: str, question: str) -> AnswerType:
    """choice for a lone option letter with options in the question, number for a numeric answer, else text/open."""
    stripped = answer.strip().strip("().").strip()
    if re.fullmatch(r"[A-Ea-e]", stripped) and _CHOICE_HINT.search(question):
        return "choice"
    if re.fullmatch(r"[-+]?\d[\d,]*(?:\.\d+)?\s*%?", stripped) or re.fullmatch(r"[-+]?\.\d+", stripped):
        return "number"
    return "text" if len(stripped.split()) <= 6 else "open"


def messages_to_trajectory(task_id: str, messages: Any, images: Any, *, require_answer: bool) -> Trajectory:
    """The conversation (CodeDance layout) as a Trajectory; RowError says what is wrong."""
    if not isinstance(messages, list) or not messages:
        raise RowError("messages: missing or empty")
    cells = list(images or [])
    pool = [checked_image(image_bytes(cell)) for cell in cells]
    version = TOOLCALL_VERSION if any("<tool_call>" in str(m.get("content")) for m in messages if isinstance(m, dict)) else DEFAULT_VERSION
    system, question, inputs = None, None, []
    turns: list[Turn] = []
    cursor = 0

    def take(n: int, where: str) -> list[bytes]:
        nonlocal cursor
        if cursor + n > len(pool):
            raise RowError(f"{where}: {n} image placeholder(s) but only {len(pool) - cursor} image(s) left of {len(pool)}")
        chunk = pool[cursor : cursor + n]
        cursor += n
        return chunk

    for position, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise RowError(f"messages[{position}]: not a {{role, content}} object")
        role = message["role"]
        text, n_images = _content_parts(message.get("content"))
        if role == "system":
            system = text
        elif role == "user" and question is None:
            question, inputs = text, take(n_images, f"messages[{position}] (user)")
        elif role == "assistant":
            if question is None:
                raise RowError(f"messages[{position}]: assistant turn before any user question")
            parsed = parse_turn(str(message.get("content") or ""), version)
            code = parsed.code if parsed.answer is None else None
            turns.append(Turn(text=str(message.get("content") or ""), code=code))
        elif role in ("tool", "user", "observation"):
            if not turns or turns[-1].code is None or turns[-1].observation is not None:
                raise RowError(f"messages[{position}]: {role} message that does not follow an assistant code turn")
            turns[-1].observation = observation_from_text(text, take(n_images, f"messages[{position}] ({role})"))
        else:
            raise RowError(f"messages[{position}]: unknown role {role!r}")
    if question is None:
        raise RowError("messages: no user question")
    if cursor != len(pool):
        if cursor == 0 and not inputs:  # no placeholders at all: the images are the inputs
            inputs = pool
        else:
            raise RowError(f"images: {len(pool)} given but placeholders use {cursor}")
    final = parse_turn(turns[-1].text, version).answer if turns else None
    if require_answer and final is None:
        raise RowError("the last assistant message has no <answer>")
    return Trajectory(
        task_id=task_id,
        question=question,
        images=inputs,
        system_prompt=system,
        prompt_version=version,
        turns=turns,
        final_answer=final,
        stop_reason="answer" if final is not None else None,
    )


def sft_row_to_trajectory(row: dict[str, Any], index: int) -> Trajectory:
    """One CodeDance-SFT row."""
    if "messages" not in row:
        raise RowError("missing column 'messages'")
    traj = messages_to_trajectory(f"codedance-sft-{index:07d}", row["messages"], row.get("images"), require_answer=True)
    assert traj.final_answer is not None
    traj.ground_truth = traj.final_answer
    traj.answer_type = infer_answer_type(traj.final_answer, traj.question)
    traj.metadata = {"source": "codedance-sft", "row": index, "ground_truth_from": "final_answer"}
    return traj


def rl_row_to_trajectory(row: dict[str, Any], index: int) -> Trajectory:
    """One CodeDance-RL row: a task (no turns) with its ground truth."""
    for column in ("messages", "reward_model"):
        if column not in row:
            raise RowError(f"missing column {column!r}")
    reward = row["reward_model"] or {}
    truth = reward.get("ground_truth") if isinstance(reward, dict) else None
    if truth is None or str(truth).strip() == "":
        raise RowError("reward_model.ground_truth: missing or empty")
    extra = row.get("extra_info") or {}
    images = row.get("images")
    if not images:
        created = (((extra.get("tools_kwargs") or {}).get("execute_python_code") or {}).get("create_kwargs") or {}).get("image")
        images = [created] if created else []
    source = str(row.get("data_source") or "codedance-rl")
    ident = extra.get("index")
    task_id = f"{source}-{ident}" if ident is not None else f"codedance-rl-{index:07d}"
    traj = messages_to_trajectory(task_id, row["messages"], images, require_answer=False)
    if traj.turns:
        raise RowError("RL rows are prompts: an assistant message is not expected")
    if extra.get("question"):
        traj.question = str(extra["question"]).replace(IMAGE_TOKEN, "").strip()
    traj.ground_truth = str(truth)
    traj.answer_type = infer_answer_type(traj.ground_truth, traj.question)
    traj.stop_reason = None
    traj.metadata = {"source": "codedance-rl", "row": index, "data_source": source, "ability": row.get("ability"),
                     "reward_style": reward.get("style"), "split": extra.get("split")}
    return traj
