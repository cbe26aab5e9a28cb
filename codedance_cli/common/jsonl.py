"""The JSON objects of a log written one object a line by another process (ms-swift's logging.jsonl, verl's file
logger): a line still being written, or one that is not an object, is skipped rather than failing the reader."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def parse_records(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The JSON objects among `lines` (a torn or foreign line is skipped)."""
    records = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record of a whole JSONL log (none when it does not exist yet)."""
    return parse_records(path.read_text(encoding="utf-8", errors="replace").splitlines()) if path.exists() else []
