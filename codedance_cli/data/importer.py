"""`codedance data import`: public datasets -> the trajectory format, streaming, resumable, loud about bad rows.

Every row either becomes a trajectory or is reported (index + reason) in the
summary and in `<output>/import_errors.jsonl`; nothing is dropped silently. Rows
whose task id is already in the output are skipped, so an interrupted import
continues where it stopped.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from codedance_cli.data.codedance_format import RowError, rl_row_to_trajectory, sft_row_to_trajectory
from codedance_cli.data.readers import RawRow, iter_rows
from codedance_cli.data.vqa import resolve_columns, vqa_row_to_task
from codedance_cli.common.atomic import AtomicFile
from codedance_cli.errors import BadInput
from codedance_cli.trajectory.schema import Trajectory
from codedance_cli.trajectory.store import TrajectoryWriter, from_row

ImportFormat = Literal["auto", "codedance-sft", "codedance-rl", "vqa", "trajectory"]
FORMATS = ("auto", "codedance-sft", "codedance-rl", "vqa", "trajectory")
ERRORS_FILE = "import_errors.jsonl"


@dataclass
class ImportReport:
    source: str
    output: str
    format: str = "auto"
    rows: int = 0
    imported: int = 0
    already_done: int = 0
    errors: int = 0
    reasons: collections.Counter = field(default_factory=collections.Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)  # first few (index, reason)

    def add_error(self, index: int, reason: str) -> dict[str, Any]:
        self.errors += 1
        self.reasons[_reason_kind(reason)] += 1
        entry = {"index": index, "reason": reason}
        if len(self.examples) < 20:
            self.examples.append(entry)
        return entry

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "output": self.output, "format": self.format, "rows": self.rows,
                "imported": self.imported, "already_done": self.already_done, "errors": self.errors,
                "error_kinds": dict(self.reasons), "error_examples": self.examples}


def _reason_kind(reason: str) -> str:
    """'messages[3]: unknown role 'x'' -> 'unknown role' style grouping for the summary table."""
    head = reason.split(": ", 1)[-1]
    return head.split(" (")[0][:60]


def detect_format(row: dict[str, Any]) -> str:
    """Guess the layout from one row's columns."""
    if "task_id" in row and "turns" in row:
        return "trajectory"
    if "messages" in row and ("reward_model" in row or "data_source" in row):
        return "codedance-rl"
    if "messages" in row:
        return "codedance-sft"
    return "vqa"


def convert(raw: RawRow, fmt: str, columns: dict[str, tuple[str, ...]], prefix: str) -> Trajectory:
    """One raw row in `fmt` -> Trajectory, or RowError."""
    if raw.error is not None:
        raise RowError(raw.error)
    assert raw.data is not None
    if fmt == "codedance-sft":
        return sft_row_to_trajectory(raw.data, raw.index)
    if fmt == "codedance-rl":
        return rl_row_to_trajectory(raw.data, raw.index)
    if fmt == "trajectory":
        try:
            return from_row(raw.data)
        except Exception as exc:
            raise RowError(f"not a valid trajectory row ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    return vqa_row_to_task(raw.data, raw.index, raw.base_dir, columns, prefix)


def iter_converted(
    source: str | Path, fmt: str = "auto", *, split: str = "train", column_overrides: dict[str, str] | None = None,
    prefix: str | None = None,
) -> Iterator[tuple[RawRow, Trajectory | None, str | None, str]]:
    """(raw row, trajectory or None, error reason or None, resolved format) for every row, streamed."""
    if fmt not in FORMATS:
        raise BadInput(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    try:
        columns = resolve_columns(column_overrides)
    except ValueError as exc:
        raise BadInput(f"--column: {exc}") from None
    prefix = prefix or Path(str(source).rstrip("/")).stem.replace(" ", "_") or "vqa"
    resolved = fmt
    for raw in iter_rows(source, split):
        if resolved == "auto" and raw.data is not None:
            resolved = detect_format(raw.data)
        try:
            yield raw, convert(raw, resolved if resolved != "auto" else "vqa", columns, prefix), None, resolved
        except RowError as exc:
            yield raw, None, str(exc), resolved
        except Exception as exc:  # a row we did not foresee must still be reported, not crash the import
            yield raw, None, f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}", resolved


def import_dataset(
    source: str | Path,
    output: Path,
    fmt: str = "auto",
    *,
    split: str = "train",
    column_overrides: dict[str, str] | None = None,
    limit: int | None = None,
    prefix: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import `source` into `output` (a trajectory folder); returns the report."""
    report = ImportReport(source=str(source), output=str(output), format=fmt)
    with TrajectoryWriter(output, shard_size=256) as writer, _ErrorLog(output / ERRORS_FILE) as error_log:
        for raw, traj, reason, resolved in iter_converted(source, fmt, split=split, column_overrides=column_overrides, prefix=prefix):
            if limit is not None and report.rows >= limit:
                break
            report.rows += 1
            report.format = resolved
            if traj is None:
                error_log.write(report.add_error(raw.index, reason or "unknown"))
            elif writer.write(traj):
                report.imported += 1
            else:
                report.already_done += 1
            if on_progress:
                on_progress(1)
    return report


class _ErrorLog:
    """Bad rows of this run, one JSON line each, written to a temp file and renamed over the old log at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0

    def __enter__(self) -> _ErrorLog:
        self.file = AtomicFile(self.path, "w")
        return self

    def write(self, entry: dict[str, Any]) -> None:
        self.file.handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.count += 1

    def __exit__(self, *exc: object) -> None:
        if self.count:  # also after an interruption: the bad rows found so far are reported
            self.file.commit()
        else:
            self.file.discard()
            self.path.unlink(missing_ok=True)
