"""The `codedance eval` stage."""

from __future__ import annotations

from codedance_cli.errors import StageNotBuilt


def run(recipe, *, dry_run: bool = False) -> None:
    raise StageNotBuilt("codedance eval is not built yet (issue #8); nothing was run")
