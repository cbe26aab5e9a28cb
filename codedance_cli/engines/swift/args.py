"""What `swift sft` (codedance sft) and `swift rlhf` (codedance rl) share: the executable, booleans, the model argument."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from codedance_cli.errors import BadInput

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def flag(value: bool) -> str:
    """A boolean as ms-swift's argument parser spells it."""
    return "true" if value else "false"


def model_check_args(model: str) -> list[str]:
    """`--check_model false` for a local folder: there is no hub copy to compare it with (offline the check retries ~8 s)."""
    return ["--check_model", "false"] if Path(model).is_dir() else []


def swift_executable(command: str = "swift") -> str:
    """The ms-swift launcher: a path as given; else the one beside this Python (the venv that has codedance), then PATH.

    The venv's own `swift` comes first so that a run never picks up another environment's ms-swift that happens
    to be on PATH; a venv that is not activated (its bin/ not on PATH) still works.
    """
    if "/" in command:
        if Path(command).exists():
            return str(Path(command).resolve())
        raise BadInput(f"swift launcher {command!r} not found")
    beside = Path(sys.executable).with_name(command)
    if beside.exists():
        return str(beside)
    found = shutil.which(command)
    if found:
        return found
    raise BadInput(f"swift launcher {command!r} not found beside {sys.executable} or on PATH: install ms-swift (pip install -e '.[train]')")


def resolve_model(model: str) -> str:
    """A local folder (must hold config.json) as an absolute path, or a hub id left as is; else BadInput."""
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise BadInput(f"model {model!r}: {path.resolve()} has no config.json (not a transformers model folder)")
        return str(path.resolve())
    if HUB_ID.match(model) and not model.startswith("."):
        return model  # ms-swift downloads it (needs network and a hub)
    raise BadInput(f"model {model!r}: model folder not found, and not a hub id of the form org/name")
