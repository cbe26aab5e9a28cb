"""The `codedance judge serve` stage."""

from __future__ import annotations

from codedance_cli.errors import StageNotBuilt


def run(recipe, *, dry_run: bool = False) -> None:
    raise StageNotBuilt("codedance judge serve is not built yet (issue #4); nothing was started")
