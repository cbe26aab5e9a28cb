"""Trajectories -> ms-swift SFT jsonl (`messages` + `images`), images written beside it.

Each line is one trajectory in ms-swift's standard multimodal format:
`{"messages": [{"role": "system"|"user"|"assistant", "content": "...<image>..."}], "images": [paths], "task_id": ...}`.
Every `<image>` placeholder takes the next path of `images`, in order.

The conversation is rendered by the tool loop's own `build_messages`, so the model is
trained on byte-for-byte what it sees at rollout: the loop sends each execution result as
the next *user* turn (wrapped in `<tool_response>` plus the fixed nudge in the tool-call
format), and so does this file. ms-swift gives user turns label -100 exactly as it does
tool turns, so the loss covers the assistant turns only (tests/test_sft_labels.py checks
this with ms-swift's template on the tiny model). ms-swift's `tool` role is not used
because its agent templates re-wrap the content, which would differ from the rollout text.

Streaming (one trajectory in memory at a time), atomic (`train.jsonl` appears only when
complete), resumable (a re-run continues `train.jsonl.partial` from the last whole line).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from codedance_cli.common.atomic import atomic_write_bytes
from codedance_cli.common.progress import progress_bar
from codedance_cli.errors import BadInput
from codedance_cli.loop.format import build_messages
from codedance_cli.loop.prompts import DEFAULT_VERSION, DIRECT_VERSION, check_version, code_in_version
from codedance_cli.recipes.common import DataRef, LoopConfig
from codedance_cli.trajectory.media import decode_data_url
from codedance_cli.trajectory.schema import Trajectory, Turn

JSONL_NAME = "train.jsonl"
IMAGE_DIR = "images"
IMAGE_PLACEHOLDER = "<image>"


def swift_record(traj: Trajectory, image_dir: Path, prompt_version: str | None = None,
                 config: LoopConfig | None = None) -> dict[str, Any]:
    """One ms-swift line for `traj`; its images are written into `image_dir` (content-addressed)."""
    version = check_version(prompt_version or traj.prompt_version or DEFAULT_VERSION)
    # direct-v1 trains the no-tool baseline on the same items: the question, then only the answer turn.
    turns = traj.turns[-1:] if version == DIRECT_VERSION else [_in_version(turn, version, traj.task_id) for turn in traj.turns]
    messages = build_messages(traj, turns, version, config)
    out_messages: list[dict[str, str]] = []
    images: list[str] = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            text = _checked_text(content, traj.task_id)
        else:
            pieces: list[str] = []
            for part in content:
                if part["type"] == "text":
                    pieces.append(_checked_text(part["text"], traj.task_id))
                elif part["type"] == "image_url":
                    pieces.append(IMAGE_PLACEHOLDER)
                    images.append(str(write_image(decode_data_url(part["image_url"]["url"]), image_dir)))
                else:
                    raise BadInput(f"task {traj.task_id}: unsupported content part {part['type']!r}")
            text = "".join(pieces)
        out_messages.append({"role": message["role"], "content": text})
    if not out_messages or out_messages[-1]["role"] != "assistant":
        raise BadInput(f"task {traj.task_id}: a training trajectory must end with an assistant turn")
    return {"messages": out_messages, "images": images, "task_id": traj.task_id}


def _in_version(turn: Turn, version: str, task_id: str) -> Turn:
    """The turn with its code cell written as `version` writes cells (data made in one version, trained in another)."""
    if turn.code is None:
        return turn
    try:
        return turn.model_copy(update={"text": code_in_version(turn.text, turn.code, version)})
    except ValueError as exc:
        raise BadInput(f"task {task_id}: {exc} ({version})") from None


def _checked_text(text: str, task_id: str) -> str:
    if IMAGE_PLACEHOLDER in text:
        raise BadInput(f"task {task_id}: the text itself contains {IMAGE_PLACEHOLDER!r}, which ms-swift would read as an image")
    return text


def write_image(data: bytes, image_dir: Path) -> Path:
    """Write encoded bytes once under their hash (identical images are shared); atomic; returns the absolute path."""
    digest = hashlib.sha1(data).hexdigest()
    suffix = ".jpg" if data.startswith(b"\xff\xd8") else ".png"
    path = (image_dir / digest[:2] / f"{digest}{suffix}").resolve()
    if not path.exists():
        atomic_write_bytes(path, data)
    return path


def _resume(partial: Path) -> set[str]:
    """Task ids already in `partial`; a torn last line (killed mid-write) is cut off."""
    if not partial.exists():
        return set()
    done: set[str] = set()
    good_bytes = 0
    with partial.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break
            try:
                done.add(json.loads(line)["task_id"])
            except (ValueError, KeyError):
                break
            good_bytes += len(line)
    with partial.open("r+b") as handle:
        handle.truncate(good_bytes)
    return done


def _trajectories(source: Path | DataRef | Iterable[Trajectory]) -> Iterator[Trajectory]:
    if isinstance(source, DataRef):
        from codedance_cli.data.sources import iter_dataref

        return iter(iter_dataref(source))
    if isinstance(source, (str, Path)):
        from codedance_cli.trajectory.store import iter_trajectories

        if not Path(source).exists():
            raise BadInput(f"{source}: trajectory dataset not found")
        return iter_trajectories(source)
    return iter(source)


def export_swift(
    trajectories_path: Path | DataRef | Iterable[Trajectory],
    out_dir: Path,
    *,
    prompt_version: str | None = None,
    config: LoopConfig | None = None,
    only_correct: bool = False,
    progress: bool = True,
) -> Path:
    """Export trajectories to `out_dir/train.jsonl` (+ `out_dir/images/`); returns the jsonl path.

    Skips trajectories without an assistant turn (nothing to learn) and, with `only_correct`,
    those whose `metadata["correct"]` is not true. Raises BadInput when nothing is left.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final, partial = out_dir / JSONL_NAME, out_dir / f"{JSONL_NAME}.partial"
    if final.exists() and not partial.exists():
        final.rename(partial)  # re-export: keep what is there, add what is new
    done = _resume(partial)
    written = len(done)
    skipped = 0
    bar = progress_bar("export", transient=True, disable=not progress)
    with bar, partial.open("a", encoding="utf-8") as handle:
        counted = bar.add_task("trajectories to ms-swift jsonl", total=None)
        for traj in _trajectories(trajectories_path):
            bar.advance(counted)
            if traj.task_id in done:
                continue
            if not traj.turns or (only_correct and traj.metadata.get("correct") is not True):
                skipped += 1
                continue
            record = swift_record(traj, out_dir / IMAGE_DIR, prompt_version, config)
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            done.add(traj.task_id)
            written += 1
    if written == 0:
        raise BadInput(f"{_name(trajectories_path)}: no trajectory to train on ({skipped} skipped: no turns"
                       f"{' or not marked correct' if only_correct else ''})")
    os.replace(partial, final)
    return final


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def _name(source: object) -> str:
    return str(source.path) if isinstance(source, DataRef) else str(source) if isinstance(source, (str, Path)) else "trajectories"
