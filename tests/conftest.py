"""Shared fixtures: the repository root, the tiny Qwen2.5-VL model, and running `codedance` for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Qwen2.5-VL: $CODEDANCE_TINY_MODEL when built (the Makefile sets it), else built here once."""
    configured = os.environ.get("CODEDANCE_TINY_MODEL")
    if configured and (Path(configured) / "config.json").is_file():
        return Path(configured)
    out = tmp_path_factory.mktemp("tiny-model") / "tiny-qwen2.5-vl"
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "make_tiny_model.py"), str(out)], check=True, cwd=REPO_ROOT)
    return out


def codedance_executable() -> str:
    """The console script installed beside this interpreter (the venv's), so tests run what users run."""
    candidate = Path(sys.executable).with_name("codedance")
    return str(candidate) if candidate.exists() else "codedance"


def run_codedance(*args: str | os.PathLike, cwd: Path | None = None, env: dict[str, str] | None = None,
                  timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `codedance ARGS` as a real subprocess; returns the completed process (never raises on exit code)."""
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [codedance_executable(), *map(str, args)], cwd=cwd or REPO_ROOT, env=full_env,
        capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def codedance():
    """`codedance(*args, cwd=..., env=...)` -> CompletedProcess, for tests that prefer a fixture to an import."""
    return run_codedance
