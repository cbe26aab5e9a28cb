"""Round trips of the trajectory format through parquet shards."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from codedance_cli.errors import BadInput
from codedance_cli.trajectory import (
    Observation,
    Trajectory,
    TrajectoryWriter,
    Turn,
    count_trajectories,
    done_task_ids,
    encode_image,
    iter_trajectories,
    read_trajectories,
    write_trajectories,
)


def _image(color: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    return encode_image(Image.new("RGB", size, color))


def make_trajectory(i: int) -> Trajectory:
    return Trajectory(
        task_id=f"task-{i}",
        question=f"How many red squares? ({i})",
        images=[_image((255, 0, 0)), _image((0, 0, 255), (8, 64))],
        ground_truth=str(i),
        answer_type="number",
        choices=None if i % 2 else ["1", "2", "3"],
        system_prompt="sys",
        prompt_version="codedance-v1",
        turns=[
            Turn(
                text="<think>crop</think>\n```python\nprint(1)\n```",
                code="print(1)",
                observation=Observation(stdout="1\n", images=[_image((0, 255, 0))], duration_s=0.01),
                prompt_tokens=100,
                completion_tokens=12,
                generation_s=0.5,
            ),
            Turn(text="```python\n1/0\n```", code="1/0", observation=Observation(error_type="ZeroDivisionError", error="division by zero")),
            Turn(text=f"<answer>{i}</answer>"),
        ],
        final_answer=str(i),
        stop_reason="answer",
        metadata={"family": "counting", "difficulty": 2, "pass_rate": 0.25, "nested": {"a": [1, 2]}},
    )


def test_round_trip_preserves_every_field(tmp_path: Path) -> None:
    originals = [make_trajectory(i) for i in range(5)]
    assert write_trajectories(tmp_path / "ds", originals, shard_size=2) == 5
    assert len(list((tmp_path / "ds").glob("part-*.parquet"))) == 3
    assert read_trajectories(tmp_path / "ds") == originals
    assert count_trajectories(tmp_path / "ds") == 5


def test_images_are_embedded_as_image_features(tmp_path: Path) -> None:
    write_trajectories(tmp_path / "ds", [make_trajectory(0)])
    shard = next((tmp_path / "ds").glob("part-*.parquet"))
    table = pq.read_table(shard)
    cell = table.column("images").to_pylist()[0][0]
    assert cell["bytes"][:8] == b"\x89PNG\r\n\x1a\n"
    hf_meta = json.loads(table.schema.metadata[b"huggingface"])
    assert hf_meta["info"]["features"]["images"]["feature"]["_type"] == "Image"
    loaded = read_trajectories(shard)[0]
    assert loaded.pil_images()[1].size == (8, 64)
    assert loaded.turns[0].observation is not None and loaded.turns[2].observation is None


def test_writer_resumes_and_skips_done_ids(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    with TrajectoryWriter(out, shard_size=2) as writer:
        for i in range(3):
            writer.write(make_trajectory(i))
    assert done_task_ids(out) == {"task-0", "task-1", "task-2"}
    with TrajectoryWriter(out, shard_size=2) as writer:
        assert writer.write(make_trajectory(1)) is False
        assert writer.write(make_trajectory(3)) is True
    assert sorted(t.task_id for t in iter_trajectories(out)) == ["task-0", "task-1", "task-2", "task-3"]


def test_interrupted_write_leaves_only_complete_shards(tmp_path: Path) -> None:
    out = tmp_path / "ds"

    def generate():
        yield make_trajectory(0)
        yield make_trajectory(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_trajectories(out, generate(), shard_size=10)
    assert [p.name for p in out.iterdir()] == ["part-00000.parquet"]
    assert count_trajectories(out) == 2


def test_bad_paths_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no trajectory dataset"):
        list(iter_trajectories(tmp_path / "missing"))
    bogus = tmp_path / "x.parquet"
    bogus.write_text("not parquet")
    with pytest.raises(BadInput, match="not a readable parquet"):
        list(iter_trajectories(bogus))
