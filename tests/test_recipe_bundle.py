"""Recipes ship with the package: `recipe ls`, `recipe cp`, bundled names for every RECIPE argument, `extends:` lookup."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from codedance_cli.recipes import load_recipe
from conftest import REPO_ROOT, run_codedance

SHIPPED = sorted(p.relative_to(REPO_ROOT / "recipes").with_suffix("").as_posix() for p in (REPO_ROOT / "recipes").rglob("*.yaml"))


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_the_bundle_is_the_repository_folder_and_is_package_data() -> None:
    """One copy of each recipe: the package's recipes_bundled is the repository's recipes/ (a symlink)."""
    assert (REPO_ROOT / "codedance_cli" / "recipes_bundled").resolve() == (REPO_ROOT / "recipes").resolve()
    assert 'codedance_cli = ["recipes_bundled/**/*.yaml"]' in (REPO_ROOT / "pyproject.toml").read_text()


@pytest.mark.slow
def test_a_built_wheel_carries_every_recipe_as_a_real_file(tmp_path: Path) -> None:
    """What `pip install .` installs: setuptools follows the symlink, so the wheel holds the files themselves."""
    pytest.importorskip("setuptools", reason="the offline build needs setuptools in this environment")
    tree = tmp_path / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO_ROOT / "codedance_cli", tree / "codedance_cli", symlinks=True, ignore=ignore)
    shutil.copytree(REPO_ROOT / "recipes", tree / "recipes")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, tree / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
                   check=True, cwd=tmp_path, timeout=600)
    (wheel,) = tmp_path.glob("codedance-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = {n.removeprefix("codedance_cli/recipes_bundled/").removesuffix(".yaml") for n in archive.namelist()
                    if n.startswith("codedance_cli/recipes_bundled/")}
        assert packaged == set(SHIPPED)
        assert archive.read("codedance_cli/recipes_bundled/nano/sft.yaml") == (REPO_ROOT / "recipes/nano/sft.yaml").read_bytes()


def test_recipe_ls_lists_every_bundled_recipe_with_stage_and_description() -> None:
    result = run_codedance("recipe", "ls", "--json", cwd=Path("/"))
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert sorted(rows) == SHIPPED
    assert rows["nano/sft"]["stage"] == "sft" and rows["nano/base"]["stage"] is None
    assert rows["nano/eval"]["description"] == load_recipe(REPO_ROOT / "recipes/nano/eval.yaml").description  # inherited
    table = run_codedance("recipe", "ls")
    assert table.returncode == 0 and "qwen2.5-vl-7b/rl" in table.stdout and "nano/synth_heldout" in table.stdout


def test_stage_commands_take_a_bundled_name_from_any_folder(tmp_path: Path, tiny_model_dir: Path) -> None:
    checked = run_codedance("recipe", "check", "nano/sft", "--json", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout) == json.loads(run_codedance("recipe", "check", REPO_ROOT / "recipes/nano/sft.yaml", "--json").stdout)
    docs_path = run_codedance("recipe", "check", "recipes/nano/rl.yaml", "--json", cwd=tmp_path)  # as the README writes it
    assert docs_path.returncode == 0 and json.loads(docs_path.stdout)["stage"] == "rl", docs_path.stderr
    sft = run_codedance("sft", "nano/sft", "--dry-run", "--set", f"model={tiny_model_dir}", cwd=tmp_path)
    assert sft.returncode == 0, sft.stderr
    assert "--model_type codedance_qwen2_5_vl" in sft.stdout


def test_an_unknown_name_is_one_line_with_did_you_mean(tmp_path: Path) -> None:
    line = _one_error_line(run_codedance("sft", "nano/sfx", cwd=tmp_path))
    assert "nano/sfx" in line and "not found" in line and "did you mean 'nano/sft'" in line


def test_recipe_cp_copies_a_recipe_that_works_anywhere(tmp_path: Path) -> None:
    dest = tmp_path / "elsewhere" / "my_sft.yaml"
    result = run_codedance("recipe", "cp", "nano/sft", dest, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "extends: nano/model_base" in result.stdout
    text = dest.read_text()
    original = (REPO_ROOT / "recipes/nano/sft.yaml").read_text()
    assert text == original.replace("extends: model_base.yaml", "extends: nano/model_base")  # comments and layout kept
    copied = run_codedance("recipe", "check", dest, "--json", cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert json.loads(copied.stdout) == load_recipe(REPO_ROOT / "recipes/nano/sft.yaml").model_dump(mode="json")


def test_recipe_cp_into_a_folder_and_a_chain_of_two(tmp_path: Path) -> None:
    result = run_codedance("recipe", "cp", "nano/synth_heldout.yaml", tmp_path)
    assert result.returncode == 0, result.stderr
    copy = tmp_path / "synth_heldout.yaml"
    assert "extends: nano/synth" in copy.read_text()
    assert load_recipe(copy) == load_recipe("nano/synth_heldout")


def test_recipe_cp_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    dest = tmp_path / "mine.yaml"
    dest.write_text("my edits\n")
    line = _one_error_line(run_codedance("recipe", "cp", "nano/rl", dest))
    assert str(dest) in line and "--force" in line
    assert dest.read_text() == "my edits\n"
    forced = run_codedance("recipe", "cp", "nano/rl", dest, "--force")
    assert forced.returncode == 0, forced.stderr
    assert load_recipe(dest).stage == "rl"


def test_recipe_cp_unknown_name_is_one_line_with_did_you_mean(tmp_path: Path) -> None:
    line = _one_error_line(run_codedance("recipe", "cp", "nano/rll", tmp_path))
    assert "nano/rll" in line and "did you mean 'nano/rl'" in line
    assert not list(tmp_path.iterdir())


def test_extends_prefers_the_recipe_folder_then_a_bundled_name(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("description: my own base\n")
    local = tmp_path / "local.yaml"
    local.write_text("extends: base.yaml\nstage: synth\noutput: o\n")
    assert load_recipe(local).description == "my own base"
    for spelling in ("nano/base", "nano/base.yaml"):
        named = tmp_path / "named.yaml"
        named.write_text(f"extends: {spelling}\nstage: synth\noutput: o\n")
        bundled_base = yaml.safe_load((REPO_ROOT / "recipes/nano/base.yaml").read_text())["description"]
        assert load_recipe(named).description == bundled_base != ""


def test_a_plain_copy_with_a_relative_extends_says_which_bundled_parent_it_means(tmp_path: Path) -> None:
    shutil.copy(REPO_ROOT / "recipes/nano/sft.yaml", tmp_path / "sft.yaml")
    line = _one_error_line(run_codedance("recipe", "check", tmp_path / "sft.yaml"))
    assert "'extends'" in line and "model_base.yaml" in line and "did you mean 'nano/model_base'" in line
