"""CLI entry for `codedance filter`: validates the recipe, then runs the stage."""

from __future__ import annotations

from codedance_cli.cli_common import DryRunOpt, RecipeArg, SetOpt, run_stage


def command(recipe: RecipeArg, set: SetOpt = None, dry_run: DryRunOpt = False) -> None:
    """Weak-to-strong filtering, dedup and re-execution of trajectories."""
    run_stage("filter", recipe, set, dry_run)
