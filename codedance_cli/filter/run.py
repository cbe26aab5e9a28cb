"""The `codedance filter` stage."""

from __future__ import annotations

from codedance_cli.errors import StageNotBuilt


def run(recipe, *, dry_run: bool = False) -> None:
    raise StageNotBuilt("codedance filter is not built yet (issue #5); nothing was run")
