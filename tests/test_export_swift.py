"""Trajectories -> ms-swift jsonl: the loop's own rendering, images in placeholder order, atomic and resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from codedance_cli.data.export_swift import export_swift, swift_record
from codedance_cli.errors import BadInput
from codedance_cli.loop.format import render_observation
from codedance_cli.trajectory.media import fit_image
from codedance_cli.loop.prompts import system_prompt
from codedance_cli.trajectory import write_trajectories
from sft_trajectories import make_trajectories


@pytest.fixture(scope="module")
def trajectories():
    return make_trajectories(6)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_record_follows_the_loop_rendering(trajectories, tmp_path: Path) -> None:
    traj = trajectories[0]  # crop, failing cell, answer
    record = swift_record(traj, tmp_path / "images")
    roles = [m["role"] for m in record["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user", "assistant"]
    assert record["messages"][0]["content"] == system_prompt("codedance-v1")
    assert record["messages"][1]["content"].startswith("<image>") and traj.question in record["messages"][1]["content"]
    for turn, message in zip(traj.turns, record["messages"][2::2]):
        assert message["content"] == turn.text
    crop_text, crop_images = render_observation(traj.turns[0].observation, "codedance-v1")
    assert record["messages"][3]["content"] == crop_text + "<image>"
    assert "crop (" in crop_text and "[1 image attached]" in crop_text
    error_text, _ = render_observation(traj.turns[1].observation, "codedance-v1")
    assert record["messages"][5]["content"] == error_text and "NameError" in error_text
    # images: input first, then the observation's crop, as files in placeholder order
    assert len(record["images"]) == 2 == sum(m["content"].count("<image>") for m in record["messages"])
    assert Path(record["images"][0]).read_bytes() == traj.images[0]
    assert Path(record["images"][1]).read_bytes() == fit_image(traj.turns[0].observation.images[0], 512 * 28 * 28) == crop_images[0]
    assert all(Path(p).is_absolute() for p in record["images"])


def test_toolcall_format_wraps_observations_like_the_loop(tmp_path: Path) -> None:
    traj = make_trajectories(1, prompt_version="codedance-toolcall-v1")[0]
    record = swift_record(traj, tmp_path / "images")
    observation = record["messages"][3]["content"]
    assert observation.startswith("<tool_response>\n") and "<image></tool_response>" in observation
    assert observation.endswith("execute a new tool call to obtain a helpful result.")
    assert '<tool_call>\n{"name": "execute_python_code"' in record["messages"][2]["content"]


def test_cells_are_rewritten_in_the_version_trained_on(trajectories, tmp_path: Path) -> None:
    """Fenced-code data SFT'd as codedance-toolcall-v1 gets <tool_call> cells (a GPU run taught fenced code under the
    tool-call system prompt, and verl's parser then found no call in any rollout); and back."""
    fenced = trajectories[0]
    record = swift_record(fenced, tmp_path / "images", prompt_version="codedance-toolcall-v1")
    cells = [m["content"] for m in record["messages"] if m["role"] == "assistant"][:-1]
    assert all("<tool_call>" in cell and "```" not in cell for cell in cells)
    assert record["messages"][0]["content"] == system_prompt("codedance-toolcall-v1")
    toolcall = make_trajectories(1, prompt_version="codedance-toolcall-v1")[0]
    back = swift_record(toolcall, tmp_path / "images", prompt_version="codedance-v1")
    assert "```python" in back["messages"][2]["content"] and "<tool_call>" not in back["messages"][2]["content"]
    edited = fenced.model_copy(deep=True)
    edited.turns[0].text = "<think>the cell is paraphrased</think>\n```py\nprint(1)\n```"
    with pytest.raises(BadInput, match=rf"task {edited.task_id}: the turn's code is not written as a <tool_call>"):
        swift_record(edited, tmp_path / "images", prompt_version="codedance-toolcall-v1")


def test_direct_version_trains_the_no_tool_baseline_on_the_same_items(trajectories, tmp_path: Path) -> None:
    traj = trajectories[0]
    record = swift_record(traj, tmp_path / "images", prompt_version="direct-v1")
    assert [m["role"] for m in record["messages"]] == ["system", "user", "assistant"]
    assert record["messages"][0]["content"] == system_prompt("direct-v1") and "cannot run code" in system_prompt("direct-v1")
    assert record["messages"][2]["content"] == traj.turns[-1].text and "<answer>" in traj.turns[-1].text
    assert "```python" not in "".join(m["content"] for m in record["messages"][1:])
    assert len(record["images"]) == 1 and Path(record["images"][0]).read_bytes() == traj.images[0]


def test_export_writes_jsonl_and_shared_images(trajectories, tmp_path: Path) -> None:
    source = tmp_path / "trajs"
    write_trajectories(source, trajectories)
    jsonl = export_swift(source, tmp_path / "out", progress=False)
    assert jsonl == tmp_path / "out" / "train.jsonl" and not (tmp_path / "out" / "train.jsonl.partial").exists()
    rows = _lines(jsonl)
    assert [r["task_id"] for r in rows] == [t.task_id for t in trajectories]
    for row in rows:
        assert sum(m["content"].count("<image>") for m in row["messages"]) == len(row["images"])
        assert all(Path(p).is_file() and Image.open(p).size[0] > 0 for p in row["images"])
    stored = list((tmp_path / "out" / "images").rglob("*.png"))
    assert len(stored) == len({p for row in rows for p in row["images"]})  # content-addressed, no duplicates


def test_export_resumes_after_a_torn_write(trajectories, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    first = swift_record(trajectories[0], out / "images")
    torn = json.dumps(swift_record(trajectories[1], out / "images"))[:50]
    (out / "train.jsonl.partial").write_text(json.dumps(first) + "\n" + torn)
    jsonl = export_swift(trajectories, out, progress=False)
    rows = _lines(jsonl)
    assert [r["task_id"] for r in rows] == [t.task_id for t in trajectories]
    assert rows[0] == first
    # exporting again adds nothing new and keeps the file whole
    assert _lines(export_swift(trajectories, out, progress=False)) == rows


def test_only_correct_and_nothing_to_train_on(trajectories, tmp_path: Path) -> None:
    jsonl = export_swift(trajectories, tmp_path / "correct", only_correct=True, progress=False)
    assert [r["task_id"] for r in _lines(jsonl)] == [t.task_id for t in trajectories if t.metadata["correct"]]
    no_turns = [t.model_copy(update={"turns": []}) for t in trajectories]
    with pytest.raises(BadInput, match="no trajectory to train on"):
        export_swift(no_turns, tmp_path / "empty", progress=False)
    assert not (tmp_path / "empty" / "train.jsonl").exists()


def test_bad_inputs_are_named(trajectories, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not found"):
        export_swift(tmp_path / "missing", tmp_path / "out", progress=False)
    sneaky = trajectories[1].model_copy(update={"question": "what is <image> here?"})
    with pytest.raises(BadInput, match=sneaky.task_id):
        swift_record(sneaky, tmp_path / "images")
    with pytest.raises(BadInput, match="prompt_version"):
        swift_record(trajectories[1], tmp_path / "images", prompt_version="no-such-version")
