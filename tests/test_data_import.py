"""`codedance data import`: CodeDance-SFT / CodeDance-RL layouts and plain VQA sets; bad rows reported with index and reason."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from codedance_cli.data.importer import ERRORS_FILE, import_dataset
from codedance_cli.loop.prompts import TOOL_RESPONSE_NUDGE, tool_call_text
from codedance_cli.trajectory.store import read_trajectories
from conftest import run_codedance


def png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def sft_rows() -> list[dict]:
    good = {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "<image>\nHow many red squares are there?"},
            {"role": "assistant", "content": "<think>Count with a mask.</think>\n" + tool_call_text("print('red squares: 3')\ndisplay(input_image)")},
            {"role": "user", "content": f"<tool_response>\nred squares: 3\n<image>\n</tool_response>\n{TOOL_RESPONSE_NUDGE}"},
            {"role": "assistant", "content": "<think>Three.</think>\n" + tool_call_text("1/0")},
            {"role": "tool", "content": "<tool_response>\nTraceback (most recent call last):\nZeroDivisionError: division by zero\n</tool_response>"},
            {"role": "assistant", "content": "<think>The mask said 3.</think><answer>3</answer>"},
        ],
        "images": [png((255, 0, 0)), png((0, 0, 255))],
    }
    fenced = {
        "messages": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which option is blue? (A) red (B) blue"}]},
            {"role": "assistant", "content": "<think>look</think>\n```python\nprint(input_image.getpixel((0, 0)))\n```"},
            {"role": "user", "content": "Code execution result:\n(0, 0, 255)"},
            {"role": "assistant", "content": "<answer>B</answer>"},
        ],
        "images": [png((0, 0, 255))],
    }
    return [
        good,
        {"images": [png((1, 2, 3))]},  # row 1: no messages column
        {**good, "images": good["images"][:1]},  # row 2: 2 placeholders, 1 image
        {**good, "images": [b"not an image", good["images"][1]]},  # row 3: broken image bytes
        {"messages": [{"role": "user", "content": "hi"}, {"role": "wizard", "content": "x"}], "images": []},  # row 4
        {"messages": good["messages"][:-1], "images": good["images"]},  # row 5: no final answer
        fenced,
    ]


def test_codedance_sft_import_reports_bad_rows_and_resumes(tmp_path: Path) -> None:
    rows = sft_rows()
    source = tmp_path / "CodeDance-SFT" / "data"
    # jsonl keeps the mixed content layouts (string and parts) exactly as written
    source.mkdir(parents=True)
    with (source / "train-00000.jsonl").open("w") as handle:
        for row in rows:
            handle.write(json.dumps({**row, "images": [base64.b64encode(i).decode() for i in row.get("images", [])]}) + "\n")
        handle.write("{broken json\n")
    out = tmp_path / "imported"
    result = run_codedance("data", "import", str(source), "--output", str(out), "--format", "codedance-sft", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["rows"], report["imported"], report["errors"]) == (8, 2, 6)
    errors = {e["index"]: e["reason"] for e in map(json.loads, (out / ERRORS_FILE).read_text().splitlines())}
    assert set(errors) == {1, 2, 3, 4, 5, 7}
    assert "messages" in errors[1] and "placeholder" in errors[2] and "decode" in errors[3]
    assert "unknown role" in errors[4] and "<answer>" in errors[5] and "invalid JSON" in errors[7]

    trajectories = {t.task_id: t for t in read_trajectories(out)}
    first = trajectories["codedance-sft-0000000"]
    assert first.question == "How many red squares are there?" and first.system_prompt == "You are a helpful assistant."
    assert first.prompt_version == "codedance-toolcall-v1" and first.ground_truth == "3" and first.answer_type == "number"
    assert [t.code for t in first.turns] == ["print('red squares: 3')\ndisplay(input_image)", "1/0", None]
    assert first.turns[0].observation.stdout == "red squares: 3" and len(first.turns[0].observation.images) == 1
    assert first.turns[1].observation.error_type == "ZeroDivisionError"
    assert len(first.images) == 1 and Image.open(io.BytesIO(first.images[0])).getpixel((0, 0)) == (255, 0, 0)
    fenced = trajectories["codedance-sft-0000006"]
    assert fenced.answer_type == "choice" and fenced.turns[0].observation.stdout == "(0, 0, 255)"

    again = import_dataset(source, out, "codedance-sft")
    assert again.imported == 0 and again.already_done == 2 and again.errors == 6


def test_codedance_rl_parquet_autodetected(tmp_path: Path) -> None:
    image = png((0, 200, 0))
    table = pa.table({
        "data_source": ["chart_refocus", "pixmo_count", "pixmo_count"],
        "messages": [[{"content": "sys", "role": "system"}, {"content": "<image>\nWhat is the max?", "role": "user"}]] * 3,
        "images": [[image], [image], [image]],
        "ability": ["math", "count", "count"],
        "reward_model": [{"ground_truth": "42", "style": "rule"}, {"ground_truth": "7", "style": "rule"}, {"ground_truth": "", "style": "rule"}],
        "extra_info": [{"index": 5, "question": "What is the max?", "split": "train"}, {"index": 6, "question": "How many dogs?", "split": "train"},
                       {"index": 7, "question": "?", "split": "train"}],
    })
    source = tmp_path / "rl.parquet"
    pq.write_table(table, source)
    report = import_dataset(source, tmp_path / "out")
    assert report.format == "codedance-rl" and report.imported == 2 and report.errors == 1
    assert report.examples[0]["index"] == 2 and "ground_truth" in report.examples[0]["reason"]
    tasks = {t.task_id: t for t in read_trajectories(tmp_path / "out")}
    assert tasks["pixmo_count-6"].question == "How many dogs?" and tasks["pixmo_count-6"].ground_truth == "7"
    assert tasks["chart_refocus-5"].metadata["ability"] == "math" and tasks["chart_refocus-5"].turns == []
    # The source name survives to what the engines train on, where the reward routes math items by it.
    from codedance_cli.data.export_verl import verl_row
    from codedance_cli.recipes.rl import RewardConfig
    from codedance_cli.rewards.score import is_math_item
    from codedance_cli.engines.swift.grpo_data import swift_row

    assert verl_row(tasks["pixmo_count-6"], 0)["data_source"] == "pixmo_count"
    (tmp_path / "images").mkdir()
    assert swift_row(tasks["pixmo_count-6"], tmp_path / "images", "codedance-v1")["data_source"] == "pixmo_count"
    thinklite = tasks["pixmo_count-6"].model_copy(update={"metadata": {**tasks["pixmo_count-6"].metadata, "data_source": "thinklite_eureka"}})
    assert is_math_item(verl_row(thinklite, 0)["data_source"], {}, RewardConfig().math_sources)


def test_vqa_jsonl_and_csv_with_column_mapping(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(png((10, 20, 30)))
    rows = [
        {"qid": 1, "img": "images/a.png", "query": "What colour?", "label": "dark blue"},
        {"qid": 2, "img": "images/missing.png", "query": "What?", "label": "x"},
        {"qid": 3, "img": "data:image/png;base64," + base64.b64encode(png((1, 1, 1))).decode(), "query": "Pick", "label": "A",
         "options": ["black", "white"]},
        {"qid": 4, "img": "images/a.png", "label": "no question"},
    ]
    (tmp_path / "vqa.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = import_dataset(tmp_path / "vqa.jsonl", tmp_path / "out", "vqa", column_overrides={"image": "img", "question": "query"})
    assert report.imported == 2 and report.errors == 2
    assert {e["index"] for e in report.examples} == {1, 3}
    tasks = {t.task_id: t for t in read_trajectories(tmp_path / "out")}
    assert tasks["vqa-3"].answer_type == "choice" and tasks["vqa-3"].choices == ["black", "white"]
    assert tasks["vqa-1"].answer_type == "text" and tasks["vqa-1"].ground_truth == "dark blue"

    (tmp_path / "set.csv").write_text("id,image,question,answer\n7,images/a.png,How many?,4\n")
    report = import_dataset(tmp_path / "set.csv", tmp_path / "out_csv")
    assert report.format == "vqa" and report.imported == 1
    assert read_trajectories(tmp_path / "out_csv")[0].answer_type == "number"


def test_import_errors_are_one_line(tmp_path: Path) -> None:
    missing = run_codedance("data", "import", str(tmp_path / "nothing_here"), "--output", str(tmp_path / "o"))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1 and "nothing_here" in missing.stderr
    hub = run_codedance("data", "import", "Peterwatwec/CodeDance-SFT", "--output", str(tmp_path / "o"),
                        env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert hub.returncode == 2 and "hub" in hub.stderr and len(hub.stderr.strip().splitlines()) == 1
    bad_export = run_codedance("data", "export", str(tmp_path), "--to", "tfrecord", "--out", str(tmp_path / "x"))
    assert bad_export.returncode == 2 and "--to" in bad_export.stderr


def test_export_wiring_swift_and_verl(tmp_path: Path) -> None:
    """`data export` hands the trajectories to the SFT stage's and the RL stage's exporters."""
    import asyncio

    from typer.testing import CliRunner

    from codedance_cli.data_commands import app
    from codedance_cli.procedural import generate_item
    from codedance_cli.procedural.solve import solve_item
    from codedance_cli.sandbox import create_sandbox
    from codedance_cli.trajectory.store import write_trajectories

    async def solve():
        async with create_sandbox() as sandbox:
            return [(await solve_item(generate_item(4, i), sandbox, 4, i)).trajectory for i in range(2)]

    write_trajectories(tmp_path / "traj", asyncio.run(solve()))
    runner = CliRunner()
    swift = runner.invoke(app, ["export", str(tmp_path / "traj"), "--to", "swift", "--out", str(tmp_path / "swift"), "--json"])
    assert swift.exit_code == 0, swift.output
    jsonl = Path(json.loads(swift.output.strip().splitlines()[-1])["path"])
    assert len(jsonl.read_text().splitlines()) == 2
    verl = runner.invoke(app, ["export", str(tmp_path / "traj"), "--to", "verl", "--out", str(tmp_path / "rl.parquet"), "--json"])
    assert verl.exit_code == 0, verl.output
    assert pq.read_table(tmp_path / "rl.parquet").num_rows == 2


def test_import_with_no_row_imported_fails(tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text('{"foo": 1}\n{"bar": ' + '"x" * 200' + '}\n')
    result = run_codedance("data", "import", str(source), "-o", str(tmp_path / "out"), "--format", "vqa")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: {source}: no row imported (2 read, 2 bad)"


def test_data_view_shows_a_dataset_and_refuses_a_missing_one(tmp_path: Path) -> None:
    """`codedance data view`: the viewer page for any trajectory dataset, counting the images its code drew."""
    synth = run_codedance("synth", "nano/synth", "--set", f"output={tmp_path / 'synth'}", "--set", "num_items=4", cwd=tmp_path)
    assert synth.returncode == 0, synth.stderr
    shown = run_codedance("data", "view", tmp_path / "synth", "--html", tmp_path / "page.html", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    drawn = sum(1 for t in read_trajectories(tmp_path / "synth") for turn in t.turns if turn.observation for _ in turn.observation.images)
    assert report == {"path": str(tmp_path / "page.html"), "trajectories": 4, "output_images": drawn} and drawn >= 1
    assert (tmp_path / "page.html").read_text().count("<img") >= 4 + drawn  # each item's input image and every drawn one
    missing = run_codedance("data", "view", tmp_path / "nope", "--html", tmp_path / "nope.html", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope'}: no trajectory dataset here (expected a folder of part-*.parquet or a .parquet file)"]
    assert not (tmp_path / "nope.html").exists()  # nothing half-made
