"""Recipes: every shipped one validates; bad ones fail with one line naming the file, the dotted field and a hint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from codedance_cli.errors import BadInput
from codedance_cli.recipes import load_recipe
from conftest import REPO_ROOT, run_codedance

SHIPPED = sorted(p for p in (REPO_ROOT / "recipes").rglob("*.yaml") if not p.name.endswith("base.yaml"))  # *base.yaml: shared sections, no stage


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def _bad(path: Path, *sets: str) -> str:
    """The one-line BadInput message for loading `path` (in-process: the CLI path is covered below)."""
    with pytest.raises(BadInput) as info:
        load_recipe(path, list(sets))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_recipes_are_shipped_for_both_scales() -> None:
    scales = {p.parent.name for p in SHIPPED}
    assert {"nano", "qwen2.5-vl-7b"} <= scales


@pytest.mark.parametrize("recipe", SHIPPED, ids=[str(p.relative_to(REPO_ROOT / "recipes")) for p in SHIPPED])
def test_shipped_recipe_validates(recipe: Path) -> None:
    loaded = load_recipe(recipe)
    assert loaded.stage == recipe.stem or recipe.stem.startswith(loaded.stage)


def test_recipe_check_cli_prints_resolved_json() -> None:
    recipe = REPO_ROOT / "recipes" / "nano" / "sft.yaml"
    result = run_codedance("recipe", "check", recipe, "--json", "--set", "description=from the command line")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["stage"] == "sft" and data["description"] == "from the command line"


def test_recipe_check_cli_bad_recipe_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = _write(tmp_path, "bad.yaml", "stage: sft\nmodel: m\ndataset:\n  path: d\noutput_dir: o\nparts:\n  tuner_typ: full\n")
    result = run_codedance("recipe", "check", bad)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(bad) in lines[0] and "'parts.tuner_typ'" in lines[0] and "did you mean 'tuner_type'" in lines[0]


def test_unknown_nested_key_has_did_you_mean_and_dotted_name(tmp_path: Path) -> None:
    bad = _write(tmp_path, "eval.yaml", "stage: eval\nmodel:\n  pth: x\nbenchmarks: []\noutput_dir: o\n")
    message = _bad(bad)
    assert str(bad) in message and "'model.pth'" in message and "did you mean 'path'" in message


def test_wrong_type_names_field_and_value(tmp_path: Path) -> None:
    bad = _write(tmp_path, "synth.yaml", "stage: synth\noutput: o\nnum_items: lots\n")
    message = _bad(bad)
    assert str(bad) in message and "'num_items'" in message and "'lots'" in message


def test_missing_field_is_named(tmp_path: Path) -> None:
    bad = _write(tmp_path, "synth.yaml", "stage: synth\nnum_items: 3\n")
    message = _bad(bad)
    assert str(bad) in message and "'output'" in message and "missing" in message


def test_missing_stage_and_unknown_stage(tmp_path: Path) -> None:
    assert "'stage'" in _bad(_write(tmp_path, "a.yaml", "output: o\n"))
    message = _bad(_write(tmp_path, "b.yaml", "stage: synht\noutput: o\n"))
    assert "did you mean 'synth'" in message


def test_bad_yaml_reports_line_number(tmp_path: Path) -> None:
    bad = _write(tmp_path, "broken.yaml", "stage: synth\noutput: o\nnum_items: [1, 2\nseed: 0\n")
    message = _bad(bad)
    assert f"{bad}:" in message and "invalid YAML" in message
    line = int(message.split(f"{bad}:")[1].split(":")[0])
    assert line in (3, 4, 5)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert "mapping" in _bad(_write(tmp_path, "list.yaml", "- stage\n- synth\n"))


def test_extends_chain_merges_nested_sections(tmp_path: Path) -> None:
    _write(tmp_path, "grand.yaml", "description: grand\nsandbox:\n  workers: 7\n  timeout_s: 3\n")
    _write(tmp_path, "parent.yaml", "extends: grand.yaml\nstage: synth\noutput: parent-out\nsandbox:\n  workers: 5\n")
    child = _write(tmp_path, "child.yaml", "extends: parent.yaml\nnum_items: 9\n")
    recipe = load_recipe(child)
    assert recipe.description == "grand" and recipe.output == Path("parent-out") and recipe.num_items == 9
    assert recipe.sandbox.workers == 5 and recipe.sandbox.timeout_s == 3


def test_extends_cycle_and_missing_parent(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "extends: b.yaml\nstage: synth\noutput: o\n")
    b = _write(tmp_path, "b.yaml", "extends: a.yaml\n")
    assert "extends cycle" in _bad(b)
    orphan = _write(tmp_path, "orphan.yaml", "extends: nowhere.yaml\nstage: synth\noutput: o\n")
    message = _bad(orphan)
    assert str(orphan) in message and "'extends'" in message and "nowhere.yaml" in message


def test_set_overrides_parse_yaml_values(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.yaml", "stage: synth\noutput: o\n")
    recipe = load_recipe(path, ["num_items=12", "sandbox.timeout_s=2.5", "sandbox.use_bwrap=false", "teacher.path=/m"])
    assert recipe.num_items == 12 and recipe.sandbox.timeout_s == 2.5 and recipe.sandbox.use_bwrap is False
    assert recipe.teacher is not None and recipe.teacher.path == "/m"


def test_set_indexes_into_lists_without_touching_the_recipe_file_data(tmp_path: Path) -> None:
    recipe = REPO_ROOT / "recipes" / "nano" / "eval.yaml"
    before = load_recipe(recipe)
    after = load_recipe(recipe, ["benchmarks.0.path=/data/heldout", "benchmarks.0.limit=4", "benchmarks.0.options.seed=5"])
    assert str(after.benchmarks[0].path) == "/data/heldout" and after.benchmarks[0].limit == 4
    assert after.benchmarks[0].options["seed"] == 5 and after.benchmarks[0].options["generate"] == 16  # the rest stays
    assert before.benchmarks[0].limit == 16 and load_recipe(recipe).benchmarks[0].limit == 16
    assert "benchmarks is a list of 1; index it with 0..0" in _bad(recipe, "benchmarks.1.limit=4")
    assert "benchmarks is a list of 1" in _bad(recipe, "benchmarks.first.limit=4")


def test_bad_set_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.yaml", "stage: synth\noutput: o\n")
    assert "KEY=VALUE" in _bad(path, "num_items")
    message = _bad(path, "sandbox.timeout=3")
    assert "'sandbox.timeout'" in message and "did you mean 'timeout_s'" in message
    assert "'num_items'" in _bad(path, "num_items=many")


def test_bad_set_on_the_command_line_exits_2() -> None:
    recipe = REPO_ROOT / "recipes" / "nano" / "sft.yaml"
    result = run_codedance("recipe", "check", recipe, "--set", "no_such_field=1")
    assert result.returncode == 2
    assert "no_such_field" in result.stderr and str(recipe) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# (bundled recipe, its top-level key, the typo): a required key (its absence is a consequence of the typo, not news),
# an optional one, a section, and `extends` itself.
TOP_LEVEL_TYPOS = [("nano/sft", "model", "modle"), ("nano/synth", "num_items", "num_itmes"), ("nano/rl", "train", "trian"),
                   ("nano/eval", "extends", "extend")]


@pytest.mark.parametrize(("name", "key", "typo"), TOP_LEVEL_TYPOS, ids=[t[2] for t in TOP_LEVEL_TYPOS])
def test_a_typo_in_a_recipe_file_gets_the_hint_a_set_typo_gets(name: str, key: str, typo: str, tmp_path: Path) -> None:
    source = REPO_ROOT / "recipes" / f"{name}.yaml"
    typoed = tmp_path / source.name
    text = source.read_text()
    assert f"\n{key}:" in text
    typoed.write_text(text.replace(f"\n{key}:", f"\n{typo}:", 1).replace("extends: base.yaml", "extends: nano/base").replace("extends: model_base.yaml", "extends: nano/model_base"))
    from_file = run_codedance("recipe", "check", typoed)
    assert from_file.returncode == 2
    (line,) = from_file.stderr.strip().splitlines()
    # first the typo; a field it left unset may add "[+1 more error(s)]" (sft's model then has no path)
    assert line.startswith(f"error: {typoed}: unknown field '{typo}' (did you mean '{key}'?)")
    if key != "extends":  # `--set extends=...` is not a way to extend
        from_set = run_codedance("recipe", "check", source, "--set", f"{typo}=1")
        assert from_set.returncode == 2
        assert from_set.stderr.strip() == f"error: {source}: unknown field '{typo}' (did you mean '{key}'?)"


def test_the_recipes_leaf_never_imports_the_command_line() -> None:
    """The command face is codedance_cli/recipe_commands.py; the leaf itself imports no CLI plumbing (no cycle)."""
    program = (
        "import importlib, pkgutil, sys\n"
        "import codedance_cli.recipes as leaf\n"
        "for module in pkgutil.iter_modules(leaf.__path__):\n"
        "    importlib.import_module(f'codedance_cli.recipes.{module.name}')\n"
        "print(sorted(m for m in sys.modules if m in ('codedance_cli.cli', 'codedance_cli.cli_common', 'typer')))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert not (REPO_ROOT / "codedance_cli" / "recipes" / "cli.py").exists()
    assert (REPO_ROOT / "codedance_cli" / "recipe_commands.py").is_file()
