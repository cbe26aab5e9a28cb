"""The package's one-way flow, checked on every import (module level and inside functions).

Each unit has a rank; a unit imports only units of a lower rank, or itself. Stages share a rank, so they never
import one another; the sandbox worker imports nothing of codedance_cli at all (it runs with the sandbox's own Python).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "codedance_cli"

RANKS: dict[str, float] = {
    "common": 1, "errors": 1, "console": 1, "__version__": 1,
    "models": 2,
    "recipes": 3,
    "trajectory": 4,
    "sandbox.worker": 4.5,  # below the host side, which imports its framing; it imports nothing itself
    "sandbox": 5,
    "clients": 6,
    "loop": 7,
    "procedural": 8, "viewer": 8, "rewards": 8,
    "data": 9,
    "engines": 10,
    "engines.swift": 11, "engines.verl": 11,
    "cli_common": 11.5,  # the commands' shared options and error exit, used by every stage's cli.py
    "synth": 12, "filter": 12, "sft": 12, "rl": 12, "eval": 12, "infer": 12, "judge": 12,
    "doctor": 13, "data_commands": 13, "sandbox_commands": 13, "recipe_commands": 13,
    "cli": 14, "__main__": 15, "__init__": 1, "recipes_bundled": 3,
}


def unit_of_file(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[:2] == ("sandbox", "worker"):
        return "sandbox.worker"
    if parts[0] == "engines" and len(parts) > 2:
        return f"engines.{parts[1]}"
    return parts[0]


def unit_of_module(module: str) -> str | None:
    parts = module.split(".")[1:]
    if not parts:
        return None
    if parts[:2] == ["sandbox", "worker"]:
        return "sandbox.worker"
    if parts[0] == "engines" and len(parts) > 1 and parts[1] in ("swift", "verl"):
        return f"engines.{parts[1]}"
    return parts[0]


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("codedance_cli"):
            names = [f"codedance_cli.{alias.name}" for alias in node.names] if node.module == "codedance_cli" else [node.module]
            found += [(node.lineno, name) for name in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("codedance_cli")]
    return found


def test_every_unit_has_a_rank() -> None:
    units = {unit_of_file(path) for path in PACKAGE.rglob("*.py")}
    assert units <= set(RANKS), sorted(units - set(RANKS))


def test_imports_run_one_way() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = unit_of_file(path)
        for line, module in imports(path):
            target = unit_of_module(module)
            if target is None or target == unit:
                continue
            if unit == "sandbox.worker" or RANKS[target] >= RANKS[unit]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} ({unit}) imports {module} ({target})")
    assert not wrong, "\n".join(wrong)


def test_no_module_is_two_modules() -> None:
    long = [f"{path.relative_to(PACKAGE)}: {n} lines" for path in PACKAGE.rglob("*.py") if (n := len(path.read_text().splitlines())) > 450]
    assert not long, long
