"""The `codedance rl` stage."""

from __future__ import annotations

from codedance_cli.errors import StageNotBuilt


def run(recipe, *, dry_run: bool = False) -> None:
    raise StageNotBuilt("codedance rl is not built yet (issue #7); nothing was run")
