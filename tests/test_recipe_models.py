"""Model fields naming a local folder: found from the working directory or the recipe's folder, else one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codedance_cli.recipes import load_recipe
from codedance_cli.recipes.model_paths import is_hub_id
from conftest import run_codedance

# (command, recipe, field, a local-looking value that does not exist)
MISSING = [
    (["rl"], "nano/rl", "model.path", "artifacts/nano/sft/last"),  # the recipe's own value: RL before SFT ran
    (["sft"], "nano/sft", "model.path", "./models/x"),
    (["eval"], "nano/eval", "model.path", "../elsewhere/ckpt"),
    (["filter"], "nano/filter", "weak_model.path", "~/no-such-codedance-model"),
    (["judge", "serve"], "nano/judge", "model", ".cache/no-such-judge"),
    (["infer", "q", "-i", "x.png", "--recipe"], "nano/infer", "model.path", "/no/such/model"),
]


@pytest.mark.parametrize(("command", "recipe", "field", "value"), MISSING, ids=[m[1] for m in MISSING])
def test_a_missing_model_folder_is_named_with_recipe_and_field(command: list[str], recipe: str, field: str, value: str,
                                                               tmp_path: Path) -> None:
    result = run_codedance(*command, recipe, "--set", f"{field}={value}", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == f"error: model folder not found: {value} (from {recipe} field {field})"
    assert not any(tmp_path.iterdir())  # nothing started, nothing written


def test_a_dry_run_warns_about_the_missing_model_and_still_prints_the_plan(tmp_path: Path) -> None:
    result = run_codedance("rl", "nano/rl", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning: model folder not found: artifacts/nano/sft/last (from nano/rl field model.path)" in result.stderr
    assert "swift" in result.stdout


def test_hub_ids_stay_hub_ids(tmp_path: Path) -> None:
    result = run_codedance("sft", "qwen2.5-vl-7b/sft", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--model Qwen/Qwen2.5-VL-7B-Instruct" in result.stdout and "model folder" not in result.stderr
    assert load_recipe("qwen2.5-vl-7b/judge").model == "Qwen/Qwen2.5-72B-Instruct"


@pytest.mark.parametrize(("value", "hub"), [
    ("Qwen/Qwen2.5-VL-7B-Instruct", True), ("org/name.v2", True), ("./models/x", False), ("../x/y", False),
    ("/models/x", False), ("~/x", False), (".cache/tiny", False), ("artifacts/nano/sft/last", False), ("bare", False),
])
def test_is_hub_id(value: str, hub: bool) -> None:
    assert is_hub_id(value) is hub


def _model_beside_recipe(root: Path) -> Path:
    """root/recipes/sft.yaml with `model: ./models/tiny`, the model folder next to it."""
    folder = root / "recipes"
    (folder / "models" / "tiny").mkdir(parents=True)
    (folder / "models" / "tiny" / "config.json").write_text("{}")
    recipe = folder / "sft.yaml"
    recipe.write_text("extends: nano/sft\nmodel: ./models/tiny\n")
    return recipe


def test_a_model_beside_the_recipe_is_found_from_any_folder(tmp_path: Path) -> None:
    recipe = _model_beside_recipe(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    checked = run_codedance("recipe", "check", recipe, "--json", cwd=elsewhere)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["model"]["path"] == str(recipe.parent / "models" / "tiny")
    planned = run_codedance("sft", recipe, "--dry-run", cwd=elsewhere)
    assert planned.returncode == 0, planned.stderr
    assert f"--model {recipe.parent / 'models' / 'tiny'}" in planned.stdout


def test_the_working_directory_comes_first_and_keeps_the_path_as_written(tmp_path: Path) -> None:
    recipe = _model_beside_recipe(tmp_path)
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    checked = run_codedance("recipe", "check", recipe, "--json", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["model"]["path"] == "./models/tiny"
