"""export_verl: the parquet verl's own RLHFDataset reads, with images, tools_kwargs and reward fields in place."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from codedance_cli.data.export_verl import export_verl
from codedance_cli.errors import BadInput
from codedance_cli.loop.prompts import TOOL_NAME, system_prompt
from codedance_cli.trajectory.schema import Trajectory, encode_image
from codedance_cli.trajectory.store import write_trajectories


def items() -> list[Trajectory]:
    red, blue = encode_image(Image.new("RGB", (40, 30), "red")), encode_image(Image.new("RGB", (20, 20), "blue"))
    return [
        Trajectory(task_id="a", question="Which color?", images=[red], ground_truth="B", answer_type="choice",
                   choices=["blue", "red"], metadata={"source": "toolbox-v1", "difficulty": "hard", "pass_rate": 0.25}),
        Trajectory(task_id="b", question="Same size?", images=[red, blue], ground_truth="no", answer_type="text",
                   metadata={"source": "MathVista", "domain": "math"}),
        Trajectory(task_id="c", question="No reference", images=[blue], ground_truth=None),  # skipped: cannot be rewarded
        Trajectory(task_id="a", question="duplicate id", images=[blue], ground_truth="A"),  # skipped: already exported
    ]  # fmt: skip


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    source = tmp_path / "items"
    write_trajectories(source, items())
    return export_verl(source, tmp_path / "verl" / "train.parquet")


def test_rows_have_verl_fields(exported: Path) -> None:
    rows = pq.read_table(exported).to_pylist()
    assert [row["extra_info"]["task_id"] for row in rows] == ["a", "b"]
    first, second = rows
    assert first["data_source"] == "toolbox-v1" and first["ability"] == "visual_reasoning"
    assert second["data_source"] == "MathVista" and second["ability"] == "math"
    assert first["prompt"][0] == {"role": "system", "content": system_prompt("codedance-toolcall-v1")}
    assert first["prompt"][1]["content"].startswith("<image>Which color?") and "A. blue\nB. red" in first["prompt"][1]["content"]
    assert second["prompt"][1]["content"].startswith("<image><image>Same size?")
    assert len(second["images"]) == 2 and second["images"][1]["bytes"][:4] == b"\x89PNG"
    assert first["reward_model"] == {"style": "rule", "ground_truth": "B"}
    extra = first["extra_info"]
    assert extra["index"] == 0 and extra["answer_type"] == "choice" and extra["choices"] == ["blue", "red"]
    assert json.loads(extra["metadata"]) == {"source": "toolbox-v1", "difficulty": "hard", "pass_rate": 0.25}
    assert extra["tools_kwargs"] == {TOOL_NAME: {"create_kwargs": {"trajectory_id": "a"}}} and extra["need_tools_kwargs"] is True


def test_verl_dataset_reads_export(exported: Path, tiny_model_dir: Path) -> None:
    pytest.importorskip("verl")
    from transformers import AutoTokenizer, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from verl.utils.dataset.rl_dataset import RLHFDataset

    class ImageOnlyProcessor(Qwen2_5_VLProcessor):  # no torchvision here, so no video processor
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    processor = ImageOnlyProcessor(
        Qwen2VLImageProcessorPil.from_pretrained(tiny_model_dir), tokenizer, (tiny_model_dir / "chat_template.jinja").read_text()
    )
    dataset = RLHFDataset(str(exported), tokenizer, {"filter_overlong_prompts": False, "cache_dir": str(exported.parent)}, processor)
    assert len(dataset) == 2
    row = dataset[1]
    user = row["raw_prompt"][1]["content"]
    assert [part["type"] for part in user] == ["image", "image", "text"]
    assert user[0]["image"].size == (40, 30) and user[1]["image"].size == (20, 20)
    assert row["tools_kwargs"] == {TOOL_NAME: {"create_kwargs": {"trajectory_id": "b"}}} and row["index"] == 1
    text = processor.apply_chat_template(row["raw_prompt"], tokenize=False, add_generation_prompt=True)
    assert text.count("<|image_pad|>") == 2 and "execute_python_code" in text


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such file"):
        export_verl(tmp_path / "missing", tmp_path / "out.parquet")
    source = tmp_path / "items"
    write_trajectories(source, items()[2:3])
    with pytest.raises(BadInput, match="no items with a ground truth"):
        export_verl(source, tmp_path / "out.parquet")
    with pytest.raises(BadInput, match="parquet"):
        export_verl(source, tmp_path / "out.jsonl")
