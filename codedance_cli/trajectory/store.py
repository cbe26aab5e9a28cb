"""Parquet storage for trajectories: sharded, streaming, atomic, resumable.

A dataset is a folder of `part-NNNNN.parquet` shards written through `datasets`
(so images are real `Image` features a hub viewer shows) and read back with
pyarrow batch by batch, so no stage ever holds a whole dataset in memory. Each
shard is written to a temp file and renamed, so an interrupted run leaves only
complete shards; a writer reopened on the same folder skips task ids already
present and continues numbering.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow.parquet as pq
from datasets import Dataset, Features, Image, List, Value

from codedance_cli.common.atomic import AtomicFile
from codedance_cli.errors import BadInput
from codedance_cli.trajectory.schema import Observation, Trajectory, Turn

SHARD_PREFIX = "part-"

_OBSERVATION = {
    "stdout": Value("string"),
    "stderr": Value("string"),
    "images": List(Image()),
    "error_type": Value("string"),
    "error": Value("string"),
    "duration_s": Value("float64"),
    "timed_out": Value("bool"),
    "truncated": Value("bool"),
}

FEATURES = Features(
    {
        "task_id": Value("string"),
        "question": Value("string"),
        "images": List(Image()),
        "ground_truth": Value("string"),
        "answer_type": Value("string"),
        "choices": List(Value("string")),
        "system_prompt": Value("string"),
        "prompt_version": Value("string"),
        "turns": List(
            {
                "text": Value("string"),
                "code": Value("string"),
                "has_observation": Value("bool"),
                "observation": _OBSERVATION,
                "prompt_tokens": Value("int64"),
                "completion_tokens": Value("int64"),
                "generation_s": Value("float64"),
            }
        ),
        "final_answer": Value("string"),
        "stop_reason": Value("string"),
        "metadata": Value("string"),
    }
)

_EMPTY_OBSERVATION = Observation().model_dump()


def _image_cells(images: list[bytes]) -> list[dict[str, Any]]:
    return [{"bytes": data, "path": None} for data in images]


def to_row(traj: Trajectory) -> dict[str, Any]:
    """Trajectory -> a row matching FEATURES (images as {'bytes', 'path'} cells)."""
    turns = []
    for turn in traj.turns:
        obs = turn.observation.model_dump() if turn.observation is not None else dict(_EMPTY_OBSERVATION)
        obs["images"] = _image_cells(obs["images"])
        turns.append(
            {
                "text": turn.text,
                "code": turn.code,
                "has_observation": turn.observation is not None,
                "observation": obs,
                "prompt_tokens": turn.prompt_tokens,
                "completion_tokens": turn.completion_tokens,
                "generation_s": turn.generation_s,
            }
        )
    return {
        "task_id": traj.task_id,
        "question": traj.question,
        "images": _image_cells(traj.images),
        "ground_truth": traj.ground_truth,
        "answer_type": traj.answer_type,
        "choices": traj.choices,
        "system_prompt": traj.system_prompt,
        "prompt_version": traj.prompt_version,
        "turns": turns,
        "final_answer": traj.final_answer,
        "stop_reason": traj.stop_reason,
        "metadata": json.dumps(traj.metadata, sort_keys=True),
    }


def _image_bytes(cells: list[dict[str, Any]] | None) -> list[bytes]:
    out = []
    for cell in cells or []:
        if cell.get("bytes") is not None:
            out.append(cell["bytes"])
        elif cell.get("path"):
            out.append(Path(cell["path"]).read_bytes())
    return out


def from_row(row: dict[str, Any]) -> Trajectory:
    """A parquet row (as pyarrow gives it) -> Trajectory."""
    turns = []
    for t in row.get("turns") or []:
        observation = None
        if t.get("has_observation"):
            obs = dict(t["observation"])
            obs["images"] = _image_bytes(obs.get("images"))
            obs = {k: v for k, v in obs.items() if v is not None}
            observation = Observation.model_validate(obs)
        turns.append(
            Turn(
                text=t["text"],
                code=t.get("code"),
                observation=observation,
                prompt_tokens=t.get("prompt_tokens"),
                completion_tokens=t.get("completion_tokens"),
                generation_s=t.get("generation_s"),
            )
        )
    return Trajectory(
        task_id=row["task_id"],
        question=row["question"],
        images=_image_bytes(row.get("images")),
        ground_truth=row.get("ground_truth"),
        answer_type=row.get("answer_type") or "text",
        choices=row.get("choices"),
        system_prompt=row.get("system_prompt"),
        prompt_version=row.get("prompt_version"),
        turns=turns,
        final_answer=row.get("final_answer"),
        stop_reason=row.get("stop_reason"),
        metadata=json.loads(row["metadata"]) if row.get("metadata") else {},
    )


def shard_paths(path: Path | str) -> list[Path]:
    """The shards of a dataset folder in order, or the file itself."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(path.glob(f"{SHARD_PREFIX}*.parquet"))
    return []


def _require(path: Path | str) -> list[Path]:
    shards = shard_paths(path)
    if not shards and not Path(path).is_dir():
        raise BadInput(f"{path}: no trajectory dataset here (expected a folder of {SHARD_PREFIX}*.parquet or a .parquet file)")
    return shards


def _open_shard(shard: Path) -> pq.ParquetFile:
    """A shard opened and checked for the trajectory columns; BadInput naming the file otherwise."""
    if shard.suffix.lower() != ".parquet":
        raise BadInput(f"{shard}: not a trajectory dataset (a {shard.suffix or 'suffix-less'} file); "
                       "convert public formats with `codedance data import`, or name the input's format in the recipe")
    try:
        parquet = pq.ParquetFile(shard)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for damaged files
        raise BadInput(f"{shard}: not a readable parquet file ({str(exc).splitlines()[0]})") from None
    missing = {"task_id", "question", "turns"} - set(parquet.schema_arrow.names)
    if missing:
        raise BadInput(f"{shard}: not in the trajectory format (missing column(s) {', '.join(sorted(missing))})")
    return parquet


def check_dataset(path: Path | str) -> int:
    """Open every shard's footer before any work starts; the row count, or BadInput naming the bad file.

    Stages call this before they load a model or create their output, so bad input costs nothing and leaves nothing.
    """
    shards = _require(path)
    if not shards:
        raise BadInput(f"{path}: empty folder (expected {SHARD_PREFIX}*.parquet trajectory shards)")
    return sum(_open_shard(shard).metadata.num_rows for shard in shards)


def iter_trajectories(path: Path | str, batch_size: int = 64) -> Iterator[Trajectory]:
    """Stream trajectories shard by shard, batch by batch."""
    for shard in _require(path):
        parquet = _open_shard(shard)
        for batch in parquet.iter_batches(batch_size=batch_size):
            for row in batch.to_pylist():
                yield from_row(row)


def read_trajectories(path: Path | str) -> list[Trajectory]:
    """All trajectories of a (small) dataset; prefer `iter_trajectories` for big ones."""
    return list(iter_trajectories(path))


def count_trajectories(path: Path | str) -> int:
    """Row count from parquet metadata, without reading the data."""
    return sum(_open_shard(shard).metadata.num_rows for shard in _require(path))


def done_task_ids(path: Path | str) -> set[str]:
    """Task ids already written (reads only that column); empty for a missing folder."""
    ids: set[str] = set()
    for shard in shard_paths(path):
        ids.update(pq.read_table(shard, columns=["task_id"]).column("task_id").to_pylist())
    return ids


def write_parquet_atomic(rows: list[dict[str, Any]], target: Path) -> None:
    """Write rows with FEATURES to `target` through a temp file in the same folder, then rename."""
    with AtomicFile(target, "wb") as handle:
        Dataset.from_list(rows, features=FEATURES).to_parquet(handle)


class TrajectoryWriter:
    """Appends trajectories to a dataset folder in atomic shards; safe to reopen after an interruption."""

    def __init__(self, path: Path | str, shard_size: int = 256) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise BadInput(f"{self.path}: output must be a folder of parquet shards, found a file")
        self.path.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self.done_ids: set[str] = done_task_ids(self.path)
        self._buffer: list[dict[str, Any]] = []
        self._next_index = self._first_free_index()
        self.written = 0

    def _first_free_index(self) -> int:
        indices = [int(p.stem[len(SHARD_PREFIX):]) for p in shard_paths(self.path) if p.stem[len(SHARD_PREFIX):].isdigit()]
        return max(indices, default=-1) + 1

    def write(self, traj: Trajectory) -> bool:
        """Buffer one trajectory; returns False (and writes nothing) if its task id is already stored."""
        if traj.task_id in self.done_ids:
            return False
        self.done_ids.add(traj.task_id)
        self._buffer.append(to_row(traj))
        self.written += 1
        if len(self._buffer) >= self.shard_size:
            self.flush()
        return True

    def flush(self) -> None:
        """Write the buffered rows as one complete shard."""
        if not self._buffer:
            return
        write_parquet_atomic(self._buffer, self.path / f"{SHARD_PREFIX}{self._next_index:05d}.parquet")
        self._next_index += 1
        self._buffer = []

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        # Flush even on error: what was generated before the failure is complete and worth keeping.
        self.close()


def write_trajectories(path: Path | str, trajectories: Iterable[Trajectory], shard_size: int = 256) -> int:
    """Write an iterable of trajectories; returns how many were new."""
    with TrajectoryWriter(path, shard_size=shard_size) as writer:
        for traj in trajectories:
            writer.write(traj)
        return writer.written
