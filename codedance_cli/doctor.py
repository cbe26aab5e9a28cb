"""`codedance doctor`: what this machine has for each stage, found or not, with versions."""

from __future__ import annotations

import importlib.metadata
import json as jsonlib
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass

from rich.table import Table

from codedance_cli.cli_common import JsonOpt
from codedance_cli.console import make_console


@dataclass
class Check:
    name: str
    found: bool
    detail: str
    needed_for: str


def _package(dist: str, needed_for: str, name: str | None = None) -> Check:
    try:
        return Check(name or dist, True, importlib.metadata.version(dist), needed_for)
    except importlib.metadata.PackageNotFoundError:
        return Check(name or dist, False, "not installed", needed_for)


def _binary(name: str, version_args: list[str], needed_for: str) -> Check:
    path = shutil.which(name)
    if path is None:
        return Check(name, False, "not on PATH", needed_for)
    try:
        out = subprocess.run([path, *version_args], capture_output=True, text=True, timeout=10)
        first = (out.stdout or out.stderr).strip().splitlines()
        return Check(name, True, first[0] if first else path, needed_for)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(name, True, f"{path} ({exc.__class__.__name__})", needed_for)


def _torch() -> list[Check]:
    try:
        import torch
    except ImportError:
        return [Check("torch", False, "not installed", "sft, rl, local models"), Check("cuda", False, "no torch", "GPU stages")]
    checks = [Check("torch", True, torch.__version__, "sft, rl, local models")]
    if torch.cuda.is_available():
        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        checks.append(Check("cuda", True, f"{torch.cuda.device_count()} GPU(s): {', '.join(names)}; CUDA {torch.version.cuda}", "GPU stages"))
    else:
        checks.append(Check("cuda", False, "no GPU visible (CPU only)", "GPU stages"))
    return checks


def _docker_engine() -> Check:
    try:
        import docker

        client = docker.from_env(timeout=5)
        version = client.version()
        return Check("docker engine", True, f"{version.get('Version')} (API {version.get('ApiVersion')})", "sandbox docker backend")
    except Exception as exc:  # the SDK raises many kinds when no daemon answers
        return Check("docker engine", False, f"not reachable ({exc.__class__.__name__})", "sandbox docker backend")


def _seccomp() -> Check:
    """Builds the filter the sandbox worker loads, the way the worker builds it (python3-seccomp, else pyseccomp)."""
    from codedance_cli.sandbox.worker.lockdown import build_seccomp_filter

    flt, problem = build_seccomp_filter()
    if flt is None:
        return Check("seccomp", False, problem or "unavailable", "sandbox local backend")
    return Check("seccomp", True, f"filter built with {type(flt).__module__.split('.')[0]}", "sandbox local backend")


def collect() -> list[Check]:
    """Every check, in the order a user reads them."""
    checks = [Check("python", True, platform.python_version(), "everything")]
    checks += _torch()
    checks += [
        _package("transformers", "models, transformers serve"),
        _package("datasets", "trajectory storage"),
        _package("vllm", "fast serving and rollouts"),
        _package("ms-swift", "sft, rl (engine: swift)"),
        _package("verl", "rl (engine: verl)"),
        _docker_engine(),
        _binary("bwrap", ["--version"], "sandbox local backend"),
        _binary("runsc", ["--version"], "sandbox gVisor runtime"),
        _seccomp(),
    ]
    return checks


def command(json: JsonOpt = False) -> None:
    """Report Python, torch/CUDA, engines (vLLM, ms-swift, verl), Docker, bubblewrap, gVisor, seccomp."""
    checks = collect()
    if json:
        print(jsonlib.dumps([asdict(c) for c in checks], indent=2))
        return
    table = Table("component", "status", "detail", "needed for", title="codedance doctor")
    for c in checks:
        table.add_row(c.name, "[green]found[/]" if c.found else "[yellow]missing[/]", c.detail, c.needed_for)
    make_console().print(table)
