"""Raw rows from a local file/folder (parquet, jsonl, json, csv) or a hub dataset, streamed one at a time.

Rows are plain dicts in file order with their index, so every later error can say
"row 1234". Nothing here knows what the columns mean; that is the format modules' job.
Parquet (batch by batch), jsonl and csv stream; a single .json array is necessarily
parsed whole (use jsonl or parquet for large sets).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codedance_cli.errors import BadInput

SUFFIXES = (".parquet", ".jsonl", ".json", ".csv", ".tsv")


class RawRow:
    """One undecoded row, or the reason it could not even be parsed (a broken JSON line)."""

    __slots__ = ("index", "data", "error", "base_dir")

    def __init__(self, index: int, data: dict[str, Any] | None, base_dir: Path | None, error: str | None = None) -> None:
        self.index, self.data, self.base_dir, self.error = index, data, base_dir, error


def data_files(path: Path) -> list[Path]:
    """The data files of a local dataset: the file itself, or every supported file under the folder, sorted."""
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES and not p.name.startswith("."))
    # a trajectory folder or an import's own side files are not input rows
    return [p for p in files if p.name not in ("import_errors.jsonl",)]


def iter_local_rows(path: Path) -> Iterator[RawRow]:
    """Rows of every data file under `path`, numbered continuously across files."""
    files = data_files(path)
    if not files:
        raise BadInput(f"{path}: no data files (looked for {', '.join(SUFFIXES)})")
    index = 0
    for file in files:
        for data, error in _iter_file(file):
            yield RawRow(index, data, file.parent, error)
            index += 1


def _iter_file(file: Path) -> Iterator[tuple[dict[str, Any] | None, str | None]]:
    if file.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(file)
        except Exception as exc:
            raise BadInput(f"{file}: not a readable parquet file ({exc})") from None
        for batch in parquet.iter_batches(batch_size=64):
            for row in batch.to_pylist():
                yield row, None
    elif file.suffix == ".jsonl":
        with file.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield None, f"{file.name}:{line_no}: invalid JSON ({exc.msg})"
                    continue
                yield (row, None) if isinstance(row, dict) else (None, f"{file.name}:{line_no}: not a JSON object")
    elif file.suffix == ".json":
        try:
            rows = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BadInput(f"{file}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        if isinstance(rows, dict):  # {"id": {...}, ...} keyed layout
            rows = [{"id": key, **value} if isinstance(value, dict) else value for key, value in rows.items()]
        for row in rows:
            yield (row, None) if isinstance(row, dict) else (None, f"{file.name}: entry is not a JSON object")
    else:
        with file.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t" if file.suffix == ".tsv" else ","):
                yield dict(row), None


def iter_hub_rows(hub_id: str, split: str) -> Iterator[RawRow]:
    """Rows of a hub dataset, streamed; a BadInput when the hub cannot be reached."""
    try:
        from datasets import load_dataset

        dataset = load_dataset(hub_id, split=split, streaming=True)
        iterator = iter(dataset)
        first = next(iterator, None)
    except Exception as exc:
        raise BadInput(f"{hub_id}: cannot read from the hub ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                       "download it and pass the local folder instead") from None
    if first is None:
        return
    yield RawRow(0, dict(first), None)
    for index, row in enumerate(iterator, 1):
        yield RawRow(index, dict(row), None)


def iter_rows(source: str | Path, split: str = "train") -> Iterator[RawRow]:
    """Local path if it exists, else a hub id (owner/name)."""
    path = Path(source)
    if path.exists():
        return iter_local_rows(path)
    if str(source).count("/") == 1 and not str(source).startswith((".", "/")):
        return iter_hub_rows(str(source), split)
    raise BadInput(f"{source}: no such file or folder (and not a hub id of the form owner/name)")
