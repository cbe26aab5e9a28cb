"""Pieces of an ms-swift command line that `swift sft` (codedance sft) and `swift rlhf` (codedance rl) share."""

from __future__ import annotations

from pathlib import Path


def flag(value: bool) -> str:
    """A boolean as ms-swift's argument parser spells it."""
    return "true" if value else "false"


def model_check_args(model: str) -> list[str]:
    """`--check_model false` for a local folder: there is no hub copy to compare it with (offline the check retries ~8 s)."""
    return ["--check_model", "false"] if Path(model).is_dir() else []
