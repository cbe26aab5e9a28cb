"""Shared fixtures: the repository root, the tiny Qwen2.5-VL model, and running `codedance` for real."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback port nothing listens on now, for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def _built_model(env_var: str, name: str, extra_args: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """$env_var when that model is built (the Makefile sets it), else build it here once per session."""
    configured = os.environ.get(env_var)
    if configured and (Path(configured) / "config.json").is_file():
        return Path(configured)
    out = tmp_path_factory.mktemp(name) / name
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "make_tiny_model.py"), *extra_args, str(out)], check=True, cwd=REPO_ROOT)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Qwen2.5-VL."""
    return _built_model("CODEDANCE_TINY_MODEL", "tiny-qwen2.5-vl", [], tmp_path_factory)

@pytest.fixture(scope="session")
def nano_items(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight procedural nano items (`codedance synth`), for the tests that need a short real training run."""
    data = tmp_path_factory.mktemp("nano_items") / "items"
    made = run_codedance("synth", REPO_ROOT / "recipes" / "nano" / "synth.yaml", "--set", "num_items=8",
                         "--set", f"output={data}", timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    return data



@pytest.fixture(scope="session")
def tiny_judge_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random text-only Qwen2 judge (same tokenizer and chat template)."""
    return _built_model("CODEDANCE_TINY_JUDGE", "tiny-qwen2-judge", ["--text-only"], tmp_path_factory)


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
