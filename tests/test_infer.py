"""`codedance infer` end to end on the tiny model, its bad-input errors, its rich view, and the HTML page."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console

from codedance_cli.infer.run import save_produced_images, show_turn, trajectory_json, with_model_override
from codedance_cli.recipes import load_recipe
from codedance_cli.viewer.html import render_html, write_html
from codedance_cli.trajectory.schema import Observation, Trajectory, Turn, encode_image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def red_png(tmp_path) -> Path:
    path = tmp_path / "red.png"
    Image.new("RGB", (100, 80), (220, 30, 30)).save(path)
    return path


def sample_trajectory(task_id: str = "dots", answer: str | None = "3") -> Trajectory:
    crop = encode_image(Image.new("RGB", (64, 64), "blue"))
    return Trajectory(
        task_id=task_id, question="How many red dots?", images=[encode_image(Image.new("RGB", (32, 32), "white"))],
        ground_truth="3", prompt_version="codedance-v1", stop_reason="answer", final_answer=answer,
        turns=[
            Turn(text="<think>Count with a mask.</think>\n```python\nprint('red blobs:', 3)\n```", code="print('red blobs:', 3)",
                 observation=Observation(stdout="red blobs: 3\n", duration_s=0.01), completion_tokens=20, generation_s=0.5),
            Turn(text="<think>Zoom.</think>\n```python\ncrop\n```", code="crop", observation=Observation(images=[crop], duration_s=0.02)),
            Turn(text="<think>Bad name.</think>\n```python\nprint(y)\n```", code="print(y)",
                 observation=Observation(error_type="NameError", error="name 'y' is not defined")),
            Turn(text=f"<think>Three.</think><answer>{answer}</answer>"),
        ],
    )


def test_infer_cli_with_the_tiny_model_json_and_html(codedance, tiny_model_dir, red_png, tmp_path):
    html = tmp_path / "page.html"
    result = codedance("infer", "--image", red_png, "What color is it?", "--model", tiny_model_dir, "--json", "--html", html,
                       "--set", f"output_dir={tmp_path / 'out'}", "--set", "loop.max_new_tokens=6", "--set", "loop.max_turns=1", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout)
    assert data["question"] == "What color is it?" and data["prompt_version"] == "codedance-v1"
    assert base64.b64decode(data["images"][0]) == red_png.read_bytes()
    assert data["stop_reason"] in ("answer", "no_code", "max_tokens", "max_turns", "repeated_failure")
    assert data["turns"] and data["turns"][0]["completion_tokens"] <= 6
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page and "What color is it?" in page
    assert "turn 1" in result.stderr  # the live view goes to stderr when --json owns stdout


def test_infer_bad_input_is_one_line_exit_2(codedance, tiny_model_dir):
    result = codedance("infer", "--image", "missing.png", "q", "--model", tiny_model_dir)  # else a missing model folder comes first
    assert result.returncode == 2 and result.stderr.strip() == "error: --image missing.png: file not found"


@pytest.mark.parametrize(
    "images, model, sets, message",
    [
        (["pyproject.toml"], None, [], "--image pyproject.toml: not a readable image"),
        ([], None, [], "--image: give at least one input image"),
        (["{png}"], "./no/such/folder", [], "--model ./no/such/folder: not an http(s) endpoint URL and no such model folder"),
        (["{png}"], None, ["loop.prompt_version=v0"], "unknown prompt_version 'v0'"),
        (["{png}"], None, ["loop.max_turnz=3"], "max_turnz"),
    ],
)
def test_infer_bad_inputs_name_what_is_wrong(red_png, images, model, sets, message, monkeypatch):
    from codedance_cli.errors import BadInput
    from codedance_cli.infer.run import run

    monkeypatch.chdir(REPO)
    with pytest.raises(BadInput) as caught:
        recipe = with_model_override(load_recipe(REPO / "recipes/nano/infer.yaml", sets, expect_stage="infer"), model)
        run(recipe, question="q", images=[Path(p.replace("{png}", str(red_png))) for p in images], dry_run=True)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_infer_dry_run_names_the_backend(red_png, capsys):
    from codedance_cli.infer.run import run

    recipe = with_model_override(load_recipe(REPO / "recipes/nano/infer.yaml", expect_stage="infer"), "http://127.0.0.1:9/v1")
    assert run(recipe, dry_run=True, question="q", images=[red_png]) is None
    assert "model: openai http://127.0.0.1:9/v1" in capsys.readouterr().out


def test_model_override():
    recipe = load_recipe(REPO / "recipes/nano/infer.yaml", expect_stage="infer")
    url = with_model_override(recipe, "http://host:8000/v1").model
    assert (url.endpoint, url.path, url.backend) == ("http://host:8000/v1", None, "openai")
    local = with_model_override(recipe, str(REPO)).model
    assert (local.path, local.endpoint) == (str(REPO), None)


def test_rich_view_shows_reasoning_code_observations(tmp_path):
    trajectory = sample_trajectory()
    console = Console(record=True, width=100, color_system=None)
    for index, turn in enumerate(trajectory.turns):
        show_turn(console, index, trajectory, turn)
    text = console.export_text()
    for expected in ("turn 1", "Count with a mask.", "print('red blobs:', 3)", "red blobs: 3", "[1 image(s)]", "NameError: name 'y' is not defined"):
        assert expected in text
    saved = save_produced_images(trajectory, tmp_path / "imgs")
    assert saved == {"1": [str(tmp_path / "imgs" / "turn2-img1.png")]} and Image.open(saved["1"][0]).size == (64, 64)
    data = json.loads(trajectory_json(trajectory, saved))
    assert data["saved_images"] == saved and base64.b64decode(data["turns"][1]["observation"]["images"][0]) == trajectory.turns[1].observation.images[0]


def test_html_page_labels_filters_highlighting_and_escaping(tmp_path):
    good = sample_trajectory("good")
    bad = sample_trajectory("bad<script>", answer="<b>5</b>")
    page = render_html([good, bad], ["correct", "wrong"], title="eval")
    assert 'data-label="correct"' in page and 'data-label="wrong"' in page
    assert 'data-label="all">all (2)' in page and ">correct (1)<" in page and ">wrong (1)<" in page
    assert 'id="search"' in page and "<script>" in page  # the filter script
    assert "bad&lt;script&gt;" in page and "&lt;b&gt;5&lt;/b&gt;" in page and "<b>5</b>" not in page
    assert 'class="code"' in page and "<span" in page  # Pygments markup
    assert page.count("data:image/png;base64,") == 2 * (1 + 1)  # input + crop per trajectory
    assert "http://" not in page and "https://" not in page  # nothing fetched from outside
    with pytest.raises(ValueError):
        render_html([good], ["a", "b"])
    path = write_html(tmp_path / "sub" / "page.html", [good])
    assert path.read_text().startswith("<!DOCTYPE html>") and 'data-label="unlabelled"' in path.read_text()
    assert (path.stat().st_mode & 0o777) == 0o644 and not list(path.parent.glob(".*.tmp"))
