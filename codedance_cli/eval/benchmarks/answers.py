"""Helpers the benchmark modules share: reading public row formats and images, reading letters and numbers.

The official scorers of V*, HR-Bench and MathVista all start by pulling an option
letter (or a number) out of free text; the rules here do that the same way for
every benchmark, and each module applies its own official comparison afterwards.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import string
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from codedance_cli.errors import BadInput
from codedance_cli.loop.grammar import answer_letter
from codedance_cli.rewards.matching import parse_number

LETTERS = string.ascii_uppercase


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row index, row) from a .json (list, or mapping id -> row), .jsonl, .tsv/.csv or .parquet file."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            with path.open(encoding="utf-8") as handle:
                for index, line in enumerate(handle):
                    if line.strip():
                        yield index, _as_row(json.loads(line), path, index)
        elif suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            items = data.items() if isinstance(data, dict) else enumerate(data)
            for index, (key, row) in enumerate(items):
                row = dict(_as_row(row, path, index))
                if isinstance(data, dict):
                    row.setdefault("_key", str(key))
                yield index, row
        elif suffix in (".tsv", ".csv"):
            csv.field_size_limit(sys.maxsize)  # HR-Bench keeps whole 8K images as base64 in one cell
            with path.open(encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
                for index, row in enumerate(reader):
                    yield index, dict(row)
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            index = 0
            for batch in pq.ParquetFile(path).iter_batches(batch_size=64):
                for row in batch.to_pylist():
                    yield index, row
                    index += 1
        else:
            raise BadInput(f"{path}: unsupported file type {suffix!r} (expected .json, .jsonl, .tsv, .csv or .parquet)")
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"{path}: cannot read: {exc}") from None


def _as_row(value: Any, path: Path, index: int) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadInput(f"{path}: row {index}: expected an object, got {type(value).__name__}")
    return value


def require(row: dict[str, Any], field: str, path: Path, index: int) -> Any:
    """row[field], or a BadInput naming the file, row and field."""
    value = row.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadInput(f"{path}: row {index}: missing field {field!r}")
    return value


def image_bytes(value: Any, base_dir: Path, where: str) -> bytes:
    """Encoded image bytes from a path (relative to `base_dir`), raw bytes, a base64 string or a HF image struct."""
    data: bytes | None = None
    if isinstance(value, dict):  # datasets' Image feature in parquet: {"bytes": ..., "path": ...}
        data = value.get("bytes")
        if not data and value.get("path"):
            value = value["path"]
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    elif data is None and isinstance(value, str):
        candidate = base_dir / value
        if len(value) < 1024 and candidate.is_file():
            data = candidate.read_bytes()
        else:
            try:
                data = base64.b64decode(value.split(",", 1)[1] if value.startswith("data:") else value, validate=False)
            except (binascii.Error, ValueError):
                data = None
            if not data or len(value) < 1024 and not _looks_like_image(data):
                raise BadInput(f"{where}: image {value[:80]!r} is neither a file under {base_dir} nor base64 image data")
    if not data:
        raise BadInput(f"{where}: no image")
    if not _looks_like_image(data):
        raise BadInput(f"{where}: image data is not a readable image")
    return data


def _looks_like_image(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size[0] > 0
    except (UnidentifiedImageError, OSError, ValueError):
        return False


def extract_letter(response: str, choices: Sequence[str]) -> str | None:
    """The option letter a response picks (the one grammar of `codedance_cli.loop.grammar.answer_letter`)."""
    return answer_letter(response, choices) if choices else None


def canonical_number(response: str) -> str | None:
    """'about 1,200 units' -> '1200'; '12.50' -> '12.5'; None when the response states no number."""
    parsed = parse_number(response)
    if parsed is None:
        return None
    value, is_percent = parsed
    text = f"{value:.10g}"
    return f"{text}%" if is_percent else text
