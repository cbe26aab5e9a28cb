"""Piped output keeps every character: no wrapping at 80 columns, no cropped lines, no table cells cut with '…'."""

from __future__ import annotations

import pytest

from codedance_cli.console import PIPE_WIDTH, make_console
from codedance_cli.recipes import load_recipe
from conftest import run_codedance

NARROW = {"COLUMNS": "80"}  # what a pipe reports; output must not follow it
LONG = " ".join(f"word{i:03d}" for i in range(60)) + " /a/very/long/path/" + "x" * 120  # ~600 characters, one line


def test_a_long_recipe_line_arrives_whole_through_a_pipe() -> None:
    result = run_codedance("recipe", "check", "nano/sft", "--set", f"description={LONG}", env=NARROW)
    assert result.returncode == 0, result.stderr
    assert f"description: {LONG}" in result.stdout.splitlines()


def test_recipe_check_explain_through_a_pipe_cuts_nothing() -> None:
    result = run_codedance("recipe", "check", "qwen2.5-vl-7b/rl", "--explain", env=NARROW)
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    rows = [line for line in result.stdout.splitlines() if "loop.max_consecutive_failures" in line]
    assert len(rows) == 1 and "Stop after this many failed code executions in a row." in rows[0]


def test_recipe_ls_through_a_pipe_has_one_whole_line_per_recipe() -> None:
    result = run_codedance("recipe", "ls", env=NARROW)
    assert result.returncode == 0, result.stderr
    description = load_recipe("qwen2.5-vl-7b/rl").description
    assert len(description) > 80
    assert any("qwen2.5-vl-7b/rl" in line and description in line for line in result.stdout.splitlines())


def test_eval_list_through_a_pipe_cuts_nothing() -> None:
    result = run_codedance("eval", "--list", env=NARROW)
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    assert any("relaxed accuracy (5% numeric tolerance)." in line for line in result.stdout.splitlines())


def test_make_console_is_wide_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    console = make_console()  # pytest captures stdout: not a terminal
    assert not console.is_terminal and console.width == PIPE_WIDTH
    monkeypatch.setenv("CODEDANCE_PIPE_WIDTH", "300")
    assert make_console(stderr=True).width == 300
