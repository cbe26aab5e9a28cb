"""The per-sample log of an eval run: one JSON line per finished sample, appended as it finishes.

Why a log and not a results file: an eval over thousands of items through a tool loop
takes hours, and an interruption must cost at most the samples in flight. Each line is
written with a single `write` on an O_APPEND descriptor, so once `append` returns the line
survives the process being killed; a crash mid-write leaves a torn tail that `SampleLog`
cuts off on open. fsync (for power loss) runs at most once a second and on close: at 5 ms
a call it would otherwise stall the event loop that drives every trajectory in flight.
Input images are not repeated here (the benchmark files have them); images the model's
code produced are kept, base64-encoded, because nothing else has them.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python

from codedance_cli.errors import BadInput
from codedance_cli.trajectory.schema import Trajectory


def sample_key(benchmark: str, task_id: str, sample: int) -> str:
    return f"{benchmark}/{task_id}#{sample}"


class SampleRecord(BaseModel):
    """One model attempt at one benchmark item."""

    model_config = ConfigDict(extra="forbid")

    benchmark: str = Field(description="Registered benchmark name.")
    task_id: str = Field(description="The item's id within the benchmark.")
    sample: int = Field(description="Sample index, 0..n-1 (majority voting over n samples).")
    trajectory: Trajectory = Field(description="The attempt, without the input images.")
    seconds: float = Field(0.0, description="Wall time of the whole attempt.")

    @property
    def key(self) -> str:
        return sample_key(self.benchmark, self.task_id, self.sample)


def encode_record(record: SampleRecord) -> str:
    """One JSON line; bytes (observation images) as base64."""
    data = record.model_dump(mode="python")
    data["trajectory"]["images"] = []
    for turn in data["trajectory"]["turns"]:
        observation = turn.get("observation")
        if observation:
            observation["images"] = [base64.b64encode(image).decode("ascii") for image in observation["images"]]
    return json.dumps(to_jsonable_python(data), ensure_ascii=False, separators=(",", ":"))


def decode_record(line: str) -> SampleRecord:
    """Inverse of `encode_record`."""
    data: dict[str, Any] = json.loads(line)
    trajectory = data["trajectory"]
    trajectory["images"] = [base64.b64decode(item) for item in trajectory.get("images") or []]
    for turn in trajectory.get("turns") or []:
        observation = turn.get("observation")
        if observation:
            observation["images"] = [base64.b64decode(item) for item in observation.get("images") or []]
    return SampleRecord.model_validate(data)


class SampleLog:
    """Append-only JSONL of `SampleRecord`s that survives interruption."""

    def __init__(self, path: Path, fsync_interval_s: float = 1.0) -> None:
        self.path = path
        self.fsync_interval_s = fsync_interval_s
        self._last_fsync = time.monotonic()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, SampleRecord] = {}
        self._load_and_repair()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _load_and_repair(self) -> None:
        """Read whole lines; a torn last line (crash mid-write) is cut off so appends stay line-aligned."""
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        good_end = 0
        position = 0
        for number, line in enumerate(raw.splitlines(keepends=True), start=1):
            position += len(line)
            if not line.endswith(b"\n"):
                break  # torn tail
            try:
                record = decode_record(line.decode("utf-8"))
            except (ValueError, KeyError, TypeError) as exc:
                if position == len(raw):
                    break  # a garbled last line is a torn write too
                raise BadInput(f"{self.path}:{number}: not a sample record ({type(exc).__name__}); move the file away to start over") from None
            self._records[record.key] = record
            good_end = position
        if good_end < len(raw):
            with self.path.open("r+b") as handle:
                handle.truncate(good_end)

    def __contains__(self, key: str) -> bool:
        return key in self._records

    def is_done(self, key: str) -> bool:
        """Logged and final. A sample that ended in an error (endpoint down, engine crash) is retried on the next run;
        its newer line then wins, as lines are read in order."""
        record = self._records.get(key)
        return record is not None and record.trajectory.stop_reason != "error"

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> Iterator[SampleRecord]:
        return iter(self._records.values())

    def append(self, record: SampleRecord) -> None:
        """Write one line in a single write call; fsync when the last one is older than the interval."""
        payload = (encode_record(record) + "\n").encode("utf-8")
        written = os.write(self._fd, payload)
        if written != len(payload):  # regular files write fully or raise; this guards odd filesystems
            raise OSError(f"{self.path}: short write ({written} of {len(payload)} bytes)")
        self._records[record.key] = record
        if time.monotonic() - self._last_fsync >= self.fsync_interval_s:
            os.fsync(self._fd)
            self._last_fsync = time.monotonic()

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> SampleLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
