"""The `codedance sft` stage."""

from __future__ import annotations

from codedance_cli.errors import StageNotBuilt


def run(recipe, *, dry_run: bool = False) -> None:
    raise StageNotBuilt("codedance sft is not built yet (issue #6); nothing was run")
