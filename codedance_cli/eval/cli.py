"""CLI entry for `codedance eval`: validates the recipe, then runs the stage."""

from __future__ import annotations

from codedance_cli.cli_common import DryRunOpt, RecipeArg, SetOpt, run_stage


def command(recipe: RecipeArg, set: SetOpt = None, dry_run: DryRunOpt = False) -> None:
    """Run benchmarks through the tool loop and write reports."""
    run_stage("eval", recipe, set, dry_run)
