"""Plain VQA rows (image + question + answer, jsonl/json/csv/parquet) -> tasks.

Columns are found by the first present name in each list below; `--column
field=name` overrides one. An image cell may be a path (relative to the data
file's folder), base64 / a data URL, raw bytes, or a {'bytes': ...} cell.
Choices may be a list or a JSON list string; answer types are inferred unless a
column gives them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from codedance_cli.data.codedance_format import RowError, checked_image, image_bytes, infer_answer_type
from codedance_cli.trajectory.schema import Trajectory

DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("id", "question_id", "qid", "index", "pid"),
    "image": ("image", "image_path", "img", "imgname", "file_name", "image_file", "images"),
    "question": ("question", "query", "prompt", "text"),
    "answer": ("answer", "label", "gt", "ground_truth", "answers"),
    "choices": ("choices", "options"),
    "answer_type": ("answer_type",),
}
ANSWER_TYPES = ("choice", "number", "text", "open")


def resolve_columns(overrides: dict[str, str] | None) -> dict[str, tuple[str, ...]]:
    columns = dict(DEFAULT_COLUMNS)
    for field, name in (overrides or {}).items():
        if field not in columns:
            raise ValueError(f"unknown VQA field {field!r}; fields: {', '.join(columns)}")
        columns[field] = (name,)
    return columns


def _first(row: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if name in row and row[name] not in (None, ""):
            return row[name]
    return None


def _load_image(cell: Any, base_dir: Path | None) -> bytes:
    if isinstance(cell, list):
        if not cell:
            raise RowError("image: empty list")
        cell = cell[0]
    if isinstance(cell, str) and not cell.startswith("data:") and (len(cell) < 512 or "/" in cell[:256] or "." in cell[-6:]):
        path = Path(cell)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if path.is_file():
            return checked_image(path.read_bytes())
        if len(cell) < 512:
            raise RowError(f"image: file {cell!r} not found")
    return checked_image(image_bytes(cell))


def vqa_row_to_task(row: dict[str, Any], index: int, base_dir: Path | None, columns: dict[str, tuple[str, ...]], prefix: str) -> Trajectory:
    """One VQA row as a task without turns."""
    question = _first(row, columns["question"])
    if question is None:
        raise RowError(f"no question column (looked for {', '.join(columns['question'])})")
    answer = _first(row, columns["answer"])
    if answer is None:
        raise RowError(f"no answer column (looked for {', '.join(columns['answer'])})")
    if isinstance(answer, list):
        answer = answer[0] if answer else None
        if answer is None:
            raise RowError("answer: empty list")
    cell = _first(row, columns["image"])
    if cell is None:
        raise RowError(f"no image column (looked for {', '.join(columns['image'])})")
    choices = _first(row, columns["choices"])
    if isinstance(choices, str):
        try:
            choices = json.loads(choices)
        except json.JSONDecodeError:
            raise RowError("choices: a string that is not a JSON list") from None
    if choices is not None and not (isinstance(choices, list) and all(isinstance(c, (str, int, float)) for c in choices)):
        raise RowError("choices: must be a list of strings")
    answer_type = _first(row, columns["answer_type"])
    if answer_type is not None and answer_type not in ANSWER_TYPES:
        raise RowError(f"answer_type: {answer_type!r} is not one of {', '.join(ANSWER_TYPES)}")
    ident = _first(row, columns["id"])
    task = Trajectory(
        task_id=f"{prefix}-{ident}" if ident is not None else f"{prefix}-{index:07d}",
        question=str(question).replace("<image>", "").strip(),
        images=[_load_image(cell, base_dir)],
        ground_truth=str(answer),
        choices=[str(c) for c in choices] if choices else None,
        metadata={"source": prefix, "row": index},
    )
    task.answer_type = answer_type or ("choice" if task.choices else infer_answer_type(task.ground_truth or "", task.question))
    return task
