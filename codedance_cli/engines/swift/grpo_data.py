"""Trajectory-format RL items -> the JSON-lines dataset `swift rlhf --rlhf_type grpo` reads.

Each line: `messages` (system prompt + user turn with one `<image>` per input
image), `images` (PNG files written beside it), and the columns our reward
plugin reads (`solution`, `answer_type`, `choices`, `question`, `metadata`,
`data_source`). Lists and dicts are JSON text so every row has the same column
types (ms-swift loads the file with `datasets`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from codedance_cli.common.atomic import AtomicFile, atomic_write_text
from codedance_cli.errors import BadInput
from codedance_cli.loop.prompts import system_prompt
from codedance_cli.trajectory.schema import Trajectory, decode_image, item_source, question_text


def swift_row(task: Trajectory, image_dir: Path, prompt_version: str) -> dict:
    """One GRPO row; writes the item's images as PNG files under `image_dir`."""
    paths = []
    for index, data in enumerate(task.images):
        path = image_dir / f"{_safe(task.task_id)}-{index}.png"
        if not path.exists():
            with AtomicFile(path, "wb") as handle:
                decode_image(data).convert("RGB").save(handle, format="PNG")
        paths.append(str(path))
    metadata = dict(task.metadata or {})
    return {
        "messages": [
            {"role": "system", "content": system_prompt(prompt_version)},
            {"role": "user", "content": "<image>" * len(paths) + question_text(task)},
        ],
        "images": paths,
        "solution": task.ground_truth or "",
        "answer_type": task.answer_type,
        "choices": json.dumps(list(task.choices or [])),
        "question": task.question,
        "metadata": json.dumps(metadata, ensure_ascii=False, default=str),
        "data_source": item_source(metadata, "codedance"),
        "task_id": task.task_id,
    }


def export_swift_grpo(tasks: Iterable[Trajectory], out_path: Path, image_dir: Path, prompt_version: str, limit: int | None = None) -> int:
    """Write the GRPO jsonl atomically; items without a ground truth are skipped. Returns the row count."""
    image_dir.mkdir(parents=True, exist_ok=True)
    rows, seen = [], set()
    for task in tasks:
        if task.task_id in seen or not (task.ground_truth or "").strip():
            continue
        seen.add(task.task_id)
        rows.append(swift_row(task, image_dir, prompt_version))
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise BadInput(f"{out_path}: no RL items with a ground truth to train on")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return len(rows)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:120]
