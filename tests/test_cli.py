"""The `codedance` command line: every command has help, the root lists every stage, errors are one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from codedance_cli import __version__
from codedance_cli.cli import app
from conftest import REPO_ROOT, run_codedance

STAGES = ["synth", "filter", "sft", "rl", "judge", "eval", "infer"]
# (command path, a word its help must show, any case): the stage commands all take a recipe, --set and --dry-run.
COMMANDS = [
    (["synth"], "recipe"), (["filter"], "recipe"), (["sft"], "recipe"), (["rl"], "recipe"),
    (["judge", "serve"], "recipe"), (["eval"], "recipe"), (["infer"], "recipe"),
    (["recipe", "check"], "recipe"), (["recipe", "ls"], "--json"), (["recipe", "cp"], "--force"), (["doctor"], "--json"),
    (["sandbox", "run"], "script"), (["sandbox", "build-image"], "Usage"),
    (["data", "import"], "Usage"), (["data", "export"], "Usage"),
]
GROUPS = {"judge": ["serve"], "recipe": ["check", "ls", "cp"], "sandbox": ["run", "build-image"], "data": ["import", "export"]}

runner = CliRunner()


def test_root_help_lists_every_stage_as_a_real_subprocess() -> None:
    result = run_codedance("--help")
    assert result.returncode == 0, result.stderr
    for stage in [*STAGES, "recipe", "doctor", "data", "sandbox"]:
        assert f" {stage} " in result.stdout, f"{stage} missing from codedance --help"


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == __version__


@pytest.mark.parametrize(("command", "expected"), COMMANDS, ids=[" ".join(c) for c, _ in COMMANDS])
def test_every_command_has_help(command: list[str], expected: str) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and expected.lower() in result.output.lower()
    if command[0] in STAGES:
        assert "--set" in result.output and "--dry-run" in result.output


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_groups_list_their_subcommands(group: str) -> None:
    result = runner.invoke(app, [group, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    for sub in GROUPS[group]:
        assert sub in result.output


def test_unknown_command_exits_2() -> None:
    result = runner.invoke(app, ["no-such-stage"])
    assert result.exit_code == 2


def test_missing_recipe_file_is_one_line_exit_2(tmp_path) -> None:
    result = run_codedance("sft", tmp_path / "missing.yaml")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.yaml" in lines[0] and "not found" in lines[0]
    assert "Traceback" not in result.stderr


def test_wrong_stage_recipe_is_refused(repo_root) -> None:
    result = run_codedance("rl", repo_root / "recipes" / "nano" / "sft.yaml")
    assert result.returncode == 2
    assert "'sft' recipe" in result.stderr and "codedance rl" in result.stderr


def test_stage_not_built_exits_3_with_one_clear_line() -> None:
    """Generic: any command raising StageNotBuilt is shown as one line and exits 3 (stages are being built)."""
    program = (
        "import sys\n"
        "from codedance_cli.cli import app, main\n"
        "from codedance_cli.errors import StageNotBuilt\n"
        "@app.command('unbuilt-probe')\n"
        "def probe() -> None:\n"
        "    raise StageNotBuilt('codedance unbuilt-probe is not built yet; nothing was run')\n"
        "sys.argv = ['codedance', 'unbuilt-probe']\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
                            env={"COLUMNS": "200", "NO_COLOR": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 3
    assert result.stderr.strip() == "error: codedance unbuilt-probe is not built yet; nothing was run"
