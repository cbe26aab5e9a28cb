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


def decode_record(line: str | bytes, *, with_images: bool = True) -> SampleRecord:
    """Inverse of `encode_record`; `with_images=False` skips decoding produced images (scoring needs none)."""
    data: dict[str, Any] = json.loads(line)
    trajectory = data["trajectory"]
    trajectory["images"] = [base64.b64decode(item) for item in trajectory.get("images") or []]
    for turn in trajectory.get("turns") or []:
        observation = turn.get("observation")
        if observation:
            observation["images"] = [base64.b64decode(item) for item in observation.get("images") or []] if with_images else []
    return SampleRecord.model_validate(data)


def _without_images(record: SampleRecord) -> SampleRecord:
    turns = [
        turn.model_copy(update={"observation": turn.observation.model_copy(update={"images": []})}) if turn.observation else turn
        for turn in record.trajectory.turns
    ]
    return record.model_copy(update={"trajectory": record.trajectory.model_copy(update={"turns": turns, "images": []})})


class SampleLog:
    """Append-only JSONL of `SampleRecord`s that survives interruption.

    In memory it keeps each sample without the images its code produced (scoring needs none, and a
    long run's images would not fit); `full_record` reads one sample back whole, for the viewer.
    """

    def __init__(self, path: Path, fsync_interval_s: float = 1.0) -> None:
        self.path = path
        self.fsync_interval_s = fsync_interval_s
        self._last_fsync = time.monotonic()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, SampleRecord] = {}
        self._where: dict[str, tuple[int, int]] = {}  # key -> (byte offset, length) of its latest line
        self._load_and_repair()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _load_and_repair(self) -> None:
        """Stream whole lines; a torn last line (crash mid-write) is cut off so appends stay line-aligned."""
        if not self.path.exists():
            return
        size = self.path.stat().st_size
        good_end = position = 0
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                start, position = position, position + len(line)
                if not line.endswith(b"\n"):
                    break  # torn tail
                try:
                    record = decode_record(line, with_images=False)
                except (ValueError, KeyError, TypeError) as exc:
                    if position == size:
                        break  # a garbled last line is a torn write too
                    raise BadInput(
                        f"{self.path}:{number}: not a sample record ({type(exc).__name__}); move the file away to start over"
                    ) from None
                self._records[record.key] = record
                self._where[record.key] = (start, len(line))
                good_end = position
        if good_end < size:
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
        """Every sample (latest line per key), without produced images."""
        return iter(self._records.values())

    def full_record(self, key: str) -> SampleRecord:
        """One sample read back from the file with its produced images (works after `close`)."""
        start, length = self._where[key]
        with self.path.open("rb") as handle:
            handle.seek(start)
            return decode_record(handle.read(length))

    def append(self, record: SampleRecord) -> None:
        """Write one line in a single write call; fsync when the last one is older than the interval."""
        payload = (encode_record(record) + "\n").encode("utf-8")
        start = os.fstat(self._fd).st_size  # this process is the only writer
        written = os.write(self._fd, payload)
        if written != len(payload):  # regular files write fully or raise; this guards odd filesystems
            raise OSError(f"{self.path}: short write ({written} of {len(payload)} bytes)")
        self._records[record.key] = _without_images(record)
        self._where[record.key] = (start, len(payload))
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
